/**
 * The registry's admission under a memory budget and its bounded wait for a loading model, with
 * engines whose load and unload the test controls: what a real runner makes too quick to catch
 * (a decision taken while an eviction is still freeing memory) is held open here.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EngineRegistry, type ModelEntry } from '../../src/engines/registry.ts';
import type { LlmEngine } from '../../src/engines/llm/types.ts';
import type { EngineState } from '../../src/engines/types.ts';
import { ApiError } from '../../src/errors.ts';

const MIB = 1024 * 1024;

/** A runner-like engine: loads and unloads when the test says (or after `delayMs`); counts engines holding memory. */
class FakeRunner {
  static alive = 0;
  static most = 0;
  readonly id = 'fake-runner';
  readonly capability = 'llm' as const;
  private status: EngineState['status'] = 'loading';
  finishLoad: () => void = () => undefined;
  /** The state a finished load leaves: `restarting` plays a runner that crashed right after loading. */
  afterLoad: EngineState['status'] = 'ready';

  constructor(
    readonly modelName: string,
    private readonly delays: { load?: number; unload: number },
  ) {}

  async load(): Promise<void> {
    this.status = 'loading';
    FakeRunner.alive++;
    FakeRunner.most = Math.max(FakeRunner.most, FakeRunner.alive);
    await new Promise<void>((resolve) => {
      this.finishLoad = resolve;
      if (this.delays.load !== undefined) setTimeout(resolve, this.delays.load);
    });
    this.status = this.afterLoad;
  }

  state(): EngineState {
    return { status: this.status };
  }

  async unload(): Promise<void> {
    this.status = 'disabled'; // as a runner engine: closed at once, its process takes a while to exit
    await new Promise((r) => setTimeout(r, this.delays.unload));
    FakeRunner.alive--;
    this.status = 'disabled';
  }

  async close(): Promise<void> {}
}

function registry(ids: string[], options: { budgetMb?: number; loadWaitMs?: number; delays: { load?: number; unload: number } }) {
  const engines = new Map(ids.map((id) => [id, new FakeRunner(id, options.delays)]));
  const llm = ids.map(
    (id, i): ModelEntry<'llm'> => ({ id, capability: 'llm', aliases: [], preload: i === 0, engines: [engines.get(id) as unknown as LlmEngine], memory: { device: 'cpu', declaredBytes: 100 * MIB, estimatedBytes: 0 } }),
  );
  const budgets = options.budgetMb === undefined ? undefined : { all: options.budgetMb * MIB, devices: {} };
  const reg = new EngineRegistry({ llm: llm.flatMap((m) => m.engines), stt: [], tts: [] }, undefined, { llm, stt: [], strict: true, budgets, loadWaitMs: options.loadWaitMs });
  return { reg, engines };
}

/** A request: prepare (admission, load), then hold the model for `holdMs`. */
async function request(reg: EngineRegistry, model: string, holdMs: number): Promise<number> {
  try {
    const entry = await reg.prepare('llm', model, new AbortController().signal);
    const release = reg.use(entry);
    await new Promise((r) => setTimeout(r, holdMs));
    release();
    return 200;
  } catch (error) {
    assert.ok(error instanceof ApiError, String(error));
    assert.equal(error.code, 'insufficient_memory');
    return error.statusCode;
  }
}

describe('memory budget admission (registry)', () => {
  it('a load decided while an eviction is still freeing memory waits for it: never more models held than fit', async () => {
    FakeRunner.alive = 0;
    FakeRunner.most = 0;
    const { reg } = registry(['a', 'b', 'c', 'd'], { budgetMb: 250, delays: { load: 50, unload: 300 } });
    await reg.start(); // a loaded, idle
    const answers = await Promise.all(['b', 'c', 'd'].map((m) => request(reg, m, 500)));
    assert.ok(FakeRunner.most <= 2, `at most two 100 MB models under 250 MB at any time, saw ${FakeRunner.most}`);
    assert.deepEqual([...answers].sort(), [200, 200, 503]);
    assert.deepEqual(reg.models().map((m) => [m.id, m.state]).filter(([, s]) => s === 'loaded').length, 2);
  });
});

