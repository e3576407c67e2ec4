/**
 * API keys against a hostile client, on the real app over real sockets: keys in the query string or
 * the WebSocket subprotocol only count on WebSocket handshakes; an URL-encoded `api_key` never
 * reaches the logs; wrong keys are limited per client address (AUTH_FAILURES_PER_MINUTE); a refused
 * body is not read on (Connection: close); readiness details only for key holders.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { startApp, type TestApp } from '../helpers/app.ts';
import { freePort } from '../helpers/process.ts';
import { handshakeStatus } from '../helpers/ws.ts';

const KEY = 'hardening-key-5d1e9a';
const OTHER = 'hardening-key-7c2b40';

interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A plain HTTP/1.1 request (fetch refuses an `Upgrade` header and hides `Connection`). */
function raw(url: string, options: { method?: string; path: string; headers?: Record<string, string>; body?: Buffer; localAddress?: string }): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    // a keep-alive agent: the server decides whether the connection stays open
    const agent = new http.Agent({ keepAlive: true });
    const req = http.request(
      { host: target.hostname, port: target.port, method: options.method ?? 'GET', path: options.path, headers: options.headers, localAddress: options.localAddress, agent },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c));
        res.on('end', () => {
          agent.destroy();
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        });
      },
    );
    req.on('error', (error) => {
      agent.destroy();
      reject(error);
    });
    req.end(options.body);
  });
}

const handshake = handshakeStatus;

describe('API keys: where they are accepted, and what they never leak', () => {
  let t: TestApp;
  before(async () => {
    t = await startApp({ env: { GEMMA_MODEL: '/absent.gguf', ENABLE_LOCAL_WHISPER: 'false', API_KEY_ENABLED: 'true', API_KEYS: KEY } });
  });
  after(() => t.close());

  it('a REST request is not authenticated by ?api_key= or the key subprotocol, even claiming an upgrade', async () => {
    assert.equal((await raw(t.url, { path: `/v1/audio/voices?api_key=${KEY}` })).status, 401);
    // an Upgrade header without `Connection: upgrade` is a plain request to Node, and to us
    assert.equal((await raw(t.url, { path: `/v1/audio/voices?api_key=${KEY}`, headers: { upgrade: 'websocket' } })).status, 401);
    assert.equal((await raw(t.url, { path: '/v1/audio/voices', headers: { upgrade: 'websocket', 'sec-websocket-protocol': `gemma-3-api, api_key.${KEY}` } })).status, 401);
    assert.equal((await raw(t.url, { path: '/v1/audio/voices', headers: { 'x-api-key': KEY } })).status, 200, 'the header still works');
    // handshakes keep both browser-friendly ways
    assert.equal(await handshake(`${t.wsUrl}/ws/tts?api_key=${KEY}`), 101);
    assert.equal(await handshake(`${t.wsUrl}/ws/tts`, {}, ['gemma-3-api', `api_key.${KEY}`]), 101);
  });

  it('an URL-encoded api_key parameter name is redacted in the logs too', async () => {
    // the query parser decodes names: `api%5Fkey` is `api_key`, and opens the socket
    assert.equal(await handshake(`${t.wsUrl}/ws/tts?api%5Fkey=${KEY}&x=1`), 101);
    assert.equal(await handshake(`${t.wsUrl}/ws/tts?%61pi_key=${OTHER}`), 401);
    assert.equal((await raw(t.url, { path: `/v1/audio/voices?x=1&API%5fKEY=${KEY}` })).status, 401);
    const logged = async (url: string) => {
      for (let i = 0; i < 50 && !t.logs.some((l) => l.includes(url)); i++) await new Promise((r) => setTimeout(r, 20));
      return t.logs.some((l) => l.includes(url));
    };
    assert.ok(await logged('"url":"/ws/tts?%61pi_key=[REDACTED]"'), 'the refused handshake was logged, redacted');
    assert.ok(await logged('"url":"/v1/audio/voices?x=1&API%5fKEY=[REDACTED]"'), 'the REST request was logged, redacted');
    const all = t.logs.join('\n');
    assert.ok(!all.includes(KEY) && !all.includes(OTHER), 'no key in any log line');
  });
});

