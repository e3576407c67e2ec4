/**
 * STT speed against today's whisper.cpp: /v1/audio/transcriptions (over HTTP, upload and decoding
 * included) against whisper.cpp 1.9.3's own CLI (compute time = its `total time − load time`), on
 * the same ggml model, audio file and threads, run alternately (the order flips every round) so that
 * a busy machine slows both alike. Prints JSON: per audio shape the medians, ranges and the ratio.
 * Goal: http / cli ≤ 1.10.
 *
 * The model has whisper tiny's dimensions (384 state, 4+4 layers, 6 heads, f16) and a deterministic
 * decoder (scripts/models/tiny-whisper.ts), so both do identical work whatever the audio holds.
 * Shapes, as real use sends them:
 *  - turn: one 30 s window holding a 2 s utterance and then silence (a dialogue or /ws/stt turn);
 *  - windows: three such windows (90 s);
 *  - ten_minutes: a 10-minute file, an utterance in every 30 s window;
 *  - sparse: a 10-minute file with 14 utterances of 2–4 s at irregular times, silence between
 *    (a meeting or a voicemail with long pauses): 20 windows for the CLI, ~2 after the VAD;
 *  - legacy: the previous bench's shape, 10 s of tone with a model whose one segment ends at 29.98 s.
 * The real-use model ends its segment at 1.00 s followed by EOT, i.e. a single-timestamp ending.
 * Every shape runs through HTTP with `vad_filter` false and true (VAD=off,on), each round in a
 * rotating order with the CLI (which runs without VAD: its VAD needs a Silero model file).
 *
 *   npm run bench:stt      (ROUNDS=3 WHISPER_THREADS=1 SHAPES=turn,windows,ten_minutes,sparse,legacy
 *                           VAD=off,on STT_RUNNER=process|inline WHISPER_CLI=../shared/bench/whisper.cpp-1.9.3/whisper-cli to change)
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { computeThreads } from '../src/config.ts';
import { ensureTinyWhisper } from '../scripts/models/tiny-whisper.ts';
import { spawnService } from '../test/helpers/process.ts';
import { freePort, median, waitForHealth } from './support.ts';

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const THREADS = computeThreads(Number(process.env.WHISPER_THREADS ?? 0));
const CLI = path.resolve(process.env.WHISPER_CLI ?? '../shared/bench/whisper.cpp-1.9.3/whisper-cli');
const SHAPES = (process.env.SHAPES ?? 'turn,windows,ten_minutes,sparse,legacy').split(',');
const VAD_MODES = (process.env.VAD ?? 'off,on').split(',') as ('off' | 'on')[];
// the same decoding on both sides: the CLI's -bs and the service's WHISPER_BEAM_SIZE (1 = greedy, as the baseline)
const BEAM = Number(process.env.BEAM ?? 1);
const RATE = 16000;

/** 16-bit mono 16 kHz WAV: in every 30 s window `speech` seconds of a voiced-like tone, then silence. */
function paddedUtterances(seconds: number, speech: number): Buffer {
  return wavOf(seconds, (i) => {
    const t = (i % (30 * RATE)) / RATE;
    return t < speech ? voiced(i, t) : 0;
  });
}

/** A voiced-like tone: 220 Hz, modulated at 4 Hz like syllables (the WebRTC VAD takes it for speech). */
const voiced = (i: number, t: number) => 0.3 * Math.sin((2 * Math.PI * 220 * i) / RATE) * (0.6 + 0.4 * Math.sin(2 * Math.PI * 4 * t));

/** Utterances [start s, length s] in silence. */
function sparseUtterances(seconds: number, utterances: [number, number][]): Buffer {
  return wavOf(seconds, (i) => {
    const at = i / RATE;
    const u = utterances.find(([start, length]) => at >= start && at < start + length);
    return u ? voiced(i, at - u[0]) : 0;
  });
}

