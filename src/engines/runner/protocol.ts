/**
 * The typed protocol between the gateway and a model runner process (supervisor.ts ↔ child.ts),
 * spoken over child_process.fork's IPC channel, the same for every capability: the runner loads
 * at start (its options come with `load`), answers `loaded` with its engine state, then streams
 * the events of one request per `start` id until `end` or `failed`; `cancel` stops one at once,
 * `ping` is answered with `pong` (the hang watchdog), `close` unloads and exits. Log lines travel
 * as `log`. Only `Load`, `Request` and `Event` differ between the LLM and the Whisper runner.
 */
import { ApiError, type ErrorType } from '../../errors.ts';
import type { EngineState } from '../types.ts';

/** An ApiError's fields, to rebuild it on the gateway side (status and envelope survive). */
export interface WireError {
  statusCode?: number;
  type?: string;
  message: string;
  param?: string | null;
  code?: string | null;
  name?: string;
}

export type ToRunner<Load, Request> =
  | { type: 'load'; options: Load; logLevel: string }
  /** `parts`: bulk data (audio) follows in that many `part` messages; the request runs once all came. */
  | { type: 'start'; id: number; request: Request; parts?: number }
  | { type: 'part'; id: number; data: Float32Array }
  | { type: 'cancel'; id: number }
  | { type: 'ping'; seq: number }
  | { type: 'close' };

export type FromRunner<Event> =
  | { type: 'loaded'; state: EngineState }
  | { type: 'event'; id: number; event: Event }
  | { type: 'end'; id: number }
  | { type: 'failed'; id: number; error: WireError }
  | { type: 'pong'; seq: number }
  | { type: 'log'; line: string };

export function toWire(error: unknown): WireError {
  if (error instanceof ApiError) return { statusCode: error.statusCode, type: error.type, message: error.message, param: error.param, code: error.code, name: error.name };
  const e = error as { message?: string; name?: string } | null;
  return { message: e?.message ?? String(error), name: e?.name };
}

export function fromWire(error: WireError): Error {
  if (error.statusCode) return new ApiError(error.statusCode, error.type as ErrorType, error.message, { param: error.param, code: error.code });
  if (error.name === 'AbortError') return new DOMException(error.message, 'AbortError');
  return new Error(error.message);
}
