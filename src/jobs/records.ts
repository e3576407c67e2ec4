/**
 * Job records and their files in the shared storage, one prefix per job:
 * `<tenant>/<id>/job.json` (the record), `upload` (the file as sent), `audio.f32` + `audio.json`
 * (decoded once: 16 kHz mono Float32), `windows/<n>.json` (one checkpoint per finished 30 s
 * window), `result.json` (the transcript), `ending` (how the job ends, decided once: see JobEnding), `notified` (its end told once: claimNotice). The storage, not Redis, is
 * the source of truth: the queue only says which worker runs what, so a Redis that lost its data
 * loses no job (unfinished records are queued again).
 * The tenant is the caller's key digest (src/tenancy.ts) or `shared` with keys off; a job id looked
 * up in another tenant's space is simply absent.
 */
import { randomBytes } from 'node:crypto';
import type { TranscriptSegment, TranscriptWord } from '../engines/stt/types.ts';
import type { ResponseFormat } from '../http/transcript-formats.ts';
import type { JobStorage } from './storage.ts';

export const JOB_STATUSES = ['queued', 'running', 'completed', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const FINAL_STATUSES: ReadonlySet<JobStatus> = new Set(['completed', 'failed', 'cancelled']);

export interface JobOptions {
  model?: string;
  language?: string;
  prompt?: string;
  temperature?: number;
  response_format: ResponseFormat;
  /** timestamp_granularities includes `word`. */
  words: boolean;
}

export interface JobError {
  message: string;
  type: string;
  code: string | null;
  param: string | null;
}

export interface JobRecord {
  id: string;
  tenant: string | null;
  status: JobStatus;
  options: JobOptions;
  webhook_url?: string;
  upload_bytes: number;
  /** Epoch milliseconds. */
  created_at: number;
  started_at?: number;
  finished_at?: number;
  expires_at?: number;
  /** Decoded audio seconds, once decoded. */
  duration?: number;
  windows_total?: number;
  windows_done: number;
  /** Times a worker took the job up (more than 1: it resumed after a worker was lost). */
  attempts: number;
  /** The worker that took it up last (host:pid), for operators' logs; not shown by the API. */
  worker?: string;
  error?: JobError;
}

/** One finished window: its segments and words on the whole file's timeline. */
export interface WindowCheckpoint {
  index: number;
  /** The worker that transcribed it (host:pid). */
  worker?: string;
  language: string;
  segments: TranscriptSegment[];
  words?: TranscriptWord[];
}

/**
 * How an unfinished job ends, decided once by whichever comes first: a cancel (`cancelled`) or its
 * worker finishing it itself (`finished`: completed or failed). A cancel that loses to its worker
 * knows the job finished; a worker that loses to a cancel ends the job cancelled.
 */
export type JobEnding = 'cancelled' | 'finished';

export interface JobRef {
  tenant: string | null;
  id: string;
}

export const JOB_ID_PATTERN = /^job_[a-f0-9]{24}$/;

export function newJobId(): string {
  return `job_${randomBytes(12).toString('hex')}`;
}

const tenantDir = (tenant: string | null) => tenant ?? 'shared';

export class JobRecords {
  constructor(readonly storage: JobStorage) {}

  prefix(ref: JobRef): string {
    return `${tenantDir(ref.tenant)}/${ref.id}`;
  }

  key(ref: JobRef, name: string): string {
    return `${this.prefix(ref)}/${name}`;
  }

  async get(ref: JobRef): Promise<JobRecord | undefined> {
    if (!JOB_ID_PATTERN.test(ref.id)) return undefined;
    const raw = await this.storage.read(this.key(ref, 'job.json'));
    if (!raw) return undefined;
    try {
      return JSON.parse(raw.toString('utf8')) as JobRecord;
    } catch {
      return undefined; // never half-written (atomic writes); a foreign file is not a job
    }
  }

  async put(record: JobRecord): Promise<void> {
    await this.storage.write(this.key(record, 'job.json'), JSON.stringify(record));
  }

  /** Reads, changes and writes the record; undefined when it is gone (deleted meanwhile). */
  async update(ref: JobRef, change: (record: JobRecord) => void): Promise<JobRecord | undefined> {
    const record = await this.get(ref);
    if (!record) return undefined;
    change(record);
    await this.put(record);
    return record;
  }

  /** The decided ending, if any. */
  async ending(ref: JobRef): Promise<JobEnding | undefined> {
    const raw = (await this.storage.read(this.key(ref, 'ending')))?.toString('utf8');
    return raw === 'cancelled' || raw === 'finished' ? raw : undefined;
  }

  /**
   * Decides the job's ending unless it is decided already (atomic create: of a cancel and a worker
   * racing, across processes, exactly one decides); returns the ending in force. A worker that
   * resumes a job its lost predecessor decided to finish gets `finished` again.
   */
  async decideEnding(ref: JobRef, ending: JobEnding): Promise<JobEnding> {
    if (await this.storage.create(this.key(ref, 'ending'), ending)) return ending;
    // decided before; absent only if the job was deleted meanwhile (its worker then finds no record)
    return (await this.ending(ref)) ?? ending;
  }

  /**
   * Claims the telling of the job's end (its webhook and metrics), once: a cancel and the job's
   * worker can both end a queued job (the same way), in different processes; only the first to
   * claim tells it.
   */
  claimNotice(ref: JobRef): Promise<boolean> {
    return this.storage.create(this.key(ref, 'notified'), String(Date.now()));
  }

  async windows(ref: JobRef): Promise<WindowCheckpoint[]> {
    const names = (await this.storage.list(this.key(ref, 'windows'))).filter((n) => /^\d+\.json$/.test(n));
    const out: WindowCheckpoint[] = [];
    for (const name of names.sort((a, b) => parseInt(a, 10) - parseInt(b, 10))) {
      const raw = await this.storage.read(this.key(ref, `windows/${name}`));
      if (raw) out.push(JSON.parse(raw.toString('utf8')) as WindowCheckpoint);
    }
    return out;
  }

  async saveWindow(ref: JobRef, checkpoint: WindowCheckpoint): Promise<void> {
    await this.storage.write(this.key(ref, `windows/${checkpoint.index}.json`), JSON.stringify(checkpoint));
  }

  /** Every tenant's job refs (for the sweeper and for re-queueing after a queue lost its data). */
  async all(): Promise<JobRef[]> {
    const refs: JobRef[] = [];
    for (const dir of await this.storage.list('')) {
      const tenant = dir === 'shared' ? null : dir;
      for (const id of await this.storage.list(dir)) if (JOB_ID_PATTERN.test(id)) refs.push({ tenant, id });
    }
    return refs;
  }

  /** One tenant's records, newest first. */
  async ofTenant(tenant: string | null): Promise<JobRecord[]> {
    const records: JobRecord[] = [];
    for (const id of await this.storage.list(tenantDir(tenant))) {
      const record = JOB_ID_PATTERN.test(id) ? await this.get({ tenant, id }) : undefined;
      if (record) records.push(record);
    }
    return records.sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? 1 : -1));
  }

  async remove(ref: JobRef): Promise<void> {
    await this.storage.remove(this.prefix(ref));
  }
}
