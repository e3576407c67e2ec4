/** The embedded LLM on the real llama.cpp, with the generated tiny Gemma 3 models. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { ensureTinyGemma, TINY_GEMMA_REPLY } from '../../scripts/models/tiny-gemma.ts';
import { LlamaCppEngine, type LlamaCppOptions } from '../../src/engines/llm/llama-cpp.ts';
import type { GenerationParams, LlmEvent, LlmInput } from '../../src/engines/llm/types.ts';
import { startFakeHub } from '../fakes/hf-hub.ts';
import { gentleGemmaPath, loopingGemmaPath, MODELS_DIR, tinyGemmaPath } from '../helpers/models.ts';

const logger = pino({ level: 'silent' });

function options(model: string, overrides: Partial<LlamaCppOptions> = {}): LlamaCppOptions {
  return { model, sampling: { temperature: 1, topK: 64, topP: 0.95 }, threads: 1, contextSize: 512, parallel: 2, device: 'cpu', gpuLayers: 'auto', hf: { download: false, timeoutMs: 1000, home: os.tmpdir() }, setting: 'GEMMA_MODEL', ...overrides };
}

async function collect(events: AsyncIterable<LlmEvent>) {
  const deltas: string[] = [];
  for await (const e of events) {
    if (e.type === 'delta') deltas.push(e.text);
    else return { deltas, result: e.result };
  }
  throw new Error('no done event');
}

const chat = (content: string, system?: string): LlmInput => ({ kind: 'chat', messages: [...(system ? [{ role: 'system' as const, content: system }] : []), { role: 'user', content }] });
const params = (p: Partial<GenerationParams> = {}): GenerationParams => ({ maxTokens: 32, ...p });

describe('llama.cpp engine (real library, tiny Gemma 3)', () => {
  let engine: LlamaCppEngine;
  let looping: LlamaCppEngine;
  /** The looping model with its reply only 1.5 logits ahead, on the default sampling (temperature 1, top_k 64, top_p 0.95). */
  let gentle: LlamaCppEngine;
  before(async () => {
    engine = new LlamaCppEngine(options(tinyGemmaPath()), logger);
    looping = new LlamaCppEngine(options(loopingGemmaPath(), { parallel: 2 }), logger);
    gentle = new LlamaCppEngine(options(gentleGemmaPath()), logger);
    await Promise.all([engine.load(), looping.load(), gentle.load()]);
  });
  after(async () => {
    await engine.close();
    await looping.close();
    await gentle.close();
  });

  it('loads and reports ready', () => {
    assert.deepEqual(engine.state(), { status: 'ready' });
    assert.equal(engine.modelName, 'tiny-gemma3');
  });

  it('generates the known reply through the chat template, streamed in pieces', async () => {
    const { deltas, result } = await collect(engine.generate(chat('Who are you?'), params(), new AbortController().signal));
    assert.equal(result.text, TINY_GEMMA_REPLY);
    assert.equal(deltas.join(''), TINY_GEMMA_REPLY);
    assert.ok(deltas.length >= 5, `streamed in ${deltas.length} pieces`);
    assert.equal(result.finishReason, 'stop');
    assert.equal(result.usage.completionTokens, 7); // six words + <end_of_turn>
    assert.ok(result.usage.promptTokens > 5);
  });

  it('renders system and history through the chat template (more prompt tokens, same reply)', async () => {
    const plain = await collect(engine.generate(chat('Hi'), params(), new AbortController().signal));
    const withSystem = await collect(engine.generate(chat('Hi', 'Be brief.'), params(), new AbortController().signal));
    assert.equal(withSystem.result.text, TINY_GEMMA_REPLY);
    assert.ok(withSystem.result.usage.promptTokens > plain.result.usage.promptTokens);
    assert.equal(engine.countPromptTokens(chat('Hi')), plain.result.usage.promptTokens);
  });

  it('completes a raw prompt and honours max_tokens', async () => {
    const { result } = await collect(engine.generate({ kind: 'prompt', prompt: 'Once upon a time' }, params({ maxTokens: 3 }), new AbortController().signal));
    assert.equal(result.text, 'Hello from the');
    assert.equal(result.finishReason, 'length');
  });

  it('stops at a stop sequence, without including it', async () => {
    const { result } = await collect(engine.generate(chat('Hi'), params({ stop: ['tiny'] }), new AbortController().signal));
    assert.equal(result.text, 'Hello from the ');
    assert.equal(result.finishReason, 'stop');
  });

  it('samples with temperature, top-k, top-p and seed without changing the (peaked) answer', async () => {
    const { result } = await collect(engine.generate(chat('Hi'), params({ temperature: 1.5, topK: 40, topP: 0.9, seed: 7 }), new AbortController().signal));
    assert.equal(result.text, TINY_GEMMA_REPLY);
  });

  it('constrains output to a JSON schema with a grammar', async () => {
    const schema = { type: 'object', properties: { mood: { enum: ['happy', 'sad'] } }, required: ['mood'] };
    const { result } = await collect(engine.generate(chat('How do you feel?'), params({ maxTokens: 64, responseFormat: { type: 'json_schema', schema } }), new AbortController().signal));
    const parsed = JSON.parse(result.text) as { mood: string };
    assert.ok(['happy', 'sad'].includes(parsed.mood), result.text);
  });

  it('runs two generations at once on one model', async () => {
    const started = performance.now();
    const [a, b] = await Promise.all([
      collect(looping.generate(chat('one'), params({ maxTokens: 40 }), new AbortController().signal)),
      collect(looping.generate(chat('two'), params({ maxTokens: 40 }), new AbortController().signal)),
    ]);
    assert.equal(a.result.usage.completionTokens, 40);
    assert.equal(b.result.usage.completionTokens, 40);
    assert.ok(a.result.text.startsWith(`${TINY_GEMMA_REPLY}Hello`));
    assert.ok(performance.now() - started < 60_000);
  });

  it('stops on abort and frees its sequence for the next request', async () => {
    const controller = new AbortController();
    const deltas: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const e of looping.generate(chat('go'), params({ maxTokens: 5000 }), controller.signal)) {
          if (e.type === 'delta') deltas.push(e.text);
          if (deltas.length === 3) controller.abort(new DOMException('client gone', 'AbortError'));
        }
      })(),
      (error: Error) => error.name === 'AbortError',
    );
    assert.ok(deltas.length < 100, `stopped after ${deltas.length} chunks`);
    // both sequences are free again: two more generations run at once
    const results = await Promise.all([1, 2].map(() => collect(looping.generate(chat('again'), params({ maxTokens: 4 }), new AbortController().signal))));
    assert.deepEqual(results.map((r) => r.result.usage.completionTokens), [4, 4]);
  });

  it('refuses a prompt longer than the context window with a 400 naming the limit', async () => {
    const small = new LlamaCppEngine(options(tinyGemmaPath(), { contextSize: 64, parallel: 1 }), logger);
    await small.load();
    try {
      await assert.rejects(collect(small.generate(chat('a b c d e f g h '.repeat(60)), params(), new AbortController().signal)), (error: { statusCode: number; code: string; message: string }) => {
        assert.equal(error.statusCode, 400);
        assert.equal(error.code, 'context_length_exceeded');
        assert.match(error.message, /The prompt is \d+ tokens; this model's context window is \d+ tokens \(LLM_CONTEXT_SIZE\)/);
        return true;
      });
    } finally {
      await small.close();
    }
  });

  it('loads an hf: URI through the Hugging Face cache (downloaded once from the hub stand-in)', async () => {
    const hub = await startFakeHub({ 'tiny-org/tiny-gemma3-GGUF/tiny-gemma3.gguf': fs.readFileSync(tinyGemmaPath()) });
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'hf-'));
    try {
      const remote = new LlamaCppEngine(options('hf:tiny-org/tiny-gemma3-GGUF/tiny-gemma3.gguf', { parallel: 1, hf: { home, endpoint: hub.url, download: true, timeoutMs: 10_000 } }), logger);
      await remote.load();
      assert.deepEqual(remote.state(), { status: 'ready' });
      assert.equal(remote.modelName, 'tiny-gemma3');
      const { result } = await collect(remote.generate(chat('Hi'), params(), new AbortController().signal));
      assert.equal(result.text, TINY_GEMMA_REPLY);
      await remote.close();
    } finally {
      await hub.close();
    }
  });

  it('applies presence and frequency penalties: a model that would repeat itself stops after one sentence', async () => {
    const run = async (p: Partial<GenerationParams>) => (await collect(gentle.generate(chat('Who are you?'), params({ maxTokens: 16, temperature: 0, ...p }), new AbortController().signal))).result;
    const plain = await run({});
    assert.ok(plain.text.startsWith(TINY_GEMMA_REPLY + TINY_GEMMA_REPLY), `without penalties it repeats: ${JSON.stringify(plain.text)}`);
    assert.equal(plain.finishReason, 'length');
    for (const penalty of [{ presencePenalty: 2 }, { frequencyPenalty: 2 }]) {
      const penalized = await run(penalty);
      assert.equal(penalized.text, TINY_GEMMA_REPLY, JSON.stringify(penalty));
      assert.equal(penalized.finishReason, 'stop');
    }
  });

  it('samples with the configured defaults (LLM_TEMPERATURE, LLM_TOP_K, LLM_TOP_P) when a request sets none', async () => {
    const sampled = gentle;
    const greedy = new LlamaCppEngine(options(gentleGemmaPath(), { sampling: { temperature: 0, topK: 64, topP: 0.95 } }), logger);
    await greedy.load();
    try {
      const text = async (engine: LlamaCppEngine, p: Partial<GenerationParams>) => (await collect(engine.generate(chat('Who are you?'), params({ maxTokens: 6, ...p }), new AbortController().signal))).result.text;
      const seeded = [await text(sampled, { seed: 1 }), await text(sampled, { seed: 2 })];
      // with the reply only 1.5 logits ahead of 63 others, temperature 1 picks it ~7 % of the time
      assert.ok(seeded.every((t) => t !== TINY_GEMMA_REPLY) && seeded[0] !== seeded[1], `sampled: ${JSON.stringify(seeded)}`);
      assert.equal(await text(sampled, { seed: 1 }), seeded[0], 'the same seed gives the same text');
      assert.equal(await text(sampled, { seed: 1, temperature: 0 }), TINY_GEMMA_REPLY, "the request's temperature wins");
      assert.equal(await text(greedy, { seed: 1 }), TINY_GEMMA_REPLY, 'LLM_TEMPERATURE=0 is greedy');
    } finally {
      await greedy.close();
    }
  });

  it('runs a Q8_0-quantized model (how GGUF checkpoints are usually shipped) to the same reply', async () => {
    const file = ensureTinyGemma(path.join(MODELS_DIR, 'tiny-gemma3-q8_0.gguf'), { weights: 'q8_0' });
    assert.ok(fs.statSync(file).size < fs.statSync(tinyGemmaPath()).size, 'the 8-bit blocks are smaller than F32');
    const quantized = new LlamaCppEngine(options(file), logger);
    await quantized.load();
    try {
      assert.deepEqual(quantized.state(), { status: 'ready' });
      const { result } = await collect(quantized.generate(chat('Who are you?'), params(), new AbortController().signal));
      assert.equal(result.text, TINY_GEMMA_REPLY);
    } finally {
      await quantized.close();
    }
  });

  it('reports a missing model with the remedy, and never throws', async () => {
    const missing = new LlamaCppEngine(options('/nonexistent/gemma.gguf'), logger);
    await missing.load();
    assert.equal(missing.state().status, 'missing_model');
    assert.match(missing.state().detail ?? '', /not found at \/nonexistent\/gemma\.gguf.*GEMMA_MODEL.*npm run pull/s);
  });

  it('reports garbage and truncated model files as clear errors, never a crash', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gguf-'));
    const garbage = path.join(dir, 'garbage.gguf');
    fs.writeFileSync(garbage, Buffer.from('this is not a model at all, just text'));
    const truncated = path.join(dir, 'truncated.gguf');
    fs.writeFileSync(truncated, fs.readFileSync(tinyGemmaPath()).subarray(0, 50_000));
    const bad = new LlamaCppEngine(options(garbage), logger);
    await bad.load();
    assert.equal(bad.state().status, 'missing_model');
    assert.match(bad.state().detail ?? '', /not a GGUF file/);
    const cut = new LlamaCppEngine(options(truncated), logger);
    await cut.load();
    assert.equal(cut.state().status, 'error');
    assert.match(cut.state().detail ?? '', /failed to load/);
  });
});
