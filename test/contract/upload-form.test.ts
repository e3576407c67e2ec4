/**
 * The multipart upload routes' form handling on the real app: a file over MAX_UPLOAD_BYTES is a 413
 * in our envelope naming the setting and the limit (not @fastify/multipart's own
 * `fst_req_file_too_large`), and form booleans (`vad_filter`, `stream`) take true/false as OpenAI's
 * SDKs send them, plus 1/0, yes/no, on/off in any case; anything else is a 400 that says so.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { wav } from '../helpers/audio.ts';
import { startApp, type TestApp } from '../helpers/app.ts';
import { tinyWhisperPath } from '../helpers/models.ts';

const LIMIT = 200_000;

describe('multipart upload forms', () => {
  let t: TestApp;
  before(async () => {
    t = await startApp({ env: { LOCAL_WHISPER_MODEL: tinyWhisperPath(), STT_BACKEND: 'local', GEMMA_MODEL: '/absent.gguf', MAX_UPLOAD_BYTES: String(LIMIT) } });
  });
  after(() => t.close());

  async function post(route: string, fields: Record<string, string>, file: Buffer, name = 'file') {
    const form = new FormData();
    for (const [k, v] of Object.entries(fields)) form.append(k, v);
    form.append(name, new Blob([file]), 'clip.wav');
    const res = await fetch(`${t.url}${route}`, { method: 'POST', body: form });
    const text = await res.text();
    return { status: res.status, text, error: () => (JSON.parse(text) as { error: { code: string; message: string; param: string | null } }).error };
  }

  it('a file over MAX_UPLOAD_BYTES is a 413 audio_too_large naming the setting and the limit, on every multipart route', async () => {
    const big = wav(10); // 320 KB of 16 kHz PCM
    for (const [route, field] of [
      ['/v1/audio/transcriptions', 'file'],
      ['/v1/audio/translations', 'file'],
      ['/v1/speech-to-text', 'file'],
      ['/v1/dialogue', 'file'],
      ['/v1/audio/voices', 'audio'],
    ] as const) {
      const res = await post(route, route === '/v1/audio/voices' ? { name: 'big', text: 'hello' } : {}, big, field);
      assert.equal(res.status, 413, `${route}: ${res.text.slice(0, 300)}`);
      const error = res.error();
      assert.equal(error.code, 'audio_too_large', route);
      assert.match(error.message, new RegExp(`limit is ${LIMIT} bytes \\(MAX_UPLOAD_BYTES\\)`), route);
    }
  });

  it('form booleans take true/false, 1/0, yes/no, on/off in any case; other values are a 400 that lists them', async () => {
    const clip = wav(1);
    for (const value of ['true', 'FALSE', '1', '0', 'Yes', 'no', 'ON', 'off']) {
      const res = await post('/v1/audio/transcriptions', { vad_filter: value }, clip);
      assert.equal(res.status, 200, `vad_filter=${value}: ${res.text.slice(0, 300)}`);
    }
    for (const value of ['maybe', '', '2']) {
      const res = await post('/v1/audio/transcriptions', { vad_filter: value }, clip);
      assert.equal(res.status, 400, `vad_filter=${JSON.stringify(value)}: ${res.text.slice(0, 300)}`);
      assert.equal(res.error().param, 'vad_filter');
      assert.match(res.error().message, /vad_filter: must be true or false \(also 1\/0, yes\/no, on\/off/);
    }
    const stream = await post('/v1/audio/transcriptions', { stream: 'nope' }, clip);
    assert.equal(stream.status, 400);
    assert.match(stream.error().message, /stream: must be true or false/);
  });
});