function wavOf(seconds: number, sample: (i: number) => number): Buffer {
  const frames = Math.round(seconds * RATE);
  const b = Buffer.alloc(44 + frames * 2);
  b.write('RIFF', 0);
  b.writeUInt32LE(36 + frames * 2, 4);
  b.write('WAVEfmt ', 8);
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(1, 22);
  b.writeUInt32LE(RATE, 24);
  b.writeUInt32LE(RATE * 2, 28);
  b.writeUInt16LE(2, 32);
  b.writeUInt16LE(16, 34);
  b.write('data', 36);
  b.writeUInt32LE(frames * 2, 40);
  for (let i = 0; i < frames; i++) b.writeInt16LE(Math.round(sample(i) * 32767), 44 + i * 2);
  return b;
}

interface Shape {
  name: string;
  model: string;
  seconds: number;
  file: string;
}

const dir = path.resolve('.cache/bench-stt');
fs.mkdirSync(dir, { recursive: true });
const realModel = ensureTinyWhisper(path.resolve('.cache/models/bench-whisper-tiny-dims-e1.bin'), { state: 384, layers: 4, heads: 6, end: 1 });
const legacyModel = ensureTinyWhisper(path.resolve('.cache/models/bench-whisper-tiny-dims-w30.bin'), { state: 384, layers: 4, heads: 6, end: 29.98 });
const cached = (name: string, make: () => Buffer) => {
  const file = path.join(dir, `${name}.wav`);
  if (!fs.existsSync(file)) fs.writeFileSync(file, make());
  return file;
};
const audio = (name: string, seconds: number, speech: number) => cached(name, () => paddedUtterances(seconds, speech));
const SPARSE: [number, number][] = [[4, 3], [21, 2], [75, 4], [118, 2.5], [160, 3], [171, 2], [236, 3.5], [290, 2], [333, 4], [398, 2], [447, 3], [489, 2.5], [540, 3], [588, 2]];
const allShapes: Shape[] = [
  { name: 'turn', model: realModel, seconds: 30, file: audio('turn', 30, 2) },
  { name: 'windows', model: realModel, seconds: 90, file: audio('windows', 90, 2) },
  { name: 'ten_minutes', model: realModel, seconds: 600, file: audio('ten-minutes', 600, 2) },
  { name: 'sparse', model: realModel, seconds: 600, file: cached('sparse-ten-minutes', () => sparseUtterances(600, SPARSE)) },
  { name: 'legacy', model: legacyModel, seconds: 10, file: audio('legacy', 10, 10) },
];
const shapes = allShapes.filter((s) => SHAPES.includes(s.name));

