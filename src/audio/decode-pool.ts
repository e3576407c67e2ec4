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
import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { ApiError } from '../errors.ts';
import type { DecodeOutcome, DecodeTask } from './decode-worker.ts';

export interface DecodePoolOptions {
  /** Worker threads decoding at once (each holds at most one file). */
  threads: number;
  /** Decodes waiting for a thread; one more gets 503 `decoder_busy`. */
  queue: number;
  /** Longest audio any caller decodes (seconds): sizes each thread's heap (see heapLimitMb). */
  maxAudioSeconds?: number;
}

/**
 * A decode thread's V8 heap limit: a decoder whose heap grows past it (a hostile header making it
 * build huge tables) has only its thread terminated (ERR_WORKER_OUT_OF_MEMORY → 400), and piscina
 * starts a fresh one, instead of growing to gigabytes. A backstop, not the defence: Node gives an
 * over-limit thread only 16 MB of leeway, so one single allocation far past the limit (a hash
 * table doubling) still aborts the process — the m4a sample-table counts that did this are
 * refused from the header first (src/audio/inspect.ts). Decoded samples live in ArrayBuffers, outside this heap; what grows
 * with the length is the decoders' per-frame tables (an hour of AAC is ~170k frames, a few MB), so
 * 256 MB plus 64 MB per hour of the longest accepted audio leaves ample room for honest files.
 */
export function heapLimitMb(maxAudioSeconds: number): number {
  return 256 + Math.ceil((maxAudioSeconds / 3600) * 64);
}

let pool: Piscina<DecodeTask, DecodeOutcome> | undefined;
let options: DecodePoolOptions = { threads: Math.max(1, Math.min(2, os.availableParallelism())), queue: 32, maxAudioSeconds: 3600 };

/** Sets the pool's size (the composition root calls this once from the configuration). */
export function configureDecodePool(next: DecodePoolOptions): void {
  if (pool && next.threads === options.threads && next.queue === options.queue && next.maxAudioSeconds === options.maxAudioSeconds) return;
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
    resourceLimits: { maxOldGenerationSizeMb: heapLimitMb(options.maxAudioSeconds ?? 3600) },
  });
  return pool;
}

/**
 * Keeps a decode within a budget (src/audio/audio-budget.ts): `reserve` is asked for the seconds
 * decoded so far plus the next report's worth as the thread reports them, and for the exact length
 * at the end; when it says no, the thread is stopped and `refusal` is thrown.
 */
export interface DecodeBudget {
  reserve(seconds: number): boolean;
  refusal(): Error;
}

/** Runs one decode on the pool; `signal` aborts it (the worker thread is terminated). */
export async function runDecode(task: Omit<DecodeTask, 'progress'>, signal?: AbortSignal, param = 'file', budget?: DecodeBudget): Promise<DecodeOutcome> {
  const workers = get();
  if (workers.queueSize >= options.queue) throw busy();
  const over = new AbortController();
  const stop = signal ? AbortSignal.any([signal, over.signal]) : over.signal;
  const channel = budget ? new MessageChannel() : undefined;
  channel?.port1.on('message', (seconds: number) => {
    if (!budget!.reserve(seconds)) over.abort(budget!.refusal());
  });
  try {
    // a copy goes to the thread: the caller's Buffer may be a view of a shared pool
    const bytes = new Uint8Array(task.bytes);
    const progress = channel?.port2;
    const outcome = await workers.run({ ...task, bytes, ...(progress ? { progress } : {}) }, { signal: stop, transferList: [bytes.buffer, ...(progress ? [progress] : [])] });
    // the whole length, now known (a file shorter than one report interval reported only its start)
    if (outcome.ok && budget && !budget.reserve(outcome.samples.length / task.targetRate)) throw budget.refusal();
    return outcome;
  } catch (error) {
    if (stop.aborted) throw stop.reason;
    if (error instanceof Error && /queue is at limit/i.test(error.message)) throw busy();
    // the thread went over its heap limit (a hostile header): it is gone, piscina replaces it
    if ((error as { code?: unknown } | undefined)?.code === 'ERR_WORKER_OUT_OF_MEMORY') {
      throw ApiError.badRequest('Could not decode the audio: decoding it needed more memory than any real file of the accepted length does (a corrupt or hostile header?).', param, 'invalid_audio');
    }
    throw error;
  } finally {
    channel?.port1.close();
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
