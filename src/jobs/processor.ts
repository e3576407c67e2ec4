/**
 * Runs one transcription job, window by window, resumably:
 * 1. the upload is decoded once (the same decoder as the synchronous routes, bounded by
 *    JOB_MAX_AUDIO_SECONDS) into `audio.f32` — 16 kHz mono Float32 — and the upload is dropped;
 * 2. each 30 s window (whisper.cpp's own window, so the transcript equals the synchronous route's)
 *    is read from that file, transcribed, and checkpointed as `windows/<n>.json` before the next;
 * 3. a worker that takes the job up again (after a crash: BullMQ's stalled-job recovery) skips
 *    the windows already checkpointed and carries on from the first missing one.
 * A cancel request or this process stopping takes effect at the end of the running window; a cancel
 * and the worker finishing the job race for its ending (records.decideEnding), so a cancel accepted
 * during the last window, or while the job fails, still ends it cancelled.
 */
import type { Logger } from 'pino';
import { decodeToWhisperInput } from '../audio/decode.ts';
import { WINDOW_SECONDS } from '../engines/stt/whisper-cpp.ts';
import { STT_SAMPLE_RATE, type Transcript, type TranscriptSegment } from '../engines/stt/types.ts';
import { ApiError } from '../errors.ts';
import type { TranscriptionService } from '../services/transcription.ts';
import { FINAL_STATUSES, type JobRecord, type JobRecords, type JobRef, type WindowCheckpoint } from './records.ts';

export interface ProcessorDeps {
  records: JobRecords;
  transcription: TranscriptionService;
  maxAudioSeconds: number;
  resultTtlSeconds: number;
  logger: Logger;
  /** Identifies this process in logs (several workers share the storage). */
  workerId: string;
  /** How often a running job's heartbeat file is touched (ms): housekeeping leaves jobs with a fresh one alone. */
  heartbeatMs: number;
  /** Called once a job reaches a final state (webhooks, metrics). */
  onFinished?: (record: JobRecord) => void;
  onWindow?: (record: JobRecord, seconds: number) => void;
}

/** How a run ended: `interrupted` = this process is stopping; the job stays unfinished for another worker. */
export type RunOutcome = 'completed' | 'failed' | 'cancelled' | 'interrupted' | 'gone';

const WINDOW_SAMPLES = WINDOW_SECONDS * STT_SAMPLE_RATE;
const BYTES_PER_SAMPLE = 4;

/** Errors that say "not now" (full queues, engine still loading): wait and try again, never fail the job for them. */
function isTransient(error: unknown): boolean {
  return error instanceof ApiError && (error.statusCode === 429 || error.code === 'decoder_busy' || error.code === 'engine_loading');
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });

export class JobProcessor {
  constructor(readonly deps: ProcessorDeps) {}

  private async finish(ref: JobRef, status: 'completed' | 'failed' | 'cancelled', error?: ApiError | Error): Promise<JobRecord | undefined> {
    const now = Date.now();
    const record = await this.deps.records.update(ref, (r) => {
      r.status = status;
      r.finished_at = now;
      r.expires_at = now + this.deps.resultTtlSeconds * 1000;
      if (error) {
        r.error =
          error instanceof ApiError
            ? { message: error.message, type: error.type, code: error.code, param: error.param }
            : { message: `The job failed: ${error.message}`, type: 'server_error', code: 'job_failed', param: null };
      }
    });
    await this.deps.records.storage.remove(this.deps.records.key(ref, 'upload'));
    if (record) this.deps.onFinished?.(record);
    return record;
  }

  private async cancelRequested(ref: JobRef): Promise<boolean> {
    return (await this.deps.records.ending(ref)) === 'cancelled';
  }

  private async cancelled(ref: JobRef, log: Logger, windowsDone?: number): Promise<'cancelled'> {
    log.info({ windows_done: windowsDone }, 'job cancelled');
    await this.finish(ref, 'cancelled');
    return 'cancelled';
  }

