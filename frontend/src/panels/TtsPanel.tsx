import { useCallback, useEffect, useRef, useState } from 'react';
import { getJson, request } from '../api/client.ts';
import { notReadyReason, type ReadinessState } from '../api/readiness.ts';
import type { Connection } from '../api/settings.ts';
import { Unavailable } from '../components/Unavailable.tsx';
import { PcmPlayer } from '../audio/pcm-player.ts';
import { ErrorBox } from '../components/ErrorBox.tsx';
import { CloneVoice } from '../components/CloneVoice.tsx';

const FORMATS = ['wav', 'mp3', 'opus', 'flac', 'aac', 'pcm'] as const;
const OPENAI_NAMES = new Set(['alloy', 'ash', 'ballad', 'coral', 'echo', 'fable', 'nova', 'onyx', 'sage', 'shimmer', 'verse']);
const PREVIEW_TEXT = 'Hello! This is how I sound.';

interface Voice {
  id: string;
  name: string;
  engine: string;
}

/** The voices in groups a person can scan (cloned, OpenAI names, languages), filtered by `query`. */
export function groupVoices(voices: Voice[], query: string): { label: string; voices: Voice[] }[] {
  const q = query.trim().toLowerCase();
  const shown = voices.filter((v) => !q || v.name.toLowerCase().includes(q) || v.id.toLowerCase().includes(q));
  const groups = [
    { label: 'Your voices (fish-speech)', voices: shown.filter((v) => v.engine !== 'espeak') },
    { label: 'OpenAI voice names', voices: shown.filter((v) => v.engine === 'espeak' && OPENAI_NAMES.has(v.id)) },
    { label: 'Languages (eSpeak)', voices: shown.filter((v) => v.engine === 'espeak' && !OPENAI_NAMES.has(v.id)).sort((a, b) => a.name.localeCompare(b.name)) },
  ];
  return groups.filter((g) => g.voices.length > 0);
}
const PCM_RATE = 24000;

