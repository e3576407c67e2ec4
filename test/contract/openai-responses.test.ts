/**
 * The OpenAI Responses API (/v1/responses) on the real app and the real llama.cpp engine (tiny
 * models), through the clients people use: the official `openai` SDK, the Vercel AI SDK
 * (`openai(model)` speaks Responses), LangChain (`useResponsesApi: true`) and the OpenAI Agents SDK
 * (`@openai/agents`, whose OpenAI model speaks Responses).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { createOpenAI } from '@ai-sdk/openai';
import { ChatOpenAI } from '@langchain/openai';
import { Agent, OpenAIProvider, Runner } from '@openai/agents';
import { generateText, streamText } from 'ai';
import OpenAI from 'openai';
import { z } from 'zod';
import { TINY_GEMMA_REPLY } from '../../scripts/models/tiny-gemma.ts';
import type { ErrorEnvelope } from '../../src/errors.ts';
import { startApp, type TestApp } from '../helpers/app.ts';
import { loopingGemmaPath, tinyGemmaPath } from '../helpers/models.ts';

const LLM_ENV = { LLM_DEVICE: 'cpu', LLM_CONTEXT_SIZE: '1024' };
const KEY_A = 'sk-responses-a';
const KEY_B = 'sk-responses-b';

async function post(url: string, body: unknown, key = KEY_A) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

interface Sse {
  event?: string;
  data: Record<string, unknown> & { type: string; sequence_number: number };
}
function sseEvents(text: string): Sse[] {
  return text
    .split('\n\n')
    .filter(Boolean)
    .map((block) => ({ event: /^event: (.*)$/m.exec(block)?.[1], data: JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? 'null') }));
}

/**
 * OpenAI's published event list for a response with one message output: created, in_progress,
 * output_item.added, content_part.added, output_text.delta (one or more), output_text.done,
 * content_part.done, output_item.done, then completed or incomplete.
 */
function assertOpenAiEventOrder(events: Sse[], terminal: 'response.completed' | 'response.incomplete') {
  const types = events.map((e) => e.data.type);
  const deltas = types.filter((t) => t === 'response.output_text.delta').length;
  assert.ok(deltas >= 1, 'at least one text delta');
  const expected = [
    'response.created',
    'response.in_progress',
    'response.output_item.added',
    'response.content_part.added',
    ...Array<string>(deltas).fill('response.output_text.delta'),
    'response.output_text.done',
    'response.content_part.done',
    'response.output_item.done',
    terminal,
  ];
  assert.deepEqual(types, expected);
  events.forEach((e, i) => {
    assert.equal(e.event, e.data.type, 'the SSE event name is the data type');
    assert.equal(e.data.sequence_number, i, 'sequence_number counts every event from 0');
  });
  const created = events[0]!.data.response as { id: string; status: string; output: unknown[] };
  assert.equal(created.status, 'in_progress');
  assert.deepEqual(created.output, []);
  const added = events[2]!.data as unknown as { output_index: number; item: { id: string; type: string; status: string; role: string; content: unknown[] } };
  assert.deepEqual({ ...added.item, id: undefined }, { id: undefined, type: 'message', status: 'in_progress', role: 'assistant', content: [] });
  assert.equal(added.output_index, 0);
  const itemId = added.item.id;
  for (const e of events.slice(3, -2)) assert.deepEqual([e.data.item_id, e.data.output_index, e.data.content_index], [itemId, 0, 0], e.data.type);
  const text = events.filter((e) => e.data.type === 'response.output_text.delta').map((e) => e.data.delta as string).join('');
  assert.equal(events.at(-4)!.data.text, text);
  assert.deepEqual(events.at(-3)!.data.part, { type: 'output_text', text, annotations: [], logprobs: [] });
  const done = events.at(-2)!.data as unknown as { item: { id: string; status: string; content: { text: string }[] } };
  assert.equal(done.item.id, itemId);
  assert.equal(done.item.status, terminal === 'response.completed' ? 'completed' : 'incomplete');
  const final = events.at(-1)!.data.response as { id: string; status: string; output_text: string; usage: { output_tokens: number } };
  assert.equal(final.id, created.id);
  assert.equal(final.output_text, text);
  assert.equal(final.status, terminal === 'response.completed' ? 'completed' : 'incomplete');
  assert.ok(final.usage.output_tokens > 0);
  return text;
}

