/** LLM_BACKEND=openai against a local fake OpenAI-compatible server (vLLM/Ollama/OpenAI stand-in). */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import OpenAI from 'openai';
import { startApp, type TestApp } from '../helpers/app.ts';
import { freePort } from '../helpers/process.ts';
import { startFakeOpenAi, type FakeOpenAi } from '../fakes/openai-server.ts';

describe('remote OpenAI-compatible LLM backend', () => {
  let fake: FakeOpenAi;
  let t: TestApp;
  let client: OpenAI;
  before(async () => {
    fake = await startFakeOpenAi();
    t = await startApp({ env: { LLM_BACKEND: 'openai', LLM_API_BASE: fake.url, LLM_API_KEY: 'upstream-key', LLM_MODEL: 'fake-gemma', LLM_MAX_RETRIES: '2', LLM_TIMEOUT_SECONDS: '2' } });
    client = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  after(async () => {
    await t.close();
    await fake.close();
  });
  beforeEach(() => {
    fake.requests.length = 0;
    fake.failures.length = 0;
    fake.delayMs = 0;
    fake.cutStreamAfter = undefined;
  });

  it('is ready once the upstream answers /models, and lists the model', async () => {
    const ready = (await (await fetch(`${t.url}/health/ready`)).json()) as { capabilities: { llm: { status: string } } };
    assert.equal(ready.capabilities.llm.status, 'ready');
    assert.deepEqual((await client.models.list()).data.filter((m) => (m as { capability?: string }).capability === 'llm').map((m) => m.id), ['fake-gemma']);
  });

  it('passes chat through (streamed upstream), with the upstream key and model', async () => {
    const completion = await client.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'Hi' }] });
    assert.equal(completion.choices[0]?.message.content, 'Hello from the fake server.');
    assert.equal(completion.usage?.prompt_tokens, 11);
    const upstream = fake.requests.at(-1)!;
    assert.equal(upstream.path, '/v1/chat/completions');
    assert.equal(upstream.authorization, 'Bearer upstream-key');
    assert.equal(upstream.body.model, 'fake-gemma');
    assert.equal(upstream.body.stream, true);
    assert.deepEqual(upstream.body.messages, [{ role: 'user', content: 'Hi' }]);
    assert.equal('temperature' in upstream.body, false, "sampling the client did not set is left to the server's defaults");
  });

  it("labels the remote engine's calls in the metrics with its own id, not the embedded engine's", async () => {
    await client.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'Hi' }] });
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    assert.match(metrics, /dependency_duration_seconds_count\{dependency="openai",operation="generate",outcome="success"\} [1-9]/);
    assert.doesNotMatch(metrics, /dependency="(gemma|llama-cpp)"/);
    assert.match(metrics, /llm_time_to_first_token_seconds_count\{engine="openai"\} [1-9]/);
  });

  it('passes the sampling settings and penalties the client set to the upstream', async () => {
    await client.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'Hi' }], temperature: 0.3, top_p: 0.9, seed: 7, presence_penalty: 0.5, frequency_penalty: -0.25 });
    const body = fake.requests.at(-1)!.body;
    assert.deepEqual(
      { temperature: body.temperature, top_p: body.top_p, seed: body.seed, presence_penalty: body.presence_penalty, frequency_penalty: body.frequency_penalty },
      { temperature: 0.3, top_p: 0.9, seed: 7, presence_penalty: 0.5, frequency_penalty: -0.25 },
    );
  });

  it('streams deltas through /v1/generate and maps raw prompts to /completions', async () => {
    const res = await fetch(`${t.url}/v1/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'Hi', stream: true, max_tokens: 3 }) });
    const text = await res.text();
    assert.equal((text.match(/event: delta/g) ?? []).length, 3);
    assert.match(text, /"finish_reason":"length"/);
    const raw = await fetch(`${t.url}/v1/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'Once', raw: true }) });
    assert.equal(((await raw.json()) as { generated_text: string }).generated_text, 'Hello from the fake server.');
    assert.equal(fake.requests.at(-1)!.path, '/v1/completions');
  });

  it('retries 429 and 5xx with backoff, then succeeds', async () => {
    fake.failures.push(429, 503);
    const completion = await client.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'Hi' }] });
    assert.equal(completion.choices[0]?.message.content, 'Hello from the fake server.');
    assert.equal(fake.requests.length, 3);
  });

  it('gives up after LLM_MAX_RETRIES with a 502 upstream_error envelope', async () => {
    fake.failures.push(500, 500, 500);
    const res = await fetch(`${t.url}/v1/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'Hi' }) });
    assert.equal(res.status, 502);
    const body = (await res.json()) as { error: { type: string; code: string } };
    assert.equal(body.error.type, 'upstream_error');
    assert.equal(body.error.code, 'upstream_failed');
    assert.equal(fake.requests.length, 3);
  });

  it('forwards a json_schema response_format, and refuses one past the GRAMMAR_* bounds with 400 before calling the upstream', async () => {
    const schema = { type: 'object', properties: { mood: { type: 'string', enum: ['happy', 'sad'] } }, required: ['mood'] };
    await client.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'Hi' }], response_format: { type: 'json_schema', json_schema: { name: 'mood', schema } } });
    assert.deepEqual((fake.requests.at(-1)!.body.response_format as { json_schema: { schema: unknown } }).json_schema.schema, schema);
    fake.requests.length = 0;
    let deep: unknown = { type: 'string' };
    for (let i = 0; i < 3000; i++) deep = { type: 'array', items: deep };
    const tooMany = { enum: Array.from({ length: 5000 }, (_, i) => `v${i}`) };
    for (const [bad, variable] of [[deep, 'GRAMMAR_MAX_DEPTH'], [tooMany, 'GRAMMAR_MAX_ENUM_VALUES']] as const) {
      const res = await fetch(`${t.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'x', messages: [{ role: 'user', content: 'Hi' }], response_format: { type: 'json_schema', json_schema: { name: 'bad', schema: bad } } }),
      });
      assert.equal(res.status, 400);
      const envelope = (await res.json()) as { error: { code: string; param: string; message: string } };
      assert.equal(envelope.error.code, 'invalid_value');
      assert.equal(envelope.error.param, 'response_format');
      assert.match(envelope.error.message, new RegExp(variable));
    }
    assert.equal(fake.requests.length, 0, 'nothing reached the upstream');
  });

  it('passes an upstream 400 through as a 400 without retrying', async () => {
    fake.failures.push(400);
    const res = await fetch(`${t.url}/v1/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'Hi' }) });
    assert.equal(res.status, 400);
    assert.match(((await res.json()) as { error: { message: string } }).error.message, /scripted 400/);
    assert.equal(fake.requests.length, 1);
  });

  it('answers 504 when the upstream is slower than LLM_TIMEOUT_SECONDS', async () => {
    fake.delayMs = 5000;
    const started = Date.now();
    const res = await fetch(`${t.url}/v1/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'Hi' }) });
    assert.equal(res.status, 504);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'upstream_timeout');
    assert.ok(Date.now() - started < 12_000);
  });

  it('reports a stream cut halfway as an SSE error event', async () => {
    fake.cutStreamAfter = 2;
    const res = await fetch(`${t.url}/v1/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'Hi', stream: true }) });
    const text = await res.text();
    assert.match(text, /event: delta/);
    assert.match(text, /event: error\ndata: \{"error":\{"message":"[^"]*","type":"upstream_error"/);
  });
});

describe('remote LLM backend unreachable', () => {
  it('starts, reports not ready with the remedy, and answers 503', async () => {
    const port = await freePort();
    const t = await startApp({ env: { LLM_BACKEND: 'openai', LLM_API_BASE: `http://127.0.0.1:${port}/v1`, LLM_MODEL: 'm', LLM_MAX_RETRIES: '0' } });
    try {
      const ready = (await (await fetch(`${t.url}/health/ready`)).json()) as { capabilities: { llm: { engines: { status: string; detail: string }[] } } };
      assert.equal(ready.capabilities.llm.engines[0]?.status, 'error');
      assert.match(ready.capabilities.llm.engines[0]?.detail ?? '', /unreachable.*LLM_API_BASE/s);
      const res = await fetch(`${t.url}/v1/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'Hi' }) });
      assert.equal(res.status, 503);
    } finally {
      await t.close();
    }
  });
});
