/**
 * Durable transcription jobs on BullMQ: two real gateway processes on one real redis-server,
 * sharing one JOB_STORAGE_DIR, the tiny whisper model. A worker killed with SIGKILL mid-job: its job
 * is taken up by the other through BullMQ's stalled-job recovery and resumes after its last finished
 * window — no window transcribed twice, every job completed exactly once, the transcript equal to
 * the synchronous route's. Then Redis restarted empty mid-run: no job is lost.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { wav } from '../helpers/audio.ts';
import { JOBS, readSse, submitJob, waitJob } from '../helpers/jobs.ts';
import { ensureTinyWhisper } from '../../scripts/models/tiny-whisper.ts';
import { MODELS_DIR } from '../helpers/models.ts';
import { freePort, spawnService, waitForHealth, type ServiceProcess } from '../helpers/process.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

interface LogLine {
  msg?: string;
  job_id?: string;
}

function lines(service: ServiceProcess): LogLine[] {
  return service
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      try {
        return JSON.parse(l) as LogLine;
      } catch {
        return {};
      }
    });
}

async function waitReady(url: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const body = (await (await fetch(`${url}/health/ready`)).json()) as { capabilities: { stt: { status: string } } };
    if (body.capabilities.stt.status === 'ready') return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('whisper did not load');
}

/** A counter or gauge sample from a service's /metrics. */
async function metric(url: string, line: RegExp): Promise<number> {
  return Number(line.exec(await (await fetch(`${url}/metrics`)).text())?.[1] ?? 0);
}
const WINDOWS_DONE = /^transcription_job_windows_total (\S+)$/m;
const COMPLETED = /^transcription_jobs_finished_total\{status="completed"\} (\S+)$/m;

function checkpointWorkers(dir: string, id: string): string[] {
  const windows = path.join(dir, 'shared', id, 'windows');
  return fs
    .readdirSync(windows)
    .filter((f) => f.endsWith('.json'))
    .sort((a, b) => parseInt(a, 10) - parseInt(b, 10))
    .map((f) => (JSON.parse(fs.readFileSync(path.join(windows, f), 'utf8')) as { worker: string }).worker);
}

function record(dir: string, id: string): { status: string; windows_done: number; worker?: string } | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'shared', id, 'job.json'), 'utf8')) as { status: string; windows_done: number; worker?: string };
  } catch {
    return undefined;
  }
}

const LONG = { timeout: 1_200_000 };
const WINDOWS = 5;

