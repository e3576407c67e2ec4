/**
 * LLM throughput: streaming /v1/chat/completions over HTTP against node-llama-cpp called directly
 * in-process, on the same generated model (gemma3 architecture, big enough that compute
 * dominates), same threads. Every figure is the median of ROUNDS rounds, and the raw engine and
 * the service alternate within each round (this machine's speed drifts by ±30 % between minutes).
 * Then aggregate tokens/s at concurrency 1, 2 and 4, also interleaved raw/HTTP per round; and how
 * long llama.cpp takes to decode one batch of 1, 2 and 4 tokens, which bounds what batching can
 * gain on this CPU at all (with one thread here, 4 tokens cost ~3.5× one: concurrency gains
 * little). Prints JSON. Goals: HTTP ≥ 0.98× raw tokens/s; ≤ 5 ms added time-to-first-token;
 * concurrency 4 ≥ 1.5× single-stream aggregate.
 *
 * Two services run side by side, alike but for LLM_RUNNER: `process` (llama.cpp in a supervised
 * runner process, the default) and `inline` (in the service process); every round measures raw,
 * inline and process in a rotating order, so the runner boundary's cost is `process_vs_inline`
 * (goal ≥ 0.97× tokens/s, ≤ 5 ms added time to first token).
 *
 *   npm run bench:llm        (ROUNDS=5 TOKENS=100 EMBD=1024 BLOCKS=8 WEIGHTS=q8_0|f16|f32 LLM_THREADS=N)
 */
import path from 'node:path';
import { getLlama, LlamaChat } from 'node-llama-cpp';
import { computeThreads, loadConfig } from '../src/config.ts';
import { samplingOptions } from '../src/engines/llm/llama-cpp.ts';
import { llamaCppOptions } from '../src/engines/index.ts';
import type { TensorType } from '../scripts/models/gguf-writer.ts';
import { ensureTinyGemma } from '../scripts/models/tiny-gemma.ts';
import { spawnService } from '../test/helpers/process.ts';
import { freePort, median, waitForHealth, waitForReady } from './support.ts';

const ROUNDS = Number(process.env.ROUNDS ?? 5);
const TOKENS = Number(process.env.TOKENS ?? 100);
const EMBD = Number(process.env.EMBD ?? 1024);
const BLOCKS = Number(process.env.BLOCKS ?? 8);
/** How the generated model stores its matrices: Q8_0 by default, like the quantized GGUFs people run on CPUs. */
const WEIGHTS = (process.env.WEIGHTS ?? 'q8_0') as TensorType;
const THREADS = computeThreads(Number(process.env.LLM_THREADS ?? 0));
const CONTEXT = 1024;
const PROMPT = 'Tell me a long story about GPUs.';
const LEVELS = [1, 2, 4];
/** The service's default sampling (LLM_TEMPERATURE, LLM_TOP_K, LLM_TOP_P), applied to the raw engine too. */
const SAMPLING = samplingOptions({ maxTokens: TOKENS }, llamaCppOptions(loadConfig({})).sampling);

const model = ensureTinyGemma(path.resolve(`.cache/models/bench-gemma3-${EMBD}x${BLOCKS}-${WEIGHTS}.gguf`), { loop: true, embd: EMBD, blocks: BLOCKS, ff: EMBD * 4, heads: EMBD / 64, weights: WEIGHTS });

interface Run {
  ttftMs: number;
  tokens: number;
  totalMs: number;
}
const tokPerS = (r: Run) => r.tokens / (r.totalMs / 1000);
const round = (n: number, d = 2) => Math.round(n * 10 ** d) / 10 ** d;

// --- raw engine, in this process
const llama = await getLlama({ gpu: false, build: 'never' });
const llamaModel = await llama.loadModel({ modelPath: model });
const context = await llamaModel.createContext({ contextSize: CONTEXT * 4, sequences: 4, threads: THREADS });
const rawSequences = [0, 1, 2, 3].map(() => context.getSequence());

/** node-llama-cpp as an application would call it: one sequence, a LlamaChat per request (its KV prefix is reused). */
async function rawRun(sequence = rawSequences[0]!): Promise<Run> {
  const chat = new LlamaChat({ contextSequence: sequence, autoDisposeSequence: false });
  const before = sequence.tokenMeter.usedOutputTokens;
  const started = performance.now();
  let first = 0;
  await chat.generateResponse([{ type: 'user', text: PROMPT }, { type: 'model', response: [] }], {
    ...SAMPLING,
    maxTokens: TOKENS,
    onTextChunk: () => {
      if (!first) first = performance.now();
    },
  });
  const totalMs = performance.now() - started;
  chat.dispose({ disposeSequence: false });
  return { ttftMs: first - started, tokens: sequence.tokenMeter.usedOutputTokens - before, totalMs };
}

/** Median milliseconds llama.cpp takes to decode one batch of `n` tokens (one sequence, no sampling). */
async function decodeMs(n: number): Promise<number> {
  const sequence = rawSequences[3]!;
  const tokens = llamaModel.tokenize(PROMPT.repeat(4)).slice(0, 8 + n);
  const times: number[] = [];
  for (let r = 0; r < 15; r++) {
    await sequence.clearHistory();
    await sequence.evaluateWithoutGeneratingNewTokens(tokens.slice(0, 8));
    const started = performance.now();
    await sequence.evaluateWithoutGeneratingNewTokens(tokens.slice(8));
    times.push(performance.now() - started);
  }
  return median(times);
}

