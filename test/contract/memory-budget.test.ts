/**
 * The memory budget (MODEL_MEMORY_BUDGET_MB) on real service processes with tiny generated LLMs
 * whose `memory_mb` make two of them fit: loading a third evicts the least recently used idle one;
 * a model bigger than the budget, or one that would need a busy model's memory, gets 503
 * `insufficient_memory`; two loads at once never pass the budget together. And the bounded wait
 * for a model that is loading (MODEL_LOAD_WAIT_SECONDS). Runner processes are counted with ps.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TINY_WHISPER_TEXT } from '../../scripts/models/tiny-whisper.ts';
import { wav } from '../helpers/audio.ts';
import { loopingGemmaPath, tinyWhisperPath } from '../helpers/models.ts';
import { freePort, spawnService, waitForHealth, waitForReady, type ServiceProcess } from '../helpers/process.ts';
import { childPids, until } from '../helpers/runners.ts';
import type { ErrorEnvelope as Envelope } from '../../src/errors.ts';

const MIB = 1024 * 1024;

interface ListedModel {
  id: string;
  state: string;
  memory_bytes?: number;
  memory_need_bytes?: number;
  device?: string;
}
interface ModelList {
  data: ListedModel[];
  memory_budgets?: { device: string; budget_bytes: number; used_bytes: number }[];
}
const chat = (url: string, model: string, maxTokens = 8, stream = false) =>
  fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, messages: [{ role: 'user', content: 'go' }], max_tokens: maxTokens, stream }) });

/** A looping tiny LLM (it never ends its turn: max_tokens decides how long a generation runs) with a declared need. */
const llm = (id: string, memoryMb: number, preload = false) => ({ id, model: loopingGemmaPath(), context: 16384, parallel: 1, threads: 1, memory_mb: memoryMb, preload });

async function start(dir: string, models: unknown[], env: Record<string, string> = {}, stt: unknown[] = []): Promise<ServiceProcess> {
  const file = path.join(dir, `models-${Math.random().toString(36).slice(2)}.json`);
  fs.writeFileSync(file, JSON.stringify({ llm: models, stt }));
  const service = spawnService({ MODELS_FILE: file, LLM_DEVICE: 'cpu', LLM_PARALLEL: '2', LLM_MAX_TOKENS: '16000', ENABLE_LOCAL_WHISPER: 'false', STT_BACKEND: 'local', TTS_BACKEND: 'embedded', ...env }, await freePort());
  await waitForHealth(service.url);
  assert.ok(await waitForReady(service.url, 120_000), `not ready: ${service.output().slice(-2000)}`);
  return service;
}

async function stop(service: ServiceProcess | undefined): Promise<void> {
  if (!service) return;
  service.child.kill('SIGTERM');
  await service.exited;
}

