/** Builds the transcription-job machinery from the configuration: BullMQ with REDIS_URL, else in-process. */
import os from 'node:os';
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { TranscriptionService } from '../services/transcription.ts';
import { JobProcessor } from './processor.ts';
import { BullJobQueue, MemoryJobQueue, type JobQueue } from './queue.ts';
import { FINAL_STATUSES, JOB_STATUSES, JobRecords, type JobRecord } from './records.ts';
import { JobService } from './service.ts';
import { DirectoryStorage } from './storage.ts';
import { parseAllowedHosts, Webhooks } from './webhooks.ts';

export interface Jobs {
  service: JobService;
  webhooks: Webhooks;
  /** For /health/ready. */
  describe: () => { queue: 'memory' | 'redis'; durable: boolean; worker: boolean; storage: string };
}

export function createJobs(config: Config, deps: { transcription: TranscriptionService; metrics: Metrics; logger: Logger }): Jobs {
  const logger = deps.logger.child({ component: 'jobs' });
  const records = new JobRecords(new DirectoryStorage(config.JOB_STORAGE_DIR));
  const webhooks = new Webhooks({ allowedHosts: parseAllowedHosts(config.JOB_WEBHOOK_ALLOWED_HOSTS), secret: config.JOB_WEBHOOK_SECRET, timeoutMs: config.JOB_WEBHOOK_TIMEOUT_SECONDS * 1000, logger });

  const finished = deps.metrics.counter('transcription_jobs_finished_total', 'Transcription jobs that reached a final state, by state.', ['status']);
  const duration = deps.metrics.histogram('transcription_job_duration_seconds', 'Time from a job\'s submission to its final state, by state.', ['status'], [1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14_400, 43_200]);
  const audioSeconds = deps.metrics.counter('transcription_job_audio_seconds_total', 'Seconds of audio transcribed by this process\'s job workers (counted per finished 30 s window).');
  const windows = deps.metrics.counter('transcription_job_windows_total', '30 s windows transcribed by this process\'s job workers.');
  for (const status of JOB_STATUSES) if (FINAL_STATUSES.has(status)) finished.inc({ status }, 0);

  const processor = new JobProcessor({
    records,
    transcription: deps.transcription,
    maxAudioSeconds: config.JOB_MAX_AUDIO_SECONDS,
    resultTtlSeconds: config.JOB_RESULT_TTL_SECONDS,
    logger,
    workerId: `${os.hostname()}:${process.pid}`,
    heartbeatMs: Math.max(500, (config.JOB_LOCK_SECONDS * 1000) / 2),
    onWindow: (_record, seconds) => {
      audioSeconds.inc(seconds);
      windows.inc();
    },
    onFinished: (record) => onFinished(record),
  });
  // once per job, whoever ends it: a DELETE and the worker taking the job up can both end a queued job
  function onFinished(record: JobRecord): void {
    void records.claimNotice({ tenant: record.tenant, id: record.id }).then(
      (first) => {
        if (!first) return;
        finished.inc({ status: record.status });
        duration.observe({ status: record.status }, ((record.finished_at ?? Date.now()) - record.created_at) / 1000);
        if (record.webhook_url) {
          void webhooks.deliver(record.webhook_url, { type: `transcription.job.${record.status}`, data: service.summary(record) }, record.id);
        }
      },
      (error: unknown) => logger.warn({ err: error, job_id: record.id }, 'job end not told'),
    );
  }

  const queue: JobQueue = config.REDIS_URL
    ? new BullJobQueue(
        processor,
        {
          url: config.REDIS_URL,
          worker: config.JOB_WORKER,
          concurrency: config.JOB_CONCURRENCY,
          lockSeconds: config.JOB_LOCK_SECONDS,
          maxStalls: config.JOB_MAX_STALLS,
          onAbandoned: async (ref, reason) => {
            const record = await records.get(ref);
            if (!record || FINAL_STATUSES.has(record.status)) return;
            // a cancel accepted before it was given up still ends it cancelled (as its worker would have)
            const cancelled = (await records.decideEnding(ref, 'finished')) === 'cancelled';
            const now = Date.now();
            const ended = await records.update(ref, (r) => {
              r.status = cancelled ? 'cancelled' : 'failed';
              r.finished_at = now;
              r.expires_at = now + config.JOB_RESULT_TTL_SECONDS * 1000;
              if (!cancelled) r.error = { message: `The job was given up: ${reason}`, type: 'server_error', code: 'job_abandoned', param: null };
            });
            if (ended) onFinished(ended);
          },
        },
        logger,
      )
    : // without Redis this process is the only worker, whatever JOB_WORKER says
      new MemoryJobQueue(processor, config.JOB_CONCURRENCY, logger);

  const sweepIntervalMs = Math.max(1000, Math.min(60_000, config.JOB_LOCK_SECONDS * 1000, (config.JOB_RESULT_TTL_SECONDS * 1000) / 2));
  const service = new JobService({ records, queue, logger, sweepIntervalMs, resultTtlSeconds: config.JOB_RESULT_TTL_SECONDS, staleAfterMs: config.JOB_LOCK_SECONDS * 2000, onFinished });

  const depth = deps.metrics.gauge('transcription_job_queue_depth', 'Transcription jobs in the queue, by state (waiting, active); with Redis, the whole cluster\'s.', ['state']);
  // refreshed when scraped (prom-client awaits collect)
  (depth as unknown as { collect?: () => Promise<void> }).collect = async () => {
    try {
      const d = await queue.depth();
      depth.set({ state: 'waiting' }, d.waiting);
      depth.set({ state: 'active' }, d.active);
    } catch {
      // Redis unreachable: keep the last values
    }
  };

  return {
    service,
    webhooks,
    describe: () => ({ queue: queue.kind, durable: queue.kind === 'redis', worker: queue.kind === 'memory' || config.JOB_WORKER, storage: records.storage.kind }),
  };
}
