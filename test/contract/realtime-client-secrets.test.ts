/**
 * Ephemeral /v1/realtime keys against the keys that mint them: a revoked key's unused secrets open
 * nothing, and one tenant cannot use up the replica's outstanding secrets for the others (found by
 * an outside review: a secret outlived its key's revocation by up to 2 h, and one key minting
 * 10,000 secrets left every tenant with 429s until they expired).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { startApp, type TestApp } from '../helpers/app.ts';
import { tinyGemmaPath } from '../helpers/models.ts';
import { recordSecrets } from '../helpers/test-logs.ts';
import { MAX_PER_TENANT } from '../../src/realtime/client-secrets.ts';

const A = 'client-secrets-key-a';
const B = 'client-secrets-key-b';
const C = 'client-secrets-key-c';

/** The handshake's status: 101 when the socket opened (closed at once), else the HTTP refusal. */
function handshake(url: string, key: string): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, ['realtime', `openai-insecure-api-key.${key}`]);
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.once('error', () => undefined);
  });
}

describe('ephemeral realtime keys and the keys that mint them', () => {
  let t: TestApp;
  let keys = [A, B, C];
  before(async () => {
    t = await startApp({ env: { API_KEY_ENABLED: 'true', API_KEYS: [A, B, C].join(','), GEMMA_MODEL: tinyGemmaPath(), ENABLE_LOCAL_WHISPER: 'false' }, keySource: () => keys });
  });
  after(() => t.close());

  const mint = async (key: string, seconds = 600) => {
    const res = await t.app.inject({ method: 'POST', url: '/v1/realtime/client_secrets', headers: { authorization: `Bearer ${key}` }, payload: { expires_after: { anchor: 'created_at', seconds } } });
    const body = res.json() as { value?: string; error?: { code: string } };
    if (body.value) recordSecrets([body.value]);
    return { status: res.statusCode, retryAfter: res.headers['retry-after'], body };
  };

  it('a secret minted by a key that is revoked since opens nothing; the other keys\u2019 secrets still do', async () => {
    const fromA = await mint(A);
    const unusedFromA = await mint(A);
    const fromB = await mint(B);
    assert.equal(fromA.status, 200);
    keys = [B, C];
    t.keys.reload(); // what SIGHUP or a changed API_KEYS_FILE does
    const url = `${t.wsUrl}/v1/realtime`;
    assert.equal(await handshake(url, fromA.body.value!), 401, "the revoked key's secret");
    assert.equal(await handshake(url, fromB.body.value!), 101, "a still valid key's secret");
    assert.equal((await mint(A)).status, 401, 'the revoked key mints no more');
    // listed again, the key mints anew, but what it minted before its revocation stays dead
    keys = [A, B, C];
    t.keys.reload();
    assert.equal(await handshake(url, unusedFromA.body.value!), 401, 'a secret of the revoked key, never tried, the key listed again');
    assert.equal((await mint(A)).status, 200);
    keys = [B, C];
    t.keys.reload();
  });

  it(`one key holds at most ${MAX_PER_TENANT} unused secrets (429 with Retry-After until one expires); another key still mints`, async () => {
    for (let i = 0; i < MAX_PER_TENANT; i++) assert.equal((await mint(B, 120)).status, 200);
    const refused = await mint(B, 120);
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error?.code, 'too_many_client_secrets');
    const retryAfter = Number(refused.retryAfter);
    assert.ok(retryAfter >= 100 && retryAfter <= 600, `Retry-After ${refused.retryAfter}: until B's first secret expires`);
    assert.equal((await mint(C)).status, 200, 'another tenant is not refused');
  });

  it('the sockets a key holds open close when it is revoked (error invalid_api_key, close 1008), those opened with its ephemeral keys too; other keys\' stay open', async () => {
    const open = (path: string, key: string) =>
      new Promise<{ ws: WebSocket; events: { type: string; error?: { code: string } }[]; closed: Promise<number> }>((resolve, reject) => {
        const ws = path === '/v1/realtime' ? new WebSocket(`${t.wsUrl}${path}`, ['realtime', `openai-insecure-api-key.${key}`]) : new WebSocket(`${t.wsUrl}${path}`, { headers: { authorization: `Bearer ${key}` } });
        const events: { type: string; error?: { code: string } }[] = [];
        ws.on('message', (data, binary) => binary || events.push(JSON.parse(data.toString())));
        const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
        ws.once('open', () => resolve({ ws, events, closed }));
        ws.once('error', reject);
      });
    const ephemeral = await mint(C);
    const held = [await open('/v1/realtime', C), await open('/v1/realtime', ephemeral.body.value!), await open('/ws/tts', C)];
    const other = await open('/v1/realtime', B);
    keys = [B];
    t.keys.reload();
    for (const socket of held) {
      assert.equal(await Promise.race([socket.closed, new Promise((r) => setTimeout(() => r('still open after 10 s'), 10_000))]), 1008);
      assert.ok(socket.events.some((e) => e.type === 'error' && e.error?.code === 'invalid_api_key'), JSON.stringify(socket.events.map((e) => e.type)));
    }
    assert.equal(other.ws.readyState, WebSocket.OPEN, "another key's socket stays open");
    other.ws.close();
  });
});
