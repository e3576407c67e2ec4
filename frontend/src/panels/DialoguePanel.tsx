import { useEffect, useRef, useState } from 'react';
import { opened, request, socket } from '../api/client.ts';
import { notReadyReason, type ReadinessState } from '../api/readiness.ts';
import type { Connection } from '../api/settings.ts';
import { Unavailable } from '../components/Unavailable.tsx';
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
  /** Which connection the turn belongs to: the server counts turns from 1 on every socket. */
  conn: number;
  turn: number;
  role: 'user' | 'assistant';
  text: string;
  cancelled?: boolean;
  /** A live partial transcript (the user still speaking), replaced by the final one. */
  partial?: boolean;
  timings?: Timings;
  /** The spoken reply as a WAV (object URL), for replay and download. */
  audioUrl?: string;
}

/** A latency bar for one turn: the models' stages, a legend and the total. */
export function LatencyBar({ timings }: { timings: Timings }) {
  const stages = [
    ['stt', timings.stt_ms],
    ['llm → first sentence', timings.llm_first_sentence_ms],
    ['tts → first audio', timings.tts_first_audio_ms],
  ] as const;
  const total = Math.max(timings.total_ms, 1);
  return (
    <div className="latency-block">
      <div className="latency" aria-label={`Latency: ${stages.map(([name, ms]) => `${name} ${ms ?? 0} ms`).join(', ')}, total ${timings.total_ms} ms`}>
        {stages.map(([name, ms]) => (ms ? <span key={name} className={`stage stage-${name.split(' ')[0]}`} style={{ width: `${(ms / total) * 100}%` }} title={`${name}: ${ms} ms`} /> : null))}
      </div>
      <p className="legend" data-testid="latency-legend">
        {stages.map(([name, ms]) => (
          <span key={name}>
            <span className={`swatch stage-${name.split(' ')[0]}`} aria-hidden="true" /> {name} {Math.round(ms ?? 0)} ms
          </span>
        ))}
        <span>first audio {Math.round(timings.first_audio_ms ?? 0)} ms</span>
        <strong>total {Math.round(timings.total_ms)} ms</strong>
      </p>
    </div>
  );
}

/** The frame's loudness, 0-1 (root mean square, scaled up so speech fills the meter). */
function rms(pcm: Int16Array): number {
  let sum = 0;
  for (const s of pcm) sum += (s / 32768) ** 2;
  return Math.min(1, Math.sqrt(sum / Math.max(1, pcm.length)) * 4);
}

/**
 * Turn by turn, each user turn before its reply: the next turn's partial transcript can arrive
 * before this turn's reply starts (someone speaking again right away, or over the reply).
 */
function inTurnOrder(bubbles: Bubble[]): Bubble[] {
  return [...bubbles].sort((a, b) => a.conn - b.conn || a.turn - b.turn || (a.role === 'user' ? 0 : 1) - (b.role === 'user' ? 0 : 1));
}

