/** GenerationService's own logic (admission, cleanup) with a scripted engine. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import type { GenerationParams, LlmEngine, LlmEvent, LlmInput } from '../../src/engines/llm/types.ts';
import { EngineRegistry } from '../../src/engines/registry.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { GenerationService } from '../../src/services/generation.ts';

class ScriptedEngine implements LlmEngine {
  readonly id = 'scripted';
  readonly capability = 'llm' as const;
  readonly modelName = 'scripted';
  open = 0;
  async load() {}
  state() {
    return { status: 'ready' as const };
  }
  async close() {}
  async *generate(_input: LlmInput, params: GenerationParams, signal: AbortSignal): AsyncIterable<LlmEvent> {
    this.open++;
    try {
      for (let i = 0; i < params.maxTokens; i++) {
        signal.throwIfAborted();
        yield { type: 'delta', text: `t${i}` };
        await new Promise((r) => setTimeout(r, 5));
      }
      yield { type: 'done', result: { text: 'x', finishReason: 'length', usage: { promptTokens: 1, completionTokens: params.maxTokens }, model: 'scripted' } };
    } finally {
      this.open--;
    }
  }
}

function setup(env: Record<string, string> = {}) {
  const engine = new ScriptedEngine();
  const metrics = new Metrics();
  const service = new GenerationService(loadConfig({ LLM_PARALLEL: '1', LLM_QUEUE_SIZE: '1', ...env }), new EngineRegistry({ llm: [engine], stt: [], tts: [] }), metrics);
  return { engine, metrics, service };
}
const input: LlmInput = { kind: 'prompt', prompt: 'p' };
const gauge = async (metrics: Metrics, name: string) => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(await metrics.registry.metrics())?.[1]);

describe('GenerationService', () => {
  it('releases the slot and the engine when the client leaves before the stream is consumed', async () => {
    const { engine, metrics, service } = setup();
    const controller = new AbortController();
    const run = await service.start(input, { maxTokens: 100 }, controller.signal, 'stream');
    assert.equal(engine.open, 1);
    assert.equal(await gauge(metrics, 'llm_active_generations'), 1);
    controller.abort(); // the events are never iterated
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(engine.open, 0);
    assert.equal(await gauge(metrics, 'llm_active_generations'), 0);
    const events: LlmEvent[] = [];
    for await (const e of run.events) events.push(e);
    assert.deepEqual(events, []);
    assert.match(await metrics.registry.metrics(), /dependency_duration_seconds_count\{dependency="scripted",operation="stream",outcome="aborted"\} 1/);
  });

  it('counts a consumer that stops early as aborted and one that reads to the end as success', async () => {
    const { metrics, service } = setup({ LLM_QUEUE_SIZE: '0' });
    const early = await service.start(input, { maxTokens: 50 }, new AbortController().signal, 'stream');
    for await (const e of early.events) if (e.type === 'delta') break;
    const full = await service.complete(input, { maxTokens: 3 }, new AbortController().signal);
    assert.equal(full.usage.completionTokens, 3);
    const text = await metrics.registry.metrics();
    assert.match(text, /operation="stream",outcome="aborted"\} 1/);
    assert.match(text, /operation="generate",outcome="success"\} 1/);
  });

  it('queues up to LLM_QUEUE_SIZE, then answers 429, and caps max_tokens at LLM_MAX_TOKENS', async () => {
    const { service } = setup({ LLM_MAX_TOKENS: '4' });
    const first = await service.start(input, { maxTokens: 1000 }, new AbortController().signal, 'stream');
    const waiting = service.complete(input, { maxTokens: 1000 }, new AbortController().signal);
    await assert.rejects(service.start(input, { maxTokens: 1 }, new AbortController().signal, 'stream'), (e: { statusCode: number; headers: Record<string, string> }) => e.statusCode === 429 && e.headers['Retry-After'] === '1');
    let count = 0;
    for await (const e of first.events) if (e.type === 'delta') count++;
    assert.equal(count, 4);
    assert.equal((await waiting).usage.completionTokens, 4);
  });
});