describe('MODEL_MEMORY_BUDGET_MB: eviction of the least recently used idle model', () => {
  let dir: string;
  let service: ServiceProcess;
  const list = async () => (await (await fetch(`${service.url}/v1/models`)).json()) as ModelList;
  const states = async () => Object.fromEntries((await list()).data.map((m) => [m.id, m.state]));
  const runners = () => childPids(service.child.pid!, 'llm-runner').length;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memory-budget-'));
    // 250 MB: two of the 100 MB models fit, not three; `wide` (200 MB) fits only next to nothing busy; `huge` never
    service = await start(dir, [llm('a', 100, true), llm('b', 100), llm('c', 100), llm('wide', 200), llm('huge', 400)], { MODEL_MEMORY_BUDGET_MB: '250' });
  });
  after(async () => {
    await stop(service);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('lists each model with its need and device, and the budget with what is held', async () => {
    const listed = await list();
    const a = listed.data.find((m) => m.id === 'a')!;
    assert.deepEqual([a.state, a.device, a.memory_need_bytes, a.memory_bytes], ['loaded', 'cpu', 100 * MIB, 100 * MIB]);
    const huge = listed.data.find((m) => m.id === 'huge')!;
    assert.deepEqual([huge.state, huge.memory_need_bytes, huge.memory_bytes], ['unloaded', 400 * MIB, undefined]);
    assert.deepEqual(listed.memory_budgets, [{ device: 'cpu', budget_bytes: 250 * MIB, used_bytes: 100 * MIB }]);
    assert.match(service.output(), /huge.*needs more memory than MODEL_MEMORY_BUDGET_MB allows on cpu/, 'a model bigger than the budget is a start-up warning');
  });

  it('loading a third model unloads the least recently used idle one, then answers', async () => {
    assert.equal((await chat(service.url, 'b')).status, 200);
    assert.equal(runners(), 2);
    assert.equal((await chat(service.url, 'a')).status, 200); // a is now more recent than b
    const res = await chat(service.url, 'c');
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(((await res.json()) as { choices: { finish_reason: string }[] }).choices[0]!.finish_reason, 'length');
    assert.deepEqual(await states(), { a: 'loaded', b: 'unloaded', c: 'loaded', wide: 'unloaded', huge: 'unloaded' });
    await until('two runners (b exited)', () => runners() === 2);
    assert.equal((await list()).memory_budgets![0]!.used_bytes, 200 * MIB);
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    assert.match(metrics, /runner_evictions_total\{model="b",reason="budget"\} 1/);
    assert.match(metrics, /model_memory_budget_bytes\{device="cpu"\} 262144000/);
  });

  it('a model bigger than the budget: 503 insufficient_memory naming the budget, no Retry-After, no runner started', async () => {
    const res = await chat(service.url, 'huge');
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), null);
    const { error } = (await res.json()) as Envelope;
    assert.equal(error.code, 'insufficient_memory');
    assert.match(error.message, /'huge' needs 400 MiB on cpu, more than MODEL_MEMORY_BUDGET_MB allows there \(250 MiB\)/);
    assert.equal(runners(), 2);
    assert.deepEqual(await states(), { a: 'loaded', b: 'unloaded', c: 'loaded', wide: 'unloaded', huge: 'unloaded' });
  });

  it('a busy model is never evicted: 503 with Retry-After naming it, and its request completes normally', async () => {
    const busy = await chat(service.url, 'c', 16000, true);
    assert.equal(busy.status, 200);
    const reader = busy.body!.getReader();
    const decoder = new TextDecoder();
    let sse = '';
    while (!sse.includes('"content"')) sse += decoder.decode((await reader.read()).value, { stream: true });
    // c (busy, 100) + wide (200) > 250 whatever else is unloaded: refused, and idle a is not evicted for nothing
    const res = await chat(service.url, 'wide');
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '5');
    const { error } = (await res.json()) as Envelope;
    assert.equal(error.code, 'insufficient_memory');
    assert.match(error.message, /'wide' needs 200 MiB on cpu; MODEL_MEMORY_BUDGET_MB allows 250 MiB there .*c: 100 MiB \(busy\)/);
    assert.deepEqual(await states(), { a: 'loaded', b: 'unloaded', c: 'loaded', wide: 'unloaded', huge: 'unloaded' });
    assert.equal(runners(), 2);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      sse += decoder.decode(value, { stream: true });
    }
    assert.match(sse, /"finish_reason":"length"/, 'the busy request ran to max_tokens');
    assert.match(sse, /data: \[DONE\]/);
  });
});

