/** The text-generation port. Embedded (llama.cpp) and remote (OpenAI-compatible) adapters implement it. */
import type { Engine } from '../types.ts';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export type LlmInput = { kind: 'prompt'; prompt: string } | { kind: 'chat'; messages: ChatMessage[] };

export type ResponseFormat =
  | { type: 'text' }
  | { type: 'json_object' }
  | { type: 'json_schema'; schema: Record<string, unknown> };

export interface GenerationParams {
  maxTokens: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  stop?: string[];
  seed?: number;
  /** OpenAI's additive penalties (−2…2) on tokens already generated: once, and per occurrence. */
  presencePenalty?: number;
  frequencyPenalty?: number;
  responseFormat?: ResponseFormat;
}

export type FinishReason = 'stop' | 'length';

export interface Usage {
  promptTokens: number;
  completionTokens: number;
}

export interface GenerationResult {
  text: string;
  finishReason: FinishReason;
  usage: Usage;
  model: string;
}

/** A streamed generation: text deltas, then exactly one `done`. */
export type LlmEvent = { type: 'delta'; text: string } | { type: 'done'; result: GenerationResult };

export interface LlmEngine extends Engine {
  readonly capability: 'llm';
  /** The model name reported to clients (`model` fields, `/v1/models`). */
  readonly modelName: string;
  /** Streams one generation. Aborting `signal` stops the work and frees its slot. */
  generate(input: LlmInput, params: GenerationParams, signal: AbortSignal): AsyncIterable<LlmEvent>;
}
