/**
 * A model's life cycle under trouble, on a real service process with a models file (an LLM loaded
 * at start-up and one loaded on demand): a runner that stops answering while it loads (SIGSTOP) is
 * killed by the watchdog and counted as a crash on load, its waiting request gets a 503 instead of
 * hanging; an operator's unload kills a runner stuck loading; an unload while a request waits for
 * the load is refused (409 `model_busy`); a model loading again after an unload shows `loading`;
 * a model in `error` is retried by POST /v1/models/{id}/load.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { metricSum } from '../helpers/metrics.ts';
import { loopingGemmaPath, tinyGemmaPath, tinyWhisperPath } from '../helpers/models.ts';
import { spawnReadyService, stopService, type ServiceProcess } from '../helpers/process.ts';
import { alive, childPids, until } from '../helpers/runners.ts';
import type { ErrorEnvelope as Envelope } from '../../src/errors.ts';

/** Resumes any SIGSTOPped runner (a stopped process ignores SIGTERM), then stops the service and removes its files. */
async function stopWithRunnersResumed(service: ServiceProcess, dir: string): Promise<void> {
  for (const pid of childPids(service.child.pid!)) {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // gone already
    }
  }
  await stopService(service);
  fs.rmSync(dir, { recursive: true, force: true });
}

