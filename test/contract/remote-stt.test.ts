/** The hosted STT adapter (OpenAI or compatible) against a local fake server, and the fallback chain. */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { startApp, type TestApp } from '../helpers/app.ts';
import { wav } from '../helpers/audio.ts';
import { startFakeOpenAi, type FakeOpenAi } from '../fakes/openai-server.ts';

async function upload(url: string, fields: Record<string, string> = {}) {
  const form = new FormData();
  form.set('file', new Blob([wav(2)]), 'clip.wav');
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  const res = await fetch(url, { method: 'POST', body: form });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('hosted speech-to-text', () => {
  let fake: FakeOpenAi;
  const apps: TestApp[] = [];
  const app = async (env: Record<string, string>) => {
    const t = await startApp({ env: { OPENAI_API_BASE: fake.url, OPENAI_API_KEY: 'sk-upstream', OPENAI_MAX_RETRIES: '2', GEMMA_MODEL: '/absent.gguf', ...env } });
    apps.push(t);
    return t;
  };
  before(async () => {
    fake = await startFakeOpenAi();
  });
  after(async () => {
    for (const t of apps) await t.close();
    await fake.close();
  });
  beforeEach(() => {
    fake.requests.length = 0;
    fake.failures.length = 0;
  });

  it('maps verbose_json segments, confidences and the engine; sends WAV, model and key upstream', async () => {
    const t = await app({ STT_BACKEND: 'openai', OPENAI_WHISPER_RESPONSE_FORMAT: 'verbose_json', OPENAI_WHISPER_MODEL: 'whisper-1' });
    const res = await upload(`${t.url}/v1/speech-to-text`, { language: 'en' });
    assert.equal(res.status, 200);
    assert.equal(res.body.text, 'Hello from the fake transcriber.');
    assert.equal(res.body.engine, 'openai');
    assert.equal(res.body.language, 'en', 'OpenAI answers "english"; our route speaks ISO codes');
    assert.deepEqual(res.body.segments, [{ id: 0, start: 0, end: 1.5, text: ' Hello from the fake transcriber.', avg_logprob: -0.2, no_speech_prob: 0.01 }]);
    const upstream = fake.requests.at(-1)!;
    assert.equal(upstream.path, '/v1/audio/transcriptions');
    assert.equal(upstream.authorization, 'Bearer sk-upstream');
    assert.equal(upstream.body.model, 'whisper-1');
    assert.equal(upstream.body.file_is_wav, true);
    const words = await upload(`${t.url}/v1/audio/transcriptions`, { response_format: 'verbose_json', 'timestamp_granularities[]': 'word' });
    assert.deepEqual(words.body.words, [{ word: 'Hello', start: 0, end: 0.4 }]);
    const translated = await upload(`${t.url}/v1/audio/translations`);
    assert.equal(translated.body.text, 'Hello from the fake translator.');
  });

  it('vad_filter leaves a remote engine alone: it gets the whole file, silence included', async () => {
    const t = await app({ STT_BACKEND: 'openai', OPENAI_WHISPER_RESPONSE_FORMAT: 'json', STT_VAD_FILTER: 'true' });
    const form = new FormData();
    const silent = Buffer.concat([wav(0).subarray(0, 40), Buffer.from(new Uint32Array([32000 * 3]).buffer), Buffer.alloc(32000 * 3)]);
    silent.writeUInt32LE(36 + 32000 * 3, 4);
    form.set('file', new Blob([silent]), 'silence.wav');
    form.set('vad_filter', 'true');
    const res = await fetch(`${t.url}/v1/speech-to-text`, { method: 'POST', body: form });
    const body = (await res.json()) as { text: string; engine: string; duration: number };
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.deepEqual([body.text, body.engine, body.duration], ['Hello from the fake transcriber.', 'openai', 3]);
    assert.equal(fake.requests.length, 1);
  });

  it('gives the text only with json (what gpt-4o-*-transcribe models return)', async () => {
    const t = await app({ STT_BACKEND: 'openai', OPENAI_WHISPER_RESPONSE_FORMAT: 'json' });
    const res = await upload(`${t.url}/v1/speech-to-text`);
    assert.equal(res.body.text, 'Hello from the fake transcriber.');
    assert.deepEqual(res.body.segments, []);
    assert.equal(fake.requests.at(-1)!.body.response_format, 'json');
  });

  it('falls back to the hosted engine when the local model is missing', async () => {
    const t = await app({ STT_BACKEND: 'local,openai', LOCAL_WHISPER_MODEL: 'base.en' });
    const res = await upload(`${t.url}/v1/speech-to-text`);
    assert.equal(res.status, 200);
    assert.equal(res.body.engine, 'openai');
  });

  it('retries 429 and 5xx, then answers 502 upstream_error when they persist', async () => {
    const t = await app({ STT_BACKEND: 'openai' });
    fake.failures.push(429, 500);
    assert.equal((await upload(`${t.url}/v1/speech-to-text`)).status, 200);
    assert.equal(fake.requests.length, 3);
    fake.requests.length = 0;
    fake.failures.push(500, 502, 503);
    const res = await upload(`${t.url}/v1/speech-to-text`);
    assert.equal(res.status, 502);
    assert.equal((res.body.error as { type: string }).type, 'upstream_error');
    assert.equal(fake.requests.length, 3);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    assert.match(metrics, /dependency_duration_seconds_count\{dependency="openai",operation="transcribe",outcome="error"\} [1-9]/);
  });

  it('is disabled without a key for api.openai.com, and says how to enable it', async () => {
    const t = await startApp({ env: { STT_BACKEND: 'openai', OPENAI_API_BASE: 'https://api.openai.com/v1', GEMMA_MODEL: '/absent.gguf' } });
    apps.push(t);
    const res = await upload(`${t.url}/v1/speech-to-text`);
    assert.equal(res.status, 503);
    assert.match((res.body.error as { message: string }).message, /OPENAI_API_KEY/);
  });
});
