/**
 * The typed protocol between the gateway and an LLM runner process (llm-runner.ts), spoken over
 * child_process.fork's IPC channel. The runner loads at start (its options come with `load`),
 * answers `ready` or a load failure, then streams one generation per `generate` id until `done` or
 * `failed`; `cancel` stops one at once, `close` unloads and exits. Log lines travel as `log`.
 */
import type { EngineState } from '../types.ts';
import type { LlamaCppOptions } from './llama-cpp.ts';
import type { GenerationParams, GenerationResult, LlmInput } from './types.ts';

/** An ApiError's fields, to rebuild it on the gateway side (status and envelope survive). */
export interface WireError {
  statusCode?: number;
  type?: string;
  message: string;
  param?: string | null;
  code?: string | null;
  name?: string;
}

export type ToRunner =
  | { type: 'load'; options: LlamaCppOptions; logLevel: string }
  | { type: 'generate'; id: number; input: LlmInput; params: GenerationParams }
  | { type: 'cancel'; id: number }
  | { type: 'close' };

export type FromRunner =
  | { type: 'loaded'; state: EngineState; modelName: string }
  | { type: 'delta'; id: number; text: string }
  | { type: 'done'; id: number; result: GenerationResult }
  | { type: 'failed'; id: number; error: WireError }
  | { type: 'log'; line: string };
