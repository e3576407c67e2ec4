import { useEffect, useRef, useState } from 'react';
import { request, socket } from '../api/client.ts';
import type { Connection } from '../api/settings.ts';
import { startMic, type Mic } from '../audio/mic.ts';
import { PcmPlayer } from '../audio/pcm-player.ts';
import { ErrorBox } from '../components/ErrorBox.tsx';

const OUTPUT_RATE = 24000;

interface Timings {
  stt_ms: number | null;
  llm_first_sentence_ms: number | null;
  tts_first_audio_ms: number | null;
  first_audio_ms: number | null;
  total_ms: number;
}

interface Bubble {
  turn: number;
  role: 'user' | 'assistant';
  text: string;
  cancelled?: boolean;
  timings?: Timings;
}

/** A latency bar for one turn: the models' stages and what remained. */
export function LatencyBar({ timings }: { timings: Timings }) {
  const stages = [
    ['stt', timings.stt_ms],
    ['llm → first sentence', timings.llm_first_sentence_ms],
    ['tts → first audio', timings.tts_first_audio_ms],
  ] as const;
  const total = Math.max(timings.total_ms, 1);
  return (
    <div className="latency" aria-label={`Latency: ${stages.map(([name, ms]) => `${name} ${ms ?? 0} ms`).join(', ')}, total ${timings.total_ms} ms`}>
      {stages.map(([name, ms]) => (ms ? <span key={name} className={`stage stage-${name.split(' ')[0]}`} style={{ width: `${(ms / total) * 100}%` }} title={`${name}: ${ms} ms`} /> : null))}
      <span className="latency-label">
        {stages.map(([name, ms]) => `${name.split(' ')[0]} ${Math.round(ms ?? 0)}`).join(' · ')} · first audio {Math.round(timings.first_audio_ms ?? 0)} ms
      </span>
    </div>
  );
}

