/** Text generation over real HTTP with the real llama.cpp engine and the official OpenAI SDK. */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { TINY_GEMMA_REPLY } from '../../scripts/models/tiny-gemma.ts';
import { startApp, type TestApp } from '../helpers/app.ts';
import { loopingGemmaPath, tinyGemmaPath } from '../helpers/models.ts';

const LLM_ENV = { LLM_DEVICE: 'cpu', LLM_CONTEXT_SIZE: '512' };

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** A streaming POST on its own socket, which `disconnect()` destroys (as a closed tab would). */
function openStream(url: string, body: unknown): { status: Promise<number>; disconnect: () => void } {
  const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, agent: false });
  req.on('error', () => undefined);
  const status = new Promise<number>((resolve) => {
    req.on('response', (res) => {
      res.on('data', () => undefined);
      res.on('error', () => undefined);
      resolve(res.statusCode ?? 0);
    });
    req.on('close', () => resolve(0));
  });
  req.end(JSON.stringify(body));
  return { status, disconnect: () => req.destroy() };
}

function sseEvents(text: string): { event?: string; data: string }[] {
  return text
    .split('\n\n')
    .filter(Boolean)
    .map((block) => {
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1] ?? '';
      return { event, data };
    });
}

describe('text generation routes', () => {
  let t: TestApp;
  let client: OpenAI;
  before(async () => {
    t = await startApp({ env: { ...LLM_ENV, GEMMA_MODEL: tinyGemmaPath(), API_KEY_ENABLED: 'true', API_KEYS: 'sk-test-key' } });
    client = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: 'sk-test-key', maxRetries: 0 });
  });
  after(() => t.close());

  it('POST /v1/generate answers the seed shape', async () => {
    const res = await post(`${t.url}/v1/generate`, { prompt: 'Who are you?', max_tokens: 256 }, { 'X-API-Key': 'sk-test-key' });
    assert.equal(res.status, 200);
    const body = JSON.parse(res.text) as Record<string, unknown>;
    assert.deepEqual(body, { generated_text: TINY_GEMMA_REPLY, finish_reason: 'stop', usage: { prompt_tokens: (body.usage as { prompt_tokens: number }).prompt_tokens, completion_tokens: 7 }, model: 'tiny-gemma3' });
  });

  it('POST /v1/generate streams deltas then done over SSE', async () => {
    const res = await post(`${t.url}/v1/generate`, { prompt: 'Hi', stream: true }, { 'X-API-Key': 'sk-test-key' });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const events = sseEvents(res.text);
    const deltas = events.filter((e) => e.event === 'delta').map((e) => (JSON.parse(e.data) as { text: string }).text);
    assert.equal(deltas.join(''), TINY_GEMMA_REPLY);
    const done = events.at(-1)!;
    assert.equal(done.event, 'done');
    assert.equal((JSON.parse(done.data) as { generated_text: string }).generated_text, TINY_GEMMA_REPLY);
  });

  it('raw mode continues the prompt without the chat template', async () => {
    const res = await post(`${t.url}/v1/generate`, { prompt: 'Once upon a time', raw: true, max_tokens: 2 }, { Authorization: 'Bearer sk-test-key' });
    assert.equal(JSON.parse(res.text).generated_text, 'Hello from');
  });

  it('validates the body and names the field', async () => {
    const res = await post(`${t.url}/v1/generate`, { prompt: '', temperature: 9 }, { 'X-API-Key': 'sk-test-key' });
    assert.equal(res.status, 400);
    const body = JSON.parse(res.text) as { error: { param: string; type: string } };
    assert.equal(body.error.type, 'invalid_request_error');
    assert.equal(body.error.param, 'prompt');
  });

  it('the OpenAI SDK: chat.completions.create', async () => {
    const completion = await client.chat.completions.create({ model: 'gemma-3', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello?' }], max_tokens: 50 });
    assert.equal(completion.object, 'chat.completion');
    assert.equal(completion.choices[0]?.message.content, TINY_GEMMA_REPLY);
    assert.equal(completion.choices[0]?.finish_reason, 'stop');
    assert.equal(completion.model, 'tiny-gemma3');
    assert.equal(completion.usage?.completion_tokens, 7);
    assert.equal(completion.usage?.total_tokens, (completion.usage?.prompt_tokens ?? 0) + 7);
  });

  it('the OpenAI SDK: streaming chat with usage, stop and max_completion_tokens', async () => {
    const stream = await client.chat.completions.create({ model: 'gemma-3', messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }], stream: true, stream_options: { include_usage: true } });
    let text = '';
    let finish: string | null = null;
    let usage: unknown;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      usage = chunk.usage ?? usage;
    }
    assert.equal(text, TINY_GEMMA_REPLY);
    assert.equal(finish, 'stop');
    assert.ok(usage);
    const stopped = await client.chat.completions.create({ model: 'g', messages: [{ role: 'user', content: 'Hi' }], stop: ['Gemma'] });
    assert.equal(stopped.choices[0]?.message.content, 'Hello from the tiny ');
    const short = await client.chat.completions.create({ model: 'g', messages: [{ role: 'user', content: 'Hi' }], max_completion_tokens: 2 });
    assert.equal(short.choices[0]?.message.content, 'Hello from');
    assert.equal(short.choices[0]?.finish_reason, 'length');
  });

  it('the OpenAI SDK: json_schema response_format yields valid JSON', async () => {
    const completion = await client.chat.completions.create({
      model: 'g',
      messages: [{ role: 'user', content: 'Mood?' }],
      max_tokens: 64,
      response_format: { type: 'json_schema', json_schema: { name: 'mood', schema: { type: 'object', properties: { mood: { type: 'string', enum: ['happy', 'sad'] } }, required: ['mood'] } } },
    });
    const parsed = JSON.parse(completion.choices[0]?.message.content ?? '') as { mood: string };
    assert.ok(['happy', 'sad'].includes(parsed.mood));
  });

  it('a JSON schema grammar is built once and reused by later requests, on any route', async () => {
    const schema = { type: 'object', properties: { colour: { type: 'string', enum: ['red', 'green', 'blue'] } }, required: ['colour'] };
    const built = () => t.logs.filter((l) => l.includes('"grammar built"') && l.includes(`"schema_bytes":${JSON.stringify(schema).length}`)).length;
    const format = { type: 'json_schema', json_schema: { name: 'colour', schema } };
    for (let i = 0; i < 2; i++) {
      const chat = await post(`${t.url}/v1/chat/completions`, { model: 'g', messages: [{ role: 'user', content: 'Colour?' }], max_tokens: 32, response_format: format }, { 'X-API-Key': 'sk-test-key' });
      assert.equal(chat.status, 200, chat.text);
      const generate = await post(`${t.url}/v1/generate`, { prompt: 'Colour?', max_tokens: 32, response_format: format }, { 'X-API-Key': 'sk-test-key' });
      assert.equal(generate.status, 200, generate.text);
      assert.ok(['red', 'green', 'blue'].includes((JSON.parse((JSON.parse(generate.text) as { generated_text: string }).generated_text) as { colour: string }).colour));
    }
    assert.equal(built(), 1, 'four requests, one grammar build');
    // a schema the grammar builder rejects keeps its 400 without being rebuilt
    const unsupported = { type: 'object', properties: { x: { const: { nested: true } } } };
    const tried = () => t.logs.filter((l) => l.includes('"grammar not built"') && l.includes(`"schema_bytes":${JSON.stringify(unsupported).length}`)).length;
    for (let i = 0; i < 2; i++) {
      const res = await post(`${t.url}/v1/chat/completions`, { model: 'g', messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_schema', json_schema: { name: 'x', schema: unsupported } } }, { 'X-API-Key': 'sk-test-key' });
      assert.equal(res.status, 400, res.text);
    }
    assert.equal(tried(), 1);
  });

  it('the OpenAI SDK: completions.create (plain and streaming) and models.list', async () => {
    const completion = await client.completions.create({ model: 'g', prompt: 'Tell me', max_tokens: 3 });
    assert.equal(completion.choices[0]?.text, 'Hello from the');
    assert.equal(completion.choices[0]?.finish_reason, 'length');
    let streamed = '';
    for await (const chunk of await client.completions.create({ model: 'g', prompt: 'Tell me', max_tokens: 3, stream: true })) streamed += chunk.choices[0]?.text ?? '';
    assert.equal(streamed, 'Hello from the');
    const models = await client.models.list();
    // the text model, and (its capability beside) the speech-to-text model this app also serves
    assert.deepEqual(models.data.filter((m) => (m as { capability?: string }).capability === 'llm').map((m) => m.id), ['tiny-gemma3']);
    assert.equal((await client.models.retrieve('tiny-gemma3')).id, 'tiny-gemma3');
    await assert.rejects(client.models.retrieve('gpt-9'), OpenAI.NotFoundError);
  });

  it('the OpenAI SDK raises typed errors from our envelope', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'g', messages: [], max_tokens: 5 }), (error: unknown) => {
      assert.ok(error instanceof OpenAI.BadRequestError);
      assert.equal(error.type, 'invalid_request_error');
      assert.equal(error.param, 'messages');
      return true;
    });
    const bad = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: 'wrong', maxRetries: 0 });
    await assert.rejects(bad.models.list(), OpenAI.AuthenticationError);
    await assert.rejects(client.chat.completions.create({ model: 'g', messages: [{ role: 'user', content: 'Hi' }], n: 2 } as never), OpenAI.BadRequestError);
    await assert.rejects(client.chat.completions.create({ model: 'g', messages: [{ role: 'user', content: 'Hi' }], logprobs: true }), (error: unknown) => {
      assert.ok(error instanceof OpenAI.BadRequestError);
      assert.equal(error.param, 'logprobs');
      assert.match(error.message, /logprobs are not supported/);
      return true;
    });
    const plain = await client.chat.completions.create({ model: 'g', messages: [{ role: 'user', content: 'Hi' }], logprobs: false, presence_penalty: 0.5, frequency_penalty: 0.5 });
    assert.equal(plain.choices[0]?.message.content, TINY_GEMMA_REPLY, 'logprobs: false and the penalties are accepted');
  });

  it('feeds the generation metrics', async () => {
    const text = await (await fetch(`${t.url}/metrics`)).text();
    assert.match(text, /dependency_duration_seconds_count\{dependency="llama-cpp",operation="generate",outcome="success"\} \d+/);
    assert.match(text, /dependency_duration_seconds_count\{dependency="llama-cpp",operation="stream",outcome="success"\} \d+/);
    assert.match(text, /llm_generated_tokens_total\{engine="llama-cpp"\} \d+/);
    assert.match(text, /llm_time_to_first_token_seconds_count\{engine="llama-cpp"\} \d+/);
    assert.match(text, /llm_queue_depth 0/);
    assert.match(text, /http_request_duration_seconds_count\{method="POST",route="\/v1\/chat\/completions",status_code="200"\}/);
  });
});