describe('memory budget: what an unloaded model needs again', () => {
  it('a model loaded again after its eviction counts the RSS it last held, not its file estimate: the budget holds', async () => {
    FakeRunner.alive = 0;
    FakeRunner.most = 0;
    // a's file says 1 MB but its runner holds 200 MB (a GGUF that allocates a large context); b is estimated right
    class Measured extends FakeRunner {
      memoryBytes(): number {
        return this.state().status === 'ready' ? 200 * MIB : 0;
      }
    }
    const engines = { a: new Measured('a', { load: 10, unload: 50 }), b: new Measured('b', { load: 10, unload: 50 }) };
    const llm = (['a', 'b'] as const).map(
      (id, i): ModelEntry<'llm'> => ({ id, capability: 'llm', aliases: [], preload: i === 0, engines: [engines[id] as unknown as LlmEngine], memory: { device: 'cpu', estimatedBytes: (id === 'a' ? 1 : 200) * MIB } }),
    );
    const reg = new EngineRegistry({ llm: llm.flatMap((m) => m.engines), stt: [], tts: [] }, undefined, { llm, stt: [], strict: true, budgets: { all: 250 * MIB, devices: {} } });
    await reg.start(); // a loaded: 200 MB measured
    reg.models(); // a report reads the RSS, as GET /v1/models and each admission do
    assert.equal(await request(reg, 'b', 10), 200); // 200 + 200 > 250: a is evicted
    assert.equal(reg.models().find((m) => m.id === 'a')?.state, 'unloaded');
    assert.equal(await request(reg, 'a', 10), 200); // needs its 200 MB again: b is evicted
    assert.deepEqual(reg.models().map((m) => [m.id, m.state]), [['a', 'loaded'], ['b', 'unloaded']]);
    assert.equal(FakeRunner.most, 1, 'never two 200 MB runners under a 250 MB budget');
  });
});

describe('a request for a model being unloaded (registry)', () => {
  it('is not refused: it waits for the unload, then loads the model again (as Ollama)', async () => {
    const { reg, engines } = registry(['a', 'b'], { delays: { load: 10, unload: 300 } });
    await reg.start();
    assert.equal((await reg.prepare('llm', 'b')).id, 'b');
    await new Promise((r) => setImmediate(r)); // the request that loaded it is gone
    const unloading = reg.unloadModel('b');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(reg.models().find((m) => m.id === 'b')?.state, 'unloading');
    reg.assertServes('llm', 'b'); // was 503 engine_not_configured (the closed runner's state)
    const entry = await reg.prepare('llm', 'b', new AbortController().signal);
    await unloading;
    assert.equal(entry.id, 'b');
    assert.equal(reg.models().find((m) => m.id === 'b')?.state, 'loaded');
    assert.equal(engines.get('b')!.state().status, 'ready');
  });
});

describe('bounded wait for a loading model (registry)', () => {
  it('waits at most MODEL_LOAD_WAIT_SECONDS, then 503 engine_loading with Retry-After; the load goes on', async () => {
    const { reg, engines } = registry(['a', 'b'], { loadWaitMs: 200, delays: { unload: 0 } });
    const started = reg.start();
    engines.get('a')!.finishLoad();
    await started;
    const error = await reg.prepare('llm', 'b', new AbortController().signal).then(
      () => assert.fail('answered before b loaded'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof ApiError);
    assert.equal(error.code, 'engine_loading');
    assert.equal(error.headers['Retry-After'], '5');
    assert.equal(reg.models().find((m) => m.id === 'b')?.state, 'loading', 'the load goes on');
    // a request that comes while it loads waits, and runs once it has loaded
    const waiting = reg.prepare('llm', 'b', new AbortController().signal);
    engines.get('b')!.finishLoad();
    assert.equal((await waiting).id, 'b');
    assert.equal(reg.models().find((m) => m.id === 'b')?.state, 'loaded');
  });

  it('one bound for the whole wait: a runner that crashes right after its load adds no second MODEL_LOAD_WAIT_SECONDS', async () => {
    const { reg, engines } = registry(['a', 'b'], { loadWaitMs: 1000, delays: { unload: 0 } });
    const started = reg.start();
    engines.get('a')!.finishLoad();
    await started;
    engines.get('b')!.afterLoad = 'restarting'; // loads, crashes, and its restart never ends
    const begun = performance.now();
    const waiting = reg.prepare('llm', 'b', new AbortController().signal);
    setTimeout(() => engines.get('b')!.finishLoad(), 900);
    await waiting; // the engine's own 503 (engine_restarting) answers the request from here
    const waited = performance.now() - begun;
    // 900 ms of load, then what is left of the 1 s bound; two bounds in a row would take 1.9 s at least
    assert.ok(waited >= 990 && waited < 1850, `waited ${Math.round(waited)} ms for a 1000 ms bound`);
  });

  it('a client that leaves stops waiting at once; the load is not cancelled', async () => {
    const { reg, engines } = registry(['a', 'b'], { delays: { unload: 0 } }); // no bound: waits as long as the client stays
    const started = reg.start();
    engines.get('a')!.finishLoad();
    await started;
    const leave = new AbortController();
    const waiting = reg.prepare('llm', 'b', leave.signal).then(
      () => 'answered',
      (e: Error) => e.message,
    );
    await new Promise((r) => setTimeout(r, 20));
    leave.abort(new Error('client left'));
    const outcome = await Promise.race([waiting, new Promise((r) => setTimeout(() => r('still waiting'), 2000))]);
    assert.equal(outcome, 'client left');
    assert.equal(reg.models().find((m) => m.id === 'b')?.state, 'loading', 'the load goes on');
    engines.get('b')!.finishLoad();
    await reg.prepare('llm', 'b');
    assert.equal(reg.models().find((m) => m.id === 'b')?.state, 'loaded');
  });
});
