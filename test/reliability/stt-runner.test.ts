/**
 * Whisper in its supervised runner process (STT_RUNNER=process), on real service processes with
 * the tiny generated models: kill -9 of the runner mid-transcription fails only the transcriptions
 * it was serving (503 / SSE `error` with code `engine_restarting`), /health answers every 50 ms
 * throughout, text generation keeps serving, the runner restarts and the next transcription
 * succeeds (also on /ws/stt, as an `error` event); a missing model is reported (with its remedy)
 * without a runner; a client that leaves stops the work at the next window; a hung runner (SIGSTOP)
 * is killed by the watchdog; a runner that keeps dying while loading ends in `error` and is not
 * started again; neither SIGTERM nor kill -9 of the gateway leaves a runner behind.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { TINY_GEMMA_REPLY } from '../../scripts/models/tiny-gemma.ts';
import { wav } from '../helpers/audio.ts';
import { HealthProber } from '../helpers/health-prober.ts';
import { metricSum } from '../helpers/metrics.ts';
import { tinyGemmaPath, tinyWhisperPath } from '../helpers/models.ts';
import { freePort, spawnService, waitForHealth, type ServiceProcess } from '../helpers/process.ts';
import { alive, assertNoOrphanRunners, childPids, cpuSeconds, killRunnersWhileLoading, until } from '../helpers/runners.ts';
import { closeSpeech, speech } from '../helpers/speech.ts';
import { eventLog, streamPcm } from '../helpers/ws.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const sttRunners = (pid: number) => childPids(pid, 'stt-runner');

/** Reads an SSE response until its text matches `until` (or it ends); returns what was read. */
async function readSse(reader: ReadableStreamDefaultReader<Uint8Array>, until?: RegExp): Promise<string> {
  const decoder = new TextDecoder();
  let sse = '';
  for (;;) {
    if (until?.test(sse)) return sse;
    const { value, done } = await reader.read();
    if (done) return sse;
    sse += decoder.decode(value, { stream: true });
  }
}

type Readiness = { capabilities: Record<string, { status: string; engines: { engine: string; status: string; detail?: string }[] }> };
const engineState = async (url: string, capability: 'llm' | 'stt') => ((await (await fetch(`${url}/health/ready`)).json()) as Readiness).capabilities[capability]!.engines[0]!;

function start(env: Record<string, string>, port: number): ServiceProcess {
  return spawnService({ STT_RUNNER: 'process', STT_BACKEND: 'local', WHISPER_THREADS: '1', LLM_DEVICE: 'cpu', LLM_THREADS: '1', TTS_BACKEND: 'embedded', LOG_LEVEL: 'info', ...env }, port);
}

function transcribe(url: string, seconds: number, stream = false, signal?: AbortSignal): Promise<Response> {
  const form = new FormData();
  form.append('file', new Blob([new Uint8Array(wav(seconds))], { type: 'audio/wav' }), 'clip.wav');
  if (stream) form.append('stream', 'true'); // the OpenAI route streams: transcript.text.delta per segment
  return fetch(`${url}${stream ? '/v1/audio/transcriptions' : '/v1/speech-to-text'}`, { method: 'POST', body: form, signal });
}

const chat = (url: string, maxTokens: number) =>
  fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], max_tokens: maxTokens }) });