// --- the service over HTTP, in a child process with the same settings: runner process and inline
const RUNNERS = ['process', 'inline'] as const;
type Runner = (typeof RUNNERS)[number];
const services = {} as Record<Runner, ReturnType<typeof spawnService>>;
for (const runner of RUNNERS) {
  services[runner] = spawnService(
    { GEMMA_MODEL: model, LLM_RUNNER: runner, LLM_DEVICE: 'cpu', LLM_THREADS: String(THREADS), LLM_PARALLEL: '4', LLM_CONTEXT_SIZE: String(CONTEXT), ENABLE_LOCAL_WHISPER: 'false', TTS_BACKEND: 'embedded', LOG_LEVEL: 'warn' },
    await freePort(),
    { quiet: true },
  );
}

async function httpRun(runner: Runner): Promise<Run> {
  const started = performance.now();
  const res = await fetch(`${services[runner].url}/v1/chat/completions`, {
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

/** Aggregate tokens/s with `n` requests at once. */
async function aggregate(n: number, one: (i: number) => Promise<Run>): Promise<number> {
  const started = performance.now();
  const runs = await Promise.all(Array.from({ length: n }, (_, i) => one(i)));
  return runs.reduce((s, r) => s + r.tokens, 0) / ((performance.now() - started) / 1000);
}

try {
  for (const runner of RUNNERS) {
    await waitForHealth(services[runner].url, 60_000);
    // readiness covers every capability: the service runs the LLM only (and the embedded voice)
    await waitForReady(services[runner].url);
  }
  await rawRun();
  for (const runner of RUNNERS) await httpRun(runner); // warm-up all
  type Kind = 'raw' | Runner;
  const KINDS: Kind[] = ['raw', ...RUNNERS];
  const one = (kind: Kind, i = 0) => (kind === 'raw' ? rawRun(rawSequences[i]) : httpRun(kind));
  const single = new Map(KINDS.map((k) => [k, [] as Run[]]));
  const levels = new Map(LEVELS.map((n) => [n, new Map(KINDS.map((k) => [k, [] as number[]]))]));
  for (let i = 0; i < ROUNDS; i++) {
    // a rotating order: none of the three always runs first (or last) in a round
    const order = KINDS.map((_, j) => KINDS[(i + j) % KINDS.length]!);
    for (const kind of order) single.get(kind)!.push(await one(kind));
    for (const n of LEVELS) for (const kind of order) levels.get(n)!.get(kind)!.push(await aggregate(n, (s) => one(kind, s)));
  }
  const batch: Record<number, number> = {};
  for (const n of LEVELS) batch[n] = round(await decodeMs(n), 1);
  const tps = (k: Kind) => median(single.get(k)!.map(tokPerS));
  const ttft = (k: Kind) => median(single.get(k)!.map((r) => r.ttftMs));
  const agg = (n: number, k: Kind) => median(levels.get(n)!.get(k)!);
  const concurrency = Object.fromEntries(
    LEVELS.map((n) => [
      n,
      {
        raw_aggregate_tokens_per_s: round(agg(n, 'raw'), 1),
        http_process_aggregate_tokens_per_s: round(agg(n, 'process'), 1),
        http_inline_aggregate_tokens_per_s: round(agg(n, 'inline'), 1),
        process_vs_raw: round(agg(n, 'process') / agg(n, 'raw')),
        process_vs_inline: round(agg(n, 'process') / agg(n, 'inline')),
      },
    ]),
  );
  const metrics = await (await fetch(`${services.process.url}/metrics`)).text();
  const runnerRss = Number(/^runner_rss_bytes\{[^}]*\} (\S+)$/m.exec(metrics)?.[1] ?? 0);
  console.log(
    JSON.stringify(
      {
        benchmark: 'llm-throughput',
        model: path.basename(model),
        embd: EMBD,
        blocks: BLOCKS,
        weights: WEIGHTS,
        threads: THREADS,
        tokens_per_request: TOKENS,
        rounds: ROUNDS,
        statistic: 'median of rounds',
        raw_engine: { tokens_per_s: round(tps('raw'), 1), ttft_ms: round(ttft('raw')) },
        http_chat_stream_process: { tokens_per_s: round(tps('process'), 1), ttft_ms: round(ttft('process')) },
        http_chat_stream_inline: { tokens_per_s: round(tps('inline'), 1), ttft_ms: round(ttft('inline')) },
        http_vs_raw_tokens_per_s: { process: round(tps('process') / tps('raw'), 3), inline: round(tps('inline') / tps('raw'), 3) },
        added_ttft_ms: { process_vs_raw: round(ttft('process') - ttft('raw')), inline_vs_raw: round(ttft('inline') - ttft('raw')), process_vs_inline: round(ttft('process') - ttft('inline')) },
        process_vs_inline_tokens_per_s: round(tps('process') / tps('inline'), 3),
        runner_rss_mb_loaded: round(runnerRss / 1024 / 1024, 1),
        concurrency,
        concurrency4_vs_1: { process: round(agg(4, 'process') / agg(1, 'process')), inline: round(agg(4, 'inline') / agg(1, 'inline')), raw: round(agg(4, 'raw') / agg(1, 'raw')) },
        // The engine's own batching: one decode of n tokens (n sequences' next tokens) costs
        // batch_decode_ms[n]; 4 tokens costing as much as 1 would allow up to 4× at concurrency 4.
        batch_decode_ms: batch,
        tokens_per_decode_ms_4_vs_1: round((4 * batch[1]!) / batch[4]!),
        goals: { http_vs_raw_tokens_per_s: '>= 0.98', added_ttft_ms: '<= 5', process_vs_inline_tokens_per_s: '>= 0.97', concurrency4_vs_1: '>= 1.5' },
      },
      null,
      2,
    ),
  );
} finally {
  for (const runner of RUNNERS) services[runner].child.kill('SIGTERM');
  await context.dispose();
  await llamaModel.dispose();
}
process.exit(0);
