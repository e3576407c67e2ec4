/**
 * The 503 a client gets when no engine of a capability is ready: `Retry-After` when waiting helps
 * (a runner restarting, a model loading), and never the operator-only `log` (a runner's last log
 * lines, its model's file), which /health/ready shows in `detail` instead.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EngineRegistry, type EngineChains } from '../../src/engines/registry.ts';
import type { Engine, EngineState } from '../../src/engines/types.ts';
import { ApiError } from '../../src/errors.ts';

function registryWith(state: EngineState): EngineRegistry {
  const engine: Engine = { id: 'llama-cpp', capability: 'llm', load: async () => {}, state: () => state, close: async () => {} };
  return new EngineRegistry({ llm: [engine], stt: [], tts: [] } as unknown as EngineChains);
}

function refusal(registry: EngineRegistry): ApiError {
  try {
    registry.ready('llm');
  } catch (error) {
    assert.ok(error instanceof ApiError);
    return error;
  }
  assert.fail('ready() did not throw');
}

describe('503 when no engine is ready', () => {
  it('engine_restarting and engine_loading carry Retry-After; a runner given up on does not', () => {
    const restarting = refusal(registryWith({ status: 'restarting', detail: 'the llm runner exited (SIGKILL); restarting in 500 ms' }));
    assert.equal(restarting.code, 'engine_restarting');
    assert.equal(restarting.headers['Retry-After'], '1');
    const loading = refusal(registryWith({ status: 'loading' }));
    assert.equal(loading.code, 'engine_loading');
    assert.equal(loading.headers['Retry-After'], '5');
    const failed = refusal(registryWith({ status: 'error', detail: 'crashed 3 times while loading its model' }));
    assert.equal(failed.statusCode, 503);
    assert.equal(failed.headers['Retry-After'], undefined);
  });

  it('the runner log goes to /health/ready detail, not into the client error', () => {
    const registry = registryWith({ status: 'error', detail: 'the llm runner crashed 3 times while loading its model (last: SIGKILL); not retried.', log: 'Model: gemma-secret. Last log lines:\nggml buffer 123 MiB' });
    const error = refusal(registry);
    assert.match(error.message, /crashed 3 times while loading its model/);
    assert.doesNotMatch(error.message, /gemma-secret|ggml|Last log lines/);
    const report = registry.readiness().capabilities.llm.engines[0]!;
    assert.match(report.detail ?? '', /not retried\.\nModel: gemma-secret\. Last log lines:\nggml buffer 123 MiB/);
    assert.equal('log' in report, false, 'the report has no separate log field (the readiness schema has none)');
  });
});
