/** The foundation over real HTTP and WebSocket on an ephemeral port. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { startApp, type TestApp } from '../helpers/app.ts';
import { recordSecrets } from '../helpers/test-logs.ts';

const KEYS = ['key-one-7f3a', 'key-two-9b2c'];

function wsOutcome(url: string, options: WebSocket.ClientOptions = {}, protocols?: string[]): Promise<{ status: number; protocol?: string; firstMessage?: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols ?? [], options);
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, firstMessage: body }));
    });
    ws.on('open', () => {
      const protocol = ws.protocol;
      ws.once('message', (data: Buffer) => {
        resolve({ status: 101, protocol, firstMessage: data.toString() });
        ws.close();
      });
    });
    ws.on('error', (error) => {
      if (!String(error.message).includes('Unexpected server response')) reject(error);
    });
  });
}

describe('foundation over HTTP', () => {
  let t: TestApp;
  before(async () => {
    t = await startApp({ env: { API_KEY_ENABLED: 'true', API_KEYS: KEYS.join(',') } });
  });
  after(() => t.close());

  it('GET /health answers {"status":"ok"} without a key', async () => {
    const res = await fetch(`${t.url}/health`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ok' });
  });

  it('GET /health/ready reports every capability without a key', async () => {
    const res = await fetch(`${t.url}/health/ready`);
    const body = (await res.json()) as { status: string; capabilities: Record<string, { status: string; engines: unknown[] }> };
    assert.deepEqual(Object.keys(body.capabilities).sort(), ['llm', 'stt', 'tts']);
    assert.equal(res.status, body.status === 'ready' ? 200 : 503);
  });

  it('refuses a protected route without a key with the 401 envelope', async () => {
    const res = await fetch(`${t.url}/v1/text-to-speech`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 401);
    const body = (await res.json()) as { error: { type: string; code: string }; request_id: string };
    assert.equal(body.error.type, 'authentication_error');
    assert.equal(body.error.code, 'invalid_api_key');
    assert.equal(body.request_id, res.headers.get('x-request-id'));
  });

  it('refuses a wrong key and accepts either key in either header form', async () => {
    const post = (headers: Record<string, string>) =>
      fetch(`${t.url}/v1/text-to-speech`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json', ...headers } });
    assert.equal((await post({ 'X-API-Key': 'wrong' })).status, 401);
    assert.equal((await post({ Authorization: 'Bearer wrong' })).status, 401);
    for (const key of KEYS) {
      // Past auth, the route validates the body: `text` is missing.
      assert.equal((await post({ 'X-API-Key': key })).status, 400);
      assert.equal((await post({ Authorization: `Bearer ${key}` })).status, 400);
    }
  });

  it('leaves /metrics and /docs open by default', async () => {
    assert.equal((await fetch(`${t.url}/metrics`)).status, 200);
    const docs = await fetch(`${t.url}/docs/`);
    assert.equal(docs.status, 200);
    assert.match(await docs.text(), /<script/);
    const spec = await fetch(`${t.url}/docs/openapi.json`);
    assert.equal(((await spec.json()) as { openapi: string }).openapi, '3.1.0');
  });

  it('refuses a WebSocket handshake without a key before upgrading', async () => {
    const outcome = await wsOutcome(`${t.wsUrl}/ws/stt`);
    assert.equal(outcome.status, 401);
    assert.match(outcome.firstMessage ?? '', /authentication_error/);
    assert.equal((await wsOutcome(`${t.wsUrl}/ws/stt?api_key=wrong`)).status, 401);
  });

  it('accepts a WebSocket key by header, bearer, query and subprotocol', async () => {
    const [k1, k2] = KEYS as [string, string];
    for (const outcome of [
      await wsOutcome(`${t.wsUrl}/ws/stt`, { headers: { 'X-API-Key': k1 } }),
      await wsOutcome(`${t.wsUrl}/ws/tts`, { headers: { Authorization: `Bearer ${k2}` } }),
      await wsOutcome(`${t.wsUrl}/ws/dialogue?api_key=${k1}`),
    ]) {
      assert.equal(outcome.status, 101);
      // past the handshake: a service greets (ready), a route still pending says why it closes (error)
      assert.match(outcome.firstMessage ?? '', /"type":"(ready|error)"/);
    }
    const viaProtocol = await wsOutcome(`${t.wsUrl}/ws/stt`, {}, ['gemma-3-api', `api_key.${k2}`]);
    assert.equal(viaProtocol.status, 101);
    assert.equal(viaProtocol.protocol, 'gemma-3-api');
  });

  it('rotates keys without a restart', async () => {
    let keys = ['before-rotation'];
    const app = await startApp({ env: { API_KEY_ENABLED: 'true', API_KEYS: 'unused' }, keySource: () => keys });
    try {
      const get = (key: string) => fetch(`${app.url}/v1/generate`, { method: 'POST', headers: { 'X-API-Key': key, 'content-type': 'application/json' }, body: '{"prompt":"hi"}' });
      assert.equal((await get('before-rotation')).status, 503);
      keys = ['after-rotation'];
      app.keys.reload();
      assert.equal((await get('before-rotation')).status, 401);
      assert.equal((await get('after-rotation')).status, 503);
    } finally {
      await app.close();
    }
  });

  it('echoes a sane request id, replaces an unsafe one, and logs it on every line of the request', async () => {
    const sane = await fetch(`${t.url}/health`, { headers: { 'X-Request-ID': 'abc-123.DEF:9' } });
    assert.equal(sane.headers.get('x-request-id'), 'abc-123.DEF:9');
    const unsafe = await fetch(`${t.url}/health`, { headers: { 'X-Request-ID': 'a b\u00e9<script>' } });
    assert.match(unsafe.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);

    const failing = await fetch(`${t.url}/v1/generate`, { method: 'POST', headers: { 'X-Request-ID': 'trace-me-42', 'X-API-Key': KEYS[0]!, 'content-type': 'application/json' }, body: '{"prompt":"hi"}' });
    assert.equal(failing.status, 503);
    const lines = t.logs.filter((l) => l.includes('trace-me-42')).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(lines.length >= 2, 'the rejection and the completion line');
    assert.ok(lines.every((l) => l.request_id === 'trace-me-42'));
    const done = lines.find((l) => l.msg === 'request completed');
    assert.ok(done);
    assert.equal(done.method, 'POST');
    assert.equal(done.route, '/v1/generate');
    assert.equal(done.status, 503);
    assert.equal(typeof done.latency_ms, 'number');
  });

  it('never writes keys or Authorization headers to the logs', async () => {
    const secret = 'super-secret-key-that-must-not-leak';
    recordSecrets([secret]);
    await fetch(`${t.url}/v1/dialogue`, { method: 'POST', headers: { 'X-API-Key': secret, Authorization: `Bearer ${secret}` } });
    await wsOutcome(`${t.wsUrl}/ws/stt?api_key=${secret}`);
    await wsOutcome(`${t.wsUrl}/ws/stt?api_key=${KEYS[0]}`);
    await fetch(`${t.url}/v1/dialogue`, { method: 'POST', headers: { Authorization: `Bearer ${KEYS[1]}` } });
    const all = t.logs.join('\n');
    assert.ok(all.includes('/ws/stt?api_key=[REDACTED]'), 'the WS request was logged, redacted');
    for (const s of [secret, ...KEYS]) assert.ok(!all.includes(s), `log contains ${s}`);
    assert.doesNotMatch(all, /"authorization"|"headers"/i);
  });

  it('labels HTTP metrics by route template, never the raw path', async () => {
    await fetch(`${t.url}/some/raw/path/12345`, { headers: { 'X-API-Key': KEYS[0]! } });
    await fetch(`${t.url}/health`);
    const text = await (await fetch(`${t.url}/metrics`)).text();
    assert.match(text, /http_request_duration_seconds_count\{method="GET",route="\/health",status_code="200"\} \d+/);
    assert.match(text, /http_request_duration_seconds_count\{method="GET",route="unmatched",status_code="404"\} \d+/);
    assert.doesNotMatch(text, /12345/);
    for (const family of ['dependency_duration_seconds', 'dialogue_turn_duration_seconds', 'process_cpu_seconds_total']) {
      assert.match(text, new RegExp(`# TYPE ${family} `));
    }
  });
});

describe('protected /metrics and /docs', () => {
  it('require the key when configured', async () => {
    const t = await startApp({ env: { API_KEY_ENABLED: 'true', API_KEYS: 'k', METRICS_REQUIRE_API_KEY: 'true', DOCS_REQUIRE_API_KEY: 'true' } });
    try {
      assert.equal((await fetch(`${t.url}/metrics`)).status, 401);
      assert.equal((await fetch(`${t.url}/docs/`)).status, 401);
      assert.equal((await fetch(`${t.url}/metrics`, { headers: { 'X-API-Key': 'k' } })).status, 200);
      assert.equal((await fetch(`${t.url}/health`)).status, 200);
    } finally {
      await t.close();
    }
  });
});