/** m:ss */
function clock(ms: number): string {
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** Hands-free conversation over /ws/dialogue (VAD end of turn, barge-in), push-to-talk, or typed turns. */
export function DialoguePanel({ connection, readiness }: { connection: Connection; readiness?: ReadinessState }) {
  // a spoken turn needs speech to text and generation; a typed one generation (the reply is spoken when TTS is ready)
  const typedUnavailable = readiness && notReadyReason(readiness, 'llm');
  const spokenUnavailable = readiness && (notReadyReason(readiness, 'stt') ?? typedUnavailable);
  const [bubbles, setBubbles] = useState<Bubble[]>([]);
  const [sessionId, setSessionId] = useState<string | null>(null);
  const [state, setState] = useState<'idle' | 'connecting' | 'listening' | 'push-to-talk' | 'typed'>('idle');
  const [speaking, setSpeaking] = useState(false);
  const [typed, setTyped] = useState('');
  const [echoCancellation, setEchoCancellation] = useState(true);
  const [error, setError] = useState<unknown>(null);
  // a finished reply, announced once (the bubbles grow delta by delta and are not a live region)
  const [announcement, setAnnouncement] = useState('');
  // recording feedback: the microphone's level (0-1) and how long it has been open
  const [level, setLevel] = useState(0);
  const [micSince, setMicSince] = useState<number | null>(null);
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (micSince === null) return;
    const timer = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(timer);
  }, [micSince]);
  const parts = useRef<{ conn: number; ws: WebSocket; mic: Mic | null; player: PcmPlayer | null; talking: boolean; lastTurn: number } | null>(null);
  const connections = useRef(0);

  useEffect(() => () => stop(), []);

  function upsert(conn: number, turn: number, role: Bubble['role'], update: (b: Bubble) => Bubble) {
    setBubbles((all) => {
      const i = all.findIndex((b) => b.conn === conn && b.turn === turn && b.role === role);
      if (i < 0) return [...all, update({ conn, turn, role, text: '' })];
      const next = [...all];
      next[i] = update(next[i]!);
      return next;
    });
  }

  /** Opens /ws/dialogue; the microphone only for spoken modes (a typed turn needs none). */
  async function connect(mode: 'listening' | 'push-to-talk' | 'typed'): Promise<boolean> {
    setError(null);
    setState('connecting');
    const query = new URLSearchParams({ sample_rate: '16000', format: 'pcm', output_sample_rate: String(OUTPUT_RATE), ...(sessionId ? { session_id: sessionId } : {}) });
    const ws = socket(connection, `/ws/dialogue?${query}`);
    const conn = ++connections.current;
    const mine = { conn, ws, mic: null as Mic | null, player: null as PcmPlayer | null, talking: mode === 'listening', lastTurn: 0, open: false };
    parts.current = mine;
    ws.onmessage = (message) => {
      const p = parts.current;
      if (p !== mine) return;
      if (typeof message.data !== 'string') {
        p.player ??= new PcmPlayer(OUTPUT_RATE);
        p.player.push(new Int16Array(message.data as ArrayBuffer));
        return;
      }
      const event = JSON.parse(message.data) as { type: string; turn_id?: number; text?: string; session_id?: string; timings?: Timings; reply_text?: string; error?: { message: string }; request_id?: string };
      // a partial names the turn being spoken, not yet counted (a typed turn would take that number)
      if (event.turn_id && event.type !== 'transcript.partial') p.lastTurn = Math.max(p.lastTurn, event.turn_id);
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
        case 'transcript.partial':
          // shown in the user's bubble while they speak; a late partial never overwrites the final text
          if (event.text?.trim()) upsert(conn, event.turn_id!, 'user', (b) => (b.text && !b.partial ? b : { ...b, text: event.text ?? '', partial: true }));
          break;
        case 'transcript.final':
          upsert(conn, event.turn_id!, 'user', (b) => ({ ...b, text: event.text ?? '', partial: false }));
          break;
        case 'reply.text.delta':
          upsert(conn, event.turn_id!, 'assistant', (b) => ({ ...b, text: b.text + (event.text ?? '') }));
          break;
        case 'reply.audio.start':
          // one player per reply; the previous one's AudioContext is released, not left open
          p.player?.close();
          p.player = new PcmPlayer(OUTPUT_RATE);
          break;
        case 'reply.done': {
          setAnnouncement(`Gemma: ${event.reply_text ?? ''}`);
          // the reply's audio, kept for replay and download
          const audioUrl = p.player && p.player.chunks.length > 0 ? URL.createObjectURL(p.player.wav()) : undefined;
          upsert(conn, event.turn_id!, 'assistant', (b) => ({ ...b, text: event.reply_text ?? b.text, timings: event.timings, audioUrl: audioUrl ?? b.audioUrl }));
          break;
        }
        case 'reply.cancelled':
          p.player?.stop(); // barge-in: stop playback at once
          upsert(conn, event.turn_id!, 'assistant', (b) => ({ ...b, cancelled: true }));
          break;
        case 'error':
          setError(Object.assign(new Error(event.error?.message ?? 'error'), { requestId: event.request_id }));
          break;
      }
    };
    ws.onclose = () => {
      // before it opened, `opened()` rejects and the catch below reports it
      if (parts.current === mine && mine.open) stop();
    };
    try {
      await opened(ws, '/ws/dialogue');
      mine.open = true;
      if (mode !== 'typed') {
        const mic = await startMic((pcm) => {
          setLevel(rms(pcm));
          if (mine.talking && ws.readyState === WebSocket.OPEN) ws.send(pcm.buffer as ArrayBuffer);
        }, { echoCancellation });
        if (parts.current !== mine) {
          mic.stop(); // ended while the microphone was opening
          return false;
        }
        mine.mic = mic;
        setMicSince(Date.now());
      }
      if (parts.current !== mine) return false;
      setState(mode);
      return true;
    } catch (e) {
      if (parts.current === mine) {
        stop();
        setError(e);
      }
      return false;
    }
  }

  function stop() {
    const p = parts.current;
    parts.current = null;
    p?.mic?.stop();
    p?.player?.close();
    p?.ws.close();
    setState('idle');
    setSpeaking(false);
    // words still being spoken when the conversation ended never become a turn
    setBubbles((all) => (all.some((b) => b.partial) ? all.filter((b) => !b.partial) : all));
    setMicSince(null);
    setLevel(0);
  }

  async function reset() {
    stop();
    if (sessionId) await request(connection, `/v1/sessions/${encodeURIComponent(sessionId)}`, { method: 'DELETE' }).catch(() => undefined);
    setSessionId(null);
    for (const b of bubbles) if (b.audioUrl) URL.revokeObjectURL(b.audioUrl);
    setBubbles([]);
  }

  async function sendTyped() {
    const text = typed.trim();
    if (!text) return;
    if (!parts.current && !(await connect('typed'))) return;
    const p = parts.current!;
    try {
      await opened(p.ws, '/ws/dialogue'); // still connecting (a spoken mode just started)
    } catch (e) {
      setError(e);
      return;
    }
    // the server numbers this turn next on this socket
    p.lastTurn += 1;
    upsert(p.conn, p.lastTurn, 'user', (b) => ({ ...b, text }));
    p.ws.send(JSON.stringify({ type: 'text', text }));
    setTyped(''); // only once sent: a failed connection keeps what was typed
  }

  /** Hold to talk: the pointer is captured, so releasing it anywhere (or the browser cancelling it) ends the turn. */
  const pushToTalk = (down: boolean) => {
    const p = parts.current;
    if (!p || p.talking === down) return;
    p.talking = down;
    if (!down) {
      setSpeaking(false);
      if (p.ws.readyState === WebSocket.OPEN) p.ws.send(JSON.stringify({ type: 'commit' }));
    }
  };

  return (
    <section aria-labelledby="dialogue-title">
      <h2 id="dialogue-title">Dialogue</h2>
      <div className="row">
        {state === 'idle' || state === 'typed' ? (
          <>
            <button
              disabled={!!spokenUnavailable}
              aria-describedby={spokenUnavailable ? 'dialogue-unavailable' : undefined}
              onClick={() => {
                stop();
                void connect('listening');
              }}
            >
              Start conversation
            </button>
            <button
              disabled={!!spokenUnavailable}
              aria-describedby={spokenUnavailable ? 'dialogue-unavailable' : undefined}
              onClick={() => {
                stop();
                void connect('push-to-talk');
              }}
            >
              Push-to-talk mode
            </button>
          </>
        ) : null}
        {state !== 'idle' && <button onClick={stop}>End conversation</button>}
        {state === 'push-to-talk' && (
          <button
            className="hold-to-talk"
            onPointerDown={(e) => {
              e.currentTarget.setPointerCapture(e.pointerId);
              pushToTalk(true);
            }}
            onPointerUp={() => pushToTalk(false)}
            onPointerCancel={() => pushToTalk(false)}
            onLostPointerCapture={() => pushToTalk(false)}
            onBlur={() => pushToTalk(false)}
            onContextMenu={(e) => e.preventDefault()}
            onKeyDown={(e) => e.key === ' ' && pushToTalk(true)}
            onKeyUp={(e) => e.key === ' ' && pushToTalk(false)}
          >
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
        {state === 'idle' ? 'not connected' : state === 'connecting' ? 'connecting…' : state === 'typed' ? 'connected for typed turns (start a conversation to talk)' : speaking ? 'hearing you…' : state === 'listening' ? 'listening (speak any time; talking over a reply interrupts it)' : 'push-to-talk'}
        {sessionId && <> · session <code>{sessionId}</code></>}
      </p>
      {micSince !== null && (
        <p className="recording" data-testid="dialogue-recording">
          <meter min={0} max={1} low={0.02} value={level} aria-label="Microphone level" /> <span aria-label="Microphone open for">{clock(now - micSince)}</span>
        </p>
      )}
      <Unavailable id="dialogue-unavailable" reason={typedUnavailable ?? (spokenUnavailable && `speaking: ${spokenUnavailable} (typed turns work)`)} />
      <ErrorBox error={error} />
      <p className="visually-hidden" aria-live="polite" data-testid="dialogue-announcement">
        {announcement}
      </p>
      <ol className="chat" data-testid="dialogue-chat">
        {inTurnOrder(bubbles).map((b) => (
          <li key={`${b.conn}-${b.turn}-${b.role}`} className={`bubble ${b.role}${b.cancelled ? ' cancelled' : ''}${b.partial ? ' partial' : ''}`}>
            <span className="who">{b.role === 'user' ? 'You' : 'Gemma'}</span> {b.partial ? `${b.text.replace(/[.…]+$/, '')}…` : b.text}
            {b.cancelled && <em> (interrupted)</em>}
            {b.timings && <LatencyBar timings={b.timings} />}
            {b.audioUrl && (
              <span className="reply-audio">
                <button type="button" onClick={() => void new Audio(b.audioUrl).play().catch(() => undefined)}>
                  Replay
                </button>
                <a href={b.audioUrl} download={`reply-${b.turn}.wav`}>
                  Download
                </a>
              </span>
            )}
          </li>
        ))}
      </ol>
      <form
        className="row"
        onSubmit={(e) => {
          e.preventDefault();
          void sendTyped();
        }}
      >
        <label className="grow">
          Type instead
          <input value={typed} onChange={(e) => setTyped(e.target.value)} />
        </label>
        <button type="submit" disabled={!!typedUnavailable}>
          Send
        </button>
      </form>
    </section>
  );
}
