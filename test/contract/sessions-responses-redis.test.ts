/**
 * Stored /v1/responses in a real Redis shared by two real gateway processes: a conversation
 * started on one replica continues on the other through previous_response_id, each record
 * expires after SESSION_TTL_SECONDS, a response belongs to the key that created it everywhere, and
 * Redis going away (or full) is a 503 — or, once a stream has started, `response.failed`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { TINY_GEMMA_REPLY } from '../../scripts/models/tiny-gemma.ts';
import { tinyGemmaPath } from '../helpers/models.ts';
import { freePort, spawnService, waitForHealth, type ServiceProcess } from '../helpers/process.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

const KEYS = ['sk-replica-owner', 'sk-replica-other'];

async function gateway(env: Record<string, string>): Promise<ServiceProcess> {
  const port = await freePort();
  const service = spawnService({ ENABLE_LOCAL_WHISPER: 'false', TTS_BACKEND: 'embedded', LOG_LEVEL: 'warn', LLM_DEVICE: 'cpu', LLM_CONTEXT_SIZE: '1024', ...env }, port);
  await waitForHealth(service.url);
  for (let i = 0; i < 200; i++) {
    const ready = (await (await fetch(`${service.url}/health/ready`, { headers: { authorization: `Bearer ${KEYS[0]}` } })).json()) as { capabilities: { llm: { status: string } } };
    if (ready.capabilities.llm.status === 'ready') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return service;
}

describe('stored responses in Redis across two gateway processes', () => {
  let redis: TestRedis;
  let a: ServiceProcess;
  let b: ServiceProcess;
  before(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, GEMMA_MODEL: tinyGemmaPath(), API_KEY_ENABLED: 'true', API_KEYS: KEYS.join(','), SESSION_TTL_SECONDS: '600' };
    [a, b] = await Promise.all([gateway(env), gateway(env)]);
  });
  after(async () => {
    a?.child.kill('SIGKILL');
    b?.child.kill('SIGKILL');
    await redis?.stop();
  });

  it('created on A, continued, retrieved, listed and deleted on B', async () => {
    const onA = new OpenAI({ baseURL: `${a.url}/v1`, apiKey: KEYS[0], maxRetries: 0 });
    const onB = new OpenAI({ baseURL: `${b.url}/v1`, apiKey: KEYS[0], maxRetries: 0 });
    const first = await onA.responses.create({ model: 'g', input: 'My name is Ada and I like long, detailed answers about mountains.' });
    assert.equal(first.output_text, TINY_GEMMA_REPLY);

    const second = await onB.responses.create({ model: 'g', input: 'What is my name?', previous_response_id: first.id });
    const fresh = await onB.responses.create({ model: 'g', input: 'What is my name?', store: false });
    assert.equal(second.previous_response_id, first.id);
    assert.ok(second.usage!.input_tokens > fresh.usage!.input_tokens + 10, `B saw A's turn (${second.usage!.input_tokens} vs ${fresh.usage!.input_tokens})`);

    // streamed on B, continued on A: the record is written before response.completed is sent
    const streamed = await onB.responses.stream({ model: 'g', input: 'And again?', previous_response_id: second.id }).finalResponse();
    const third = await onA.responses.create({ model: 'g', input: 'Once more?', previous_response_id: streamed.id });
    assert.ok(third.usage!.input_tokens > second.usage!.input_tokens);

    assert.equal((await onB.responses.retrieve(first.id)).output_text, TINY_GEMMA_REPLY);
    const items = await onB.responses.inputItems.list(first.id);
    assert.deepEqual(
      items.data.map((i) => (i.type === 'message' ? (i.content[0] as { text: string }).text : '')),
      ['My name is Ada and I like long, detailed answers about mountains.'],
    );
    const ttl = Number((await promisify(execFile)('redis-cli', ['-p', String(redis.port), 'TTL', `gemma-3-api:record:response:${first.id}`])).stdout.trim());
    assert.ok(ttl > 500 && ttl <= 600, `the record expires after SESSION_TTL_SECONDS (ttl ${ttl})`);

    const stranger = new OpenAI({ baseURL: `${a.url}/v1`, apiKey: KEYS[1], maxRetries: 0 });
    await assert.rejects(stranger.responses.retrieve(first.id), (e: unknown) => e instanceof OpenAI.NotFoundError);

    await onB.responses.delete(first.id);
    await assert.rejects(onA.responses.retrieve(first.id), (e: unknown) => e instanceof OpenAI.NotFoundError);
    await assert.rejects(onA.responses.create({ model: 'g', input: 'Hi', previous_response_id: first.id }), (e: unknown) => e instanceof OpenAI.NotFoundError);
  });

  it('Redis full: a stream ends with response.failed (sequence numbers intact), a plain request is a 503', async () => {
    const cli = (...args: string[]) => promisify(execFile)('redis-cli', ['-p', String(redis.port), ...args]);
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${KEYS[0]}` };
    await cli('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
    await cli('CONFIG', 'SET', 'maxmemory', '1'); // every write is refused (OOM), reads still work
    try {
      const streamed = await fetch(`${a.url}/v1/responses`, { method: 'POST', headers, body: JSON.stringify({ input: 'Hi', stream: true }) });
      assert.equal(streamed.status, 200);
      const events = (await streamed.text())
        .split('\n\n')
        .filter(Boolean)
        .map((block) => JSON.parse(/^data: (.*)$/m.exec(block)![1]!) as { type: string; sequence_number: number; response?: { status: string; error: { code: string; message: string } } });
      assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i));
      assert.deepEqual(events.slice(0, 4).map((e) => e.type), ['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added']);
      const last = events.at(-1)!;
      assert.equal(last.type, 'response.failed');
      assert.equal(last.response?.status, 'failed');
      assert.equal(last.response?.error.code, 'session_store_unavailable');
      assert.ok(!events.some((e) => e.type === 'response.completed'));

      const plain = await fetch(`${b.url}/v1/responses`, { method: 'POST', headers, body: JSON.stringify({ input: 'Hi' }) });
      assert.equal(plain.status, 503);
      assert.equal(((await plain.json()) as { error: { code: string } }).error.code, 'session_store_unavailable');
    } finally {
      await cli('CONFIG', 'SET', 'maxmemory', '0');
    }
  });

  it('Redis gone: 503 before any generation (also on stream: true, as JSON); store: false still answers', async () => {
    await redis.kill();
    try {
      const headers = { 'content-type': 'application/json', authorization: `Bearer ${KEYS[0]}` };
      const generated = async () => {
        const text = await (await fetch(`${a.url}/metrics`, { headers })).text();
        return [...text.matchAll(/dependency_duration_seconds_count\{dependency="llama-cpp",operation="(?:generate|stream)",outcome="[a-z_]+"\} (\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
      };
      for (let i = 0; i < 100; i++) {
        const ready = (await (await fetch(`${a.url}/health/ready`, { headers })).json()) as { sessions: { status: string } };
        if (ready.sessions.status === 'not_ready') break; // the replica has seen the outage
        await new Promise((r) => setTimeout(r, 50));
      }
      const before = await generated();
      assert.ok(before > 0, 'the metric is there to compare');
      for (const stream of [false, true]) {
        const res = await fetch(`${a.url}/v1/responses`, { method: 'POST', headers, body: JSON.stringify({ input: 'Hi', stream }) });
        assert.equal(res.status, 503, `stream: ${stream}`);
        assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
        assert.equal(res.headers.get('retry-after'), '1');
        assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'session_store_unavailable');
      }
      assert.equal(await generated(), before, 'no generation was spent on an answer that could not be stored');
      const unstored = new OpenAI({ baseURL: `${a.url}/v1`, apiKey: KEYS[0], maxRetries: 0 });
      assert.equal((await unstored.responses.create({ model: 'g', input: 'Hi', store: false })).output_text, TINY_GEMMA_REPLY);
    } finally {
      await redis.restart();
    }
  });
});
