/**
 * Compressed request bodies on the real app: gzip, deflate and br JSON are decoded; the body limit
 * holds for the decoded bytes, counted while inflating (a gzip bomb is a 413 with bounded memory);
 * a corrupt stream is a 400, an unknown encoding or a compressed multipart body a 415 — all in
 * the envelope.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import zlib from 'node:zlib';
import { startApp, type TestApp } from '../helpers/app.ts';

const LIMIT = 256 * 1024;

describe('Content-Encoding on request bodies', () => {
  let t: TestApp;
  before(async () => {
    t = await startApp({ env: { GEMMA_MODEL: '/absent.gguf', ENABLE_LOCAL_WHISPER: 'false', MAX_BODY_BYTES: String(LIMIT) } });
  });
  after(() => t.close());

  const send = async (body: Buffer, encoding: string, contentType = 'application/json') => {
    const res = await fetch(`${t.url}/v1/audio/speech`, { method: 'POST', headers: { 'content-type': contentType, 'content-encoding': encoding }, body });
    const bytes = Buffer.from(await res.arrayBuffer());
    return { status: res.status, type: res.headers.get('content-type') ?? '', bytes, json: () => JSON.parse(bytes.toString()) as { error: { code: string; param: string | null; message: string } } };
  };
  const speech = Buffer.from(JSON.stringify({ model: 'tts-1', voice: 'alloy', input: 'Hello there.', response_format: 'wav' }));

  for (const [encoding, compress] of [
    ['gzip', zlib.gzipSync],
    ['deflate', zlib.deflateSync],
    ['br', zlib.brotliCompressSync],
  ] as const) {
    it(`a ${encoding} JSON body is decoded and answered`, async () => {
      const res = await send(compress(speech), encoding);
      assert.equal(res.status, 200, res.bytes.toString().slice(0, 300));
      assert.equal(res.bytes.subarray(0, 4).toString(), 'RIFF');
    });
  }

  it('a gzip bomb (200 MB of zeros in ~200 KB) is a 413 at the decoded limit, without inflating it all', async () => {
    const bomb = zlib.gzipSync(Buffer.alloc(200 * 1024 * 1024, 0x20), { level: 9 });
    assert.ok(bomb.length < 300 * 1024, `the bomb is ${bomb.length} bytes, under the limit compressed`);
    const before = process.memoryUsage().rss;
    const res = await send(bomb, 'gzip');
    assert.equal(res.status, 413);
    assert.equal(res.json().error.code, 'body_too_large');
    // inflating it whole would hold 200 MB (and take seconds); stopping at the limit holds a few
    const grown = (process.memoryUsage().rss - before) / 1024 / 1024;
    assert.ok(grown < 100, `RSS grew ${grown.toFixed(0)} MB`);
    assert.equal((await fetch(`${t.url}/health`)).status, 200);
  });

  it('a corrupt stream is a 400, an unknown encoding or a compressed multipart body a 415, in the envelope', async () => {
    const corrupt = await send(Buffer.concat([zlib.gzipSync(speech).subarray(0, 20), Buffer.from('not gzip at all')]), 'gzip');
    assert.equal(corrupt.status, 400);
    assert.equal(corrupt.json().error.code, 'invalid_content_encoding');
    const zstd = await send(speech, 'zstd');
    assert.equal(zstd.status, 415);
    assert.deepEqual([zstd.json().error.code, zstd.json().error.param], ['unsupported_content_encoding', 'Content-Encoding']);
    const multipart = await send(zlib.gzipSync(Buffer.from('--x\r\n')), 'gzip', 'multipart/form-data; boundary=x');
    assert.equal(multipart.status, 415);
    assert.equal(multipart.json().error.code, 'unsupported_content_encoding');
    assert.equal((await fetch(`${t.url}/health`)).status, 200);
  });
});
