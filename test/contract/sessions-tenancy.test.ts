/**
 * Sessions belong to the API key that created them (src/tenancy.ts): on a real service process,
 * with the in-process store and with Redis, another key cannot read, continue (/v1/dialogue,
 * /ws/dialogue) or delete them — it sees them as absent, and its own session of the same id is
 * another conversation. Redis never holds the key itself.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { tinyGemmaPath } from '../helpers/models.ts';
import { freePort, spawnService, waitForHealth, type ServiceProcess } from '../helpers/process.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { eventLog } from '../helpers/ws.ts';

const KEY_A = 'tenant-key-a-3f9c1e';
const KEY_B = 'tenant-key-b-8d20a7';

async function gateway(env: Record<string, string>): Promise<ServiceProcess> {
  const port = await freePort();
  const service = spawnService({ GEMMA_MODEL: tinyGemmaPath(), ENABLE_LOCAL_WHISPER: 'false', TTS_BACKEND: 'embedded', LOG_LEVEL: 'warn', API_KEY_ENABLED: 'true', API_KEYS: `${KEY_A},${KEY_B}`, ...env }, port);
  await waitForHealth(service.url);
  for (let i = 0; i < 300; i++) {
    const ready = (await (await fetch(`${service.url}/health/ready`)).json()) as { capabilities: { llm: { status: string } } };
    if (ready.capabilities.llm.status === 'ready') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return service;
}

const turn = async (url: string, key: string, text: string, sessionId: string) => {
  const res = await fetch(`${url}/v1/dialogue`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': key }, body: JSON.stringify({ text, session_id: sessionId, response_modalities: ['text'], max_tokens: 6 }) });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as { session_id: string };
};

const history = async (url: string, key: string, id: string) => {
  const res = await fetch(`${url}/v1/sessions/${id}`, { headers: { 'x-api-key': key } });
  if (res.status !== 200) return { status: res.status, code: ((await res.json()) as { error: { code: string } }).error.code, users: [] as string[] };
  const body = (await res.json()) as { turns: { role: string; content: string }[] };
  return { status: 200, code: null, users: body.turns.filter((t) => t.role === 'user').map((t) => t.content) };
};

/** One typed turn on /ws/dialogue, as `key`, continuing `sessionId`. */
async function wsTurn(wsUrl: string, key: string, sessionId: string, text: string): Promise<string> {
  const ws = new WebSocket(`${wsUrl}/ws/dialogue?session_id=${sessionId}&response_modalities=text`, { headers: { 'x-api-key': key } });
  const log = eventLog(ws);
  try {
    const ready = await log.waitFor((e) => e.type === 'ready', 30_000);
    ws.send(JSON.stringify({ type: 'text', text }));
    await log.waitFor((e) => e.type === 'reply.done' || e.type === 'error', 60_000);
    return ready.session_id as string;
  } finally {
    ws.close();
  }
}

for (const store of ['memory', 'redis'] as const) {
  describe(`sessions are scoped to the API key (${store} store)`, () => {
    let service: ServiceProcess;
    let redis: TestRedis | undefined;
    before(async () => {
      if (store === 'redis') redis = await startRedis();
      service = await gateway(redis ? { REDIS_URL: redis.url } : {});
    });
    after(async () => {
      service?.child.kill('SIGKILL');
      await redis?.stop();
    });

    it('another key sees A\'s session as absent: read, continue (HTTP and WebSocket), delete', async () => {
      const url = service.url;
      const wsUrl = url.replace(/^http/, 'ws');
      await turn(url, KEY_A, 'Hello from A.', 'shared-id');
      assert.deepEqual((await history(url, KEY_A, 'shared-id')).users, ['Hello from A.']);

      assert.deepEqual(await history(url, KEY_B, 'shared-id'), { status: 404, code: 'session_not_found', users: [] });
      const deleted = await fetch(`${url}/v1/sessions/shared-id`, { method: 'DELETE', headers: { 'x-api-key': KEY_B } });
      assert.equal(deleted.status, 404);

      // continuing "shared-id" as B starts B's own conversation of that id
      assert.equal((await turn(url, KEY_B, 'Hello from B.', 'shared-id')).session_id, 'shared-id');
      assert.equal(await wsTurn(wsUrl, KEY_B, 'shared-id', 'B again, by WebSocket.'), 'shared-id');
      assert.deepEqual((await history(url, KEY_B, 'shared-id')).users, ['Hello from B.', 'B again, by WebSocket.']);
      assert.deepEqual((await history(url, KEY_A, 'shared-id')).users, ['Hello from A.'], 'A\'s conversation is untouched');

      // A continues its own by WebSocket; B deletes its own, A's stays
      await wsTurn(wsUrl, KEY_A, 'shared-id', 'A by WebSocket.');
      assert.deepEqual((await history(url, KEY_A, 'shared-id')).users, ['Hello from A.', 'A by WebSocket.']);
      assert.equal((await fetch(`${url}/v1/sessions/shared-id`, { method: 'DELETE', headers: { 'x-api-key': KEY_B } })).status, 204);
      assert.equal((await history(url, KEY_B, 'shared-id')).status, 404);
      assert.deepEqual((await history(url, KEY_A, 'shared-id')).users, ['Hello from A.', 'A by WebSocket.']);

      if (redis) {
        const { stdout } = await promisify(execFile)('redis-cli', ['-p', String(redis.port), '--scan', '--pattern', '*']);
        // the transcription-job queue's own keys (BullMQ's bookkeeping) are not sessions
        const keys = stdout.split('\n').filter((k) => k && !k.startsWith('gemma-3-api:transcription-jobs:'));
        assert.equal(keys.length, 1, keys.join(', '));
        assert.match(keys[0]!, /^gemma-3-api:session:[0-9a-f]{32}\/shared-id$/, 'scoped by a digest of the key');
        assert.ok(!keys[0]!.includes(KEY_A), 'never the key itself');
      }
    });
  });
}
