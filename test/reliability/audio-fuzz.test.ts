/**
 * Mutation fuzzer (fast-check, seeded) for the audio routes, on a real service process: valid WAV
 * (16-bit and float), FLAC, MP3, Ogg Vorbis, Ogg Opus, WebM and M4A files, made at test time, get
 * their headers, chunk sizes, rates, channel counts, bit depths and samples overwritten (NaN and
 * Infinity floats included), truncated or spliced, and go to /v1/audio/transcriptions and the
 * dialogue. Every answer must be a 2xx or a 4xx in the error envelope — never a 5xx or a dead
 * process — while /health answers throughout; the run is bounded in time and prints how many
 * cases ran, the /health latencies and the peak RSS.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { wav } from '../helpers/audio.ts';
import { CONTAINERS, encodeWith } from '../helpers/ffmpeg.ts';
import { type HealthProber, peakRssMb } from '../helpers/health-prober.ts';
import { startProbedTinyService, type ProbedService } from '../helpers/tiny-service.ts';
import type { ServiceProcess } from '../helpers/process.ts';

const SEED = 20_261_130;
const TIME_BUDGET_MS = 60_000;
const MAX_RUNS = 400;

type Mutation =
  | { kind: 'byte'; at: number; value: number }
  | { kind: 'u16'; at: number; value: number }
  | { kind: 'u32'; at: number; value: number }
  | { kind: 'float'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'splice'; from: number; to: number; length: number };

const INTERESTING = [0, 1, 2, 3, 7, 8, 16, 24, 32, 64, 255, 1000, 8000, 44_100, 48_000, 192_000, 400_000, 0x7fff, 0xffff, 0x7fffffff, 0xfffffff0, 0xffffffff];

/** Offsets are fractions: the same mutation lands in proportion on files of any size; headers get most. */
const position = fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 0, max: 159 }).map((n) => ({ header: n })) }, { weight: 1, arbitrary: fc.double({ min: 0, max: 1, noNaN: true }).map((f) => ({ fraction: f })) });
type Position = { header: number } | { fraction: number };
const resolve = (p: Position, length: number) => Math.max(0, Math.min(length - 1, 'header' in p ? p.header : Math.floor(p.fraction * length)));

const mutation: fc.Arbitrary<{ kind: Mutation['kind']; p: Position; value: number; q: Position; length: number }> = fc.record({
  kind: fc.constantFrom<Mutation['kind']>('byte', 'u16', 'u32', 'u32', 'float', 'truncate', 'splice'),
  p: position,
  value: fc.oneof(fc.constantFrom(...INTERESTING), fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1e30, -1e30)),
  q: position,
  length: fc.integer({ min: 1, max: 4096 }),
});

function apply(original: Buffer, mutations: { kind: Mutation['kind']; p: Position; value: number; q: Position; length: number }[]): Buffer {
  let b = Buffer.from(original);
  for (const m of mutations) {
    if (b.length < 8) break;
    const at = resolve(m.p, b.length);
    const int = Number.isFinite(m.value) ? Math.abs(Math.trunc(m.value)) : 0xffffffff;
    if (m.kind === 'byte') b[at] = int & 0xff;
    else if (m.kind === 'u16' && at + 2 <= b.length) b.writeUInt16LE(int & 0xffff, at);
    else if (m.kind === 'u32' && at + 4 <= b.length) b.writeUInt32LE(int >>> 0, at);
    else if (m.kind === 'float' && at + 4 <= b.length) b.writeFloatLE(m.value, at & ~3);
    else if (m.kind === 'truncate') b = b.subarray(0, Math.max(1, at));
    else if (m.kind === 'splice') {
      const from = resolve(m.q, b.length);
      b = Buffer.concat([b.subarray(0, at), b.subarray(from, from + m.length), b.subarray(at)]);
    }
  }
  return b;
}

describe('audio mutation fuzzer on a real service process', () => {
  let service: ServiceProcess;
  let prober: HealthProber;
  let running: ProbedService | undefined;
  const fixtures: Record<string, Buffer> = {};

  before(async () => {
    const tone = wav(1.5);
    fixtures['wav-pcm16'] = tone;
    fixtures['wav-float32'] = wav(1.5, { format: 'float32' });
    fixtures['wav-stereo-44k'] = wav(1, { rate: 44_100, channels: 2 });
    for (const container of Object.keys(CONTAINERS) as (keyof typeof CONTAINERS)[]) fixtures[container] = encodeWith(tone, container);
    running = await startProbedTinyService({ MAX_AUDIO_SECONDS: '120', LOG_LEVEL: 'warn' });
    ({ service, prober } = running);
  });

  after(async () => {
    await running?.stop();
  });

  it('mutated files never get a 5xx, never kill the process, and /health keeps answering', async () => {
    const names = Object.keys(fixtures);
    const seen = new Map<number, number>();
    let runs = 0;
    const started = Date.now();
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...names), fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.boolean(), async (name, mutations, viaDialogue) => {
        runs++;
        const file = apply(fixtures[name]!, mutations);
        const form = new FormData();
        form.append('file', new Blob([file]), 'fuzz.bin');
        if (viaDialogue) form.append('response_modalities', 'text');
        else form.append('model', 'whisper-1');
        const res = await fetch(`${service.url}${viaDialogue ? '/v1/dialogue' : '/v1/audio/transcriptions'}`, { method: 'POST', body: form, signal: AbortSignal.timeout(120_000) });
        const text = await res.text();
        seen.set(res.status, (seen.get(res.status) ?? 0) + 1);
        assert.ok(res.status < 500, `${name} ${JSON.stringify(mutations)} → ${res.status} ${text.slice(0, 300)}`);
        if (res.status >= 400) assert.ok((JSON.parse(text) as { error?: { code?: unknown } }).error, `a ${res.status} in the error envelope: ${text.slice(0, 200)}`);
        assert.equal(service.child.exitCode, null, 'the service process is alive');
      }),
      { seed: SEED, numRuns: MAX_RUNS, interruptAfterTimeLimit: TIME_BUDGET_MS, markInterruptAsFailure: false, endOnFailure: true },
    );
    const stats = await prober.stop();
    const rss = peakRssMb(service.child.pid!);
    const statuses = [...seen.entries()].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${n}×${s}`).join(', ');
    console.log(
      `# audio fuzzer: ${runs} cases in ${((Date.now() - started) / 1000).toFixed(1)} s (seed ${SEED}; ${statuses}); /health ${stats.count}×: p50 ${stats.p50.toFixed(1)} ms, p99 ${stats.p99.toFixed(1)} ms, max ${stats.max.toFixed(1)} ms; peak RSS ${rss} MB`,
    );
    assert.ok(runs >= 20, `the fuzzer ran ${runs} cases`);
    assert.equal(stats.failures, 0);
    assert.ok(stats.max < 2000, `/health took ${stats.max.toFixed(0)} ms at worst`);
    assert.ok(rss < 1500, `peak RSS ${rss} MB`);
  });
});
