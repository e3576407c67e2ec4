/**
 * JSON bodies with prototype-poisoning keys, on the real app: still refused (secure-json-parse, as
 * Fastify does), but as what they are — 400 `forbidden_json_key` naming the keys — not "Body is not
 * valid JSON" for well-formed JSON. Malformed JSON stays 400 `invalid_json`.
 */
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { startApp, type TestApp } from '../helpers/app.ts';

describe('JSON bodies with __proto__ / constructor.prototype keys', () => {
  let t: TestApp;
  before(async () => {
    t = await startApp({ env: { GEMMA_MODEL: '/absent.gguf', ENABLE_LOCAL_WHISPER: 'false' } });
  });
  after(() => t.close());

  const post = async (body: string | Buffer, headers: Record<string, string> = {}) => {
    const res = await fetch(`${t.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    return { status: res.status, body: (await res.json()) as { error: { code: string; message: string; type: string } } };
  };

  it('a __proto__ or constructor.prototype key is a 400 forbidden_json_key that says why', async () => {
    for (const body of [
      '{"model":"m","messages":[],"__proto__":{"admin":true}}',
      '{"model":"m","messages":[{"role":"user","content":"hi","__proto__":{"x":1}}]}',
      '{"model":"m","messages":[],"constructor":{"prototype":{"admin":true}}}',
    ]) {
      const res = await post(body);
      assert.equal(res.status, 400, `${body}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, 'forbidden_json_key', body);
      assert.equal(res.body.error.type, 'invalid_request_error');
      assert.match(res.body.error.message, /__proto__ and constructor\.prototype are not accepted/);
    }
    // compressed the same way (the parser sees the decoded body)
    const gz = await post(gzipSync('{"model":"m","messages":[],"__proto__":{}}'), { 'content-encoding': 'gzip' });
    assert.equal(gz.status, 400);
    assert.equal(gz.body.error.code, 'forbidden_json_key');
  });

  it('malformed JSON is still 400 invalid_json, and a plain `constructor` key is not refused as poisoning', async () => {
    const bad = await post('{"model":"m","messages":[');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'invalid_json');
    const plain = await post('{"model":"m","messages":[{"role":"user","content":"hi"}],"metadata":{"constructor":"x"}}');
    assert.notEqual(plain.body.error?.code, 'forbidden_json_key');
    assert.notEqual(plain.body.error?.code, 'invalid_json');
  });
});