/** The CLI's compute time: total − load, from whisper_print_timings (model load excluded, as the issue defines it). */
function cli(shape: Shape): number {
  const run = spawnSync(CLI, ['-m', shape.model, '-f', shape.file, '-t', String(THREADS), '-l', 'en', '-bs', String(BEAM), '-bo', '1', '-nf'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const timing = (what: string) => Number(new RegExp(`whisper_print_timings:\\s+${what} time =\\s+([\\d.]+) ms`).exec(run.stderr)?.[1]);
  const total = timing('total');
  const load = timing('load');
  if (run.status !== 0 || !Number.isFinite(total) || !Number.isFinite(load)) throw new Error(`whisper-cli failed (${run.status ?? run.signal}): ${run.stderr.slice(-600)}`);
  return total - load;
}

async function http(url: string, shape: Shape, vad: 'off' | 'on', retries = 3): Promise<{ ms: number; segments: number }> {
  const form = new FormData();
  form.set('vad_filter', String(vad === 'on'));
  form.set('file', new Blob([fs.readFileSync(shape.file)]), 'bench.wav');
  form.set('model', 'whisper-1');
  form.set('response_format', 'verbose_json');
  const started = performance.now();
  let res: Response;
  try {
    res = await fetch(`${url}/v1/audio/transcriptions`, { method: 'POST', body: form });
  } catch (error) {
    // a pooled keep-alive socket the server closed while the CLI ran: nothing was processed, send again
    const code = ((error as Error).cause as { code?: string } | undefined)?.code;
    // (the pool may hold several such sockets: try a few times)
    if (retries > 0 && (code === 'EPIPE' || code === 'ECONNRESET')) return http(url, shape, vad, retries - 1);
    throw error;
  }
  const text = await res.text();
  const ms = performance.now() - started;
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${text}`);
  return { ms, segments: (JSON.parse(text) as { segments: unknown[] }).segments.length };
}

async function startService(model: string) {
  const port = await freePort();
  const service = spawnService(
    { LOCAL_WHISPER_MODEL: model, STT_BACKEND: 'local', WHISPER_THREADS: String(THREADS), WHISPER_BEAM_SIZE: String(BEAM), STT_PARALLEL: '1', GEMMA_MODEL: '/absent.gguf', LOG_LEVEL: 'warn', MAX_UPLOAD_BYTES: '100000000', MAX_AUDIO_SECONDS: '3600', REQUEST_TIMEOUT_SECONDS: '3600', STT_RUNNER: process.env.STT_RUNNER ?? 'process' },
    port,
    { quiet: true },
  );
  await waitForHealth(service.url, 60_000);
  const deadline = Date.now() + 120_000;
  for (;;) {
    const ready = (await (await fetch(`${service.url}/health/ready`)).json()) as { capabilities: { stt: { status: string } } };
    if (ready.capabilities.stt.status === 'ready') break;
    if (Date.now() > deadline) throw new Error(`whisper did not load: ${JSON.stringify(ready.capabilities.stt)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return service;
}

const stats = (xs: number[]) => ({ median: Math.round(median(xs)), min: Math.round(Math.min(...xs)), max: Math.round(Math.max(...xs)), all: xs.map(Math.round) });
const results: Record<string, unknown> = {};
const STARTED = new Date().toISOString();
const LOAD_AT_START = os.loadavg().map((x) => +x.toFixed(2));
const services = new Map<string, Awaited<ReturnType<typeof startService>>>();
try {
  for (const shape of shapes) {
    let service = services.get(shape.model);
    if (!service) services.set(shape.model, (service = await startService(shape.model)));
    cli(shape); // warm the page cache and the service's first-request paths alike
    const segments: Record<string, number> = {};
    for (const vad of VAD_MODES) segments[vad] = (await http(service.url, shape, vad)).segments;
    const runners = ['cli', ...VAD_MODES] as const;
    const ms: Record<string, number[]> = Object.fromEntries(runners.map((r) => [r, []]));
    for (let round = 0; round < ROUNDS; round++) {
      // rotate the order each round so that a busy machine slows all alike
      const order = runners.map((_, k) => runners[(k + round) % runners.length]!);
      for (const r of order) ms[r]!.push(r === 'cli' ? cli(shape) : (await http(service.url, shape, r)).ms);
    }
    const cliMs = ms.cli!;
    results[shape.name] = {
      audio_seconds: shape.seconds,
      service_segments: segments,
      cli_compute_ms: stats(cliMs),
      ...Object.fromEntries(
        VAD_MODES.map((vad) => {
          const h = ms[vad]!;
          const ratios = h.map((x, k) => x / cliMs[k]!);
          return [
            `http_vad_${vad}`,
            {
              ms: stats(h),
              ratio_of_medians: +(median(h) / median(cliMs)).toFixed(3),
              ratio_per_round: { median: +median(ratios).toFixed(3), min: +Math.min(...ratios).toFixed(3), max: +Math.max(...ratios).toFixed(3) },
            },
          ];
        }),
      ),
    };
    console.error(`${shape.name}: ${JSON.stringify(results[shape.name])}`);
  }
  console.log(
    JSON.stringify(
      {
        benchmark: 'stt-vs-whisper.cpp-cli',
        cli: CLI,
        model: 'tiny dimensions (384 state, 4+4 layers, 6 heads, f16), deterministic decoder',
        threads: THREADS,
        beam_size: BEAM,
        rounds: ROUNDS,
        started_at: STARTED,
        load_average_at_start: LOAD_AT_START,
        load_average: os.loadavg().map((x) => +x.toFixed(2)),
        shapes: results,
        goal: 'ratio (http / cli compute) <= 1.10',
      },
      null,
      2,
    ),
  );
} finally {
  for (const s of services.values()) s.child.kill('SIGTERM');
}
process.exit(0);
