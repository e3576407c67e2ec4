/**
 * Transcription jobs: submit, read, list, cancel/forget, follow (events). Records and files live in
 * the shared storage (src/jobs/records.ts), the queue decides which worker runs what
 * (src/jobs/queue.ts), the processor transcribes window by window (src/jobs/processor.ts).
 * Housekeeping runs in every process, idempotently: finished jobs are deleted
 * JOB_RESULT_TTL_SECONDS after they finished, and unfinished jobs the queue does not hold (a Redis
 * that restarted empty, a process restarted without Redis) are queued again.
 */
import type { Logger } from 'pino';
import { WINDOW_SECONDS } from '../engines/stt/whisper-cpp.ts';
import type { Transcript } from '../engines/stt/types.ts';
import { ApiError } from '../errors.ts';
import { segmentView, toSrt, toVerboseJson, toVtt } from '../http/transcript-formats.ts';
import { FINAL_STATUSES, newJobId, type JobOptions, type JobRecord, type JobRecords, type JobRef } from './records.ts';
import type { JobQueue } from './queue.ts';

export interface JobServiceOptions {
  records: JobRecords;
  queue: JobQueue;
  logger: Logger;
  /** Housekeeping period (ms). */
  sweepIntervalMs: number;
  resultTtlSeconds: number;
  /** A running job whose heartbeat is older than this (ms) has lost its worker. */
  staleAfterMs: number;
  /** A job cancelled before any worker took it (metrics, webhook). */
  onFinished?: (record: JobRecord) => void;
}

/** How long a DELETE waits for a job its worker is finishing to say so (its last writes: the result, the record). */
const FINISHING_WAIT_MS = 10_000;

const seconds = (ms: number | undefined) => (ms === undefined ? null : Math.floor(ms / 1000));

/** The result in the job's response_format: an object for json/verbose_json, text otherwise. */
export function formatResult(transcript: Transcript, options: JobOptions): unknown {
  switch (options.response_format) {
    case 'text':
      return `${transcript.text}\n`;
    case 'srt':
      return toSrt(transcript);
    case 'vtt':
      return toVtt(transcript);
    case 'verbose_json':
      return toVerboseJson(transcript, 'transcribe', options.temperature ?? 0);
    default:
      return { text: transcript.text };
  }
}

export function notFound(id: string): ApiError {
  return new ApiError(404, 'not_found_error', `No transcription job ${id}.`, { param: 'id', code: 'job_not_found' });
}

export class JobService {
  readonly records: JobRecords;
  readonly queue: JobQueue;
  private readonly logger: Logger;
  private readonly ttlMs: number;
  private readonly staleAfterMs: number;
  private readonly onFinished: ((record: JobRecord) => void) | undefined;
  private readonly timer: NodeJS.Timeout;
  private sweeping: Promise<void> | undefined;

  constructor(options: JobServiceOptions) {
    this.records = options.records;
    this.queue = options.queue;
    this.logger = options.logger;
    this.ttlMs = options.resultTtlSeconds * 1000;
    this.staleAfterMs = options.staleAfterMs;
    this.onFinished = options.onFinished;
    this.timer = setInterval(() => void this.housekeeping(), options.sweepIntervalMs);
    this.timer.unref();
    void this.housekeeping();
  }

  /** A new job's ref and the storage key its upload goes to (written by the route, streamed). */
  reserve(tenant: string | null): { ref: JobRef; uploadKey: string } {
    const ref = { tenant, id: newJobId() };
    return { ref, uploadKey: this.records.key(ref, 'upload') };
  }

  /** Records and queues a job whose upload is in storage. */
  async submit(ref: JobRef, uploadBytes: number, options: JobOptions, webhookUrl?: string): Promise<JobRecord> {
    const record: JobRecord = {
      ...ref,
      status: 'queued',
      options,
      ...(webhookUrl ? { webhook_url: webhookUrl } : {}),
      upload_bytes: uploadBytes,
      created_at: Date.now(),
      windows_done: 0,
      attempts: 0,
    };
    await this.records.put(record);
    try {
      await this.queue.enqueue(ref);
    } catch (error) {
      // the record is in storage: housekeeping queues it once the queue is reachable again
      this.logger.warn({ job_id: ref.id, err: (error as Error).message }, 'job queue unreachable: the job waits in storage');
    }
    this.logger.info({ job_id: ref.id, bytes: uploadBytes, response_format: options.response_format }, 'job queued');
    return record;
  }

  /** The record, or a 404 (also for another tenant's id and for an expired job). */
  async get(ref: JobRef): Promise<JobRecord> {
    const record = await this.records.get(ref);
    if (!record || (record.expires_at !== undefined && record.expires_at <= Date.now())) throw notFound(ref.id);
    return record;
  }

  async transcript(ref: JobRef): Promise<Transcript | undefined> {
    const raw = await this.records.storage.read(this.records.key(ref, 'result.json'));
    return raw ? (JSON.parse(raw.toString('utf8')) as Transcript) : undefined;
  }

  /** The job as the API shows it (lists, events, webhooks). */
  summary(record: JobRecord) {
    const total = record.duration;
    const done = total === undefined ? 0 : Math.min(total, record.windows_done * WINDOW_SECONDS);
    return {
      id: record.id,
      object: 'transcription.job' as const,
      status: record.status,
      created_at: seconds(record.created_at)!,
      started_at: seconds(record.started_at),
      finished_at: seconds(record.finished_at),
      expires_at: seconds(record.expires_at),
      model: record.options.model ?? null,
      response_format: record.options.response_format,
      progress: {
        audio_seconds_done: +done.toFixed(3),
        audio_seconds_total: total === undefined ? null : +total.toFixed(3),
        windows_done: record.windows_done,
        windows_total: record.windows_total ?? null,
      },
      timings: {
        queued_seconds: record.started_at ? +((record.started_at - record.created_at) / 1000).toFixed(3) : null,
        running_seconds: record.started_at && record.finished_at ? +((record.finished_at - record.started_at) / 1000).toFixed(3) : null,
      },
      attempts: record.attempts,
      webhook_url: record.webhook_url ?? null,
      error: record.error ?? null,
    };
  }

