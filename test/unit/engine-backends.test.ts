/** The composition root's registries: every backend id the configuration accepts has a factory, and nothing else does. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { loadConfig } from '../../src/config.ts';
import { createSttChain, factoryOf, LLM_BACKENDS, STT_BACKENDS, TTS_BACKENDS } from '../../src/engines/index.ts';
import { Metrics } from '../../src/observability/metrics.ts';

describe('engine registries', () => {
  it('have exactly one factory per backend id the configuration accepts', () => {
    assert.deepEqual(Object.keys(LLM_BACKENDS).sort(), ['local', 'openai']);
    assert.deepEqual(Object.keys(STT_BACKENDS).sort(), ['local', 'openai']);
    assert.deepEqual(Object.keys(TTS_BACKENDS).sort(), ['embedded', 'openaudio']);
  });

  it('throw a clear error for an unknown id instead of building a default engine', () => {
    assert.throws(() => factoryOf(LLM_BACKENDS, 'LLM', 'vllm'), /Unknown LLM backend "vllm"; known: local, openai/);
    assert.throws(() => factoryOf(STT_BACKENDS, 'STT', 'toString'), /Unknown STT backend "toString"/);
    assert.throws(() => loadConfig({ LLM_BACKEND: 'vllm' }), /LLM_BACKEND/);
  });

  it('build the configured chain, in order, with the adapters named by their ids', () => {
    const config = loadConfig({ STT_BACKEND: 'openai,local', ENABLE_LOCAL_WHISPER: 'false', OPENAI_API_BASE: 'http://127.0.0.1:9/v1' });
    const chain = createSttChain(config, { logger: pino({ level: 'silent' }), metrics: new Metrics() });
    assert.deepEqual(chain.map((e) => e.id), ['openai', 'whisper-cpp']);
  });
});
