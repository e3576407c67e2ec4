import { useEffect, useRef, useState } from 'react';
import { languageLabel, opened, request, socket } from '../api/client.ts';
import { notReadyReason, type ReadinessState } from '../api/readiness.ts';
import type { Connection } from '../api/settings.ts';
import { Unavailable } from '../components/Unavailable.tsx';
import { startMic, type Mic } from '../audio/mic.ts';
import { useRecorder } from '../audio/useRecorder.ts';
import { ErrorBox } from '../components/ErrorBox.tsx';
import { RecordTimer } from '../components/RecordTimer.tsx';

interface Result {
  text: string;
  language: string;
  duration: number;
  engine: string;
  segments: { id: number; start: number; end: number; text: string }[];
  words?: { word: string; start: number; end: number }[];
}

/** Speech to text: upload or record a file; or live over /ws/stt with partial text. */
export function SttPanel({ connection, readiness }: { connection: Connection; readiness?: ReadinessState }) {
  const unavailable = readiness && notReadyReason(readiness, 'stt');
  const [file, setFile] = useState<File | null>(null);
  const [words, setWords] = useState(false);
  const [result, setResult] = useState<Result | null>(null);
  const [timing, setTiming] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [live, setLive] = useState<{ finals: string[]; partial: string } | null>(null);
  const liveParts = useRef<{ ws: WebSocket; mic: Mic | null } | null>(null);
  const [liveOn, setLiveOn] = useState(false);

  // leaving the tab (unmount) releases the microphone and the socket: nothing keeps streaming unseen
  useEffect(
    () => () => {
      stopLive();
    },
    [],
  );

  function stopLive() {
    const p = liveParts.current;
    liveParts.current = null;
    p?.mic?.stop();
    p?.ws.close();
    setLiveOn(false);
  }

  async function transcribe(blob: Blob, name: string) {
    setBusy(true);
    setError(null);
    setResult(null); // an error must not sit next to the previous file's transcript
    const started = performance.now();
    try {
      const form = new FormData();
      form.set('file', blob, name);
      // one route for both views, so the language (an ISO code) and the engine read the same way
      form.set('response_format', 'json');
      if (words) form.set('timestamp_granularities[]', 'word');
      const res = await request(connection, '/v1/speech-to-text', { method: 'POST', body: form });
      const body = (await res.json()) as Result;
      setResult({ ...body, engine: body.engine || res.headers.get('x-stt-engine') || 'unknown engine' });
      setTiming(`${(performance.now() - started).toFixed(0)} ms`);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  // a recording is transcribed when it stops (the recorder is released when the tab is left)
  const { recordingSince: recording, toggle: toggleRecording } = useRecorder((blob, name) => void transcribe(blob, name), setError);

  async function toggleLive() {
    if (liveParts.current) {
      stopLive();
      setLive((l) => (l ? { ...l, partial: '' } : l));
      return;
    }
    setError(null);
    setLive({ finals: [], partial: '' });
    const ws = socket(connection, '/ws/stt?sample_rate=16000');
    const parts: { ws: WebSocket; mic: Mic | null } = { ws, mic: null };
    liveParts.current = parts;
    setLiveOn(true);
    ws.onmessage = (message) => {
      if (typeof message.data !== 'string') return;
      const event = JSON.parse(message.data) as { type: string; text?: string; error?: { message: string } };
      if (event.type === 'transcript.partial') setLive((l) => ({ finals: l?.finals ?? [], partial: event.text ?? '' }));
      else if (event.type === 'transcript.final') setLive((l) => ({ finals: [...(l?.finals ?? []), event.text ?? ''], partial: '' }));
      else if (event.type === 'error') setError(new Error(event.error?.message));
    };
    let open = false;
    ws.onclose = () => {
      // before it opened, `opened()` rejects and the catch below reports it
      if (open && liveParts.current === parts) stopLive();
    };
    try {
      await opened(ws, '/ws/stt');
      open = true;
      const mic = await startMic((pcm) => ws.readyState === WebSocket.OPEN && ws.send(pcm.buffer as ArrayBuffer), { echoCancellation: false });
      // stopped (or the tab left) while the microphone was opening: release it at once
      if (liveParts.current !== parts) mic.stop();
      else parts.mic = mic;
    } catch (e) {
      if (liveParts.current === parts) {
        setError(e);
        stopLive();
        setLive(null); // nothing was transcribed: no empty box under the error
      }
    }
  }

  return (
    <section aria-labelledby="stt-title">
      <h2 id="stt-title">Speech to text</h2>
      <div className="row">
        <label>
          Audio file
          <input type="file" accept="audio/*,video/webm" onChange={(e) => setFile(e.target.files?.[0] ?? null)} />
        </label>
        <label className="inline">
          <input type="checkbox" checked={words} onChange={(e) => setWords(e.target.checked)} /> word timestamps
        </label>
      </div>
      <div className="row">
        <button onClick={() => file && void transcribe(file, file.name)} disabled={!file || busy || !!unavailable} aria-describedby={unavailable ? 'stt-unavailable' : undefined}>
          Transcribe file
        </button>
        <button onClick={() => void toggleRecording()} aria-pressed={recording !== null} disabled={busy || (!!unavailable && recording === null)}>
          {recording !== null ? 'Stop recording' : 'Record'}
        </button>
        <button onClick={() => void toggleLive()} aria-pressed={liveOn} disabled={!!unavailable && !liveOn}>
          {liveOn ? 'Stop live' : 'Live (WebSocket)'}
        </button>
      </div>
      {recording !== null && <RecordTimer since={recording} testId="stt-recording" />}
      <Unavailable id="stt-unavailable" reason={unavailable} />
      <ErrorBox error={error} />
      {result && (
        <div data-testid="stt-result">
          <p className="transcript">{result.text}</p>
          <p className="meta">
            {languageLabel(result.language)} · {result.duration.toFixed(1)} s of audio · {result.engine} · {timing}
          </p>
          <table>
            <thead>
              <tr>
                <th scope="col">start</th>
                <th scope="col">end</th>
                <th scope="col">text</th>
              </tr>
            </thead>
            <tbody>
              {result.segments.map((s) => (
                <tr key={s.id}>
                  <td>{s.start.toFixed(2)}</td>
                  <td>{s.end.toFixed(2)}</td>
                  <td>{s.text}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {result.words && <p className="meta">{result.words.map((w) => `${w.word} [${w.start.toFixed(2)}]`).join(' ')}</p>}
        </div>
      )}
      {live && (
        <div className="live" aria-live="polite" data-testid="stt-live">
          {live.finals.map((f, i) => (
            <p key={i}>{f}</p>
          ))}
          {live.partial && <p className="partial">{live.partial}…</p>}
        </div>
      )}
    </section>
  );
}
