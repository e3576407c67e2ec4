/**
 * The LLM in its supervised runner process (LLM_RUNNER=process), on real service processes with
 * the tiny generated models: kill -9 of the runner mid-generation fails only the requests it was
 * serving (503 / SSE `error` with code `engine_restarting`), /health answers every 50 ms
 * throughout, STT keeps serving, the runner is restarted and the next generation succeeds; a
 * runner that keeps dying while loading ends in `error` and is not started again; neither SIGTERM
 * nor kill -9 of the gateway leaves a runner behind.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { TINY_GEMMA_REPLY } from '../../scripts/models/tiny-gemma.ts';
import { wav } from '../helpers/audio.ts';
import { HealthProber } from '../helpers/health-prober.ts';
import { metricSum } from '../helpers/metrics.ts';
import { loopingGemmaPath, tinyGemmaPath, tinyWhisperPath } from '../helpers/models.ts';
import { freePort, spawnService, waitForHealth, type ServiceProcess } from '../helpers/process.ts';
import { assertNoOrphanRunners, childPids, cpuSeconds, killRunnersWhileLoading, until } from '../helpers/runners.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The pids of the LLM runners whose parent is `pid`. */
const runners = (pid: number) => childPids(pid, 'llm-runner');

type Readiness = { capabilities: Record<string, { status: string; engines: { engine: string; status: string; detail?: string }[] }> };
const llmState = async (url: string) => ((await (await fetch(`${url}/health/ready`)).json()) as Readiness).capabilities.llm!.engines[0]!;

function start(env: Record<string, string>, port: number): ServiceProcess {
  return spawnService({ LLM_RUNNER: 'process', LLM_DEVICE: 'cpu', LLM_THREADS: '1', TTS_BACKEND: 'embedded', LOG_LEVEL: 'info', ...env }, port);
}

const post = (url: string, body: unknown, signal?: AbortSignal) => fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal });

describe('LLM runner process: supervision', () => {
  it('kill -9 of the runner mid-generation: those requests fail cleanly, /health and STT keep serving, the runner restarts', async () => {
    const service = start({ GEMMA_MODEL: loopingGemmaPath(), LLM_CONTEXT_SIZE: '16384', LLM_MAX_TOKENS: '16000', LOCAL_WHISPER_MODEL: tinyWhisperPath() }, await freePort());
    const url = service.url;
    const prober = new HealthProber(url, 50);
    try {
      await waitForHealth(url);
      await until('the LLM to load', async () => (await llmState(url)).status === 'ready');
      const [runner] = runners(service.child.pid!);
      assert.ok(runner, 'a runner process is a child of the gateway');
      prober.start();

      // one plain and one streamed generation, both far from done when the runner dies
      const plain = post(url, { messages: [{ role: 'user', content: 'go' }], max_tokens: 16000 });
      const streamed = await post(url, { messages: [{ role: 'user', content: 'go' }], max_tokens: 16000, stream: true });
      assert.equal(streamed.status, 200);
      const reader = streamed.body!.getReader();
      const decoder = new TextDecoder();
      let sse = '';
      while (!sse.includes('Hello')) sse += decoder.decode((await reader.read()).value, { stream: true });
      process.kill(runner, 'SIGKILL');
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        sse += decoder.decode(value, { stream: true });
      }
      assert.match(sse, /event: error\ndata: .*"code":"engine_restarting"/, 'the stream ends with an error event');
      assert.doesNotMatch(sse, /\[DONE\]|"finish_reason":"(stop|length)"/, 'the stream did not finish before the kill');
      const failed = await plain;
      assert.equal(failed.status, 503);
      const envelope = (await failed.json()) as { error: { code: string; type: string; message: string } };
      assert.equal(envelope.error.code, 'engine_restarting');
      assert.match(envelope.error.message, /SIGKILL/);

      // meanwhile: readiness says restarting with the reason, STT answers, and a new LLM request waits for the restart (MODEL_LOAD_WAIT_SECONDS) and is answered
      const state = await llmState(url);
      assert.equal(state.status, 'restarting');
      assert.match(state.detail ?? '', /SIGKILL/);
      const form = new FormData();
      form.append('file', new Blob([new Uint8Array(wav(1))], { type: 'audio/wav' }), 'clip.wav');
      const stt = await fetch(`${url}/v1/speech-to-text`, { method: 'POST', body: form });
      assert.equal(stt.status, 200, await stt.clone().text());
      const during = await post(url, { messages: [{ role: 'user', content: 'go' }], max_tokens: 5 });
      assert.equal(during.status, 200, `sent while restarting: ${await during.clone().text()}`);

      // restarted: a new runner serves the next request
      await until('the runner to restart', async () => (await llmState(url)).status === 'ready');
      const [again] = runners(service.child.pid!);
      assert.ok(again && again !== runner, 'a new runner process');
      const next = await post(url, { messages: [{ role: 'user', content: 'go' }], max_tokens: 6 });
      assert.equal(next.status, 200);
      assert.match(((await next.json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content, /^Hello from the tiny/);
      assert.equal(await metricSum(url, 'runner_restarts_total', { reason: 'SIGKILL' }), 1);
      assert.equal(await metricSum(url, 'runner_up', { capability: 'llm' }), 1);
      assert.ok((await metricSum(url, 'runner_rss_bytes')) > 10 * 1024 * 1024, 'runner RSS is reported');

      const health = await prober.stop();
      assert.equal(health.failures, 0, `/health failed ${health.failures} times of ${health.count}`);
      assert.ok(health.count > 20, `probed ${health.count} times`);
    } finally {
      await prober.stop();
      service.child.kill('SIGKILL');
      await service.exited;
    }
  });

  it('a client that leaves mid-stream stops the generation in the runner at once (its CPU goes idle)', async () => {
    const service = start({ GEMMA_MODEL: loopingGemmaPath(), LLM_CONTEXT_SIZE: '16384', LLM_MAX_TOKENS: '16000', LLM_PARALLEL: '1', ENABLE_LOCAL_WHISPER: 'false' }, await freePort());
    try {
      await waitForHealth(service.url);
      await until('the LLM to load', async () => (await llmState(service.url)).status === 'ready');
      const [runner] = runners(service.child.pid!);
      assert.ok(runner);
      const leave = new AbortController();
      const res = await post(service.url, { messages: [{ role: 'user', content: 'go' }], max_tokens: 16000, stream: true }, leave.signal);
      const reader = res.body!.getReader();
      await reader.read();
      // busy: the runner's CPU over one second while it generates (the control, under today's load)
      const busyFrom = cpuSeconds(runner);
      const drain = (async () => {
        try {
          while (!(await reader.read()).done);
        } catch {
          // aborted below
        }
      })();
      await sleep(1000);
      const busy = cpuSeconds(runner) - busyFrom;
      leave.abort();
      await drain;
      await sleep(500);
      const idleFrom = cpuSeconds(runner);
      await sleep(1000);
      const idle = cpuSeconds(runner) - idleFrom;
      assert.ok(busy >= 0.1, `the runner was generating (${busy} CPU s in 1 s)`);
      assert.ok(idle < busy / 4, `the runner stopped: ${idle} CPU s in 1 s after the client left, ${busy} while generating`);
      const next = await post(service.url, { messages: [{ role: 'user', content: 'go' }], max_tokens: 4 });
      assert.equal(next.status, 200, 'the only slot is free again');
    } finally {
      service.child.kill('SIGKILL');
      await service.exited;
    }
  });

  it('a runner that dies while loading, again and again, ends in `error` with its last log lines and is not started again', async () => {
    const service = start({ GEMMA_MODEL: tinyGemmaPath(), ENABLE_LOCAL_WHISPER: 'false' }, await freePort());
    try {
      await waitForHealth(service.url);
      await killRunnersWhileLoading(() => runners(service.child.pid!), 3);
      const state = await until('the LLM to be marked error', async () => {
        const s = await llmState(service.url);
        return s.status === 'error' ? s : undefined;
      });
      assert.match(state.detail ?? '', /crashed 3 times while loading .*SIGKILL/s);
      assert.match(state.detail ?? '', /Last log lines/);
      await sleep(3000);
      assert.deepEqual(runners(service.child.pid!), [], 'no fourth runner');
      assert.equal((await llmState(service.url)).status, 'error');
      const res = await post(service.url, { messages: [{ role: 'user', content: 'go' }], max_tokens: 5 });
      assert.equal(res.status, 503);
      // the log lines and the model's file are for operators (/health/ready above), not API clients
      const model = path.basename(tinyGemmaPath(), '.gguf');
      assert.match(state.detail ?? '', new RegExp(model));
      const message = ((await res.json()) as { error: { message: string } }).error.message;
      assert.match(message, /crashed 3 times while loading its model/);
      assert.doesNotMatch(message, /Last log lines|\n/);
      assert.ok(!message.includes(model), `the model's file is not named to clients: ${message}`);
      assert.equal(await metricSum(service.url, 'runner_restarts_total', { reason: 'SIGKILL' }), 3);
    } finally {
      service.child.kill('SIGKILL');
      await service.exited;
    }
  });

  it('SIGTERM of the gateway stops its runner with it; kill -9 of the gateway leaves no orphan runner', async () => {
    const env = { GEMMA_MODEL: tinyGemmaPath(), ENABLE_LOCAL_WHISPER: 'false' };
    const [first, second] = [start(env, await freePort()), start(env, await freePort())];
    try {
      await Promise.all([waitForHealth(first.url), waitForHealth(second.url)]);
      await until('both LLMs to load', async () => (await llmState(first.url)).status === 'ready' && (await llmState(second.url)).status === 'ready');
      const ok = await post(first.url, { messages: [{ role: 'user', content: 'hi' }], max_tokens: 32 });
      assert.equal(((await ok.json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content, TINY_GEMMA_REPLY);
      await assertNoOrphanRunners(first, second, runners);
    } finally {
      first.child.kill('SIGKILL');
      second.child.kill('SIGKILL');
    }
  });
});