/** Text to speech: plays while streaming (wav/pcm, through Web Audio) and offers the file. */
export function TtsPanel({ connection, readiness }: { connection: Connection; readiness?: ReadinessState }) {
  const unavailable = readiness && notReadyReason(readiness, 'tts');
  const [text, setText] = useState('Hello! This is gemma-3-api speaking.');
  const [voices, setVoices] = useState<Voice[]>([]);
  const [voiceQuery, setVoiceQuery] = useState('');
  const [previewed, setPreviewed] = useState('');
  const previewAudio = useRef<HTMLAudioElement | null>(null);
  const [voice, setVoice] = useState('');
  const [format, setFormat] = useState<(typeof FORMATS)[number]>('wav');
  const [speed, setSpeed] = useState(1);
  const [audioUrl, setAudioUrl] = useState<string | null>(null);
  const [meta, setMeta] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const player = useRef<PcmPlayer | null>(null);
  useEffect(() => () => player.current?.close(), []);

  const loadVoices = useCallback(
    () =>
      getJson<{ voices: Voice[] }>(connection, '/v1/audio/voices')
        .then((v) => setVoices(v.voices))
        .catch(() => setVoices([])),
    [connection],
  );
  useEffect(() => void loadVoices(), [loadVoices]);
  // voice cloning needs fish-speech (the openaudio engine) ready on the server
  const cloning = readiness?.readiness?.capabilities.tts?.engines.some((e) => e.engine === 'openaudio' && e.status === 'ready') ?? false;

  /** A short sample in the chosen voice, played at once. */
  async function preview() {
    setError(null);
    setPreviewed('');
    try {
      const res = await request(connection, '/v1/text-to-speech', { method: 'POST', json: { text: PREVIEW_TEXT, voice: voice || undefined, format: 'wav' } });
      const body = (await res.json()) as { audio_base64: string; duration_seconds: number };
      const bytes = Uint8Array.from(atob(body.audio_base64), (c) => c.charCodeAt(0));
      previewAudio.current?.pause();
      if (previewAudio.current) URL.revokeObjectURL(previewAudio.current.src);
      const audio = new Audio(URL.createObjectURL(new Blob([bytes], { type: 'audio/wav' })));
      previewAudio.current = audio;
      void audio.play().catch(() => undefined); // autoplay may be refused; the sample is still fetched
      setPreviewed(`Preview: ${voices.find((v) => v.id === voice)?.name ?? 'default voice'} · ${body.duration_seconds.toFixed(1)} s`);
    } catch (e) {
      setError(e);
    }
  }

  async function speak() {
    setError(null);
    setBusy(true);
    setMeta('');
    player.current?.close(); // release the previous reply's AudioContext
    player.current = null;
    if (audioUrl) URL.revokeObjectURL(audioUrl);
    setAudioUrl(null);
    const started = performance.now();
    try {
      if (format === 'flac') {
        // a streamed FLAC cannot carry its length (STREAMINFO precedes the audio): it would show
        // 0:00 and not seek, so it comes whole, with the length the server writes in
        const res = await request(connection, '/v1/text-to-speech', { method: 'POST', json: { text, voice: voice || undefined, speed, format, sample_rate: PCM_RATE } });
        const body = (await res.json()) as { audio_base64: string; engine: string; duration_seconds: number };
        const bytes = Uint8Array.from(atob(body.audio_base64), (c) => c.charCodeAt(0));
        setAudioUrl(URL.createObjectURL(new Blob([bytes], { type: 'audio/flac' })));
        setMeta(`${body.engine} · ready in ${(performance.now() - started).toFixed(0)} ms · ${body.duration_seconds.toFixed(1)} s · ${(bytes.length / 1024).toFixed(0)} KiB`);
        return;
      }
      const live = format === 'wav' || format === 'pcm';
      // wav and pcm play as they stream: ask for raw PCM and schedule it in Web Audio
      const res = await request(connection, '/v1/text-to-speech', { method: 'POST', json: { text, voice: voice || undefined, speed, format: live ? 'pcm' : format, sample_rate: PCM_RATE, stream: true } });
      const engine = res.headers.get('x-tts-engine');
      const reader = res.body!.getReader();
      const parts: Uint8Array[] = [];
      let first = 0;
      let odd: Uint8Array = new Uint8Array(0);
      if (live) player.current = new PcmPlayer(PCM_RATE);
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        first ||= performance.now() - started;
        if (!live) {
          parts.push(value);
          continue;
        }
        const bytes = new Uint8Array(odd.length + value.length);
        bytes.set(odd);
        bytes.set(value, odd.length);
        const even = bytes.length - (bytes.length % 2);
        odd = bytes.slice(even);
        player.current!.push(new Int16Array(bytes.slice(0, even).buffer));
      }
      const blob = live ? player.current!.wav() : new Blob(parts as BlobPart[], { type: res.headers.get('content-type') ?? 'application/octet-stream' });
      setAudioUrl(URL.createObjectURL(blob));
      setMeta(`${engine} · first audio ${first.toFixed(0)} ms · ${(blob.size / 1024).toFixed(0)} KiB`);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  return (
    <section aria-labelledby="tts-title">
      <h2 id="tts-title">Text to speech</h2>
      <label>
        Text
        <textarea value={text} onChange={(e) => setText(e.target.value)} rows={3} />
      </label>
      <div className="row">
        <label>
          Find a voice
          <input type="search" value={voiceQuery} onChange={(e) => setVoiceQuery(e.target.value)} placeholder="name or language" />
        </label>
        <label>
          Voice
          <select value={voice} onChange={(e) => setVoice(e.target.value)}>
            <option value="">default</option>
            {groupVoices(voices, voiceQuery).map((group) => (
              <optgroup key={group.label} label={group.label}>
                {group.voices.map((v) => (
                  <option key={`${v.engine}:${v.id}`} value={v.id}>
                    {v.name}
                  </option>
                ))}
              </optgroup>
            ))}
          </select>
        </label>
        <button type="button" onClick={() => void preview()} disabled={!!unavailable}>
          Preview voice
        </button>
        <label>
          Format
          <select value={format} onChange={(e) => setFormat(e.target.value as (typeof FORMATS)[number])}>
            {FORMATS.map((f) => (
              <option key={f}>{f}</option>
            ))}
          </select>
        </label>
        <label>
          Speed {speed.toFixed(2)}
          <input type="range" min={0.25} max={4} step={0.05} value={speed} onChange={(e) => setSpeed(Number(e.target.value))} />
        </label>
      </div>
      <button onClick={() => void speak()} disabled={busy || !text.trim() || !!unavailable} aria-describedby={unavailable ? 'tts-unavailable' : undefined}>
        Speak
      </button>
      <Unavailable id="tts-unavailable" reason={unavailable} />
      {cloning && (
        <CloneVoice
          connection={connection}
          onAdded={(id) => {
            setVoiceQuery('');
            setVoice(id);
            void loadVoices();
          }}
        />
      )}
      <ErrorBox error={error} />
      {audioUrl && (
        <div className="row">
          <audio controls src={audioUrl} data-testid="tts-audio" />
          <a href={audioUrl} download={`speech.${format === 'pcm' ? 'wav' : format}`}>
            Download
          </a>
        </div>
      )}
      {meta && <p className="meta">{meta}</p>}
      {previewed && (
        <p className="meta" data-testid="voice-preview">
          {previewed}
        </p>
      )}
    </section>
  );
}
