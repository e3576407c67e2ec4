/**
 * Compressed request bodies on the real app: gzip, deflate and br JSON are decoded; the body limit
 * holds for the decoded bytes, counted while inflating (a gzip bomb is a 413 with bounded memory);
 * a corrupt stream is a 400, an unknown encoding or a compressed multipart body a 415 — all in
 * the envelope.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
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

  /**
   * As Python's http.client (and most SDKs) send: the whole body written before the answer is read.
   * A body refused part-way through inflating must be drained (bounded) and the answer sent with
   * Connection: close; closing on unread data resets the connection and the client sees EPIPE.
   */
  async function writeAllThenRead(route: string, body: Buffer, encoding: string): Promise<{ writeError?: string; response: string }> {
    const { hostname, port } = new URL(t.url);
    const socket = net.connect(Number(port), hostname);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    socket.pause();
    const chunks: Buffer[] = [];
    const head = `POST ${route} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Encoding: ${encoding}\r\nContent-Length: ${body.length}\r\n\r\n`;
    const writeError = await new Promise<string | undefined>((resolve) => {
      socket.once('error', (error) => resolve((error as NodeJS.ErrnoException).code ?? error.message));
      socket.write(head);
      socket.write(body, (error) => resolve(error ? ((error as NodeJS.ErrnoException).code ?? error.message) : undefined));
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined);
    socket.resume();
    await new Promise((resolve) => socket.once('close', resolve));
    return { writeError, response: Buffer.concat(chunks).toString() };
  }

  it('a compressed body refused while inflating (413 bomb, 400 bad data) is drained: a client writing it whole gets the answer, not EPIPE', async () => {
    // incompressible: 4 MB on the wire, far more than the socket buffers hold, 413 after LIMIT decoded
    const big = zlib.gzipSync(crypto.randomBytes(4 * 1024 * 1024), { level: 1 });
    const tooLarge = await writeAllThenRead('/v1/chat/completions', big, 'gzip');
    assert.equal(tooLarge.writeError, undefined, `413: the body was written whole: ${tooLarge.response.slice(0, 200)}`);
    assert.match(tooLarge.response, /^HTTP\/1\.1 413 /);
    assert.match(tooLarge.response, /\r\nconnection: close\r\n/i);
    assert.match(tooLarge.response, /"code":"body_too_large"/);
    // a gzip member cut before its end, then 4 MB of random bytes: 400 (bad data check) as soon as
    // the first piece inflates, on a route whose limit (the audio upload's) is above the body's size
    const good = zlib.gzipSync(Buffer.from('hello world '.repeat(20_000)));
    const corrupt = Buffer.concat([good.subarray(0, good.length - 20), crypto.randomBytes(4 * 1024 * 1024)]);
    const bad = await writeAllThenRead('/v1/speech-to-text', corrupt, 'gzip');
    assert.equal(bad.writeError, undefined, `400: the body was written whole: ${bad.response.slice(0, 200)}`);
    assert.match(bad.response, /^HTTP\/1\.1 400 /);
    assert.match(bad.response, /\r\nconnection: close\r\n/i);
    assert.match(bad.response, /"code":"invalid_content_encoding"/);
    assert.equal((await fetch(`${t.url}/health`)).status, 200);
  });

  it('the base64 audio routes take JSON bodies up to an upload\'s worth, past MAX_BODY_BYTES', async () => {
    const body = JSON.stringify({ audio_base64: Buffer.alloc(2 * LIMIT, 1).toString('base64') });
    for (const route of ['/v1/speech-to-text', '/v1/dialogue', '/v1/text-to-speech']) {
      const res = await fetch(`${t.url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      const text = await res.text();
      assert.notEqual(res.status, 413, `${route}: ${text.slice(0, 200)}`);
      // parsed and refused for what it says (no engine here, bad audio, missing fields), never for its size
      assert.doesNotMatch(text, /body_too_large/, route);
    }
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
