/**
 * STT throughput: /v1/audio/transcriptions over HTTP against smart-whisper called directly
 * in-process, on a tiny-*architecture* whisper model (whisper tiny's dimensions: 384 state,
 * 4+4 layers, 6 heads; deterministic decoder so both paths do identical work, one segment per 30 s window), same threads,
 * alternating rounds; then real-time factor at concurrency 1 and 2 over HTTP. Prints JSON.
 * Goal: HTTP ≥ 0.95× the binding's speed.
 *
 *   npm run bench:stt        (ROUNDS=4 SECONDS=10 to change)
 */
import path from 'node:path';
import { TranscribeTask, WhisperModel } from 'smart-whisper';
import { computeThreads } from '../src/config.ts';
import { decodeToWhisperInput } from '../src/audio/decode.ts';
import { ensureTinyWhisper } from '../scripts/models/tiny-whisper.ts';
import { wav } from '../test/helpers/audio.ts';
import { spawnService } from '../test/helpers/process.ts';
import { freePort, waitForHealth } from './support.ts';

const ROUNDS = Number(process.env.ROUNDS ?? 4);
const SECONDS = Number(process.env.SECONDS ?? 10);
const THREADS = computeThreads(Number(process.env.WHISPER_THREADS ?? 0));
const model = ensureTinyWhisper(path.resolve('.cache/models/bench-whisper-tiny-dims-w30.bin'), { state: 384, layers: 4, heads: 6, end: 29.98 });
const file = wav(SECONDS);
const pcm = (await decodeToWhisperInput(file, { maxSeconds: 3600 })).samples;

const whisper = await WhisperModel.load(model, false);
async function raw(): Promise<number> {
  const started = performance.now();
  const task = await TranscribeTask.run(whisper, pcm, { language: 'en', temperature: 0, n_threads: THREADS, token_timestamps: true, format: 'detail', initial_prompt: '' });
  await task.result;
  return performance.now() - started;
}

const port = await freePort();
const service = spawnService({ LOCAL_WHISPER_MODEL: model, STT_BACKEND: 'local', WHISPER_THREADS: String(THREADS), STT_PARALLEL: '2', GEMMA_MODEL: '/absent.gguf', LOG_LEVEL: 'warn' }, port, { quiet: true });
async function http(): Promise<number> {
  const form = new FormData();
  form.set('file', new Blob([file]), 'bench.wav');
  form.set('model', 'whisper-1');
  const started = performance.now();
  const res = await fetch(`${service.url}/v1/audio/transcriptions`, { method: 'POST', body: form });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  await res.text();
  return performance.now() - started;
}

try {
  await waitForHealth(service.url, 60_000);
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const ready = (await (await fetch(`${service.url}/health/ready`)).json()) as { capabilities: { stt: { status: string } } };
    if (ready.capabilities.stt.status === 'ready') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await raw();
  await http();
  const rawMs: number[] = [];
  const httpMs: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    rawMs.push(await raw());
    httpMs.push(await http());
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const concurrency: Record<string, { wall_ms: number; real_time_factor: number }> = {};
  for (const n of [1, 2]) {
    const started = performance.now();
    await Promise.all(Array.from({ length: n }, () => http()));
    const wall = performance.now() - started;
    concurrency[n] = { wall_ms: Math.round(wall), real_time_factor: +(wall / 1000 / (SECONDS * n)).toFixed(4) };
  }
  console.log(
    JSON.stringify(
      {
        benchmark: 'stt-throughput',
        model: 'tiny dimensions (384 state, 4+4 layers, 6 heads), deterministic decoder',
        audio_seconds: SECONDS,
        threads: THREADS,
        rounds: ROUNDS,
        raw_binding_ms: { median: Math.round(median(rawMs)), all: rawMs.map(Math.round) },
        http_ms: { median: Math.round(median(httpMs)), all: httpMs.map(Math.round) },
        http_speed_vs_raw: +(median(rawMs) / median(httpMs)).toFixed(3),
        real_time_factor: { raw: +(median(rawMs) / 1000 / SECONDS).toFixed(4), http: +(median(httpMs) / 1000 / SECONDS).toFixed(4) },
        concurrency,
        goal: 'http_speed_vs_raw >= 0.95',
      },
      null,
      2,
    ),
  );
} finally {
  service.child.kill('SIGTERM');
  await whisper.free();
}
process.exit(0);