describe('failed authentications', () => {
  let t: TestApp;
  before(async () => {
    t = await startApp({ env: { GEMMA_MODEL: '/absent.gguf', ENABLE_LOCAL_WHISPER: 'false', API_KEY_ENABLED: 'true', API_KEYS: KEY, AUTH_FAILURES_PER_MINUTE: '5', MAX_BODY_BYTES: '65536' } });
  });
  after(() => t.close());

  it('are limited per client address: past the limit every keyed request from it gets 429, others pass', async () => {
    const call = (key: string | undefined, localAddress = '127.0.0.1') => raw(t.url, { path: '/v1/audio/voices', headers: key ? { 'x-api-key': key } : {}, localAddress });
    // requests without a key guess nothing and do not count
    for (let i = 0; i < 8; i++) assert.equal((await call(undefined)).status, 401);
    for (let i = 0; i < 5; i++) assert.equal((await call(`wrong-${i}`)).status, 401, `wrong key ${i + 1}`);
    const blocked = await call(`wrong-6`);
    assert.equal(blocked.status, 429);
    const body = JSON.parse(blocked.body) as { error: { code: string; type: string }; request_id: string };
    assert.equal(body.error.code, 'too_many_failed_authentications');
    assert.equal(body.error.type, 'rate_limit_error');
    const retryAfter = Number(blocked.headers['retry-after']);
    assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
    // fail2ban-style: a right guess from a blocked address is not told it was right
    assert.equal((await call(KEY)).status, 429);
    assert.equal((await raw(t.url, { path: '/health' })).status, 200, 'liveness stays open');
    // WebSocket handshakes count and are blocked alike
    assert.equal(await handshake(`${t.wsUrl}/ws/tts`, { headers: { 'x-api-key': KEY } }), 429);
    // another client address is unaffected (Linux routes all of 127/8 to loopback)
    assert.equal((await call(KEY, '127.0.0.2')).status, 200);
  });

  it('a refused body is not read on: 401 and 413 close the connection', async () => {
    const big = Buffer.alloc(2 * 1024 * 1024, 0x61);
    const unauthorized = await raw(t.url, { method: 'POST', path: '/v1/generate', headers: { 'content-type': 'application/json', 'content-length': String(big.length) }, body: big, localAddress: '127.0.0.3' });
    assert.equal(unauthorized.status, 401);
    assert.equal(unauthorized.headers.connection, 'close');
    const tooLarge = await raw(t.url, { method: 'POST', path: '/v1/generate', headers: { 'content-type': 'application/json', 'x-api-key': KEY, 'content-length': String(big.length) }, body: big, localAddress: '127.0.0.3' });
    assert.equal(tooLarge.status, 413);
    assert.equal(tooLarge.headers.connection, 'close');
    // a read body keeps the connection alive
    const ok = await raw(t.url, { method: 'POST', path: '/v1/generate', headers: { 'content-type': 'application/json', 'x-api-key': KEY }, body: Buffer.from('{}'), localAddress: '127.0.0.3' });
    assert.equal(ok.status, 400, ok.body);
    assert.equal(ok.headers.connection, 'keep-alive');
  });
});

describe('readiness without a key', () => {
  let t: TestApp;
  let closedPort: number;
  before(async () => {
    closedPort = await freePort(); // nothing listens there: Redis and fish-speech are unreachable
    t = await startApp({
      env: {
        GEMMA_MODEL: '/absent.gguf',
        ENABLE_LOCAL_WHISPER: 'false',
        TTS_BACKEND: 'openaudio',
        OPENAUDIO_API_BASE: `http://127.0.0.1:${closedPort}`,
        REDIS_URL: `redis://127.0.0.1:${closedPort}/0`,
        API_KEY_ENABLED: 'true',
        API_KEYS: KEY,
      },
    });
    // let the engines and the Redis client find out
    for (let i = 0; i < 100; i++) {
      const body = await (await fetch(`${t.url}/health/ready`, { headers: { 'x-api-key': KEY } })).text();
      if (body.includes('ECONNREFUSED') && /openaudio","status":"error"/.test(body)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  });
  after(() => t.close());

  it('shows states, never addresses or library messages; a valid key sees the details', async () => {
    const anonymous = await fetch(`${t.url}/health/ready`);
    assert.equal(anonymous.status, 503);
    const text = await anonymous.text();
    const body = JSON.parse(text) as { status: string; sessions: { status: string; detail?: string }; capabilities: Record<string, { status: string; engines: { engine: string; status: string; detail?: string }[] }> };
    assert.equal(body.status, 'not_ready');
    assert.equal(body.sessions.status, 'not_ready');
    assert.deepEqual(body.capabilities.tts?.engines.map((e) => [e.engine, e.status]), [['openaudio', 'error']]);
    assert.equal(body.capabilities.llm?.engines[0]?.status, 'missing_model');
    for (const secret of ['127.0.0.1', String(closedPort), 'ECONNREFUSED', '/absent.gguf', 'detail']) assert.ok(!text.includes(secret), `${secret} in ${text}`);
    // a wrong key is no better than none
    const wrong = await (await fetch(`${t.url}/health/ready`, { headers: { 'x-api-key': OTHER } })).text();
    assert.ok(!wrong.includes('detail'), wrong);
    const keyed = await (await fetch(`${t.url}/health/ready`, { headers: { 'x-api-key': KEY } })).text();
    assert.match(keyed, /ECONNREFUSED/);
    assert.match(keyed, /absent\.gguf/);
  });
});