describe('/v1/responses', () => {
  let t: TestApp;
  let client: OpenAI;
  let other: OpenAI;
  before(async () => {
    t = await startApp({ env: { ...LLM_ENV, GEMMA_MODEL: tinyGemmaPath(), API_KEY_ENABLED: 'true', API_KEYS: `${KEY_A},${KEY_B}` } });
    client = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: KEY_A, maxRetries: 0 });
    other = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: KEY_B, maxRetries: 0 });
  });
  after(() => t.close());

  it('the OpenAI SDK: responses.create answers a response object', async () => {
    const response = await client.responses.create({ model: 'gemma-3', instructions: 'Be brief.', input: 'Hello?', metadata: { case: 'plain' } });
    assert.match(response.id, /^resp_[0-9a-f]+$/);
    assert.equal(response.object, 'response');
    assert.equal(response.status, 'completed');
    assert.equal(response.model, 'tiny-gemma3');
    assert.equal(response.output_text, TINY_GEMMA_REPLY);
    assert.equal(response.output.length, 1);
    const item = response.output[0]!;
    assert.equal(item.type, 'message');
    assert.ok(item.type === 'message' && item.role === 'assistant' && item.status === 'completed');
    assert.deepEqual(item.content, [{ type: 'output_text', text: TINY_GEMMA_REPLY, annotations: [], logprobs: [] }]);
    assert.equal(response.usage?.output_tokens, 7);
    assert.equal(response.usage?.total_tokens, (response.usage?.input_tokens ?? 0) + 7);
    assert.equal(response.instructions, 'Be brief.');
    assert.deepEqual(response.metadata, { case: 'plain' });
    assert.equal(response.incomplete_details, null);
  });

  it('max_output_tokens reached: status incomplete, reason max_output_tokens', async () => {
    const response = await client.responses.create({ model: 'g', input: [{ role: 'user', content: [{ type: 'input_text', text: 'Hi' }] }], max_output_tokens: 2 });
    assert.equal(response.status, 'incomplete');
    assert.deepEqual(response.incomplete_details, { reason: 'max_output_tokens' });
    assert.equal(response.output_text, 'Hello from');
  });

  it("streamed: every event in OpenAI's order, sequence_number from 0, and the SDK's stream helper agrees", async () => {
    const res = await post(`${t.url}/v1/responses`, { model: 'g', input: 'Hi', stream: true });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    assert.equal(assertOpenAiEventOrder(sseEvents(res.text), 'response.completed'), TINY_GEMMA_REPLY);

    const short = await post(`${t.url}/v1/responses`, { model: 'g', input: 'Hi', stream: true, max_output_tokens: 2 });
    assert.equal(assertOpenAiEventOrder(sseEvents(short.text), 'response.incomplete'), 'Hello from');

    // the SDK's ResponseStream rebuilds the response from the events and throws on any out of place
    const stream = client.responses.stream({ model: 'g', input: 'Hi' });
    const types: string[] = [];
    for await (const event of stream) types.push(event.type);
    const final = await stream.finalResponse();
    assert.equal(final.output_text, TINY_GEMMA_REPLY);
    assert.equal(types.at(-1), 'response.completed');
    // and create({stream: true}) hands back the typed events
    const created = await client.responses.create({ model: 'g', input: 'Hi', stream: true });
    let text = '';
    for await (const event of created) if (event.type === 'response.output_text.delta') text += event.delta;
    assert.equal(text, TINY_GEMMA_REPLY);
  });

  it('retrieve, input_items (paginated like OpenAI) and delete', async () => {
    const input = [
      { role: 'developer' as const, content: 'Be brief.' },
      { role: 'user' as const, content: 'First.' },
      { role: 'assistant' as const, content: 'Noted.' },
      { role: 'user' as const, content: [{ type: 'input_text' as const, text: 'Second.' }] },
    ];
    const created = await client.responses.create({ model: 'g', input });
    const retrieved = await client.responses.retrieve(created.id);
    assert.equal(retrieved.id, created.id);
    assert.equal(retrieved.output_text, TINY_GEMMA_REPLY);
    assert.equal(retrieved.status, 'completed');

    const all = await client.responses.inputItems.list(created.id, { order: 'asc' });
    const texts = all.data.map((item) => (item.type === 'message' ? [item.role, (item.content[0] as { text: string }).text] : []));
    assert.deepEqual(texts, [
      ['developer', 'Be brief.'],
      ['user', 'First.'],
      ['assistant', 'Noted.'],
      ['user', 'Second.'],
    ]);
    assert.equal(all.has_more, false);
    // default order is newest first; pages of 3 then 1 through `after`
    const page1 = await client.responses.inputItems.list(created.id, { limit: 3 });
    assert.deepEqual(
      page1.data.map((i) => i.id),
      [...all.data].reverse().slice(0, 3).map((i) => i.id),
    );
    assert.equal(page1.has_more, true);
    const raw = (await (await fetch(`${t.url}/v1/responses/${created.id}/input_items?limit=3`, { headers: { authorization: `Bearer ${KEY_A}` } })).json()) as { first_id: string; last_id: string; object: string };
    assert.equal(raw.object, 'list');
    assert.equal(raw.first_id, page1.data[0]!.id);
    assert.equal(raw.last_id, page1.data[2]!.id);
    const page2 = await client.responses.inputItems.list(created.id, { limit: 3, after: raw.last_id });
    assert.deepEqual(page2.data.map((i) => i.id), [all.data[0]!.id]);
    assert.equal(page2.has_more, false);
    // the SDK's auto-pagination walks every page
    const walked: string[] = [];
    for await (const item of client.responses.inputItems.list(created.id, { limit: 1, order: 'asc' })) walked.push(item.id!);
    assert.deepEqual(walked, all.data.map((i) => i.id));

    await client.responses.delete(created.id);
    await assert.rejects(client.responses.retrieve(created.id), (e: unknown) => e instanceof OpenAI.NotFoundError);
    await assert.rejects(client.responses.delete(created.id), (e: unknown) => e instanceof OpenAI.NotFoundError);
  });

  it('previous_response_id continues the stored conversation; store: false keeps nothing', async () => {
    const first = await client.responses.create({ model: 'g', input: 'My name is Ada and I like long, detailed answers about mountains.' });
    const second = await client.responses.create({ model: 'g', input: 'What is my name?', previous_response_id: first.id });
    const fresh = await client.responses.create({ model: 'g', input: 'What is my name?' });
    assert.equal(second.previous_response_id, first.id);
    assert.ok(second.usage!.input_tokens > fresh.usage!.input_tokens + 10, `the first turn is in the prompt (${second.usage!.input_tokens} vs ${fresh.usage!.input_tokens})`);
    // a third turn carries both earlier exchanges
    const third = await client.responses.create({ model: 'g', input: 'What is my name?', previous_response_id: second.id });
    assert.ok(third.usage!.input_tokens > second.usage!.input_tokens + 5);
    // input_items lists this response's own input only
    const items = await client.responses.inputItems.list(second.id);
    assert.equal(items.data.length, 1);

    const unstored = await client.responses.create({ model: 'g', input: 'Hi', store: false });
    assert.equal((unstored as unknown as { store: boolean }).store, false);
    await assert.rejects(client.responses.retrieve(unstored.id), (e: unknown) => e instanceof OpenAI.NotFoundError);
    await assert.rejects(client.responses.create({ model: 'g', input: 'Hi', previous_response_id: unstored.id }), (e: unknown) => e instanceof OpenAI.NotFoundError);
  });

  it('text.format json_schema: the output parses and matches the schema', async () => {
    const response = await client.responses.create({
      model: 'g',
      input: 'Mood?',
      max_output_tokens: 64,
      text: { format: { type: 'json_schema', name: 'mood', strict: true, schema: { type: 'object', properties: { mood: { type: 'string', enum: ['happy', 'sad'] } }, required: ['mood'], additionalProperties: false } } },
    });
    const parsed = JSON.parse(response.output_text) as { mood: string };
    assert.ok(['happy', 'sad'].includes(parsed.mood), response.output_text);
    assert.equal((response.text?.format as { type: string }).type, 'json_schema');
  });

  it('a text.format json_schema the grammar refuses: 400 naming text.format.schema (the field as sent), not the Chat Completions response_format', async () => {
    const nested = (levels: number): Record<string, unknown> => (levels === 0 ? { type: 'string' } : { type: 'object', properties: { a: nested(levels - 1) } });
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['too deep', nested(40), /nested more than 64 levels.*GRAMMAR_MAX_DEPTH/],
      ['too many enum values', { enum: Array.from({ length: 1001 }, (_, i) => i) }, /more than 1000 enum values.*GRAMMAR_MAX_ENUM_VALUES/],
      ['a remote $ref', { $ref: 'http://example.com/x' }, /does not name a definition/],
      ['a made-up type', { type: 'strng' }, /is not a JSON Schema type/],
      // a bound llama.cpp's grammar cannot enforce: the message names the bound and the limit
      ['maxItems 1999', { type: 'array', maxItems: 1999, items: { type: 'string' } }, /maxItems or minItems of 1998 is more than llama\.cpp's grammar can enforce \(1,000\)/],
    ];
    for (const [label, schema, message] of cases) {
      for (const stream of [false, true]) {
        const res = await post(`${t.url}/v1/responses`, { model: 'g', input: 'Hi', stream, text: { format: { type: 'json_schema', name: 'x', schema } } });
        assert.equal(res.status, 400, `${label}: ${res.text}`);
        const { error } = JSON.parse(res.text) as ErrorEnvelope;
        assert.equal(error.param, 'text.format.schema', `${label}: ${res.text}`);
        assert.equal(error.type, 'invalid_request_error');
        assert.match(error.message, /^text\.format\.schema /, label);
        assert.ok(!error.message.includes('response_format'), `${label}: ${error.message}`);
        assert.match(error.message, message, label);
      }
    }
    // the SDK raises it typed, with the same param
    await assert.rejects(
      client.responses.create({ model: 'g', input: 'Hi', text: { format: { type: 'json_schema', name: 'x', schema: { type: 'strng' } } } }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'text.format.schema',
    );
    // chat completions keeps its own shape's name for the same schema
    const chat = await post(`${t.url}/v1/chat/completions`, { model: 'g', messages: [{ role: 'user', content: 'Hi' }], response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'strng' } } } });
    assert.equal(chat.status, 400);
    assert.equal((JSON.parse(chat.text) as ErrorEnvelope).error.param, 'response_format');
  });

  it("another key's response is a 404, as is an unknown id (in the error envelope)", async () => {
    const mine = await client.responses.create({ model: 'g', input: 'Secret.' });
    await assert.rejects(other.responses.retrieve(mine.id), (e: unknown) => e instanceof OpenAI.NotFoundError);
    await assert.rejects(other.responses.inputItems.list(mine.id), (e: unknown) => e instanceof OpenAI.NotFoundError);
    await assert.rejects(other.responses.delete(mine.id), (e: unknown) => e instanceof OpenAI.NotFoundError);
    await assert.rejects(other.responses.create({ model: 'g', input: 'Hi', previous_response_id: mine.id }), (e: unknown) => e instanceof OpenAI.NotFoundError && e.param === 'previous_response_id');
    assert.equal((await client.responses.retrieve(mine.id)).id, mine.id, 'still there for its owner');

    for (const id of ['resp_0123456789abcdef', 'not-an-id', 'x'.repeat(900)]) {
      const res = await fetch(`${t.url}/v1/responses/${id}`, { headers: { authorization: `Bearer ${KEY_A}` } });
      assert.equal(res.status, 404);
      const body = (await res.json()) as { error: { type: string; code: string; param: string }; request_id: string };
      assert.equal(body.error.type, 'not_found_error');
      assert.equal(body.error.code, 'response_not_found');
      assert.ok(body.request_id);
    }
  });

  it('what cannot be honoured is a 400 naming the parameter', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ input: 'Hi', tools: [{ type: 'function', name: 'f', parameters: {} }] }, 'tools'],
      [{ input: 'Hi', tool_choice: 'required' }, 'tool_choice'],
      [{ input: 'Hi', reasoning: { effort: 'high' } }, 'reasoning.effort'],
      [{ input: 'Hi', reasoning: { summary: 'auto' } }, 'reasoning.summary'],
      [{ input: 'Hi', background: true }, 'background'],
      [{ input: [{ role: 'user', content: [{ type: 'input_text', text: 'What is this?' }, { type: 'input_image', image_url: 'https://example.com/a.png' }] }] }, 'input[0].content[1]'],
      [{ input: [{ type: 'function_call_output', call_id: 'c', output: '{}' }] }, 'input[0].type'],
      [{ input: [{ role: 'assistant', content: 'Only me.' }] }, 'input'],
      [{ input: 'Hi', include: ['message.output_text.logprobs'] }, 'include'],
      [{ input: 'Hi', temperature: 7 }, 'temperature'],
      [{ input: 'Hi', conversation: 'conv_1' }, 'conversation'],
    ];
    for (const [body, param] of cases) {
      const res = await post(`${t.url}/v1/responses`, { model: 'g', ...body });
      assert.equal(res.status, 400, `${param}: ${res.text}`);
      const error = JSON.parse(res.text) as { error: { param: string; type: string; message: string } };
      assert.equal(error.error.type, 'invalid_request_error');
      assert.equal(error.error.param, param, res.text);
    }
    // the SDK raises them typed
    await assert.rejects(client.responses.create({ model: 'g', input: 'Hi', background: true }), (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'background');
  });

  it("an unknown top-level field is a 400 `Unknown parameter: 'x'.` naming it, as OpenAI (not silently ignored)", async () => {
    for (const [body, param] of [
      [{ model: 'g', input: 'Hi', temprature: 0.5 }, 'temprature'],
      [{ model: 'g', input: 'Hi', stream: true, frequency_penalty: 1 }, 'frequency_penalty'],
    ] as const) {
      const res = await post(`${t.url}/v1/responses`, body);
      assert.equal(res.status, 400, res.text);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      assert.deepEqual(JSON.parse(res.text).error, { message: `Unknown parameter: '${param}'.`, type: 'invalid_request_error', param, code: 'unknown_parameter' });
    }
    // every parameter of OpenAI's create request is known (at its neutral value where it cannot be honoured)
    const known = { model: 'g', input: 'Hi', max_tool_calls: null, prompt_cache_retention: null, prompt_cache_key: 'k', safety_identifier: 's', service_tier: 'auto', stream_options: null, top_logprobs: null, include: [], parallel_tool_calls: null, truncation: 'disabled', user: 'u', store: false };
    assert.equal((await post(`${t.url}/v1/responses`, known)).status, 200);
    await assert.rejects(
      client.responses.create({ model: 'g', input: 'Hi', ...({ colour: 'blue' } as object) }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'colour' && e.code === 'unknown_parameter',
    );
  });

  it("an unknown field inside a message item, a text part, text, text.format or reasoning is a 400 naming its path; earlier output's annotations/logprobs are accepted", async () => {
    for (const [body, param] of [
      [{ model: 'g', input: [{ role: 'user', content: 'Hi', colour: 'blue' }] }, 'input[0].colour'],
      [{ model: 'g', input: [{ role: 'user', content: [{ type: 'input_text', text: 'Hi', bold: true }] }] }, 'input[0].content[0].bold'],
      [{ model: 'g', input: 'Hi', text: { format: { type: 'text' }, colour: 1 } }, 'text.colour'],
      [{ model: 'g', input: 'Hi', text: { format: { type: 'json_object', schema: {} } } }, 'text.format.schema'],
      [{ model: 'g', input: 'Hi', reasoning: { effort: null, budget: 5 } }, 'reasoning.budget'],
    ] as const) {
      const res = await post(`${t.url}/v1/responses`, body);
      assert.equal(res.status, 400, res.text);
      assert.deepEqual(JSON.parse(res.text).error, { message: `Unknown parameter: '${param}'.`, type: 'invalid_request_error', param, code: 'unknown_parameter' });
    }
    // what the SDKs send back from an earlier turn: an output message with its id, status and output_text parts
    const earlier = { type: 'message', id: 'msg_1', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: 'Hello.', annotations: [], logprobs: [] }] };
    assert.equal((await post(`${t.url}/v1/responses`, { model: 'g', input: [{ role: 'user', content: 'Hi' }, earlier, { role: 'user', content: 'Again' }] })).status, 200);
    // an item type we refuse keeps its own fields: the 400 names the type, not a field
    const call = await post(`${t.url}/v1/responses`, { model: 'g', input: [{ type: 'function_call', call_id: 'c1', name: 'f', arguments: '{}' }] });
    assert.equal(call.status, 400);
    assert.equal(JSON.parse(call.text).error.param, 'input[0].type');
  });

  it('truncation: "auto" drops the oldest turns until the prompt fits; "disabled" (the default) is a 400', async () => {
    const turns = Array.from({ length: 12 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `turn ${i}: ${'word '.repeat(30)}` }));
    const input = [...turns, { role: 'user', content: 'And now?' }];
    for (const truncation of [undefined, 'disabled']) {
      const refused = await post(`${t.url}/v1/responses`, { model: 'g', instructions: 'Be brief.', input, ...(truncation ? { truncation } : {}) });
      assert.equal(refused.status, 400, refused.text);
      assert.equal(JSON.parse(refused.text).error.code, 'context_length_exceeded');
    }
    const fitted = await client.responses.create({ model: 'g', instructions: 'Be brief.', input: input as OpenAI.Responses.ResponseInput, truncation: 'auto', store: false });
    assert.equal(fitted.status, 'completed');
    assert.equal(fitted.truncation, 'auto');
    assert.equal(fitted.output_text, TINY_GEMMA_REPLY);
    const window = Number(LLM_ENV.LLM_CONTEXT_SIZE);
    const used = fitted.usage!.input_tokens;
    assert.ok(used < window, `the prompt fits: ${used} < ${window}`);
    // only what had to go went: the newest turns are still there, so the prompt is more than the last message
    const alone = await client.responses.create({ model: 'g', instructions: 'Be brief.', input: 'And now?', store: false });
    const oneTurn = await client.responses.create({ model: 'g', input: [turns[10]!, turns[11]!] as OpenAI.Responses.ResponseInput, store: false });
    assert.ok(used > alone.usage!.input_tokens + oneTurn.usage!.input_tokens, `some turns kept: ${used} vs ${alone.usage!.input_tokens} alone`);
    // the kept prompt is the longest that fits: one more turn pair would not
    assert.ok(used + oneTurn.usage!.input_tokens > window, `${used} + ${oneTurn.usage!.input_tokens} would pass ${window}`);
    // a last message that alone does not fit stays a 400, truncation or not
    const huge = await post(`${t.url}/v1/responses`, { model: 'g', input: 'word '.repeat(3000), truncation: 'auto' });
    assert.equal(huge.status, 400);
    assert.equal(JSON.parse(huge.text).error.param, 'input');
  });

  it('POST /v1/responses/{id}/cancel: 400 for a (synchronous) stored response, as OpenAI; 404 for an unknown or another key\'s id', async () => {
    const stored = await client.responses.create({ model: 'g', input: 'Hi' });
    const res = await post(`${t.url}/v1/responses/${stored.id}/cancel`, {});
    assert.equal(res.status, 400, res.text);
    const error = JSON.parse(res.text).error as { message: string; type: string; param: string | null };
    assert.equal(error.message, 'Cannot cancel a synchronous response.');
    assert.equal(error.type, 'invalid_request_error');
    await assert.rejects(client.responses.cancel(stored.id), (e: unknown) => e instanceof OpenAI.BadRequestError);
    await assert.rejects(other.responses.cancel(stored.id), (e: unknown) => e instanceof OpenAI.NotFoundError);
    await assert.rejects(client.responses.cancel('resp_unknown'), (e: unknown) => e instanceof OpenAI.NotFoundError);
    // the response itself is untouched
    assert.equal((await client.responses.retrieve(stored.id)).status, 'completed');
  });

  it('validation errors on stream: true stay plain JSON (as OpenAI), on /v1/responses and /v1/chat/completions', async () => {
    for (const [path, body] of [
      ['/v1/responses', { model: 'g', input: 'Hi', stream: true, temperature: 9 }],
      ['/v1/chat/completions', { model: 'g', messages: [{ role: 'user', content: 'Hi' }], stream: true, temperature: 9 }],
      ['/v1/responses', { model: 'g', input: 'Hi', stream: true, previous_response_id: 'resp_unknown' }],
    ] as const) {
      const res = await post(`${t.url}${path}`, body);
      assert.ok(res.status === 400 || res.status === 404, `${path}: ${res.status}`);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/, path);
      assert.ok((JSON.parse(res.text) as { error: { message: string } }).error.message);
    }
  });

  it('hostile input: too many items, deep nesting and a huge body are fast 4xx', async () => {
    const many = await post(`${t.url}/v1/responses`, { model: 'g', input: Array.from({ length: 1025 }, () => ({ role: 'user', content: 'x' })) });
    assert.equal(many.status, 400);
    assert.equal(JSON.parse(many.text).error.param, 'input');
    const deep = await post(`${t.url}/v1/responses`, `{"model":"g","input":${'['.repeat(50_000)}${']'.repeat(50_000)}}`);
    assert.equal(deep.status, 400, deep.text);
    const deepParts = await post(`${t.url}/v1/responses`, { model: 'g', input: [{ role: 'user', content: [{ type: 'input_text', text: { nested: [[[['x']]]] } }] }] });
    assert.equal(deepParts.status, 400);
    const huge = await post(`${t.url}/v1/responses`, { model: 'g', input: 'x'.repeat(2 * 1024 * 1024) });
    assert.equal(huge.status, 413);
    const prompt = await post(`${t.url}/v1/responses`, { model: 'g', input: 'word '.repeat(3000) });
    assert.equal(prompt.status, 400, 'a prompt beyond the context is a 400 before any byte');
    assert.equal(JSON.parse(prompt.text).error.param, 'input', 'named as the Responses API names it');
    // a huge metadata key is refused without being echoed back whole
    const bigKey = await post(`${t.url}/v1/responses`, { model: 'g', input: 'hi', metadata: { ['k'.repeat(900_000)]: 'v' } });
    assert.equal(bigKey.status, 400);
    assert.ok(bigKey.text.length < 2000, `the error is ${bigKey.text.length} bytes`);
    assert.equal((await fetch(`${t.url}/health`)).status, 200);
  });

  /** Requests the app has answered on POST /v1/responses (so a client test proves which API it used). */
  const responsesCalls = () => t.logs.filter((line) => line.includes('"route":"/v1/responses"') && line.includes('"method":"POST"')).length;

  it('the Vercel AI SDK: generateText and streamText with openai(model)', async () => {
    const calls = responsesCalls();
    const openai = createOpenAI({ baseURL: `${t.url}/v1`, apiKey: KEY_A });
    const { text, finishReason, usage } = await generateText({ model: openai('gemma-3'), system: 'Be brief.', prompt: 'Hello?', maxRetries: 0 });
    assert.equal(text, TINY_GEMMA_REPLY);
    assert.equal(finishReason, 'stop');
    assert.equal(usage.outputTokens, 7);
    const result = streamText({ model: openai('gemma-3'), messages: [{ role: 'user', content: 'Hi' }], maxRetries: 0 });
    let streamed = '';
    for await (const delta of result.textStream) streamed += delta;
    assert.equal(streamed, TINY_GEMMA_REPLY);
    assert.equal(await result.finishReason, 'stop');
    assert.equal(responsesCalls(), calls + 2, 'both went through /v1/responses');
  });

  it('LangChain ChatOpenAI with useResponsesApi: true', async () => {
    const calls = responsesCalls();
    const model = new ChatOpenAI({ model: 'gemma-3', apiKey: KEY_A, configuration: { baseURL: `${t.url}/v1` }, useResponsesApi: true, maxRetries: 0 });
    const message = await model.invoke([
      ['system', 'Be brief.'],
      ['human', 'Hello?'],
    ]);
    assert.equal(message.text, TINY_GEMMA_REPLY);
    let streamed = '';
    for await (const chunk of await model.stream('Hi')) streamed += chunk.text;
    assert.equal(streamed, TINY_GEMMA_REPLY);
    assert.equal(responsesCalls(), calls + 2, 'both went through /v1/responses');
  });

  it('the OpenAI Agents SDK: run() plain, streamed, a second turn over its own history, and a structured outputType', async () => {
    const calls = responsesCalls();
    // as its docs configure another endpoint: a provider with baseURL (its tracing exports to api.openai.com: off)
    const runner = new Runner({ modelProvider: new OpenAIProvider({ baseURL: `${t.url}/v1`, apiKey: KEY_A, useResponses: true }), tracingDisabled: true });
    const agent = new Agent({ name: 'Assistant', instructions: 'Be brief.', model: 'gemma-3' });
    const first = await runner.run(agent, 'Hello?');
    assert.equal(first.finalOutput, TINY_GEMMA_REPLY);
    // the second turn sends the first turn's output items back as input (ids, status, output_text parts with annotations)
    const second = await runner.run(agent, [...first.history, { role: 'user', content: 'And again?' }]);
    assert.equal(second.finalOutput, TINY_GEMMA_REPLY);
    const streamed = await runner.run(agent, 'Hi', { stream: true });
    let text = '';
    for await (const delta of streamed.toTextStream()) text += delta;
    await streamed.completed;
    assert.equal(text, TINY_GEMMA_REPLY);
    assert.equal(streamed.finalOutput, TINY_GEMMA_REPLY);
    const typed = new Agent({ name: 'Mood', instructions: 'Say the mood.', model: 'gemma-3', outputType: z.object({ mood: z.enum(['happy', 'sad']) }) });
    const mood = await runner.run(typed, 'Mood?', { maxTurns: 1 });
    assert.ok(['happy', 'sad'].includes(mood.finalOutput?.mood ?? ''), JSON.stringify(mood.finalOutput));
    assert.equal(responsesCalls(), calls + 4, 'every turn went through /v1/responses');
  });
});

