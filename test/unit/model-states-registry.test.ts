/**
 * What GET /v1/models and /health/ready say of a model whose runner is stopping or gone, with an
 * engine whose unload the test holds open (a real runner exits too quickly to catch it midway).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EngineRegistry, type ModelEntry } from '../../src/engines/registry.ts';
import type { LlmEngine } from '../../src/engines/llm/types.ts';
import type { EngineState } from '../../src/engines/types.ts';
import { ApiError } from '../../src/errors.ts';

class HeldRunner {
  readonly id = 'fake-runner';
  readonly capability = 'llm' as const;
  readonly modelName = 'held';
  status: EngineState['status'] = 'loading';
  rss = 0;
  restartInMs: number | undefined;
  finishUnload: () => void = () => undefined;

  async load(): Promise<void> {
    this.rss = 300;
    this.status = 'ready';
  }

  state(): EngineState {
    return { status: this.status, ...(this.restartInMs === undefined ? {} : { restartInMs: this.restartInMs }) };
  }

  memoryBytes(): number | undefined {
    return this.rss || undefined;
  }

  async unload(): Promise<void> {
    await new Promise<void>((resolve) => (this.finishUnload = resolve)); // the process takes its time to exit
    this.rss = 0;
    this.status = 'disabled';
  }

  async close(): Promise<void> {}
}

describe('model states while unloading (registry)', () => {
  it('a model part-way through its unload is `unloading` with the memory its process still holds; then `unloaded`, and readiness says `unloaded` with the capability ready', async () => {
    const runner = new HeldRunner();
    const llm: ModelEntry<'llm'>[] = [{ id: 'held', capability: 'llm', aliases: [], preload: true, engines: [runner as unknown as LlmEngine] }];
    const reg = new EngineRegistry({ llm: llm[0]!.engines, stt: [], tts: [] }, undefined, { llm, stt: [], strict: true });
    await reg.start();
    assert.equal(reg.models()[0]?.state, 'loaded');
    const unload = reg.unloadModel('held');
    await new Promise((r) => setImmediate(r));
    const midway = reg.models()[0];
    assert.equal(midway?.state, 'unloading');
    assert.equal(midway?.memoryBytes, 300, 'the process still holds its memory');
    runner.finishUnload();
    assert.equal((await unload).state, 'unloaded');
    const after = reg.models()[0];
    assert.equal(after?.state, 'unloaded');
    assert.equal(after?.memoryBytes, undefined);
    const ready = reg.readiness();
    assert.equal(ready.capabilities.llm.engines[0]?.status, 'unloaded');
    assert.equal(ready.capabilities.llm.status, 'ready', 'it loads on the next request');
    assert.equal(ready.ready, true);
  });

  it('a request refused while the runner restarts is told to come back when its backoff ends (Retry-After), at least 1 s', async () => {
    const runner = new HeldRunner();
    const llm: ModelEntry<'llm'>[] = [{ id: 'held', capability: 'llm', aliases: [], preload: true, engines: [runner as unknown as LlmEngine] }];
    const reg = new EngineRegistry({ llm: llm[0]!.engines, stt: [], tts: [] }, undefined, { llm, stt: [], strict: true });
    await reg.start();
    const retryAfter = () => {
      try {
        reg.ready('llm');
      } catch (error) {
        assert.ok(error instanceof ApiError && error.code === 'engine_restarting', String(error));
        return error.headers['Retry-After'];
      }
      assert.fail('ready while restarting');
    };
    runner.status = 'restarting';
    runner.restartInMs = 7400; // a backoff grown after several crashes
    assert.equal(retryAfter(), '8');
    runner.restartInMs = 0; // started again, loading its model
    assert.equal(retryAfter(), '1');
  });
});
