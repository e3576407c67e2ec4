/**
 * LLM concurrency through HTTP alone: aggregate tokens/s of the service at 1 and 4 simultaneous
 * requests (streamed chat completions and plain /v1/generate), from a client process that loads no
 * model of its own. The baseline is the same service at concurrency 1 in the same run.
 * Goal: concurrency 4 ≥ 1.5× concurrency 1. Prints JSON.
 *
 * Why beside bench:llm: there the client process also runs the raw engine, and its HTTP figures at
 * concurrency 4 stayed near 1× while this client measured 1.8-2.4× on the same service settings
 * (1024-dim model, LLM_THREADS=2, this 2-core machine); the cause inside bench:llm is not found.
 *
 *   npm run bench:llm-concurrency      (LLM_THREADS=2 EMBD=1024 BLOCKS=8 TOKENS=100 ROUNDS=2 to change)
 */
import path from 'node:path';
import { computeThreads } from '../src/config.ts';
import { ensureTinyGemma } from '../scripts/models/tiny-gemma.ts';
import { spawnService } from '../test/helpers/process.ts';
import { freePort, waitForHealth, waitForReady } from './support.ts';

const TOKENS = Number(process.env.TOKENS ?? 100);
const ROUNDS = Number(process.env.ROUNDS ?? 2);
const EMBD = Number(process.env.EMBD ?? 1024);
const BLOCKS = Number(process.env.BLOCKS ?? 8);
const THREADS = computeThreads(Number(process.env.LLM_THREADS ?? 2));

const model = ensureTinyGemma(path.resolve(`.cache/models/bench-gemma3-${EMBD}x${BLOCKS}-f16.gguf`), { loop: true, embd: EMBD, blocks: BLOCKS, ff: EMBD * 4, heads: EMBD / 64, f16: true });
const port = await freePort();
const service = spawnService(
  { GEMMA_MODEL: model, LLM_DEVICE: 'cpu', LLM_THREADS: String(THREADS), LLM_PARALLEL: '4', LLM_CONTEXT_SIZE: '1024', ENABLE_LOCAL_WHISPER: 'false', TTS_BACKEND: 'embedded', LOG_LEVEL: 'warn' },
  port,
  { quiet: true },
);

/** One request; resolves to the completion tokens the service reported. */
async function request(kind: 'chat_stream' | 'generate'): Promise<number> {
  const chat = kind === 'chat_stream';
  const res = await fetch(`${service.url}${chat ? '/v1/chat/completions' : '/v1/generate'}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(
      chat
        ? { model: 'bench', messages: [{ role: 'user', content: 'Tell me a long story about GPUs.' }], max_tokens: TOKENS, stream: true, stream_options: { include_usage: true } }
        : { prompt: 'Tell me a long story about GPUs.', max_tokens: TOKENS },
    ),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${res.status}: ${text.slice(0, 200)}`);
  if (!chat) return (JSON.parse(text) as { usage: { completion_tokens: number } }).usage.completion_tokens;
  const usage = text.split('\n').find((l) => l.includes('"usage"') && l.includes('completion_tokens'));
  return (JSON.parse(usage!.replace(/^data: /, '')) as { usage: { completion_tokens: number } }).usage.completion_tokens;
}

async function aggregate(kind: 'chat_stream' | 'generate', n: number): Promise<number> {
  const started = performance.now();
  const tokens = await Promise.all(Array.from({ length: n }, () => request(kind)));
  return tokens.reduce((a, b) => a + b, 0) / ((performance.now() - started) / 1000);
}

try {
  await waitForHealth(service.url, 60_000);
  await waitForReady(service.url);
  await request('generate'); // warm-up
  const result: Record<string, { c1_tokens_per_s: number; c4_tokens_per_s: number; c4_vs_c1: number }> = {};
  for (const kind of ['chat_stream', 'generate'] as const) {
    const c1: number[] = [];
    const c4: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      c1.push(await aggregate(kind, 1));
      c4.push(await aggregate(kind, 4));
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    result[kind] = { c1_tokens_per_s: Math.round(mean(c1) * 10) / 10, c4_tokens_per_s: Math.round(mean(c4) * 10) / 10, c4_vs_c1: Math.round((mean(c4) / mean(c1)) * 100) / 100 };
  }
  console.log(JSON.stringify({ benchmark: 'llm-concurrency', model: path.basename(model), threads: THREADS, tokens_per_request: TOKENS, rounds: ROUNDS, ...result, goal: 'c4_vs_c1 >= 1.5' }, null, 2));
} finally {
  service.child.kill('SIGTERM');
}
process.exit(0);
