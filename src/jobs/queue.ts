/**
 * Which worker runs which job. Two adapters behind one port:
 * - `memory` (no REDIS_URL): a FIFO in this process, JOB_CONCURRENCY at a time. One replica only;
 *   what is queued here is lost with the process (the files stay in JOB_STORAGE_DIR and the
 *   unfinished jobs are queued again when the same process starts on the same directory).
 * - `redis` (REDIS_URL): BullMQ. Every replica can add jobs; workers (JOB_WORKER=true) take them,
 *   JOB_CONCURRENCY each. A worker renews its job's lock while it runs; when it dies (kill -9,
 *   OOM, node lost) the lock expires and BullMQ's stalled-job check hands the job to another
 *   worker (JOB_LOCK_SECONDS), which resumes it from its checkpoints (src/jobs/processor.ts).
 */
import { Queue, WaitingError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { JobProcessor, RunOutcome } from './processor.ts';
import type { JobRef } from './records.ts';

export interface QueueDepth {
  waiting: number;
  active: number;
}

export interface JobQueue {
  readonly kind: 'memory' | 'redis';
  enqueue(ref: JobRef): Promise<void>;
  /** Whether the queue holds the job (waiting or running); false after a Redis lost its data. */
  holds(id: string): Promise<boolean>;
  depth(): Promise<QueueDepth>;
  /** Stops taking jobs; running ones stop at their window's end and stay unfinished for another worker. */
  close(): Promise<void>;
}

export class MemoryJobQueue implements JobQueue {
  readonly kind = 'memory' as const;
  private readonly waiting: JobRef[] = [];
  private readonly running = new Set<string>();
  private readonly stop = new AbortController();

  constructor(
    private readonly processor: JobProcessor,
    private readonly concurrency: number,
    private readonly logger: Logger,
  ) {}

  async enqueue(ref: JobRef): Promise<void> {
    if (this.running.has(ref.id) || this.waiting.some((r) => r.id === ref.id)) return;
    this.waiting.push(ref);
    this.pump();
  }

  private pump(): void {
    while (!this.stop.signal.aborted && this.running.size < this.concurrency && this.waiting.length > 0) {
      const ref = this.waiting.shift()!;
      this.running.add(ref.id);
      void this.processor
        .run(ref, this.stop.signal)
        .catch((error: unknown) => this.logger.error({ err: error, job_id: ref.id }, 'job run failed'))
        .finally(() => {
          this.running.delete(ref.id);
          this.pump();
        });
    }
  }

  async holds(id: string): Promise<boolean> {
    return this.running.has(id) || this.waiting.some((r) => r.id === id);
  }

  async depth(): Promise<QueueDepth> {
    return { waiting: this.waiting.length, active: this.running.size };
  }

  async close(): Promise<void> {
    this.stop.abort();
    while (this.running.size > 0) await new Promise((r) => setTimeout(r, 50));
  }
}

export const QUEUE_NAME = 'transcription-jobs';
const PREFIX = 'gemma-3-api';
const CLOSE_WAIT_MS = 10_000;

export interface BullQueueOptions {
  url: string;
  worker: boolean;
  concurrency: number;
  lockSeconds: number;
  maxStalls: number;
  /** A job BullMQ gave up on (stalled too often) whose record is not final yet. */
  onAbandoned: (ref: JobRef, reason: string) => Promise<void>;
}

export class BullJobQueue implements JobQueue {
  readonly kind = 'redis' as const;
  private readonly queue: Queue<JobRef, RunOutcome>;
  private readonly worker: Worker<JobRef, RunOutcome> | undefined;
  private readonly connections: Redis[] = [];
  private readonly stop = new AbortController();
  private closed = false;
  private readonly inFlight = new Set<Promise<RunOutcome>>();

  constructor(processor: JobProcessor, options: BullQueueOptions, logger: Logger) {
    // a worker's commands wait for Redis to come back (a restart must not fail a worker); BullMQ
    // duplicates its connection (the blocking one) with the same options, so the retry strategy also
    // ends those reconnect loops once this queue is closed
    const connect = (producer: boolean) => {
      const redis = new Redis(options.url, {
        retryStrategy: (times) => (this.closed ? null : Math.min(times * 200, 2000)),
        // adding a job fails at once while Redis is away (the job is kept in storage and queued by housekeeping)
        ...(producer ? { enableOfflineQueue: false, maxRetriesPerRequest: 1 } : { maxRetriesPerRequest: null }),
      });
      redis.on('error', (error) => logger.warn({ err: error.message }, 'job queue: redis error'));
      this.connections.push(redis);
      return redis;
    };
    this.queue = new Queue<JobRef, RunOutcome>(QUEUE_NAME, { connection: connect(true), prefix: PREFIX });
    this.queue.on('error', (error) => logger.warn({ err: error.message }, 'job queue error'));
    if (!options.worker) return;
    const lockMs = Math.round(options.lockSeconds * 1000);
    this.worker = new Worker<JobRef, RunOutcome>(
      QUEUE_NAME,
      async (job: Job<JobRef, RunOutcome>, token?: string) => {
        const run = processor.run(job.data, this.stop.signal);
        this.inFlight.add(run);
        const outcome = await run.finally(() => this.inFlight.delete(run));
        if (outcome === 'interrupted') {
          // this process is stopping: back to waiting now, not after the lock expires
          await job.moveToWait(token);
          throw new WaitingError();
        }
        return outcome;
      },
      {
        connection: connect(false),
        prefix: PREFIX,
        concurrency: options.concurrency,
        lockDuration: lockMs,
        stalledInterval: lockMs,
        maxStalledCount: options.maxStalls,
      },
    );
    this.worker.on('error', (error) => logger.warn({ err: error.message }, 'job worker error'));
    this.worker.on('stalled', (id) => logger.warn({ job_id: id }, 'job stalled: its worker was lost; it resumes on another'));
    this.worker.on('failed', (job, error) => {
      if (job) void options.onAbandoned(job.data, error.message).catch(() => undefined);
    });
  }

  async enqueue(ref: JobRef): Promise<void> {
    // the job id is ours: adding an id the queue holds already is a no-op (re-queueing is safe)
    await this.queue.add('transcribe', ref, { jobId: ref.id, removeOnComplete: true, removeOnFail: true, attempts: 1 });
  }

  async holds(id: string): Promise<boolean> {
    const job = await this.queue.getJob(id);
    if (!job) return false;
    const state = await job.getState();
    return state === 'waiting' || state === 'active' || state === 'delayed' || state === 'prioritized' || state === 'waiting-children';
  }

  async depth(): Promise<QueueDepth> {
    const counts = await this.queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
    return { waiting: (counts.waiting ?? 0) + (counts.delayed ?? 0) + (counts.prioritized ?? 0), active: counts.active ?? 0 };
  }

  /**
   * Running jobs stop at their window's end and go back to waiting; past CLOSE_WAIT_MS (a long
   * window, Redis unreachable) the connections are cut anyway and the jobs' locks expire instead.
   */
  async close(): Promise<void> {
    this.stop.abort();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise((resolve) => (timer = setTimeout(resolve, CLOSE_WAIT_MS)));
    // our runs end at their window's end and move their jobs back to waiting; then the worker
    // closes without waiting for anything else (BullMQ's graceful close waits on Redis forever)
    await Promise.race([Promise.allSettled([...this.inFlight]), deadline]);
    const closing = (async () => {
      await this.worker?.close(true);
      await this.queue.close();
    })().catch(() => undefined);
    await Promise.race([closing, deadline]);
    clearTimeout(timer);
    this.closed = true;
    // BullMQ's own connections (the worker's blocking one) too, or a process whose Redis is gone never exits
    void Promise.allSettled([this.worker?.disconnect(), this.queue.disconnect()]);
    for (const redis of this.connections) redis.disconnect();
  }
}
