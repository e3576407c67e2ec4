/**
 * The decode pool: worker threads (piscina) that turn uploaded audio into Whisper's input, so
 * decoding — seconds of CPU for a long file, and the place hostile input does its worst — never runs
 * on the event loop that answers /health and every other request.
 *
 * Why piscina: a maintained pool with a bounded queue, per-task AbortSignal (an aborted task's thread
 * is terminated, so a client that leaves stops its decode mid-file) and idle threads that exit
 * (WASM decoders never give memory back; a thread that goes away does).
 */
import os from 'node:os';
import { Piscina } from 'piscina';
import { ApiError } from '../errors.ts';
import type { DecodeOutcome, DecodeTask } from './decode-worker.ts';

export interface DecodePoolOptions {
  /** Worker threads decoding at once (each holds at most one file). */
  threads: number;
  /** Decodes waiting for a thread; one more gets 503 `decoder_busy`. */
  queue: number;
}

let pool: Piscina<DecodeTask, DecodeOutcome> | undefined;
let options: DecodePoolOptions = { threads: Math.max(1, Math.min(2, os.availableParallelism())), queue: 32 };

/** Sets the pool's size (the composition root calls this once from the configuration). */
export function configureDecodePool(next: DecodePoolOptions): void {
  if (pool && next.threads === options.threads && next.queue === options.queue) return;
  const old = pool;
  pool = undefined;
  options = next;
  void old?.close();
}

function get(): Piscina<DecodeTask, DecodeOutcome> {
  // from source (tsx) the worker is TypeScript; workers inherit the --import tsx loader
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  pool ??= new Piscina<DecodeTask, DecodeOutcome>({
    filename: new URL(`./decode-worker${ext}`, import.meta.url).href,
    minThreads: 0,
    maxThreads: options.threads,
    maxQueue: options.queue,
    idleTimeout: 30_000,
    concurrentTasksPerWorker: 1,
  });
  return pool;
}

/** Runs one decode on the pool; `signal` aborts it (the worker thread is terminated). */
export async function runDecode(task: DecodeTask, signal?: AbortSignal): Promise<DecodeOutcome> {
  const workers = get();
  if (workers.queueSize >= options.queue) throw busy();
  try {
    // a copy goes to the thread: the caller's Buffer may be a view of a shared pool
    return await workers.run({ ...task, bytes: new Uint8Array(task.bytes) }, { signal });
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    if (error instanceof Error && /queue is at limit/i.test(error.message)) throw busy();
    throw error;
  }
}

function busy(): ApiError {
  return new ApiError(503, 'server_error', 'Too many audio files are being decoded right now; try again shortly.', { code: 'decoder_busy', headers: { 'Retry-After': '1' } });
}

/** Closes the pool's threads (at shutdown). */
export async function closeDecodePool(): Promise<void> {
  const old = pool;
  pool = undefined;
  await old?.close({ force: true });
}
