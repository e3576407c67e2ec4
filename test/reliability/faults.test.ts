/**
 * The fault matrix: every upstream we cannot run here (an OpenAI-compatible LLM, a hosted
 * transcription API, fish-speech) faked to its published schema and made to fail in each way —
 * a transient 503/429, persistent 500/503, slower than the timeout, a malformed body, a stream
 * cut halfway, the connection refused — with the client's answer, the number of upstream
 * attempts (retries), fallbacks and the metrics recorded per row. Printed as a table.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startApp, type TestApp } from '../helpers/app.ts';
import { wav } from '../helpers/audio.ts';
import { metricSum } from '../helpers/metrics.ts';
import { tinyGemmaPath, tinyWhisperPath } from '../helpers/models.ts';
import { startFakeFishSpeech, type FakeFishSpeech } from '../fakes/fish-speech.ts';
import { startFakeOpenAi, type FakeOpenAi } from '../fakes/openai-server.ts';

interface Observed {
  status: number;
  code: string | null;
  attempts: number;
  engine: string | null;
  degraded: string | null;
  sseError: string | null;
}

interface Row {
  upstream: 'llm' | 'stt' | 'openaudio';
  fault: string;
  run: () => Promise<Observed>;
  expect: Partial<Observed>;
}

const matrix: { upstream: string; fault: string; observed: Observed; expected: Partial<Observed> }[] = [];

describe('fault matrix', () => {
  let llm: FakeOpenAi;
  let stt: FakeOpenAi;
  let fish: FakeFishSpeech;
  let llmApp: TestApp;
  let sttApp: TestApp;
  let sttFallbackApp: TestApp;
  let ttsApp: TestApp;
  let ttsFallbackApp: TestApp;
  const apps: TestApp[] = [];
  const start = async (env: Record<string, string>) => {
    const t = await startApp({ env });
    apps.push(t);
    return t;
  };

  before(async () => {
    [llm, stt, fish] = await Promise.all([startFakeOpenAi(), startFakeOpenAi(), startFakeFishSpeech()]);
    const noLlm = { GEMMA_MODEL: '/absent.gguf' };
    llmApp = await start({ LLM_BACKEND: 'openai', LLM_API_BASE: llm.url, LLM_MODEL: 'fake-gemma', LLM_TIMEOUT_SECONDS: '1', LLM_MAX_RETRIES: '2', ENABLE_LOCAL_WHISPER: 'false' });
    sttApp = await start({ ...noLlm, STT_BACKEND: 'openai', OPENAI_API_BASE: stt.url, OPENAI_API_KEY: 'sk-fault-matrix-0001', OPENAI_TIMEOUT_SECONDS: '1', OPENAI_MAX_RETRIES: '2' });
    sttFallbackApp = await start({ ...noLlm, STT_BACKEND: 'openai,local', LOCAL_WHISPER_MODEL: tinyWhisperPath(), OPENAI_API_BASE: stt.url, OPENAI_API_KEY: 'sk-fault-matrix-0001', OPENAI_MAX_RETRIES: '0' });
    ttsApp = await start({ GEMMA_MODEL: tinyGemmaPath(), ENABLE_LOCAL_WHISPER: 'false', TTS_BACKEND: 'openaudio', OPENAUDIO_API_BASE: fish.url, OPENAUDIO_TIMEOUT_SECONDS: '1', OPENAUDIO_MAX_RETRIES: '2' });
    ttsFallbackApp = await start({ ...noLlm, ENABLE_LOCAL_WHISPER: 'false', TTS_BACKEND: 'openaudio,embedded', OPENAUDIO_API_BASE: fish.url, OPENAUDIO_MAX_RETRIES: '0' });
  });
  after(async () => {
    const widths = [10, 34, 8, 22, 9, 12, 30];
    const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join(' ');
    const rows = [line(['upstream', 'fault', 'status', 'code', 'attempts', 'engine', 'degraded / SSE error'])];
    for (const r of matrix) rows.push(line([r.upstream, r.fault, String(r.observed.status), r.observed.code ?? '-', String(r.observed.attempts), r.observed.engine ?? '-', r.observed.degraded ?? r.observed.sseError ?? '-']));
    process.stderr.write(`# fault matrix (${matrix.length} rows)\n${rows.map((r) => `# ${r}`).join('\n')}\n`);
    for (const t of apps) await t.close();
    await Promise.all([llm?.close(), stt?.close(), fish?.close()]);
  });

  const observe = async (res: Response, attemptsBefore: number, attemptsNow: () => number): Promise<Observed> => {
    const text = await res.text();
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // SSE or audio
    }
    const sseError = /event: error\ndata: (.*)\n/.exec(text)?.[1];
    return {
      status: res.status,
      code: (body.error as { code?: string } | undefined)?.code ?? null,
      attempts: attemptsNow() - attemptsBefore,
      engine: res.headers.get('x-tts-engine') ?? res.headers.get('x-stt-engine') ?? (body.engine as string | undefined) ?? null,
      degraded: ((body.degraded as { stage: string }[] | undefined) ?? []).map((d) => d.stage).join(',') || null,
      sseError: sseError ? ((JSON.parse(sseError) as { error: { code: string } }).error.code ?? 'error') : null,
    };
  };
  const json = (t: TestApp, path: string, body: unknown) => fetch(`${t.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const generate = (stream = false) => async () => {
    const before = llm.requests.length;
    return observe(await json(llmApp, '/v1/generate', { prompt: 'Hi', stream }), before, () => llm.requests.length);
  };
  const transcribe = (t: () => TestApp) => async () => {
    const before = stt.requests.length;
    const form = new FormData();
    form.append('file', new Blob([wav(1)], { type: 'audio/wav' }), 'clip.wav');
    return observe(await fetch(`${t().url}/v1/speech-to-text`, { method: 'POST', body: form }), before, () => stt.requests.length);
  };
  const speak = (t: () => TestApp, stream = false) => async () => {
    const before = fish.requests.length;
    return observe(await json(t(), '/v1/text-to-speech', { text: 'Fault matrix.', format: 'wav', stream }), before, () => fish.requests.length);
  };
  const dialogue = async () => {
    const before = fish.requests.length;
    return observe(await json(ttsApp, '/v1/dialogue', { text: 'Hello?' }), before, () => fish.requests.length);
  };
  const reset = () => {
    for (const fake of [llm, stt]) Object.assign(fake, { failures: [], delayMs: 0, malformed: false, cutStreamAfter: undefined });
    Object.assign(fish, { failures: [], delayMs: 0, chunkDelayMs: 0, malformed: false, cutAfterHeader: false });
  };

  const rows: (Row & { setup: () => void })[] = [
    { upstream: 'llm', fault: 'none', setup: () => undefined, run: generate(), expect: { status: 200, attempts: 1 } },
    { upstream: 'llm', fault: '503 once (transient)', setup: () => (llm.failures = [503]), run: generate(), expect: { status: 200, attempts: 2 } },
    { upstream: 'llm', fault: '429 once', setup: () => (llm.failures = [429]), run: generate(), expect: { status: 200, attempts: 2 } },
    { upstream: 'llm', fault: '500 persistent', setup: () => (llm.failures = [500, 500, 500]), run: generate(), expect: { status: 502, code: 'upstream_failed', attempts: 3 } },
    { upstream: 'llm', fault: '502 persistent', setup: () => (llm.failures = [502, 502, 502]), run: generate(), expect: { status: 502, code: 'upstream_failed', attempts: 3 } },
    { upstream: 'llm', fault: 'slower than LLM_TIMEOUT_SECONDS', setup: () => (llm.delayMs = 1500), run: generate(), expect: { status: 504, code: 'upstream_timeout', attempts: 3 } },
    { upstream: 'llm', fault: 'malformed body', setup: () => (llm.malformed = true), run: generate(), expect: { status: 502, code: 'upstream_bad_response', attempts: 1 } },
    { upstream: 'llm', fault: 'stream cut halfway', setup: () => (llm.cutStreamAfter = 2), run: generate(true), expect: { status: 200, sseError: 'upstream_stream_broken' } },
    { upstream: 'stt', fault: 'none', setup: () => undefined, run: transcribe(() => sttApp), expect: { status: 200, attempts: 1, engine: 'openai' } },
    { upstream: 'stt', fault: '503 once (transient)', setup: () => (stt.failures = [503]), run: transcribe(() => sttApp), expect: { status: 200, attempts: 2 } },
    { upstream: 'stt', fault: '500 persistent', setup: () => (stt.failures = [500, 500, 500]), run: transcribe(() => sttApp), expect: { status: 502, code: 'upstream_failed', attempts: 3 } },
    { upstream: 'stt', fault: 'slower than OPENAI_TIMEOUT_SECONDS', setup: () => (stt.delayMs = 1500), run: transcribe(() => sttApp), expect: { status: 504, code: 'upstream_timeout', attempts: 3 } },
    { upstream: 'stt', fault: 'malformed body', setup: () => (stt.malformed = true), run: transcribe(() => sttApp), expect: { status: 502, code: 'upstream_bad_response', attempts: 1 } },
    { upstream: 'stt', fault: '500, fallback to local whisper', setup: () => (stt.failures = [500]), run: transcribe(() => sttFallbackApp), expect: { status: 200, attempts: 1, engine: 'whisper-cpp' } },
    { upstream: 'openaudio', fault: 'none', setup: () => undefined, run: speak(() => ttsApp), expect: { status: 200, attempts: 1, engine: 'openaudio' } },
    { upstream: 'openaudio', fault: '503 once (transient)', setup: () => (fish.failures = [503]), run: speak(() => ttsApp), expect: { status: 200, attempts: 2 } },
    { upstream: 'openaudio', fault: '502 persistent', setup: () => (fish.failures = [502, 502, 502]), run: speak(() => ttsApp), expect: { status: 502, code: 'upstream_failed', attempts: 3 } },
    { upstream: 'openaudio', fault: '500 (not retried)', setup: () => (fish.failures = [500]), run: speak(() => ttsApp), expect: { status: 502, code: 'upstream_failed', attempts: 1 } },
    { upstream: 'openaudio', fault: 'slower than OPENAUDIO_TIMEOUT_SECONDS', setup: () => (fish.delayMs = 1500), run: speak(() => ttsApp), expect: { status: 504, code: 'upstream_timeout', attempts: 3 } },
    { upstream: 'openaudio', fault: 'malformed body', setup: () => (fish.malformed = true), run: speak(() => ttsApp), expect: { status: 502, code: 'upstream_bad_audio', attempts: 1 } },
    { upstream: 'openaudio', fault: 'stream cut after the header', setup: () => (fish.cutAfterHeader = true), run: speak(() => ttsApp), expect: { status: 502 } },
    { upstream: 'openaudio', fault: '500, fallback to embedded voice', setup: () => (fish.failures = [500]), run: speak(() => ttsFallbackApp), expect: { status: 200, attempts: 1, engine: 'espeak' } },
    { upstream: 'openaudio', fault: '500 in a dialogue: text reply', setup: () => (fish.failures = [500]), run: dialogue, expect: { status: 200, degraded: 'tts' } },
  ];

  for (const row of rows) {
    it(`${row.upstream}: ${row.fault} → ${row.expect.status}${row.expect.code ? ` ${row.expect.code}` : ''}`, async () => {
      reset();
      row.setup();
      const observed = await row.run();
      matrix.push({ upstream: row.upstream, fault: row.fault, observed, expected: row.expect });
      for (const [key, value] of Object.entries(row.expect)) assert.equal(observed[key as keyof Observed], value, `${key} (observed ${JSON.stringify(observed)})`);
      reset();
    });
  }

  it('connection refused (the upstream went away): retried, then 502 upstream_unreachable, and readiness says so', async () => {
    await llm.close();
    await stt.close();
    await fish.close();
    for (const [t, path, body] of [
      [llmApp, '/v1/generate', { prompt: 'Hi' }],
      [ttsApp, '/v1/text-to-speech', { text: 'Anyone there?' }],
    ] as const) {
      const res = await json(t, path, body);
      const envelope = (await res.json()) as { error: { code: string } };
      matrix.push({ upstream: t === llmApp ? 'llm' : 'openaudio', fault: 'connection refused', observed: { status: res.status, code: envelope.error.code, attempts: 0, engine: null, degraded: null, sseError: null }, expected: { status: 502 } });
      assert.equal(res.status, 502);
      assert.equal(envelope.error.code, 'upstream_unreachable');
    }
    const sttRes = await transcribe(() => sttApp)();
    matrix.push({ upstream: 'stt', fault: 'connection refused', observed: { ...sttRes, attempts: 0 }, expected: { status: 502 } });
    assert.equal(sttRes.status, 502);
    assert.equal(sttRes.code, 'upstream_unreachable');
    // fish-speech marks itself down at once; the remote LLM is re-probed in the background
    const ready = (await (await fetch(`${ttsApp.url}/health/ready`)).json()) as { capabilities: { tts: { engines: { engine: string; status: string }[] } } };
    assert.equal(ready.capabilities.tts.engines.find((e) => e.engine === 'openaudio')?.status, 'error');
  });

  it('metrics count every attempt and every outcome', async () => {
    // per attempt: the status codes the fakes answered, retries included, and the refused connections
    assert.ok((await metricSum(llmApp.url, 'upstream_requests_total', { upstream: 'llm', outcome: '503' })) >= 1);
    assert.ok((await metricSum(llmApp.url, 'upstream_requests_total', { upstream: 'llm', outcome: '500' })) >= 3);
    assert.ok((await metricSum(llmApp.url, 'upstream_requests_total', { upstream: 'llm', outcome: 'connection_error' })) >= 1);
    assert.ok((await metricSum(llmApp.url, 'upstream_requests_total', { upstream: 'llm', outcome: 'aborted' })) >= 3, 'the SDK aborts requests past its timeout');
    assert.ok((await metricSum(sttApp.url, 'upstream_requests_total', { upstream: 'stt', outcome: '500' })) >= 3);
    assert.ok((await metricSum(ttsApp.url, 'upstream_requests_total', { upstream: 'openaudio', outcome: '502' })) >= 3);
    assert.ok((await metricSum(ttsApp.url, 'upstream_requests_total', { upstream: 'openaudio', outcome: 'timeout' })) + (await metricSum(ttsApp.url, 'upstream_requests_total', { upstream: 'openaudio', outcome: 'aborted' })) >= 3);
    // per request: the outcome the service saw
    assert.ok((await metricSum(llmApp.url, 'dependency_duration_seconds_count', { dependency: 'openai', operation: 'generate', outcome: 'success' })) >= 3);
    assert.ok((await metricSum(llmApp.url, 'dependency_duration_seconds_count', { dependency: 'openai', operation: 'generate', outcome: 'error' })) >= 3);
    assert.ok((await metricSum(llmApp.url, 'dependency_duration_seconds_count', { dependency: 'openai', operation: 'generate', outcome: 'timeout' })) >= 1);
    assert.ok((await metricSum(sttApp.url, 'dependency_duration_seconds_count', { dependency: 'openai', operation: 'transcribe', outcome: 'timeout' })) >= 1);
    assert.ok((await metricSum(ttsApp.url, 'dependency_duration_seconds_count', { dependency: 'openaudio', operation: 'synthesize', outcome: 'timeout' })) >= 1);
    assert.ok((await metricSum(ttsFallbackApp.url, 'dependency_duration_seconds_count', { dependency: 'espeak', operation: 'synthesize', outcome: 'success' })) >= 1);
    for (const t of apps) assert.ok(!t.logs.some((l) => l.includes('"level":"error"') && !l.includes('upstream') && !l.includes('not available')), 'no unexpected server error logged');
  });
});
