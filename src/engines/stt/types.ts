/** The speech-to-text port. Embedded (whisper.cpp) and hosted (OpenAI-compatible) adapters implement it. */
import type { Engine } from '../types.ts';

/** The rate every STT engine takes its audio at (Whisper's). */
export const STT_SAMPLE_RATE = 16_000;

export interface TranscriptionRequest {
  /** STT_SAMPLE_RATE mono samples in [-1, 1]. */
  audio: Float32Array;
  language?: string;
  prompt?: string;
  temperature?: number;
  task: 'transcribe' | 'translate';
  wordTimestamps: boolean;
}

export interface TranscriptSegment {
  id: number;
  start: number;
  end: number;
  text: string;
  avgLogprob: number;
  /** P(no speech) of the window pass that made the segment; null when a remote engine omits it. */
  noSpeechProb: number | null;
  /** Token ids of the segment's text, when the engine reports them. */
  tokens?: number[];
}

export interface TranscriptWord {
  word: string;
  start: number;
  end: number;
}

export interface Transcript {
  text: string;
  /** ISO-639-1 code ("en"), whatever form the engine answered in. */
  language: string;
  duration: number;
  segments: TranscriptSegment[];
  words?: TranscriptWord[];
}

/** A streamed transcription: segments as they are decoded, then exactly one `done`. */
export type SttEvent = { type: 'segment'; segment: TranscriptSegment } | { type: 'done'; transcript: Transcript };

export interface SttEngine extends Engine {
  readonly capability: 'stt';
  transcribe(request: TranscriptionRequest, signal: AbortSignal): AsyncIterable<SttEvent>;
}
