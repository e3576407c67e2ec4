/**
 * Session memory in a real Redis (redis-server on a free loopback port, no persistence) shared by
 * two real gateway processes: a conversation moves between replicas, concurrent turns are never
 * lost, a replica killed mid-turn loses no completed turn, and Redis going away is a clear 503
 * (or a flagged fallback to memory when configured).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startApp } from '../helpers/app.ts';
import { loopingGemmaPath, tinyGemmaPath } from '../helpers/models.ts';
import { freePort, spawnService, waitForHealth, type ServiceProcess } from '../helpers/process.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

const REPLY = 'Hello from the tiny Gemma model.';

interface TurnBody {
  reply_text: string;
  usage: { prompt_tokens: number };
  degraded: { stage: string; reason: string }[];
  error?: { code: string; message: string };
}

async function turn(url: string, body: Record<string, unknown>) {
  const res = await fetch(`${url}/v1/dialogue`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ response_modalities: ['text'], ...body }) });
  return { status: res.status, body: (await res.json()) as TurnBody };
}

async function history(url: string, id: string): Promise<[string, string][]> {
  const res = await fetch(`${url}/v1/sessions/${id}`);
  if (res.status === 404) return [];
  return ((await res.json()) as { turns: { role: string; content: string }[] }).turns.map((t) => [t.role, t.content]);
}

async function gateway(env: Record<string, string>): Promise<ServiceProcess> {
  const port = await freePort();
  const service = spawnService({ ENABLE_LOCAL_WHISPER: 'false', TTS_BACKEND: 'embedded', LOG_LEVEL: 'warn', ...env }, port);
  await waitForHealth(service.url);
  for (let i = 0; i < 200; i++) {
    const ready = (await (await fetch(`${service.url}/health/ready`)).json()) as { capabilities: { llm: { status: string } } };
    if (ready.capabilities.llm.status === 'ready') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return service;
}

describe('sessions in Redis across two gateway processes', () => {
  let redis: TestRedis;
  let a: ServiceProcess;
  let b: ServiceProcess;
  before(async () => {
    redis = await startRedis();
    // A runs the model that never stops on its own (so a turn can be caught mid-way), B the normal one
    [a, b] = await Promise.all([gateway({ REDIS_URL: redis.url, GEMMA_MODEL: loopingGemmaPath() }), gateway({ REDIS_URL: redis.url, GEMMA_MODEL: tinyGemmaPath() })]);
  });
  after(async () => {
    a?.child.kill('SIGKILL');
    b?.child.kill('SIGKILL');
    await redis?.stop();
  });

  it('turn 1 on A, turn 2 on B: B sees turn 1', async () => {
    const first = await turn(a.url, { text: 'Hello A.', session_id: 'across', max_tokens: 6 });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.reply_text, REPLY);
    const second = await turn(b.url, { text: 'Hello B.', session_id: 'across' });
    assert.equal(second.status, 200);
    const fresh = await turn(b.url, { text: 'Hello B.', session_id: 'unrelated' });
    assert.ok(second.body.usage.prompt_tokens > fresh.body.usage.prompt_tokens + 10, 'turn 1 is in the prompt of turn 2');
    assert.deepEqual(await history(a.url, 'across'), [
      ['user', 'Hello A.'],
      ['assistant', REPLY],
      ['user', 'Hello B.'],
      ['assistant', REPLY],
    ]);
    const metrics = await (await fetch(`${b.url}/metrics`)).text();
    assert.match(metrics, /dependency_duration_seconds_count\{dependency="redis",operation="append",outcome="success"\} [1-9]/);
  });

  it('concurrent turns of one conversation on both replicas: none is lost', async () => {
    await Promise.all(Array.from({ length: 6 }, (_, i) => turn(i % 2 ? a.url : b.url, { text: `turn ${i}`, session_id: 'busy', max_tokens: 6 })));
    const turns = await history(b.url, 'busy');
    assert.equal(turns.length, 12);
    assert.deepEqual(turns.filter(([role]) => role === 'user').map(([, text]) => text).sort(), ['turn 0', 'turn 1', 'turn 2', 'turn 3', 'turn 4', 'turn 5']);
    for (let i = 0; i < turns.length; i += 2) assert.deepEqual([turns[i]![0], turns[i + 1]![0]], ['user', 'assistant'], 'each reply is stored right after its question');
  });

  it('kill -9 of A mid-turn: the conversation continues on B with every completed turn', async () => {
    assert.equal((await turn(a.url, { text: 'Completed on A.', session_id: 'crash', max_tokens: 6 })).status, 200);
    const controller = new AbortController();
    const res = await fetch(`${a.url}/v1/dialogue`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'Talk forever.', session_id: 'crash', stream: true, max_tokens: 100000, response_modalities: ['text'] }),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    await reader.read(); // A is mid-turn
    a.child.kill('SIGKILL');
    await a.exited;
    await reader.read().catch(() => undefined);
    const next = await turn(b.url, { text: 'Carry on, B.', session_id: 'crash' });
    assert.equal(next.status, 200);
    assert.deepEqual(await history(b.url, 'crash'), [
      ['user', 'Completed on A.'],
      ['assistant', REPLY],
      ['user', 'Carry on, B.'],
      ['assistant', REPLY],
    ]);
  });

  it('Redis unreachable: 503 session_store_unavailable and readiness says so', async () => {
    await redis.stop();
    const res = await turn(b.url, { text: 'Anyone?', session_id: 'outage' });
    assert.equal(res.status, 503);
    assert.equal(res.body.error!.code, 'session_store_unavailable');
    const ready = await fetch(`${b.url}/health/ready`);
    assert.equal(ready.status, 503);
    const body = (await ready.json()) as { sessions: { store: string; status: string; detail: string } };
    assert.equal(body.sessions.store, 'redis');
    assert.equal(body.sessions.status, 'not_ready');
    assert.equal((await fetch(`${b.url}/v1/sessions/outage`)).status, 503);
  });
});

describe('Redis fallback to memory (SESSION_REDIS_FALLBACK=true)', () => {
  it('keeps serving from memory while Redis is down, and says so on each turn', async () => {
    const port = await freePort(); // nothing listens there
    const t = await startApp({ env: { REDIS_URL: `redis://127.0.0.1:${port}/0`, SESSION_REDIS_FALLBACK: 'true', GEMMA_MODEL: tinyGemmaPath(), ENABLE_LOCAL_WHISPER: 'false' } });
    try {
      const first = await turn(t.url, { text: 'One.', session_id: 'fallback' });
      assert.equal(first.status, 200);
      assert.equal(first.body.degraded[0]!.stage, 'session');
      assert.match(first.body.degraded[0]!.reason, /memory only/);
      await turn(t.url, { text: 'Two.', session_id: 'fallback' });
      assert.equal((await history(t.url, 'fallback')).length, 4);
    } finally {
      await t.close();
    }
  });
});
