/** CORS, WebSocket origin checks, security headers and per-key rate limits (in Redis across replicas). */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startApp, type TestApp } from '../helpers/app.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { handshakeStatus } from '../helpers/ws.ts';

const LIGHT = { GEMMA_MODEL: '/absent.gguf', ENABLE_LOCAL_WHISPER: 'false' };

/** The handshake's outcome: 101, or the refusal's status. `host` stands in for the Host header a browser would send. */
function handshake(url: string, origin?: string, host?: string): Promise<number> {
  return handshakeStatus(url, { ...(origin ? { origin } : {}), ...(host ? { headers: { host } } : {}) });
}

describe('protection', () => {
  const apps: TestApp[] = [];
  let redis: TestRedis;
  const app = async (env: Record<string, string>) => {
    const t = await startApp({ env: { ...LIGHT, ...env } });
    apps.push(t);
    return t;
  };
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    for (const t of apps) await t.close();
    await redis.stop();
  });

  it('CORS: only the origins in CORS_ORIGINS get CORS headers (none by default)', async () => {
    const open = await app({ CORS_ORIGINS: 'http://allowed.test' });
    const preflight = (t: TestApp, origin: string) =>
      fetch(`${t.url}/v1/generate`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-api-key' } });
    const allowed = await preflight(open, 'http://allowed.test');
    assert.equal(allowed.status, 204);
    assert.equal(allowed.headers.get('access-control-allow-origin'), 'http://allowed.test');
    assert.equal((await preflight(open, 'http://evil.test')).headers.get('access-control-allow-origin'), null);
    const simple = await fetch(`${open.url}/health`, { headers: { origin: 'http://allowed.test' } });
    assert.match(simple.headers.get('access-control-expose-headers') ?? '', /X-Request-ID/);
    const closed = await app({});
    assert.equal((await preflight(closed, 'http://allowed.test')).headers.get('access-control-allow-origin'), null);
  });

  it('a WebSocket handshake to an HTTP route is refused with 400 not_a_websocket_route (not accepted and closed)', async () => {
    const t = await app({});
    assert.equal(await handshake(`${t.wsUrl}/health`), 400);
    assert.equal(await handshake(`${t.wsUrl}/v1/models`), 400);
    assert.equal(await handshake(`${t.wsUrl}/no-such-route`), 404);
    assert.equal(await handshake(`${t.wsUrl}/ws/tts`), 101, 'a WebSocket route still opens');
    assert.equal((await fetch(`${t.url}/health`)).status, 200);
  });

  it('WebSockets: a page from another origin is refused (403) unless allowed; same origin and non-browser clients pass', async () => {
    const t = await app({});
    const url = `${t.wsUrl}/ws/tts`;
    assert.equal(await handshake(url, 'http://evil.test'), 403);
    assert.equal(await handshake(url, t.url), 101, 'same origin (the served playground)');
    assert.equal(await handshake(url), 101, 'no Origin: not a browser');
    const allowing = await app({ CORS_ORIGINS: 'http://allowed.test' });
    assert.equal(await handshake(`${allowing.wsUrl}/ws/tts`, 'http://allowed.test'), 101);
    assert.equal(await handshake(`${allowing.wsUrl}/ws/tts`, 'http://evil.test'), 403);
  });

  it('WebSockets: a DNS-rebinding page (its own name in Origin and Host) is refused; PUBLIC_ORIGINS and loopback names pass', async () => {
    const t = await app({});
    const port = new URL(t.url).port;
    const url = `${t.wsUrl}/ws/tts`;
    // evil.test resolved to this address after its page loaded: Origin and Host agree, and prove nothing
    assert.equal(await handshake(url, `http://evil.test:${port}`, `evil.test:${port}`), 403);
    // the playground served at a loopback name or an IP address, same host and port
    assert.equal(await handshake(url, `http://localhost:${port}`, `localhost:${port}`), 101);
    assert.equal(await handshake(url, `http://[::1]:${port}`, `[::1]:${port}`), 101);
    assert.equal(await handshake(url, `http://localhost:1`, `localhost:${port}`), 403, 'another port is another origin');
    const named = await app({ PUBLIC_ORIGINS: `https://voice.example.test, http://evil.test:${port}` });
    const namedPort = new URL(named.url).port;
    assert.equal(await handshake(`${named.wsUrl}/ws/tts`, 'https://voice.example.test', 'voice.example.test'), 101, 'behind a proxy: the configured public origin');
    assert.equal(await handshake(`${named.wsUrl}/ws/tts`, `http://evil.test:${namedPort}`, `evil.test:${namedPort}`), 403, 'listed for another port');
  });

  it('security headers on every answer; a content security policy on the playground', async () => {
    const t = await app({});
    const api = await fetch(`${t.url}/health`);
    assert.equal(api.headers.get('x-content-type-options'), 'nosniff');
    assert.ok(api.headers.get('strict-transport-security'));
    const page = await fetch(`${t.url}/playground/`);
    assert.equal(page.status, 200, 'npm test builds the playground first (npm run build -w frontend)');
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'; script-src 'self'/);
    assert.equal(api.headers.get('content-security-policy'), null, 'JSON and audio answers need no policy');
  });

  it('rate limit per key: 429 with Retry-After in the envelope; other keys and /health unaffected', async () => {
    const t = await app({ RATE_LIMIT_PER_MINUTE: '3', API_KEY_ENABLED: 'true', API_KEYS: 'rate-key-a-01,rate-key-b-01' });
    const call = (key: string) => fetch(`${t.url}/v1/audio/voices`, { headers: { 'X-API-Key': key } });
    for (let i = 0; i < 3; i++) assert.equal((await call('rate-key-a-01')).status, 200);
    const limited = await call('rate-key-a-01');
    assert.equal(limited.status, 429);
    assert.ok(Number(limited.headers.get('retry-after')) > 0);
    const body = (await limited.json()) as { error: { code: string; type: string }; request_id: string };
    assert.equal(body.error.code, 'rate_limited');
    assert.equal(body.error.type, 'rate_limit_error');
    assert.equal((await call('rate-key-b-01')).status, 200);
    for (let i = 0; i < 5; i++) assert.equal((await fetch(`${t.url}/health`)).status, 200);
  });

  it('with Redis the limit is shared by the replicas', async () => {
    const env = { RATE_LIMIT_PER_MINUTE: '4', REDIS_URL: redis.url };
    const [a, b] = [await app(env), await app(env)];
    const statuses = [];
    for (const t of [a, b, a, b, a]) statuses.push((await fetch(`${t.url}/v1/audio/voices`)).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 429]);
  });
});
