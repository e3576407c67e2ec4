/** The text-to-speech port. OpenAudio (fish-speech) and the embedded offline voice implement it. */
import type { Engine } from '../types.ts';

export interface ReferenceAudio {
  audio: Buffer;
  text: string;
}

export interface SynthesisRequest {
  text: string;
  voice?: string;
  referenceId?: string;
  references?: ReferenceAudio[];
  normalize?: boolean;
  seed?: number;
  temperature?: number;
  topP?: number;
  repetitionPenalty?: number;
  maxNewTokens?: number;
  chunkLength?: number;
  useMemoryCache?: boolean;
  /** Speaking rate; only passed when the engine said it can speak at that rate itself. */
  speed?: number;
}

/** Mono 16-bit PCM at the engine's native rate; the audio layer resamples and encodes. */
export interface PcmChunk {
  samples: Int16Array;
  sampleRate: number;
}

export interface Voice {
  id: string;
  name: string;
  engine: string;
}

export interface TtsEngine extends Engine {
  readonly capability: 'tts';
  /**
   * Streams the speech for `request.text`. Errors before the first chunk may be answered by the
   * next engine in the chain; an abort stops the work at once.
   */
  synthesize(request: SynthesisRequest, signal: AbortSignal): AsyncIterable<PcmChunk>;
  voices(): Promise<Voice[]>;
  /** Whether the engine can speak at `speed` itself (otherwise the audio layer changes the tempo). */
  speaksAt(speed: number): boolean;
  /** Engines that keep cloned voices (fish-speech references): store one under `id`. */
  addVoice?(voice: { id: string; audio: Buffer; text: string }, signal: AbortSignal): Promise<void>;
  /** Removes a stored voice; 404 `voice_not_found` when there is none by that id. */
  deleteVoice?(id: string, signal: AbortSignal): Promise<void>;
}