describe('generation under load', () => {
  let t: TestApp;
  before(async () => {
    t = await startApp({ env: { ...LLM_ENV, LLM_CONTEXT_SIZE: '8192', LLM_MAX_TOKENS: '8000', GEMMA_MODEL: loopingGemmaPath(), LLM_PARALLEL: '4', LLM_QUEUE_SIZE: '1' } });
  });
  after(() => t.close());

  it('keeps /health answering (median under 50 ms) while 4 generations run', async () => {
    const streams = [0, 1, 2, 3].map(() => openStream(`${t.url}/v1/generate`, { prompt: 'go', max_tokens: 8000, stream: true }));
    await Promise.all(streams.map((s) => s.status));
    const times: number[] = [];
    for (let i = 0; i < 10; i++) {
      const started = performance.now();
      const res = await fetch(`${t.url}/health`);
      await res.text();
      times.push(performance.now() - started);
      await new Promise((r) => setTimeout(r, 50));
    }
    const text = await (await fetch(`${t.url}/metrics`)).text();
    assert.match(text, /llm_active_generations 4/);
    streams.forEach((s) => s.disconnect());
    // the median, not the maximum: on a busy machine one probe may wait on the OS scheduler for
    // 100 ms or more, which says nothing about the event loop; a loop blocked by generation would
    // push most probes up (and the slowest past a second)
    const sorted = [...times].sort((a, b) => a - b);
    const detail = `health latencies ${times.map((x) => x.toFixed(1)).join(', ')} ms`;
    assert.ok(sorted[Math.floor(sorted.length / 2)]! < 50, detail);
    assert.ok(sorted.at(-1)! < 1000, detail);
    const deadline = Date.now() + 20_000;
    while (!/llm_active_generations 0/.test(await (await fetch(`${t.url}/metrics`)).text())) {
      if (Date.now() > deadline) assert.fail('disconnected generations kept their slots');
      await new Promise((r) => setTimeout(r, 25));
    }
  });

  it('queues one more, then answers 429 with Retry-After; disconnects free every slot', async () => {
    const streams = [0, 1, 2, 3, 4].map(() => openStream(`${t.url}/v1/generate`, { prompt: 'go', max_tokens: 8000, stream: true }));
    const metricsText = async () => (await fetch(`${t.url}/metrics`)).text();
    const waitFor = async (pattern: RegExp) => {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const text = await metricsText();
        if (pattern.test(text)) break;
        if (Date.now() > deadline) assert.fail(`metrics never matched ${pattern}: ${/llm_active_generations \d+/.exec(text)?.[0]}, ${/llm_queue_depth \d+/.exec(text)?.[0]}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    };
    await waitFor(/llm_queue_depth 1/);
    await waitFor(/llm_active_generations 4/);
    const rejected = await post(`${t.url}/v1/generate`, { prompt: 'one too many' });
    assert.equal(rejected.status, 429);
    assert.equal(rejected.headers.get('retry-after'), '1');
    assert.equal(JSON.parse(rejected.text).error.code, 'queue_full');
    streams.forEach((s) => s.disconnect());
    await waitFor(/llm_active_generations 0/);
    await waitFor(/llm_queue_depth 0/);
    const after = await post(`${t.url}/v1/generate`, { prompt: 'hi', max_tokens: 3 });
    assert.equal(after.status, 200);
    assert.match(await metricsText(), /dependency_duration_seconds_count\{dependency="llama-cpp",operation="stream",outcome="aborted"\} [4-9]/);
  });

  it('stops generating when a non-streaming client disconnects', async () => {
    const req = http.request(`${t.url}/v1/generate`, { method: 'POST', headers: { 'content-type': 'application/json' } });
    req.on('error', () => undefined);
    req.end(JSON.stringify({ prompt: 'go', max_tokens: 100000 }));
    await new Promise((r) => setTimeout(r, 300));
    req.destroy();
    const deadline = Date.now() + 10_000;
    let metrics = '';
    while (Date.now() < deadline) {
      metrics = await (await fetch(`${t.url}/metrics`)).text();
      if (/operation="generate",outcome="aborted"\} [1-9]/.test(metrics)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(metrics, /dependency_duration_seconds_count\{dependency="llama-cpp",operation="generate",outcome="aborted"\} [1-9]/);
    assert.match(metrics, /llm_active_generations 0/);
  });
});

describe('generation without a model', () => {
  it('starts anyway; readiness and the routes say which model is missing and how to get it', async () => {
    const t = await startApp({ env: { ...LLM_ENV, GEMMA_MODEL: '/models/absent.gguf' } });
    try {
      const ready = await fetch(`${t.url}/health/ready`);
      assert.equal(ready.status, 503);
      const body = (await ready.json()) as { capabilities: { llm: { engines: { status: string; detail: string }[] } } };
      assert.equal(body.capabilities.llm.engines[0]?.status, 'missing_model');
      const res = await post(`${t.url}/v1/generate`, { prompt: 'hi' });
      assert.equal(res.status, 503);
      const error = JSON.parse(res.text) as { error: { code: string; message: string } };
      assert.equal(error.error.code, 'model_missing');
      assert.match(error.error.message, /absent\.gguf.*GEMMA_MODEL/s);
      assert.equal((await fetch(`${t.url}/health`)).status, 200);
    } finally {
      await t.close();
    }
  });
});
