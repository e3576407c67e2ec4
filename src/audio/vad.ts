/**
 * Voice activity detection on 16 kHz mono PCM: the WebRTC VAD (libfvad compiled to WASM,
 * @echogarden/fvad-wasm, BSD-3-Clause) classifies 20 ms frames; `TurnDetector` (ours) turns those
 * frames into turns: speech starts after VAD_SPEECH_START_MS of voiced frames, a turn ends after
 * VAD_SILENCE_MS of silence (or at the maximum length), turns shorter than VAD_MIN_SPEECH_MS are
 * dropped as noise, and VAD_PREROLL_MS of audio before the detected start is kept so the first
 * syllable is not clipped. No model file is needed (Silero, the usual alternative, is a model we
 * could not ship: see docs/websockets.md).
 */
import init from '@echogarden/fvad-wasm';

export const VAD_SAMPLE_RATE = 16_000;
const FRAME = 320; // 20 ms at 16 kHz

let modulePromise: ReturnType<typeof init> | undefined;

/** Frame classifier for one stream (each stream has its own state). */
export class WebRtcVad {
  private constructor(
    private readonly m: Awaited<ReturnType<typeof init>>,
    private handle: number,
    private readonly buffer: number,
  ) {}

  /** `mode` 0 (least aggressive about calling audio non-speech) … 3 (most). */
  static async create(mode: number): Promise<WebRtcVad> {
    modulePromise ??= init();
    const m = await modulePromise;
    const handle = m._fvad_new();
    if (!handle) throw new Error('fvad_new failed');
    if (m._fvad_set_mode(handle, mode) !== 0 || m._fvad_set_sample_rate(handle, VAD_SAMPLE_RATE) !== 0) throw new Error('fvad configuration failed');
    return new WebRtcVad(m, handle, m._malloc(FRAME * 2));
  }

  /** Whether one 20 ms frame (320 samples) holds speech. */
  isSpeech(frame: Int16Array): boolean {
    this.m.HEAP16.set(frame, this.buffer >> 1);
    return this.m._fvad_process(this.handle, this.buffer, FRAME) === 1;
  }

  close(): void {
    if (!this.handle) return;
    this.m._free(this.buffer);
    this.m._fvad_free(this.handle);
    this.handle = 0;
  }
}

export interface TurnSettings {
  speechStartMs: number;
  silenceMs: number;
  minSpeechMs: number;
  prerollMs: number;
  maxTurnSeconds: number;
}

export type TurnEvent =
  | { type: 'speech_started'; atMs: number }
  /** A finished turn: its audio (Float32 in [-1, 1]) from pre-roll to the end of speech. */
  | { type: 'speech_stopped'; atMs: number; audio: Float32Array; startMs: number; endMs: number }
  /** Speech too short to count (a click, a cough): dropped. */
  | { type: 'speech_discarded'; atMs: number };

/**
 * Frames → turns. Feed it 16 kHz samples in any chunk size; it returns the events those samples
 * completed. `current()` is the turn so far (for partial transcripts).
 */
export class TurnDetector {
  private pending = new Int16Array(0);
  private frames = 0;
  private voicedRun = 0;
  private silentRun = 0;
  private inSpeech = false;
  private speechFrames = 0;
  private startFrame = 0;
  private readonly history: Int16Array[] = []; // recent frames (pre-roll) while idle
  private turn: Int16Array[] = [];

  constructor(
    private readonly vad: WebRtcVad,
    private readonly settings: TurnSettings,
  ) {}

  private frameCount(ms: number): number {
    return Math.max(1, Math.round(ms / 20));
  }

  push(samples: Int16Array): TurnEvent[] {
    const events: TurnEvent[] = [];
    const all = new Int16Array(this.pending.length + samples.length);
    all.set(this.pending);
    all.set(samples, this.pending.length);
    let offset = 0;
    for (; offset + FRAME <= all.length; offset += FRAME) {
      const frame = all.slice(offset, offset + FRAME);
      const event = this.frame(frame);
      if (event) events.push(event);
    }
    this.pending = all.slice(offset);
    return events;
  }

  /** Ends the current turn now (the client said so); null when no speech is in progress. */
  flush(): TurnEvent | null {
    return this.inSpeech ? this.end() : null;
  }

  /** The audio of the turn in progress (null when idle). */
  current(): Float32Array | null {
    return this.inSpeech ? toFloat(this.turn) : null;
  }

  get speaking(): boolean {
    return this.inSpeech;
  }

  private frame(frame: Int16Array): TurnEvent | null {
    this.frames++;
    const voiced = this.vad.isSpeech(frame);
    const s = this.settings;
    if (!this.inSpeech) {
      this.history.push(frame);
      const keep = this.frameCount(s.prerollMs) + this.frameCount(s.speechStartMs);
      while (this.history.length > keep) this.history.shift();
      this.voicedRun = voiced ? this.voicedRun + 1 : 0;
      if (this.voicedRun >= this.frameCount(s.speechStartMs)) {
        this.inSpeech = true;
        this.turn = [...this.history];
        this.history.length = 0;
        this.speechFrames = this.voicedRun;
        this.silentRun = 0;
        this.startFrame = this.frames - this.voicedRun;
        return { type: 'speech_started', atMs: this.startFrame * 20 };
      }
      return null;
    }
    this.turn.push(frame);
    if (voiced) {
      this.speechFrames++;
      this.silentRun = 0;
    } else this.silentRun++;
    if (this.silentRun >= this.frameCount(s.silenceMs) || this.turn.length * 20 >= s.maxTurnSeconds * 1000) return this.end();
    return null;
  }

  private end(): TurnEvent {
    const endFrame = this.frames - this.silentRun;
    const event: TurnEvent =
      this.speechFrames * 20 < this.settings.minSpeechMs
        ? { type: 'speech_discarded', atMs: this.frames * 20 }
        : {
            type: 'speech_stopped',
            atMs: this.frames * 20,
            audio: toFloat(this.turn.slice(0, this.turn.length - this.silentRun + Math.min(this.silentRun, 10))), // keep 200 ms of the trailing silence
            startMs: Math.max(0, this.startFrame * 20 - this.settings.prerollMs),
            endMs: endFrame * 20,
          };
    this.inSpeech = false;
    this.turn = [];
    this.voicedRun = 0;
    this.silentRun = 0;
    this.speechFrames = 0;
    return event;
  }
}

function toFloat(frames: Int16Array[]): Float32Array {
  const out = new Float32Array(frames.length * FRAME);
  let i = 0;
  for (const frame of frames) for (const s of frame) out[i++] = s / 32768;
  return out;
}
