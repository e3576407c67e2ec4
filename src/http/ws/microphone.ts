/**
 * The microphone side shared by /ws/stt and /ws/dialogue: binary frames of 16-bit little-endian
 * mono PCM at the socket's `sample_rate` (default 16000; other rates are resampled), cut into
 * turns by the VAD (src/audio/vad.ts). Calls back with speech_started / speech_stopped (with the
 * turn's audio, ready for Whisper) and, while someone speaks, with the turn so far every
 * STT_PARTIAL_INTERVAL_MS for partial transcripts.
 */
import type { Config } from '../../config.ts';
import type { TranscriptionService } from '../../services/transcription.ts';
import { bytesToInt16 } from '../../audio/pcm.ts';
import { createStreamResampler, type StreamResampler } from '../../audio/resample.ts';
import { TurnDetector, VAD_SAMPLE_RATE, WebRtcVad, type TurnEvent } from '../../audio/vad.ts';

export interface MicrophoneHandlers {
  onTurnEvent(event: TurnEvent): void;
  /** The turn so far, at most every STT_PARTIAL_INTERVAL_MS while speech goes on. */
  onPartial?(audio: Float32Array): void;
}

export class Microphone {
  private resampler: StreamResampler | undefined;
  private odd: number | undefined; // a byte left over from an odd-length frame
  private lastPartial = 0;
  private receivedMs = 0;

  private constructor(
    private readonly detector: TurnDetector,
    private readonly vad: WebRtcVad,
    private readonly config: Config,
    private readonly handlers: MicrophoneHandlers,
    readonly inputRate: number,
  ) {}

  static async open(config: Config, inputRate: number, handlers: MicrophoneHandlers): Promise<Microphone> {
    const vad = await WebRtcVad.create(config.VAD_MODE);
    const detector = new TurnDetector(vad, {
      speechStartMs: config.VAD_SPEECH_START_MS,
      silenceMs: config.VAD_SILENCE_MS,
      minSpeechMs: config.VAD_MIN_SPEECH_MS,
      prerollMs: config.VAD_PREROLL_MS,
      maxTurnSeconds: config.WS_MAX_TURN_SECONDS,
    });
    const mic = new Microphone(detector, vad, config, handlers, inputRate);
    if (inputRate !== VAD_SAMPLE_RATE) mic.resampler = await createStreamResampler(inputRate, VAD_SAMPLE_RATE);
    return mic;
  }

  /** Seconds of audio received so far (at the client's rate). */
  get seconds(): number {
    return this.receivedMs / 1000;
  }

  get speaking(): boolean {
    return this.detector.speaking;
  }

  push(data: Buffer): void {
    let bytes: Uint8Array = data;
    if (this.odd !== undefined) {
      bytes = Buffer.concat([Buffer.of(this.odd), data]);
      this.odd = undefined;
    }
    if (bytes.length % 2 === 1) {
      this.odd = bytes[bytes.length - 1];
      bytes = bytes.subarray(0, bytes.length - 1);
    }
    const samples = bytesToInt16(bytes);
    this.receivedMs += (samples.length / this.inputRate) * 1000;
    const at16k = this.resampler ? this.resampler.push(samples) : samples;
    for (const event of this.detector.push(at16k)) this.handlers.onTurnEvent(event);
    const interval = this.config.STT_PARTIAL_INTERVAL_MS;
    if (interval > 0 && this.handlers.onPartial && this.detector.speaking && this.receivedMs - this.lastPartial >= interval) {
      this.lastPartial = this.receivedMs;
      const audio = this.detector.current();
      if (audio) this.handlers.onPartial(audio);
    }
  }

  /** Ends the turn in progress now (`commit`). */
  commit(): void {
    const event = this.detector.flush();
    if (event) this.handlers.onTurnEvent(event);
  }

  close(): void {
    this.resampler?.close();
    this.vad.close();
  }
}

/**
 * The socket's microphone while its VAD loads (asynchronously): frames that arrive meanwhile are
 * kept and replayed once the microphone is attached, not lost.
 */
export class MicrophoneSlot {
  private mic: Microphone | undefined;
  private readonly early: Buffer[] = [];

  push(data: Buffer): void {
    if (this.mic) this.mic.push(data);
    else this.early.push(data);
  }

  commit(): void {
    this.mic?.commit();
  }

  close(): void {
    this.mic?.close();
  }

  attach(mic: Microphone): void {
    this.mic = mic;
  }

  /** Feeds the frames kept while loading (after the client was told the socket is ready). */
  replay(): void {
    for (const data of this.early.splice(0)) this.mic?.push(data);
  }
}

/**
 * Partial transcripts of the turn in progress, one at a time: a partial that is still running
 * when the next is due is skipped, so they never pile up behind each other (or ahead of finals).
 */
export function partialTranscriber(transcription: TranscriptionService, signal: AbortSignal, options: () => { language?: string; model?: string }, send: (text: string) => void): (audio: Float32Array) => void {
  let running = false;
  return (audio) => {
    if (running) return;
    running = true;
    // the same model as the turn's final transcript (the socket's current choice)
    const { language, model } = options();
    transcription
      .transcribe({ audio, language, task: 'transcribe', wordTimestamps: false }, signal, undefined, model)
      .then(({ transcript }) => send(transcript.text.trim()))
      .catch(() => undefined) // a failed partial is skipped; the final transcript reports errors
      .finally(() => (running = false));
  };
}
