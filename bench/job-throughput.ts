/**
 * Transcription-job throughput: audio seconds transcribed per wall-clock second with 1 and with 2
 * worker processes (JOB_WORKER=true) behind one API process (JOB_WORKER=false), all on one real
 * redis-server and one JOB_STORAGE_DIR — the deploy's API replicas + worker replicas in small.
 * Whisper is the tiny-*architecture* model of bench:stt (one segment per 30 s window), 1 thread
 * per worker. Prints JSON.
 *
 *   npm run bench:jobs        (JOBS=4 SECONDS=65 to change)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureTinyWhisper } from '../scripts/models/tiny-whisper.ts';
import { wav } from '../test/helpers/audio.ts';
import { spawnService, type ServiceProcess } from '../test/helpers/process.ts';
import { startRedis } from '../test/helpers/redis.ts';
import { freePort, waitForHealth } from './support.ts';

const JOBS = Number(process.env.JOBS ?? 4);
const SECONDS = Number(process.env.SECONDS ?? 65);
const model = ensureTinyWhisper(path.resolve('.cache/models/bench-whisper-tiny-dims-w30.bin'), { state: 384, layers: 4, heads: 6, end: 29.98 });
const file = wav(SECONDS);

async function sttReady(url: string): Promise<void> {
  for (let i = 0; i < 1200; i++) {
    const ready = (await (await fetch(`${url}/health/ready`)).json()) as { capabilities: { stt: { status: string } } };
    if (ready.capabilities.stt.status === 'ready') return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url}: whisper did not load`);
}

async function run(workers: number): Promise<{ workers: number; jobs: number; audio_seconds: number; wall_seconds: number; audio_seconds_per_second: number }> {
  const redis = await startRedis();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-jobs-'));
  const base = { LOCAL_WHISPER_MODEL: model, STT_BACKEND: 'local', TTS_BACKEND: 'embedded', GEMMA_MODEL: '/absent.gguf', REDIS_URL: redis.url, JOB_STORAGE_DIR: dir, WHISPER_THREADS: '1', LOG_LEVEL: 'warn' };
  const services: ServiceProcess[] = [];
  try {
    const api = spawnService({ ...base, JOB_WORKER: 'false' }, await freePort(), { quiet: true });
    services.push(api);
    for (let i = 0; i < workers; i++) services.push(spawnService({ ...base, JOB_WORKER: 'true' }, await freePort(), { quiet: true }));
    for (const s of services) {
      await waitForHealth(s.url, 60_000);
      await sttReady(s.url);
    }
    const started = performance.now();
    const ids: string[] = [];
    for (let i = 0; i < JOBS; i++) {
      const form = new FormData();
      form.set('file', new Blob([file]), 'bench.wav');
      const res = await fetch(`${api.url}/v1/audio/transcriptions/jobs`, { method: 'POST', body: form });
      if (res.status !== 202) throw new Error(`submit: ${res.status} ${await res.text()}`);
      ids.push(((await res.json()) as { id: string }).id);
    }
    for (const id of ids) {
      for (;;) {
        const job = (await (await fetch(`${api.url}/v1/audio/transcriptions/jobs/${id}`)).json()) as { status: string; error: unknown };
        if (job.status === 'completed') break;
        if (job.status === 'failed' || job.status === 'cancelled') throw new Error(`${id}: ${job.status} ${JSON.stringify(job.error)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const wall = (performance.now() - started) / 1000;
    return { workers, jobs: JOBS, audio_seconds: JOBS * SECONDS, wall_seconds: +wall.toFixed(2), audio_seconds_per_second: +((JOBS * SECONDS) / wall).toFixed(2) };
  } finally {
    for (const s of services) s.child.kill('SIGKILL');
    await redis.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const results = [];
for (const workers of [1, 2]) results.push(await run(workers));
console.log(JSON.stringify({ cores: os.availableParallelism(), seconds_per_job: SECONDS, results, speedup: +(results[1]!.audio_seconds_per_second / results[0]!.audio_seconds_per_second).toFixed(2) }, null, 2));