describe('Whisper runner process: supervision', () => {
  after(() => closeSpeech());

  it('kill -9 of the runner mid-transcription: those requests fail cleanly, /health and text generation keep serving, the runner restarts', async () => {
    const service = start({ GEMMA_MODEL: tinyGemmaPath(), LOCAL_WHISPER_MODEL: tinyWhisperPath() }, await freePort());
    const url = service.url;
    const prober = new HealthProber(url, 50);
    try {
      await waitForHealth(url);
      await until('Whisper and the LLM to load', async () => (await engineState(url, 'stt')).status === 'ready' && (await engineState(url, 'llm')).status === 'ready');
      const [runner] = sttRunners(service.child.pid!);
      assert.ok(runner, 'a Whisper runner process is a child of the gateway');
      prober.start();

      // ten minutes of audio (20 windows of 30 s, each a decode in the runner): one plain and one
      // streamed transcription, both far from done when the runner dies after the first segment
      const plain = transcribe(url, 600);
      const streamed = await transcribe(url, 600, true);
      assert.equal(streamed.status, 200);
      const reader = streamed.body!.getReader();
      const decoder = new TextDecoder();
      let sse = '';
      while (!sse.includes('transcript.text.delta')) sse += decoder.decode((await reader.read()).value, { stream: true });
      process.kill(runner, 'SIGKILL');
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        sse += decoder.decode(value, { stream: true });
      }
      assert.match(sse, /event: error\ndata: .*"code":"engine_restarting"/, 'the stream ends with an error event');
      assert.doesNotMatch(sse, /transcript\.text\.done/, 'the stream did not finish before the kill');
      const failed = await plain;
      assert.equal(failed.status, 503);
      const envelope = (await failed.json()) as { error: { code: string; message: string } };
      assert.equal(envelope.error.code, 'engine_restarting');
      assert.match(envelope.error.message, /speech-to-text runner stopped \(SIGKILL\)/);

      // meanwhile: readiness says restarting with the reason, text generation answers
      const state = await engineState(url, 'stt');
      assert.equal(state.status, 'restarting');
      assert.match(state.detail ?? '', /SIGKILL/);
      const generated = await chat(url, 32);
      assert.equal(generated.status, 200);
      assert.equal(((await generated.json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content, TINY_GEMMA_REPLY);

      // restarted: a new runner serves the next transcription
      await until('the runner to restart', async () => (await engineState(url, 'stt')).status === 'ready');
      const [again] = sttRunners(service.child.pid!);
      assert.ok(again && again !== runner, 'a new runner process');
      const next = await transcribe(url, 2);
      assert.equal(next.status, 200);
      assert.match(((await next.json()) as { text: string }).text, /tiny whisper/i);
      assert.equal(await metricSum(url, 'runner_restarts_total', { capability: 'stt', reason: 'SIGKILL' }), 1);
      assert.equal(await metricSum(url, 'runner_restarts_total', { capability: 'llm' }), 0);
      assert.equal(await metricSum(url, 'runner_up', { capability: 'stt' }), 1);
      assert.ok((await metricSum(url, 'runner_rss_bytes', { capability: 'stt' })) > 10 * 1024 * 1024, 'runner RSS is reported');

      const health = await prober.stop();
      assert.equal(health.failures, 0, `/health failed ${health.failures} times of ${health.count}`);
      assert.ok(health.count > 20, `probed ${health.count} times`);
    } finally {
      await prober.stop();
      service.child.kill('SIGKILL');
      await service.exited;
    }
  });

  it('a missing Whisper model is reported with its remedy, without starting a runner', async () => {
    const service = start({ LOCAL_WHISPER_MODEL: '/nonexistent/ggml-base.en.bin', GEMMA_MODEL: tinyGemmaPath() }, await freePort());
    try {
      await waitForHealth(service.url);
      const state = await until('STT to be reported missing', async () => {
        const s = await engineState(service.url, 'stt');
        return s.status === 'missing_model' ? s : undefined;
      });
      assert.match(state.detail ?? '', /not found at \/nonexistent\/ggml-base\.en\.bin.*LOCAL_WHISPER_MODEL/s);
      assert.deepEqual(sttRunners(service.child.pid!), []);
      const res = await transcribe(service.url, 1);
      assert.equal(res.status, 503);
    } finally {
      service.child.kill('SIGKILL');
      await service.exited;
    }
  });

  it('a runner that dies while loading, again and again, ends in `error` with its last log lines and is not started again', async () => {
    const service = start({ LOCAL_WHISPER_MODEL: tinyWhisperPath(), GEMMA_MODEL: tinyGemmaPath() }, await freePort());
    try {
      await waitForHealth(service.url);
      await killRunnersWhileLoading(() => sttRunners(service.child.pid!), 3);
      const state = await until('Whisper to be marked error', async () => {
        const s = await engineState(service.url, 'stt');
        return s.status === 'error' ? s : undefined;
      });
      assert.match(state.detail ?? '', /Whisper runner crashed 3 times while loading .*SIGKILL/s);
      assert.match(state.detail ?? '', /Last log lines/);
      await sleep(3000);
      assert.deepEqual(sttRunners(service.child.pid!), [], 'no fourth runner');
      assert.equal((await engineState(service.url, 'stt')).status, 'error');
      const res = await transcribe(service.url, 1);
      assert.equal(res.status, 503);
      // the log lines and the model's file are for operators (/health/ready above), not API clients
      const model = path.basename(tinyWhisperPath());
      assert.ok(state.detail?.includes(model), state.detail);
      const message = ((await res.json()) as { error: { message: string } }).error.message;
      assert.match(message, /crashed 3 times while loading its model/);
      assert.doesNotMatch(message, /Last log lines|\n/);
      assert.ok(!message.includes(model), `the model's file is not named to clients: ${message}`);
      assert.equal(await metricSum(service.url, 'runner_restarts_total', { capability: 'stt', reason: 'SIGKILL' }), 3);
    } finally {
      service.child.kill('SIGKILL');
      await service.exited;
    }
  });

  it('SIGTERM of the gateway stops its Whisper runner with it; kill -9 of the gateway leaves no orphan runner', async () => {
    const env = { LOCAL_WHISPER_MODEL: tinyWhisperPath(), GEMMA_MODEL: tinyGemmaPath() };
    const [first, second] = [start(env, await freePort()), start(env, await freePort())];
    try {
      await Promise.all([waitForHealth(first.url), waitForHealth(second.url)]);
      await until('both Whispers to load', async () => (await engineState(first.url, 'stt')).status === 'ready' && (await engineState(second.url, 'stt')).status === 'ready');
      const ok = await transcribe(first.url, 2);
      assert.equal(ok.status, 200);
      await assertNoOrphanRunners(first, second, sttRunners);
    } finally {
      first.child.kill('SIGKILL');
      second.child.kill('SIGKILL');
    }
  });
  it('a client that leaves mid-transcription stops the work in the runner at the next window (its CPU goes idle)', async () => {
    const WINDOWS = 60; // 30 minutes of audio, in 30 s windows
    const service = start({ LOCAL_WHISPER_MODEL: tinyWhisperPath(), GEMMA_MODEL: tinyGemmaPath(), STT_PARALLEL: '1', MAX_UPLOAD_BYTES: String(64 * 1024 * 1024) }, await freePort());
    try {
      await waitForHealth(service.url);
      await until('Whisper to load', async () => (await engineState(service.url, 'stt')).status === 'ready');
      const [runner] = sttRunners(service.child.pid!);
      assert.ok(runner);
      const leave = new AbortController();
      const res = await transcribe(service.url, WINDOWS * 30, true, leave.signal);
      const reader = res.body!.getReader();
      let sse = await readSse(reader, /transcript\.text\.delta/);
      // one second of work: the runner's CPU, and how many windows it decodes (one segment each)
      const busyFrom = cpuSeconds(runner);
      const before = sse.split('transcript.text.delta').length - 1;
      const second = sleep(1000).then(() => 'tick' as const);
      for (;;) {
        const next = await Promise.race([reader.read(), second]);
        if (next === 'tick' || next.done) break;
        sse += new TextDecoder().decode(next.value);
      }
      const busy = cpuSeconds(runner) - busyFrom;
      const seen = sse.split('transcript.text.delta').length - 1;
      leave.abort();
      await reader.cancel().catch(() => undefined);
      assert.ok(busy >= 0.1, `the runner was transcribing (${busy} CPU s in 1 s)`);
      // the window running when the client left may finish; then the runner idles. Without the
      // cancellation it would go on for the windows left: allow at most half of that time.
      const windowSeconds = 1 / Math.max(seen - before, 0.5);
      const leftSeconds = (WINDOWS - seen) * windowSeconds;
      const allowed = Math.min(leftSeconds / 2, 2 * windowSeconds + 3);
      assert.ok(allowed < leftSeconds, `enough work left to tell (${leftSeconds} s)`);
      const idle = await until(
        'the runner to go idle',
        async () => {
          const from = cpuSeconds(runner);
          await sleep(500);
          const used = cpuSeconds(runner) - from;
          return used < busy / 8 ? used : undefined;
        },
        allowed * 1000,
        0,
      );
      assert.ok(idle < busy / 8);
      const next = await transcribe(service.url, 2);
      assert.equal(next.status, 200, 'the only window slot is free again');
    } finally {
      service.child.kill('SIGKILL');
      await service.exited;
    }
  });

  it('a hung runner (SIGSTOP) is killed by the watchdog after RUNNER_HANG_SECONDS and restarted after the RUNNER_RESTART_BACKOFF_MS delay; a busy one is not', async () => {
    const service = start({ LOCAL_WHISPER_MODEL: tinyWhisperPath(), GEMMA_MODEL: tinyGemmaPath(), RUNNER_HANG_SECONDS: '4', RUNNER_RESTART_BACKOFF_MS: '1500,1500' }, await freePort());
    const url = service.url;
    let stopped: number | undefined;
    try {
      await waitForHealth(url);
      await until('Whisper to load', async () => (await engineState(url, 'stt')).status === 'ready');
      const [runner] = sttRunners(service.child.pid!);
      assert.ok(runner);

      // busy for longer than RUNNER_HANG_SECONDS: still answering pings, not killed
      const long = await transcribe(url, 300);
      assert.equal(long.status, 200);
      assert.equal(await metricSum(url, 'runner_restarts_total', { capability: 'stt' }), 0, 'a busy runner is not taken for a hung one');
      assert.deepEqual(sttRunners(service.child.pid!), [runner]);

      const streamed = await transcribe(url, 600, true);
      const reader = streamed.body!.getReader();
      let sse = await readSse(reader, /transcript\.text\.delta/);
      process.kill(runner, 'SIGSTOP');
      stopped = runner;
      sse += await readSse(reader);
      assert.match(sse, /event: error\ndata: .*"code":"engine_restarting"/, 'the stream ends with an error event');
      assert.match(sse, /runner stopped \(hang\)/);
      const state = await engineState(url, 'stt');
      assert.equal(state.status, 'restarting');
      assert.match(state.detail ?? '', /exited \(hang\); restarting in 1500 ms/);
      await until('the hung runner to be gone', () => !alive(runner) || undefined, 10_000);

      await until('the runner to restart', async () => (await engineState(url, 'stt')).status === 'ready');
      const [again] = sttRunners(service.child.pid!);
      assert.ok(again && again !== runner, 'a new runner process');
      const next = await transcribe(url, 2);
      assert.equal(next.status, 200);
      assert.equal(await metricSum(url, 'runner_restarts_total', { capability: 'stt', reason: 'hang' }), 1);
    } finally {
      if (stopped && alive(stopped)) process.kill(stopped, 'SIGKILL');
      service.child.kill('SIGKILL');
      await service.exited;
    }
  });
  it('/ws/stt: the runner dies while transcribing a turn: an `error` event with engine_restarting, the socket stays open and the next turn is transcribed after the restart', async () => {
    const service = start({ LOCAL_WHISPER_MODEL: tinyWhisperPath(), GEMMA_MODEL: tinyGemmaPath(), STT_PARTIAL_INTERVAL_MS: '0' }, await freePort());
    let stopped: number | undefined;
    try {
      await waitForHealth(service.url);
      await until('Whisper to load', async () => (await engineState(service.url, 'stt')).status === 'ready');
      const [runner] = sttRunners(service.child.pid!);
      assert.ok(runner);
      const turn = await speech([{ silence: 0.4 }, 'Hello there, how are you doing today?', { silence: 1.0 }]);
      const ws = new WebSocket(`${service.url.replace('http', 'ws')}/ws/stt?sample_rate=16000&language=en`);
      const log = eventLog(ws);
      await new Promise((r) => ws.once('open', r));
      await log.waitFor((e) => e.type === 'ready');
      // stopped before the turn, killed once the turn is over: its transcription is in the runner's hands
      process.kill(runner, 'SIGSTOP');
      stopped = runner;
      await streamPcm(ws, turn, 16000, 4);
      await log.waitFor((e) => e.type === 'speech_stopped');
      process.kill(runner, 'SIGKILL');
      const error = await log.waitFor((e) => e.type === 'error', 30_000);
      assert.equal((error.error as { code: string }).code, 'engine_restarting', JSON.stringify(error));
      assert.equal(log.events.filter((e) => e.type === 'transcript.final').length, 0);

      await until('the runner to restart', async () => (await engineState(service.url, 'stt')).status === 'ready');
      assert.equal(ws.readyState, WebSocket.OPEN, 'the socket stayed open');
      await streamPcm(ws, turn, 16000, 4);
      const final = await log.waitFor((e) => e.type === 'transcript.final', 60_000);
      assert.match(final.text as string, /tiny whisper model/);
      ws.close();
    } finally {
      if (stopped && alive(stopped)) process.kill(stopped, 'SIGKILL');
      service.child.kill('SIGKILL');
      await service.exited;
    }
  });
});
