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
  synthesize(request: SynthesisRequest, signal: AbortSignal): AsyncIterable<PcmChunk>;
  voices(): Promise<Voice[]>;
}