  /** Whether this worker may end the job itself (completed or failed): false when a cancel came first. */
  private async mayFinish(ref: JobRef): Promise<boolean> {
    return (await this.deps.records.decideEnding(ref, 'finished')) === 'finished';
  }

  /** Retries transient refusals (queue full, decoder busy, engine loading) until `stop` fires. */
  private async patiently<T>(work: () => Promise<T>, stop: AbortSignal): Promise<T> {
    for (let delay = 250; ; delay = Math.min(delay * 2, 5000)) {
      try {
        return await work();
      } catch (error) {
        if (!isTransient(error) || stop.aborted) throw error;
        await sleep(delay, stop);
        if (stop.aborted) throw error;
      }
    }
  }

  /** Decodes the upload into `audio.f32` unless an earlier run did; returns the decoded duration. */
  private async decoded(ref: JobRef, stop: AbortSignal, log: Logger): Promise<{ duration: number; samples: number }> {
    const { records } = this.deps;
    const meta = await records.storage.read(records.key(ref, 'audio.json'));
    if (meta) return JSON.parse(meta.toString('utf8')) as { duration: number; samples: number };
    const upload = await records.storage.read(records.key(ref, 'upload'));
    if (!upload) throw new ApiError(500, 'server_error', 'The job\'s audio is missing from JOB_STORAGE_DIR.', { code: 'job_audio_missing' });
    const audio = await this.patiently(() => decodeToWhisperInput(upload, { maxSeconds: this.deps.maxAudioSeconds, setting: 'JOB_MAX_AUDIO_SECONDS', signal: stop }), stop);
    const { samples } = audio;
    await records.storage.write(records.key(ref, 'audio.f32'), new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength));
    const info = { duration: audio.duration, samples: samples.length };
    await records.storage.write(records.key(ref, 'audio.json'), JSON.stringify(info));
    await records.storage.remove(records.key(ref, 'upload'));
    log.info({ container: audio.source.container, bytes: audio.source.bytes, duration_s: +audio.duration.toFixed(3) }, 'job audio decoded');
    return info;
  }

  private async window(ref: JobRef, record: JobRecord, index: number, totalSamples: number, language: string | undefined, stop: AbortSignal): Promise<WindowCheckpoint> {
    const { records, transcription } = this.deps;
    const start = index * WINDOW_SAMPLES;
    const count = Math.min(WINDOW_SAMPLES, totalSamples - start);
    const bytes = await records.storage.readRange(records.key(ref, 'audio.f32'), start * BYTES_PER_SAMPLE, count * BYTES_PER_SAMPLE);
    // a copy: Buffer pools are not Float32-aligned
    const audio = new Float32Array(count);
    new Uint8Array(audio.buffer).set(bytes);
    const { options } = record;
    const { transcript } = await this.patiently(
      () => transcription.transcribe({ audio, language, prompt: options.prompt, temperature: options.temperature, task: 'transcribe', wordTimestamps: options.words }, stop, undefined, options.model),
      stop,
    );
    const offset = start / STT_SAMPLE_RATE;
    const total = totalSamples / STT_SAMPLE_RATE;
    return {
      index,
      worker: this.deps.workerId,
      language: transcript.language,
      // the file's timeline, as whisper.cpp places one long file's windows (offset + time, within the file)
      segments: transcript.segments.map((s) => ({ ...s, start: Math.min(total, s.start + offset), end: Math.min(total, s.end + offset) })),
      ...(transcript.words ? { words: transcript.words.map((w) => ({ ...w, start: w.start + offset, end: w.end + offset })) } : {}),
    };
  }

  /** Jobs running in this process: a second run of one (queued again meanwhile) is skipped. */
  private readonly running = new Set<string>();

  /** Runs (or resumes) the job; `stop` fires when this process is stopping. */
  async run(ref: JobRef, stop: AbortSignal): Promise<RunOutcome> {
    if (this.running.has(ref.id)) return 'gone';
    this.running.add(ref.id);
    const { storage } = this.deps.records;
    const beat = () => storage.write(this.deps.records.key(ref, 'heartbeat'), String(Date.now())).catch(() => undefined);
    await beat();
    const heartbeat = setInterval(() => void beat(), this.deps.heartbeatMs);
    try {
      return await this.runOnce(ref, stop);
    } finally {
      clearInterval(heartbeat);
      this.running.delete(ref.id);
    }
  }

  private async runOnce(ref: JobRef, stop: AbortSignal): Promise<RunOutcome> {
    const { records, logger, workerId } = this.deps;
    const log = logger.child({ job_id: ref.id, worker: workerId });
    const first = await records.get(ref);
    if (!first || FINAL_STATUSES.has(first.status)) return 'gone';
    if (await this.cancelRequested(ref)) return this.cancelled(ref, log, first.windows_done);
    let record = await records.update(ref, (r) => {
      r.status = 'running';
      r.started_at ??= Date.now();
      r.attempts += 1;
      r.worker = workerId;
    });
    if (!record) return 'gone';
    log.info({ attempt: record.attempts }, record.attempts > 1 ? 'job resumed' : 'job started');
    try {
      const { duration, samples } = await this.decoded(ref, stop, log);
      const windowsTotal = Math.max(1, Math.ceil(samples / WINDOW_SAMPLES));
      const done = await records.windows(ref);
      record = await records.update(ref, (r) => {
        r.duration = duration;
        r.windows_total = windowsTotal;
        r.windows_done = done.length;
      });
      if (!record) return 'gone';
      // whisper.cpp keeps the language it detected in the first window for the rest of the file
      let language = record.options.language ?? done[0]?.language;
      for (let index = done.length; index < windowsTotal; index++) {
        if (await this.cancelRequested(ref)) return this.cancelled(ref, log, index);
        if (stop.aborted) {
          log.info({ windows_done: index }, 'job interrupted: this worker is stopping');
          return 'interrupted';
        }
        const started = performance.now();
        const checkpoint = await this.window(ref, record, index, samples, language, stop);
        await records.saveWindow(ref, checkpoint);
        language ??= checkpoint.language;
        record = await records.update(ref, (r) => {
          r.windows_done = index + 1;
        });
        if (!record) return 'gone'; // deleted while running
        const seconds = Math.min(WINDOW_SAMPLES, samples - index * WINDOW_SAMPLES) / STT_SAMPLE_RATE;
        this.deps.onWindow?.(record, seconds);
        log.info({ window: index, windows_total: windowsTotal, stt_ms: Math.round(performance.now() - started) }, 'job window transcribed');
      }
      // decided before the result is written: a cancel accepted during the last window leaves none
      if (!(await this.mayFinish(ref))) return this.cancelled(ref, log, windowsTotal);
      const windows = await records.windows(ref);
      await records.storage.write(records.key(ref, 'result.json'), JSON.stringify(assemble(windows, duration, record.options.language)));
      await this.finish(ref, 'completed');
      log.info({ windows_total: windowsTotal, duration_s: +duration.toFixed(3) }, 'job completed');
      return 'completed';
    } catch (error) {
      if (stop.aborted) return 'interrupted';
      if (!(await this.mayFinish(ref))) return this.cancelled(ref, log);
      const apiError = error instanceof ApiError ? error : undefined;
      if (!apiError || apiError.statusCode >= 500) log.error({ err: error }, 'job failed');
      else log.info({ code: apiError.code, reason: apiError.message }, 'job failed: bad input');
      await this.finish(ref, 'failed', error as Error);
      return 'failed';
    }
  }
}

/** The whole transcript from the windows' checkpoints, as the engine assembles one long file's. */
export function assemble(windows: WindowCheckpoint[], duration: number, requestedLanguage?: string): Transcript {
  const segments: TranscriptSegment[] = [];
  const words = windows.some((w) => w.words) ? windows.flatMap((w) => w.words ?? []) : undefined;
  for (const w of windows) for (const s of w.segments) segments.push({ ...s, id: segments.length });
  return {
    text: segments.map((s) => s.text).join('').trim(),
    language: requestedLanguage ?? windows[0]?.language ?? 'en',
    duration,
    segments,
    ...(words ? { words } : {}),
  };
}