/** Hands-free conversation over /ws/dialogue (VAD end of turn, barge-in), push-to-talk, or typed turns. */
export function DialoguePanel({ connection }: { connection: Connection }) {
  const [bubbles, setBubbles] = useState<Bubble[]>([]);
  const [sessionId, setSessionId] = useState<string | null>(null);
  const [state, setState] = useState<'idle' | 'listening' | 'push-to-talk'>('idle');
  const [speaking, setSpeaking] = useState(false);
  const [typed, setTyped] = useState('');
  const [echoCancellation, setEchoCancellation] = useState(true);
  const [error, setError] = useState<unknown>(null);
  const parts = useRef<{ ws: WebSocket; mic: Mic | null; player: PcmPlayer | null; talking: boolean } | null>(null);

  useEffect(() => () => stop(), []);

  function upsert(turn: number, role: Bubble['role'], update: (b: Bubble) => Bubble) {
    setBubbles((all) => {
      const i = all.findIndex((b) => b.turn === turn && b.role === role);
      if (i < 0) return [...all, update({ turn, role, text: '' })];
      const next = [...all];
      next[i] = update(next[i]!);
      return next;
    });
  }

  async function connect(mode: 'listening' | 'push-to-talk'): Promise<void> {
    setError(null);
    const query = new URLSearchParams({ sample_rate: '16000', format: 'pcm', output_sample_rate: String(OUTPUT_RATE), ...(sessionId ? { session_id: sessionId } : {}) });
    const ws = socket(connection, `/ws/dialogue?${query}`);
    parts.current = { ws, mic: null, player: null, talking: mode === 'listening' };
    ws.onmessage = (message) => {
      const p = parts.current;
      if (!p) return;
      if (typeof message.data !== 'string') {
        p.player ??= new PcmPlayer(OUTPUT_RATE);
        p.player.push(new Int16Array(message.data as ArrayBuffer));
        return;
      }
      const event = JSON.parse(message.data) as { type: string; turn_id?: number; text?: string; session_id?: string; timings?: Timings; reply_text?: string; error?: { message: string }; request_id?: string };
      switch (event.type) {
        case 'ready':
          setSessionId(event.session_id ?? null);
          break;
        case 'speech_started':
          setSpeaking(true);
          break;
        case 'speech_stopped':
          setSpeaking(false);
          break;
        case 'transcript.final':
          upsert(event.turn_id!, 'user', (b) => ({ ...b, text: event.text ?? '' }));
          break;
        case 'reply.text.delta':
          upsert(event.turn_id!, 'assistant', (b) => ({ ...b, text: b.text + (event.text ?? '') }));
          break;
        case 'reply.audio.start':
          p.player?.stop();
          p.player = new PcmPlayer(OUTPUT_RATE);
          break;
        case 'reply.done':
          upsert(event.turn_id!, 'assistant', (b) => ({ ...b, text: event.reply_text ?? b.text, timings: event.timings }));
          break;
        case 'reply.cancelled':
          p.player?.stop(); // barge-in: stop playback at once
          upsert(event.turn_id!, 'assistant', (b) => ({ ...b, cancelled: true }));
          break;
        case 'error':
          setError(Object.assign(new Error(event.error?.message ?? 'error'), { requestId: event.request_id }));
          break;
      }
    };
    ws.onclose = () => {
      parts.current?.mic?.stop();
      parts.current = null;
      setState('idle');
    };
    ws.onerror = () => setError(new Error('The /ws/dialogue connection failed (check the base URL and API key).'));
    await new Promise((resolve) => (ws.onopen = resolve));
    try {
      const mic = await startMic((pcm) => {
        const p = parts.current;
        if (p?.talking && ws.readyState === WebSocket.OPEN) ws.send(pcm.buffer as ArrayBuffer);
      }, { echoCancellation });
      if (parts.current) parts.current.mic = mic;
      setState(mode);
    } catch (e) {
      setError(e);
      setState('idle');
    }
  }

  function stop() {
    parts.current?.mic?.stop();
    parts.current?.player?.stop();
    parts.current?.ws.close();
    parts.current = null;
    setState('idle');
    setSpeaking(false);
  }

  async function reset() {
    stop();
    if (sessionId) await request(connection, `/v1/sessions/${encodeURIComponent(sessionId)}`, { method: 'DELETE' }).catch(() => undefined);
    setSessionId(null);
    setBubbles([]);
  }

  function sendTyped() {
    const text = typed.trim();
    if (!text) return;
    const p = parts.current;
    const send = (ws: WebSocket) => ws.send(JSON.stringify({ type: 'text', text }));
    const turn = Math.max(0, ...bubbles.map((b) => b.turn)) + 1;
    upsert(turn, 'user', (b) => ({ ...b, text }));
    setTyped('');
    if (p) send(p.ws);
    else void connect('push-to-talk').then(() => parts.current && send(parts.current.ws));
  }

  const pushToTalk = (down: boolean) => {
    const p = parts.current;
    if (!p) return;
    p.talking = down;
    if (!down) p.ws.send(JSON.stringify({ type: 'commit' }));
  };

  return (
    <section aria-labelledby="dialogue-title">
      <h2 id="dialogue-title">Dialogue</h2>
      <div className="row">
        {state === 'idle' ? (
          <>
            <button onClick={() => void connect('listening')}>Start conversation</button>
            <button onClick={() => void connect('push-to-talk')}>Push-to-talk mode</button>
          </>
        ) : (
          <button onClick={stop}>End conversation</button>
        )}
        {state === 'push-to-talk' && (
          <button onPointerDown={() => pushToTalk(true)} onPointerUp={() => pushToTalk(false)} onKeyDown={(e) => e.key === ' ' && pushToTalk(true)} onKeyUp={(e) => e.key === ' ' && pushToTalk(false)}>
            Hold to talk
          </button>
        )}
        <button onClick={() => void reset()} disabled={!sessionId && bubbles.length === 0}>
          Reset session
        </button>
        <label className="inline">
          <input type="checkbox" checked={echoCancellation} onChange={(e) => setEchoCancellation(e.target.checked)} disabled={state !== 'idle'} /> echo cancellation (keep on with speakers)
        </label>
      </div>
      <p className="meta" data-testid="dialogue-state">
        {state === 'idle' ? 'not connected' : speaking ? 'hearing you…' : state === 'listening' ? 'listening (speak any time; talking over a reply interrupts it)' : 'push-to-talk'}
        {sessionId && <> · session <code>{sessionId}</code></>}
      </p>
      <ErrorBox error={error} />
      <ol className="chat" aria-live="polite" data-testid="dialogue-chat">
        {bubbles.map((b) => (
          <li key={`${b.turn}-${b.role}`} className={`bubble ${b.role}${b.cancelled ? ' cancelled' : ''}`}>
            <span className="who">{b.role === 'user' ? 'You' : 'Gemma'}</span> {b.text}
            {b.cancelled && <em> (interrupted)</em>}
            {b.timings && <LatencyBar timings={b.timings} />}
          </li>
        ))}
      </ol>
      <form
        className="row"
        onSubmit={(e) => {
          e.preventDefault();
          sendTyped();
        }}
      >
        <label className="grow">
          Type instead
          <input value={typed} onChange={(e) => setTyped(e.target.value)} />
        </label>
        <button type="submit">Send</button>
      </form>
    </section>
  );
}