describe('/v1/responses: a client that vanishes mid-stream', () => {
  let t: TestApp;
  before(async () => {
    t = await startApp({ env: { ...LLM_ENV, LLM_CONTEXT_SIZE: '8192', LLM_MAX_TOKENS: '8000', GEMMA_MODEL: loopingGemmaPath(), LLM_PARALLEL: '1', LLM_QUEUE_SIZE: '0' } });
  });
  after(() => t.close());

  it('stops the generation and frees its slot; nothing is stored', async () => {
    const req = http.request(`${t.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json' }, agent: false });
    req.on('error', () => undefined);
    const firstDelta = new Promise<string>((resolve) => {
      req.on('response', (res) => {
        let seen = '';
        res.on('data', (d: Buffer) => {
          seen += d.toString();
          if (seen.includes('response.output_text.delta')) resolve(seen);
        });
        res.on('end', () => resolve(seen)); // ended without a delta: fails below instead of hanging
        res.on('error', () => undefined);
      });
    });
    req.end(JSON.stringify({ model: 'g', input: 'go', stream: true }));
    const seen = await firstDelta;
    assert.match(seen, /response\.output_text\.delta/);
    const id = /"id":"(resp_[0-9a-f]+)"/.exec(seen)![1]!;
    const busy = await fetch(`${t.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: 'one too many' }) });
    assert.equal(busy.status, 429, 'the one slot is taken while it streams');
    req.destroy();
    const deadline = Date.now() + 20_000;
    let metrics = '';
    while (Date.now() < deadline) {
      metrics = await (await fetch(`${t.url}/metrics`)).text();
      if (/llm_active_generations 0/.test(metrics) && /operation="stream",outcome="aborted"\} [1-9]/.test(metrics)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(metrics, /llm_active_generations 0/);
    assert.match(metrics, /dependency_duration_seconds_count\{dependency="llama-cpp",operation="stream",outcome="aborted"\} 1/);
    const after = await fetch(`${t.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: 'hi', max_output_tokens: 3 }) });
    assert.equal(after.status, 200, 'the slot is free again');
    assert.equal((await fetch(`${t.url}/v1/responses/${id}`)).status, 404, 'an interrupted response is not stored');
  });

  it('is logged once at info ("request aborted: the client disconnected", no stack), never as a server error (docs/errors.md)', async () => {
    const requestId = 'cut-responses-stream';
    const controller = new AbortController();
    const res = await fetch(`${t.url}/v1/responses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': requestId },
      body: JSON.stringify({ model: 'g', input: 'go', stream: true }),
      signal: controller.signal,
    });
    assert.equal(res.status, 200);
    // mid-generation: the looping model is still writing deltas when the client leaves
    const reader = res.body!.getReader();
    let seen = '';
    while (!seen.includes('response.output_text.delta')) seen += new TextDecoder().decode((await reader.read()).value);
    controller.abort();
    type LogLine = { level: string; msg: string; request_id?: string; reason?: string };
    const mine = () => t.logs.map((l) => JSON.parse(l) as LogLine).filter((l) => l.request_id === requestId);
    // the line that says how it ended (whatever its level), then a moment for any other line of it
    const deadline = Date.now() + 20_000;
    while (!mine().some((l) => JSON.stringify(l).includes('client disconnected')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 500));
    const lines = mine();
    assert.deepEqual(lines.filter((l) => ['warn', 'error', 'fatal'].includes(l.level)), [], 'nothing at warn or error');
    const aborted = lines.filter((l) => l.msg === 'request aborted: the client disconnected');
    assert.equal(aborted.length, 1, `one line says the client left: ${JSON.stringify(lines)}`);
    assert.equal(aborted[0]!.level, 'info');
    assert.equal(aborted[0]!.reason, 'client disconnected');
    assert.ok(!JSON.stringify(aborted[0]).includes('stack'), 'without a stack');
    assert.ok(!lines.some((l) => l.msg === 'response stream failed'));
  });
});