  /** The summary with the segments so far and, once completed, the result. */
  async detail(record: JobRecord) {
    const base = this.summary(record);
    const transcript = record.status === 'completed' ? await this.transcript(record) : undefined;
    const segments = transcript ? transcript.segments : (await this.records.windows(record)).flatMap((w) => w.segments).map((s, id) => ({ ...s, id }));
    return {
      ...base,
      language: transcript?.language ?? null,
      segments: segments.map((s) => segmentView(s)),
      ...(transcript ? { result: formatResult(transcript, record.options) } : {}),
    };
  }

  async list(tenant: string | null, limit: number, after?: string) {
    const now = Date.now();
    let records = (await this.records.ofTenant(tenant)).filter((r) => r.expires_at === undefined || r.expires_at > now);
    if (after) {
      const at = records.findIndex((r) => r.id === after);
      if (at < 0) throw ApiError.badRequest(`No job ${after} to list after.`, 'after', 'invalid_cursor');
      records = records.slice(at + 1);
    }
    const page = records.slice(0, limit);
    return {
      object: 'list' as const,
      data: page.map((r) => this.summary(r)),
      first_id: page[0]?.id ?? null,
      last_id: page.at(-1)?.id ?? null,
      has_more: records.length > limit,
    };
  }

  /**
   * DELETE: a queued job is cancelled at once; a running one at the end of its window (the
   * returned record still says running; it ends cancelled whichever window it is in); a finished
   * one is forgotten (deleted with its files). A cancel and the job's worker finishing it race for
   * the job's ending (records.decideEnding): when the worker won, the job is finished (or about to
   * say so) and is forgotten like any finished job, so the answer never promises a cancel that
   * will not happen.
   */
  async cancel(ref: JobRef): Promise<{ forgotten: boolean; record?: JobRecord }> {
    const record = await this.get(ref);
    if (FINAL_STATUSES.has(record.status)) return this.forget(ref);
    if ((await this.records.decideEnding(ref, 'cancelled')) === 'finished') {
      if (await this.finished(ref)) return this.forget(ref);
      throw new ApiError(409, 'invalid_request_error', `The transcription job ${ref.id} is finishing and can no longer be cancelled; DELETE it again once it has finished to forget it.`, { param: 'id', code: 'job_finishing' });
    }
    if (record.status === 'queued') {
      const now = Date.now();
      let cancelled = false;
      const updated = await this.records.update(ref, (r) => {
        if (r.status !== 'queued') return;
        r.status = 'cancelled';
        r.finished_at = now;
        r.expires_at = now + this.ttlMs;
        cancelled = true;
      });
      if (cancelled && updated) this.onFinished?.(updated);
      this.logger.info({ job_id: ref.id }, 'job cancelled while queued');
      return { forgotten: false, record: updated ?? record };
    }
    this.logger.info({ job_id: ref.id }, 'job cancel requested: stops at the end of its window');
    return { forgotten: false, record };
  }

  private async forget(ref: JobRef): Promise<{ forgotten: true }> {
    await this.records.remove(ref);
    this.logger.info({ job_id: ref.id }, 'job forgotten');
    return { forgotten: true };
  }

  /**
   * Whether a job its worker decided to finish says so in its record within FINISHING_WAIT_MS (it
   * writes the result, then the record: moments); false when that worker was lost in between (the
   * worker that resumes the job finishes it).
   */
  private async finished(ref: JobRef): Promise<boolean> {
    for (const deadline = Date.now() + FINISHING_WAIT_MS; ; await new Promise((r) => setTimeout(r, 50))) {
      const record = await this.records.get(ref);
      if (!record || FINAL_STATUSES.has(record.status)) return true;
      if (Date.now() > deadline) return false;
    }
  }

  private housekeeping(): Promise<void> {
    this.sweeping ??= this.sweep()
      .catch((error: unknown) => this.logger.warn({ err: error }, 'job housekeeping failed'))
      .finally(() => (this.sweeping = undefined));
    return this.sweeping;
  }

  private async sweep(): Promise<void> {
    const now = Date.now();
    for (const ref of await this.records.all()) {
      const record = await this.records.get(ref);
      if (!record) continue;
      if (FINAL_STATUSES.has(record.status)) {
        if (record.expires_at !== undefined && record.expires_at <= now) {
          await this.records.remove(ref);
          this.logger.info({ job_id: ref.id }, 'job expired and deleted');
        }
        continue;
      }
      // an unfinished job the queue does not hold (its data lost: Redis restarted empty, or this
      // process restarted without Redis) and no worker is running: queue it again; it resumes from its checkpoints
      const beat = Number((await this.records.storage.read(this.records.key(ref, 'heartbeat')))?.toString() ?? 0);
      const orphan = now - Math.max(record.created_at, beat) > this.staleAfterMs;
      if (orphan && !(await this.queue.holds(ref.id))) {
        this.logger.warn({ job_id: ref.id, status: record.status }, 'job missing from the queue: queued again');
        await this.queue.enqueue(ref);
      }
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.sweeping;
    await this.queue.close();
  }
}