describe('MODEL_MEMORY_BUDGET_MB: loads at once', () => {
  let dir: string;
  let service: ServiceProcess;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memory-budget-'));
    service = await start(dir, [llm('a', 100, true), llm('b', 100), llm('c', 100), llm('d', 100)], { MODEL_MEMORY_BUDGET_MB: 'cpu=250' });
  });
  after(async () => {
    await stop(service);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('three requests for three unloaded models at once never hold more runners than the budget allows', async () => {
    let most = 0;
    let watching = true;
    const watch = (async () => {
      while (watching) {
        most = Math.max(most, childPids(service.child.pid!, 'llm-runner').length);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    // a (idle) can make room for one of them; the third finds the other two loading (busy)
    const answers = await Promise.all(['b', 'c', 'd'].map((m) => chat(service.url, m)));
    watching = false;
    await watch;
    assert.ok(most <= 2, `at most two 100 MB runners under 250 MB (an exiting one counts until it is gone), saw ${most}`);
    for (const res of answers) {
      if (res.status === 200) continue;
      assert.equal(res.status, 503, await res.clone().text());
      assert.equal(res.headers.get('retry-after'), '5');
      assert.equal(((await res.json()) as Envelope).error.code, 'insufficient_memory');
    }
    assert.ok(answers.filter((r) => r.status === 200).length >= 2, 'the budget holds two of them');
    const listed = (await (await fetch(`${service.url}/v1/models`)).json()) as ModelList;
    assert.equal(listed.data.find((m) => m.id === 'a')?.state, 'unloaded', 'the idle one (a) made room');
    assert.equal(listed.data.filter((m) => m.state === 'loaded').length, 2);
  });
});

describe('MODEL_MEMORY_BUDGET_MB: Whisper and LLM runners share their device', () => {
  let dir: string;
  let service: ServiceProcess;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memory-budget-'));
    const whisper = (id: string, preload: boolean) => ({ id, model: tinyWhisperPath(), threads: 1, memory_mb: 100, preload });
    service = await start(dir, [llm('a', 100, true)], { MODEL_MEMORY_BUDGET_MB: '250', WHISPER_THREADS: '1' }, [whisper('w', true), whisper('w2', false)]);
  });
  after(async () => {
    await stop(service);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a transcription with an unloaded Whisper model unloads the least recently used idle model on cpu, whatever its capability', async () => {
    const transcribe = async (model: string) => {
      const form = new FormData();
      form.append('file', new Blob([new Uint8Array(wav(2))], { type: 'audio/wav' }), 'a.wav');
      form.append('model', model);
      return fetch(`${service.url}/v1/speech-to-text`, { method: 'POST', body: form });
    };
    assert.equal((await transcribe('w')).status, 200);
    assert.equal((await chat(service.url, 'a')).status, 200); // a is now more recent than w
    const res = await transcribe('w2');
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(((await res.json()) as { text: string }).text.trim(), TINY_WHISPER_TEXT);
    const listed = (await (await fetch(`${service.url}/v1/models`)).json()) as ModelList;
    assert.deepEqual(listed.data.map((m) => [m.id, m.state, m.device]), [['a', 'loaded', 'cpu'], ['w', 'unloaded', 'cpu'], ['w2', 'loaded', 'cpu']]);
    await until('one Whisper runner (w exited)', () => childPids(service.child.pid!, 'stt-runner').length === 1);
    assert.equal(childPids(service.child.pid!, 'llm-runner').length, 1);
  });
});

describe('MODEL_LOAD_WAIT_SECONDS: a request for a model that is loading', () => {
  let dir: string;
  let service: ServiceProcess;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memory-budget-'));
    service = await start(dir, [llm('a', 100, true), llm('b', 100)], { MODEL_LOAD_WAIT_SECONDS: '0' });
  });
  after(async () => {
    await stop(service);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('0: 503 engine_loading with Retry-After at once; the load goes on and a later request is answered', async () => {
    const res = await chat(service.url, 'b');
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '5');
    assert.equal(((await res.json()) as Envelope).error.code, 'engine_loading');
    await until('b to load', async () => ((await (await fetch(`${service.url}/v1/models`)).json()) as ModelList).data.find((m) => m.id === 'b')?.state === 'loaded');
    assert.equal((await chat(service.url, 'b')).status, 200);
  });
});