interface ListedModel {
  id: string;
  state: string;
  memory_bytes?: number;
}
describe('model life cycle: loads that hang, unloads that race, states that stay true', () => {
  let dir: string;
  let service: ServiceProcess;
  /** The runner of the preloaded LLM: every other llm-runner child is the on-demand model's. */
  let tinyRunner: number;
  const url = () => service.url;
  const loopRunners = () => childPids(service.child.pid!, 'llm-runner').filter((p) => p !== tinyRunner);
  const chat = (signal?: AbortSignal) =>
    fetch(`${url()}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'loop', max_tokens: 3, messages: [{ role: 'user', content: 'hi' }] }), signal: signal ?? AbortSignal.timeout(240_000) });
  const action = (what: 'load' | 'unload', timeoutMs = 240_000) => fetch(`${url()}/v1/models/loop/${what}`, { method: 'POST', signal: AbortSignal.timeout(timeoutMs) });
  const loopModel = async () => {
    const res = await fetch(`${url()}/v1/models/loop`);
    return { status: res.status, body: (await res.json()) as ListedModel };
  };
  /** SIGSTOPs the on-demand model's runner as soon as it appears (long before its model has loaded). */
  const stopNewRunner = (except: Set<number> = new Set()) =>
    until('a new runner of `loop` to stop', () => {
      const pid = loopRunners().find((p) => !except.has(p));
      if (pid === undefined) return undefined;
      process.kill(pid, 'SIGSTOP');
      return pid;
    }, 60_000, 5);

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lifecycle-'));
    const file = path.join(dir, 'models.yaml');
    fs.writeFileSync(
      file,
      ['llm:', '  - id: tiny', `    model: ${tinyGemmaPath()}`, '    context: 512', '    threads: 1', '  - id: loop', `    model: ${loopingGemmaPath()}`, '    context: 512', '    threads: 1', '    preload: false', 'stt:', '  - id: whisper-a', `    model: ${tinyWhisperPath()}`].join('\n'),
    );
    service = await spawnReadyService({ MODELS_FILE: file, LLM_DEVICE: 'cpu', STT_BACKEND: 'local', TTS_BACKEND: 'embedded', WHISPER_THREADS: '1', RUNNER_HANG_SECONDS: '2', RUNNER_RESTART_BACKOFF_MS: '100,100', MODEL_LOAD_WAIT_SECONDS: '600', LOG_LEVEL: 'info' });
    const [runner] = childPids(service.child.pid!, 'llm-runner');
    assert.ok(runner);
    tinyRunner = runner;
  });

  after(() => stopWithRunnersResumed(service, dir));

  it('an unload kills a runner that stopped answering while it loads; the operator load then answers (not loaded), nothing hangs', async () => {
    const load = action('load');
    const stopped = await stopNewRunner();
    const unload = await action('unload', 60_000);
    assert.equal(unload.status, 200, await unload.clone().text());
    assert.equal(((await unload.json()) as ListedModel).state, 'unloaded');
    await until('the stopped runner to be gone', () => !alive(stopped) || undefined, 30_000);
    const loaded = await load;
    assert.equal(loaded.status, 200);
    assert.notEqual(((await loaded.json()) as ListedModel).state, 'loaded');
  });

  it('a model loading again after an unload shows `loading`; an unload while a request waits for that load is refused (409 model_busy) and the request is answered; readiness says `unloaded`, the capability stays ready', async () => {
    const loaded = await action('load');
    assert.equal(((await loaded.json()) as ListedModel).state, 'loaded');
    assert.equal((await action('unload')).status, 200);
    type Ready = { status: string; capabilities: Record<string, { status: string; engines: { model?: string; status: string; detail?: string }[] }> };
    const ready = (await (await fetch(`${url()}/health/ready`)).json()) as Ready;
    const engine = ready.capabilities.llm!.engines.find((e) => e.model === 'loop');
    assert.equal(engine?.status, 'unloaded', JSON.stringify(ready.capabilities.llm));
    assert.match(engine?.detail ?? '', /loads on the next request/);
    assert.equal(ready.capabilities.llm!.status, 'ready');

    const waiting = chat();
    const stopped = await stopNewRunner();
    const during = await loopModel();
    assert.equal(during.status, 200, 'a model reloading is not absent');
    assert.equal(during.body.state, 'loading');
    assert.equal(((await (await fetch(`${url()}/v1/models`)).json()) as { data: ListedModel[] }).data.find((m) => m.id === 'loop')?.state, 'loading');
    const unload = await action('unload', 60_000);
    assert.equal(unload.status, 409, await unload.clone().text());
    assert.equal(((await unload.json()) as Envelope).error.code, 'model_busy');
    try {
      process.kill(stopped, 'SIGCONT');
    } catch {
      // the watchdog may have replaced it already: the request waits for the next runner
    }
    const answer = await waiting;
    assert.equal(answer.status, 200, await answer.clone().text());
    assert.equal((await loopModel()).body.state, 'loaded');
  });

  it('GET, load and unload take the SDK speech-to-text names (`whisper-1`: the default STT model); an unloaded STT model keeps its capability ready', async () => {
    const got = await fetch(`${url()}/v1/models/whisper-1`);
    assert.equal(got.status, 200);
    assert.equal(((await got.json()) as ListedModel).id, 'whisper-a');
    const unload = await fetch(`${url()}/v1/models/whisper-1/unload`, { method: 'POST' });
    assert.equal(unload.status, 200, await unload.clone().text());
    assert.deepEqual(((await unload.json()) as ListedModel & { id: string }).state, 'unloaded');
    const ready = (await (await fetch(`${url()}/health/ready`)).json()) as { status: string; capabilities: Record<string, { status: string }> };
    assert.equal(ready.capabilities.stt!.status, 'ready', 'its model loads on the next request');
    assert.equal(ready.status, 'ready');
    const load = await fetch(`${url()}/v1/models/gpt-4o-mini-transcribe/load`, { method: 'POST' });
    assert.equal(load.status, 200);
    const report = (await load.json()) as ListedModel;
    assert.deepEqual([report.id, report.state], ['whisper-a', 'loaded']);
    assert.equal((await fetch(`${url()}/v1/models/whisper-2/load`, { method: 'POST' })).status, 404);
  });

  it('a runner SIGSTOPped while it loads is killed (reason `hang`) and counts as a crash on load: three in a row → `error`; the request waiting for the load gets a 503, not a hang', async () => {
    assert.equal((await action('unload')).status, 200);
    const hangsBefore = await metricSum(url(), 'runner_restarts_total', { capability: 'llm', reason: 'hang' });
    const waiting = chat();
    const stopped = new Set<number>();
    for (let i = 0; i < 3; i++) stopped.add(await stopNewRunner(stopped));
    const answer = await waiting;
    assert.equal(answer.status, 503, await answer.clone().text());
    assert.match(((await answer.json()) as Envelope).error.message, /hang/);
    assert.equal(await metricSum(url(), 'runner_restarts_total', { capability: 'llm', reason: 'hang' }), hangsBefore + 3);
    assert.equal((await loopModel()).body.state, 'error');
    for (const pid of stopped) await until(`stopped runner ${pid} to be gone`, () => !alive(pid) || undefined, 30_000);
    assert.deepEqual(loopRunners(), [], 'not started a fourth time');
    // a request to a model in error keeps its 503 and starts no load
    const again = await chat();
    assert.equal(again.status, 503);
    assert.deepEqual(loopRunners(), []);
  });

  it('POST /v1/models/{id}/load on a model in `error` tries again (its crash count reset) and loads it; requests are answered again', async () => {
    assert.equal((await loopModel()).body.state, 'error', 'left in error by the test before');
    const load = await action('load');
    assert.equal(load.status, 200);
    assert.equal(((await load.json()) as ListedModel).state, 'loaded');
    assert.equal(loopRunners().length, 1);
    const answer = await chat();
    assert.equal(answer.status, 200, await answer.clone().text());
  });
});

describe('RUNNER_LOAD_TIMEOUT_SECONDS: a load that never ends', () => {
  let dir: string;
  let service: ServiceProcess;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lifecycle-'));
    const file = path.join(dir, 'models.yaml');
    fs.writeFileSync(file, ['llm:', '  - id: tiny', `    model: ${tinyGemmaPath()}`, '    context: 512', '    threads: 1', '  - id: loop', `    model: ${loopingGemmaPath()}`, '    context: 512', '    threads: 1', '    preload: false', 'stt: []'].join('\n'));
    // no hang watchdog: only the load time limit can end a load that does not finish (20 s: far more than a tiny model's load takes, even on a busy machine)
    service = await spawnReadyService({ MODELS_FILE: file, LLM_DEVICE: 'cpu', ENABLE_LOCAL_WHISPER: 'false', STT_BACKEND: 'local', TTS_BACKEND: 'embedded', RUNNER_HANG_SECONDS: '0', RUNNER_LOAD_TIMEOUT_SECONDS: '20', RUNNER_RESTART_BACKOFF_MS: '100,100' });
  });

  after(() => stopWithRunnersResumed(service, dir));

  it('a runner whose load has not finished after RUNNER_LOAD_TIMEOUT_SECONDS is killed (reason `load_timeout`) and started again; the waiting request is answered by the next one', async () => {
    const [tiny] = childPids(service.child.pid!, 'llm-runner');
    const waiting = fetch(`${service.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'loop', max_tokens: 3, messages: [{ role: 'user', content: 'hi' }] }), signal: AbortSignal.timeout(120_000) });
    const stopped = await until('the runner of `loop` to stop', () => {
      const pid = childPids(service.child.pid!, 'llm-runner').find((p) => p !== tiny);
      if (pid !== undefined) process.kill(pid, 'SIGSTOP');
      return pid;
    }, 60_000, 5);
    const answer = await waiting;
    assert.equal(answer.status, 200, await answer.clone().text());
    assert.ok(!alive(stopped) || !childPids(service.child.pid!, 'llm-runner').includes(stopped), 'the stopped runner was killed');
    assert.equal(await metricSum(service.url, 'runner_restarts_total', { capability: 'llm', reason: 'load_timeout' }), 1);
  });
});