describe('transcription jobs on BullMQ across processes', LONG, () => {
  let redis: TestRedis;
  let dir: string;
  let hook: http.Server;
  let hookPort: number;
  const deliveries: { id: string; status: string; signed: boolean }[] = [];
  const services: ServiceProcess[] = [];
  const env = () => ({
    // one decoder pass per 30 s window, as a real model on real speech (the default tiny model seeks 1 s at a time)
    LOCAL_WHISPER_MODEL: ensureTinyWhisper(path.join(MODELS_DIR, 'tiny-whisper-w30.bin'), { end: 29.98 }),
    STT_BACKEND: 'local',
    TTS_BACKEND: 'embedded',
    GEMMA_MODEL: '/absent.gguf',
    REDIS_URL: redis.url,
    JOB_STORAGE_DIR: dir,
    JOB_LOCK_SECONDS: '2',
    JOB_WEBHOOK_ALLOWED_HOSTS: `127.0.0.1:${hookPort}`,
    JOB_WEBHOOK_SECRET: 'jobs-redis-webhook-secret',
    MAX_AUDIO_SECONDS: '300',
    LOG_LEVEL: 'info',
  });

  before(async () => {
    hookPort = await freePort();
    // every delivered webhook, checked against its signature: one per job is "completed exactly once"
    hook = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        const [, ts, v1] = /^t=(\d+),v1=([a-f0-9]+)$/.exec(String(req.headers['x-webhook-signature'])) ?? [];
        const signed = v1 === createHmac('sha256', 'jobs-redis-webhook-secret').update(`${ts}.${body}`).digest('hex');
        const { data } = JSON.parse(body) as { data: { id: string; status: string } };
        deliveries.push({ id: data.id, status: data.status, signed });
        res.end();
      });
    });
    await new Promise<void>((r) => hook.listen(hookPort, '127.0.0.1', r));
    redis = await startRedis();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jobs-redis-'));
    for (let i = 0; i < 2; i++) services.push(spawnService(env(), await freePort()));
    for (const s of services) {
      await waitForHealth(s.url, 60_000);
      await waitReady(s.url);
    }
  }, LONG);
  after(async () => {
    for (const s of services) s.child.kill('SIGKILL');
    hook?.close();
    await redis?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('kill -9 of a worker mid-job: all 10 jobs complete exactly once, the interrupted one resumes from its checkpoint', LONG, async () => {
    const ready = (await (await fetch(`${services[0]!.url}/health/ready`)).json()) as { jobs: unknown };
    assert.deepEqual(ready.jobs, { queue: 'redis', durable: true, worker: true });
    const audio = wav(125); // 5 windows: 4 × 30 s + 5 s
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const { status, body } = await submitJob(services[i % 2]!.url, audio, { response_format: 'verbose_json', webhook_url: `http://127.0.0.1:${hookPort}/jobs` });
      assert.equal(status, 202, JSON.stringify(body));
      ids.push(body.id);
    }

    // the first job seen with one window finished and the next one running: kill its worker
    let victim: { id: string; service: ServiceProcess } | undefined;
    for (let i = 0; i < 6000 && !victim; i++) {
      for (const id of ids) {
        const r = record(dir, id);
        if (r?.status !== 'running' || r.windows_done !== 1 || !r.worker) continue;
        const pid = Number(r.worker.split(':').pop());
        const service = services.find((s) => s.child.pid === pid);
        if (service) victim = { id, service };
        break;
      }
      if (!victim) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(victim, 'a job was seen mid-way');
    victim.service.child.kill('SIGKILL');
    await victim.service.exited;
    const survivor = services.find((s) => s !== victim!.service)!;

    // progress as seen by a subscriber on the surviving replica never goes back
    const events = readSse(await fetch(`${survivor.url}${JOBS}/${victim.id}/events`));

    for (const id of ids) {
      const job = await waitJob(survivor.url, id, {}, undefined, 600_000);
      assert.equal(job.status, 'completed', `${id}: ${JSON.stringify(job.error)}`);
    }
    const progress = (await events).filter((e) => e.event === 'progress').map((e) => (e.data as { windows_done: number }).windows_done);
    assert.deepEqual(progress, [...progress].sort((a, b) => a - b), 'progress is monotonic');
    assert.equal(progress.at(-1), WINDOWS);

    // exactly once: one signed webhook per job (a worker runs one job at a time, so the killed one
    // finished nothing it could not report)
    for (let i = 0; i < 100 && deliveries.length < ids.length; i++) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(deliveries.map((d) => d.id).sort(), [...ids].sort(), 'one webhook per job');
    assert.ok(deliveries.every((d) => d.signed && d.status === 'completed'));

    // the interrupted job: windows 0..k-1 checkpointed by the killed worker (k ≥ 1, it was seen with one
    // done), k.. by the survivor, which logged that it resumed
    const victimWorker = `${os.hostname()}:${victim.service.child.pid}`;
    const workers = checkpointWorkers(dir, victim.id);
    assert.equal(workers.length, WINDOWS);
    const k = workers.filter((w) => w === victimWorker).length;
    assert.ok(k >= 1 && k < WINDOWS, `the killed worker stopped mid-job: ${workers}`);
    assert.deepEqual(workers, [...Array(WINDOWS).keys()].map((w) => (w < k ? victimWorker : `${os.hostname()}:${survivor.child.pid}`)));
    assert.ok(lines(survivor).some((l) => l.msg === 'job resumed' && l.job_id === victim!.id));
    // no window transcribed twice: what the survivor transcribed plus what the killed worker
    // checkpointed is every window of every job, exactly
    let victimCheckpoints = 0;
    for (const id of ids) victimCheckpoints += checkpointWorkers(dir, id).filter((w) => w === victimWorker).length;
    assert.equal((await metric(survivor.url, WINDOWS_DONE)) + victimCheckpoints, ids.length * WINDOWS, 'every window transcribed once');

    const job = await waitJob(survivor.url, victim.id);
    assert.equal(job.attempts, 2);
    const form = new FormData();
    form.set('file', new Blob([audio]), 'long.wav');
    form.set('response_format', 'verbose_json');
    const sync = await fetch(`${survivor.url}/v1/audio/transcriptions`, { method: 'POST', body: form });
    assert.equal(sync.status, 200);
    assert.deepEqual(job.result, await sync.json(), 'the resumed transcript is the uninterrupted one');
  });

  it('Redis restarted empty mid-run: the unfinished jobs (and one submitted meanwhile) are queued again from storage and complete', LONG, async () => {
    const survivor = services.find((s) => s.child.exitCode === null && s.child.signalCode === null)!;
    const windowsBefore = await metric(survivor.url, WINDOWS_DONE);
    const completedBefore = await metric(survivor.url, COMPLETED);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { status, body } = await submitJob(survivor.url, wav(35));
      assert.equal(status, 202);
      ids.push(body.id);
    }
    await waitJob(survivor.url, ids[0]!, {}, (j) => j.status === 'running');
    await redis.kill();
    // accepted while Redis is away: it waits in storage and is queued once Redis is back
    const during = await submitJob(survivor.url, wav(35));
    assert.equal(during.status, 202, JSON.stringify(during.body));
    ids.push(during.body.id);
    await redis.restart();
    for (const id of ids) {
      const job = await waitJob(survivor.url, id, {}, undefined, 600_000);
      assert.equal(job.status, 'completed', `${id}: ${JSON.stringify(job.error)}`);
    }
    // each completed once, and no window done twice although the queue lost them and got them back
    assert.equal((await metric(survivor.url, COMPLETED)) - completedBefore, ids.length);
    assert.equal((await metric(survivor.url, WINDOWS_DONE)) - windowsBefore, ids.length * 2);
    assert.ok(lines(survivor).some((l) => l.msg === 'job missing from the queue: queued again' && ids.includes(l.job_id!)), 'the lost jobs were queued again from storage');
  });

  it('a job cancelled during its last window ends cancelled, once, without a result', LONG, async () => {
    const survivor = services.find((s) => s.child.exitCode === null && s.child.signalCode === null)!;
    const { status, body } = await submitJob(survivor.url, wav(35), { webhook_url: `http://127.0.0.1:${hookPort}/jobs` });
    assert.equal(status, 202);
    // the first window checkpointed, the second (the last) transcribing
    await waitJob(survivor.url, body.id, {}, (j) => j.status === 'running' && j.progress.windows_done === 1, 600_000);
    const res = await fetch(`${survivor.url}${JOBS}/${body.id}`, { method: 'DELETE' });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { status: string }).status, 'running');
    const job = await waitJob(survivor.url, body.id, {}, undefined, 600_000);
    assert.equal(job.status, 'cancelled', `a cancel answered "running" ends the job cancelled: ${JSON.stringify(job.progress)}`);
    assert.equal(job.result, undefined);
    assert.equal(fs.existsSync(path.join(dir, 'shared', body.id, 'result.json')), false, 'no result stored');
    for (let i = 0; i < 100 && !deliveries.some((d) => d.id === body.id); i++) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(deliveries.filter((d) => d.id === body.id).map((d) => d.status), ['cancelled'], 'one webhook, cancelled');
  });
});
