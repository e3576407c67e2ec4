/**
 * LLM throughput: streaming /v1/chat/completions over HTTP against node-llama-cpp called directly
 * in-process, on the same generated model (gemma3 architecture, big enough that compute
 * dominates), same threads, alternating rounds. Then aggregate tokens/s at concurrency 1, 2, 4.
 * Prints JSON. Goals: HTTP ≥ 0.98× raw tokens/s; ≤ 5 ms added time-to-first-token;
 * concurrency 4 ≥ 1.5× single-stream aggregate.
 *
 *   npm run bench:llm        (ROUNDS=3 TOKENS=200 EMBD=384 BLOCKS=8 to change)
 */
import path from 'node:path';
import { getLlama, LlamaChat } from 'node-llama-cpp';
import { computeThreads } from '../src/config.ts';
import { ensureTinyGemma } from '../scripts/models/tiny-gemma.ts';
import { freePort, waitForHealth, waitForReady } from './support.ts';
import { spawnService } from '../test/helpers/process.ts';

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const TOKENS = Number(process.env.TOKENS ?? 200);
const EMBD = Number(process.env.EMBD ?? 384);
const BLOCKS = Number(process.env.BLOCKS ?? 8);
const THREADS = computeThreads(Number(process.env.LLM_THREADS ?? 0));
const CONTEXT = 1024;
const PROMPT = 'Tell me a long story about GPUs.';

const model = ensureTinyGemma(path.resolve(`.cache/models/bench-gemma3-${EMBD}x${BLOCKS}-f16.gguf`), { loop: true, embd: EMBD, blocks: BLOCKS, ff: EMBD * 4, heads: EMBD / 64, f16: true });

interface Run {
  ttftMs: number;
  tokens: number;
  totalMs: number;
}
const tokPerS = (r: Run) => r.tokens / (r.totalMs / 1000);

// --- raw engine, in this process
const llama = await getLlama({ gpu: false, build: 'never' });
const llamaModel = await llama.loadModel({ modelPath: model });
const context = await llamaModel.createContext({ contextSize: CONTEXT * 4, sequences: 4, threads: THREADS });
const rawSequences = [0, 1, 2, 3].map(() => context.getSequence());
const rawSequence = rawSequences[0]!;

/** node-llama-cpp as an application would call it: one sequence, a LlamaChat per request (its KV prefix is reused). */
async function rawRun(sequence = rawSequence): Promise<Run> {
  const chat = new LlamaChat({ contextSequence: sequence, autoDisposeSequence: false });
  const before = sequence.tokenMeter.usedOutputTokens;
  const started = performance.now();
  let first = 0;
  await chat.generateResponse([{ type: 'user', text: PROMPT }, { type: 'model', response: [] }], {
    maxTokens: TOKENS,
    onTextChunk: () => {
      if (!first) first = performance.now();
    },
  });
  const totalMs = performance.now() - started;
  chat.dispose({ disposeSequence: false });
  return { ttftMs: first - started, tokens: sequence.tokenMeter.usedOutputTokens - before, totalMs };
}

// --- the service over HTTP, in a child process with the same settings
const port = await freePort();
const service = spawnService({ GEMMA_MODEL: model, LLM_DEVICE: 'cpu', LLM_THREADS: String(THREADS), LLM_PARALLEL: '4', LLM_CONTEXT_SIZE: String(CONTEXT), ENABLE_LOCAL_WHISPER: 'false', TTS_BACKEND: 'embedded', LOG_LEVEL: 'warn' }, port, { quiet: true });

async function httpRun(): Promise<Run> {
  const started = performance.now();
  const res = await fetch(`${service.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'bench', messages: [{ role: 'user', content: PROMPT }], max_tokens: TOKENS, stream: true, stream_options: { include_usage: true } }),
  });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let first = 0;
  let buffer = '';
  let tokens = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let index;
    while ((index = buffer.indexOf('\n\n')) >= 0) {
      const line = buffer.slice(0, index).replace(/^data: /, '');
      buffer = buffer.slice(index + 2);
      if (line === '[DONE]') continue;
      // The client is measurement apparatus sharing the 2 cores: parse only the chunks it needs.
      if (first && !line.includes('"usage"')) continue;
      const chunk = JSON.parse(line) as { choices: { delta: { content?: string } }[]; usage?: { completion_tokens: number } };
      if (!first && chunk.choices[0]?.delta.content) first = performance.now();
      if (chunk.usage) tokens = chunk.usage.completion_tokens;
    }
  }
  return { ttftMs: first - started, tokens, totalMs: performance.now() - started };
}

try {
  await waitForHealth(service.url, 60_000);
  // readiness covers every capability: the service runs the LLM only (and the embedded voice)
  await waitForReady(service.url);
  await rawRun();
  await httpRun(); // warm-up both
  const raw: Run[] = [];
  const http: Run[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    raw.push(await rawRun());
    http.push(await httpRun());
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const round = (n: number, d = 2) => Math.round(n * 10 ** d) / 10 ** d;

  // Aggregate tokens/s with n requests at once: through HTTP, and the raw engine on n sequences.
  const aggregate = async (n: number, one: (i: number) => Promise<Run>) => {
    const started = performance.now();
    const runs = await Promise.all(Array.from({ length: n }, (_, i) => one(i)));
    return round(runs.reduce((s, r) => s + r.tokens, 0) / ((performance.now() - started) / 1000), 1);
  };
  const concurrency: Record<string, { http_aggregate_tokens_per_s: number; raw_aggregate_tokens_per_s: number }> = {};
  for (const n of [1, 2, 4]) {
    concurrency[n] = { raw_aggregate_tokens_per_s: await aggregate(n, (i) => rawRun(rawSequences[i])), http_aggregate_tokens_per_s: await aggregate(n, () => httpRun()) };
  }
  const rawTps = mean(raw.map(tokPerS));
  const httpTps = mean(http.map(tokPerS));
  console.log(
    JSON.stringify(
      {
        benchmark: 'llm-throughput',
        model: path.basename(model),
        embd: EMBD,
        blocks: BLOCKS,
        threads: THREADS,
        tokens_per_request: TOKENS,
        rounds: ROUNDS,
        raw_engine: { tokens_per_s: round(rawTps, 1), ttft_ms: round(mean(raw.map((r) => r.ttftMs))) },
        http_chat_stream: { tokens_per_s: round(httpTps, 1), ttft_ms: round(mean(http.map((r) => r.ttftMs))) },
        http_vs_raw_tokens_per_s: round(httpTps / rawTps, 3),
        added_ttft_ms: round(mean(http.map((r) => r.ttftMs)) - mean(raw.map((r) => r.ttftMs))),
        concurrency,
        concurrency4_vs_1: {
          http: round(concurrency[4]!.http_aggregate_tokens_per_s / concurrency[1]!.http_aggregate_tokens_per_s, 2),
          raw: round(concurrency[4]!.raw_aggregate_tokens_per_s / concurrency[1]!.raw_aggregate_tokens_per_s, 2),
        },
        goals: { http_vs_raw_tokens_per_s: '>= 0.98', added_ttft_ms: '<= 5', concurrency4_vs_1: '>= 1.5' },
      },
      null,
      2,
    ),
  );
} finally {
  service.child.kill('SIGTERM');
  await context.dispose();
  await llamaModel.dispose();
}
process.exit(0);
