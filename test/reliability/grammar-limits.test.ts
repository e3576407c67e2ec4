/**
 * `response_format` JSON schemas on a real service process with the tiny model: schemas past the
 * GRAMMAR_* bounds get a fast 400 naming the variable (never a 500, never a frozen event loop), on
 * every generation route; a schema near the bounds still gives parseable JSON. /health is polled
 * throughout; its worst latency is printed (and bounded generously only where the unbounded
 * service stalled it for 10 s and more).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { freePort, spawnService, waitForHealth, waitForReady, type ServiceProcess } from '../helpers/process.ts';
import { tinyGemmaPath } from '../helpers/models.ts';
import type { ErrorEnvelope as Envelope } from '../../src/errors.ts';


/** Polls /health every 20 ms while `work` runs; returns its result and the slowest /health answer. */
async function whilePolling<T>(url: string, work: () => Promise<T>): Promise<{ result: T; worstHealthMs: number; polls: number }> {
  let running = true;
  let worst = 0;
  let polls = 0;
  const poller = (async () => {
    while (running) {
      const started = performance.now();
      const res = await fetch(`${url}/health`);
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      worst = Math.max(worst, performance.now() - started);
      polls++;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  try {
    const result = await work();
    return { result, worstHealthMs: worst, polls };
  } finally {
    running = false;
    await poller;
  }
}

function chat(schema: unknown, extra: Record<string, unknown> = {}) {
  return { model: 'g', messages: [{ role: 'user', content: 'Pick one.' }], max_tokens: 200, temperature: 0, response_format: { type: 'json_schema', json_schema: { name: 'pick', schema } }, ...extra };
}

async function postText(url: string, body: string): Promise<{ status: number; body: string; ms: number }> {
  const started = performance.now();
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  return { status: res.status, body: await res.text(), ms: performance.now() - started };
}

const post = (url: string, body: unknown) => postText(url, JSON.stringify(body));

function assertLimit(res: { status: number; body: string }, variable: string) {
  assert.equal(res.status, 400, res.body.slice(0, 300));
  const envelope = JSON.parse(res.body) as Envelope;
  assert.equal(envelope.error.code, 'invalid_value');
  assert.equal(envelope.error.param, 'response_format');
  assert.match(envelope.error.message, new RegExp(variable));
}

/** `{"type":"object","properties":{"a":…}}` nested `levels` times around a string: 2 levels of JSON each. */
function nestedObjects(levels: number): Record<string, unknown> {
  let schema: Record<string, unknown> = { type: 'string', enum: ['x'] };
  for (let i = 0; i < levels; i++) schema = { type: 'object', properties: { a: schema }, required: ['a'] };
  return schema;
}

describe('response_format JSON schema bounds (GRAMMAR_*) on a real process', () => {
  let service: ServiceProcess;
  before(async () => {
    service = spawnService({ GEMMA_MODEL: tinyGemmaPath(), LLM_DEVICE: 'cpu', LLM_CONTEXT_SIZE: '2048', ENABLE_LOCAL_WHISPER: 'false', LOG_LEVEL: 'info' }, await freePort());
    await waitForHealth(service.url, 120_000);
    await waitForReady(service.url, 120_000);
  });
  after(async () => {
    service.child.kill('SIGTERM');
    await service.exited;
  });

  it('a 60,000-value enum gets a fast 400 naming GRAMMAR_MAX_ENUM_VALUES while /health keeps answering', async () => {
    const schema = { enum: Array.from({ length: 60_000 }, (_, i) => `value-${i}`) };
    const body = chat(schema);
    const { result, worstHealthMs, polls } = await whilePolling(service.url, () => post(`${service.url}/v1/chat/completions`, body));
    console.log(`60,000-value enum (${JSON.stringify(body).length} bytes): ${result.status} in ${result.ms.toFixed(0)} ms; /health worst ${worstHealthMs.toFixed(0)} ms over ${polls} polls`);
    assertLimit(result, 'GRAMMAR_MAX_ENUM_VALUES');
    // unbounded, this schema held the event loop for >10 s; the bound is generous for a busy machine
    assert.ok(worstHealthMs < 5000, `/health took ${worstHealthMs.toFixed(0)} ms`);
    assert.equal(service.child.exitCode, null);
  });

  it('a schema nested 3,000 object levels deep gets 400 naming GRAMMAR_MAX_DEPTH (not a 500) on both routes that take response_format', async () => {
    // written as text: JSON.stringify itself overflows the stack on 6,000 levels
    const deep = `${'{"type":"object","properties":{"a":'.repeat(3000)}{"type":"string"}${'}}'.repeat(3000)}`;
    const format = `{"type":"json_schema","json_schema":{"name":"deep","schema":${deep}}}`;
    assertLimit(await postText(`${service.url}/v1/chat/completions`, `{"model":"g","messages":[{"role":"user","content":"x"}],"response_format":${format}}`), 'GRAMMAR_MAX_DEPTH');
    assertLimit(await postText(`${service.url}/v1/generate`, `{"prompt":"x","response_format":${format}}`), 'GRAMMAR_MAX_DEPTH');
  });

  it('a 2,000-long $ref chain (small, shallow as JSON) gets 400 naming GRAMMAR_MAX_DEPTH', async () => {
    const defs: Record<string, unknown> = {};
    for (let i = 0; i < 2000; i++) defs[`d${i}`] = i === 1999 ? { type: 'string' } : { $ref: `#/$defs/d${i + 1}` };
    const res = await post(`${service.url}/v1/chat/completions`, chat({ $defs: defs, $ref: '#/$defs/d0' }));
    assertLimit(res, 'GRAMMAR_MAX_DEPTH');
  });

  it('a schema the grammar cannot honour (definitions refs, dangling or remote $refs, made-up types) is a 400, not an unenforced 200', async () => {
    const cases: [unknown, RegExp][] = [
      [{ definitions: { P: { type: 'object', properties: { a: { type: 'string' } } } }, $ref: '#/definitions/P' }, /put definitions under "\$defs"/],
      [{ $ref: '#/$defs/nope' }, /does not name a definition/],
      [{ $ref: 'http://127.0.0.1:1/x.json' }, /only local "#\/\$defs\/<name>" references/],
      [{ type: 'banana' }, /"type": "banana" is not a JSON Schema type/],
      [{ type: 'object', properties: { a: { type: ['string', 'potato'] } } }, /"potato"/],
    ];
    for (const [schema, message] of cases) {
      const res = await post(`${service.url}/v1/chat/completions`, chat(schema));
      assert.equal(res.status, 400, `${JSON.stringify(schema)} → ${res.body.slice(0, 300)}`);
      const envelope = JSON.parse(res.body) as Envelope;
      assert.equal(envelope.error.param, 'response_format');
      assert.match(envelope.error.message, message);
    }
    // the same definition under $defs is enforced
    const ok = await post(`${service.url}/v1/chat/completions`, chat({ $defs: { P: { type: 'object', properties: { a: { type: 'string', enum: ['x'] } }, required: ['a'] } }, $ref: '#/$defs/P' }));
    assert.equal(ok.status, 200, ok.body.slice(0, 300));
    assert.deepEqual(JSON.parse((JSON.parse(ok.body) as { choices: { message: { content: string } }[] }).choices[0]!.message.content), { a: 'x' });
  });

  it('repetition bounds: one over 1,000 (llama.cpp cannot enforce it) or distinct ones adding up past GRAMMAR_MAX_REPETITIONS get 400; many fields sharing a bound are one rule and pass', async () => {
    const strings = (count: number, length: (i: number) => number) => ({ type: 'object', properties: Object.fromEntries(Array.from({ length: count }, (_, i) => [`p${i}`, { type: 'string', maxLength: length(i) }])), required: ['p0'] });
    const one = await post(`${service.url}/v1/chat/completions`, chat(strings(1, () => 1500)));
    assertLimit(one, 'maxLength, minLength, maxItems or minItems of 1500');
    // 1,200 distinct bounds (an outside review: 1.3 s of llama.cpp per request, other tenants' generations waiting)
    const { result: distinct, worstHealthMs } = await whilePolling(service.url, () => post(`${service.url}/v1/chat/completions`, chat(strings(1200, (i) => 1000 - (i % 900)))));
    assertLimit(distinct, 'GRAMMAR_MAX_REPETITIONS');
    assert.ok(worstHealthMs < 1000, `/health took ${Math.round(worstHealthMs)} ms`);
    const responses = await post(`${service.url}/v1/responses`, { model: 'g', input: 'x', max_output_tokens: 5, text: { format: { type: 'json_schema', name: 'x', schema: strings(40, (i) => 1000 - i) } } });
    assert.equal(responses.status, 400);
    assert.match((JSON.parse(responses.body) as Envelope).error.message, /GRAMMAR_MAX_REPETITIONS/);
    // 1,200 fields with the same few bounds: a handful of rules, within the limit
    const shared = await post(`${service.url}/v1/chat/completions`, chat(strings(1200, (i) => 1000 - (i % 7)), { max_tokens: 5 }));
    assert.equal(shared.status, 200, shared.body.slice(0, 300));
  });

  it('a schema over GRAMMAR_MAX_SCHEMA_BYTES gets 400 naming it', async () => {
    const properties = Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`field_${i}`, { type: 'string' }]));
    assertLimit(await post(`${service.url}/v1/chat/completions`, chat({ type: 'object', properties })), 'GRAMMAR_MAX_SCHEMA_BYTES');
  });

  it('a schema near the bounds (1,000 enum values, ~60 KB; nesting at the depth limit) still gives parseable JSON', async () => {
    const values = Array.from({ length: 1000 }, (_, i) => `choice-${String(i).padStart(4, '0')}-${'x'.repeat(40)}`);
    const wide = { type: 'object', properties: { pick: { type: 'string', enum: values } }, required: ['pick'] };
    assert.ok(JSON.stringify(wide).length > 55_000 && JSON.stringify(wide).length <= 65_536);
    const { result, worstHealthMs } = await whilePolling(service.url, () => post(`${service.url}/v1/chat/completions`, chat(wide)));
    console.log(`1,000-value enum, ${JSON.stringify(wide).length} bytes: ${result.status} in ${result.ms.toFixed(0)} ms; /health worst ${worstHealthMs.toFixed(0)} ms (measurement)`);
    assert.equal(result.status, 200, result.body.slice(0, 300));
    const content = (JSON.parse(result.body) as { choices: { message: { content: string } }[] }).choices[0]!.message.content;
    const parsed = JSON.parse(content) as { pick: string };
    assert.ok(values.includes(parsed.pick), content);
    // the same schema again comes from the grammar cache
    assert.equal((await post(`${service.url}/v1/chat/completions`, chat(wide))).status, 200);
    // the same values as a root enum: llama.cpp's slowest case (one alternation of 1,000 strings)
    const root = await whilePolling(service.url, () => post(`${service.url}/v1/chat/completions`, chat({ enum: values })));
    console.log(`1,000-value root enum: ${root.result.status} in ${root.result.ms.toFixed(0)} ms; /health worst ${root.worstHealthMs.toFixed(0)} ms (measurement)`);
    assert.equal(root.result.status, 200, root.result.body.slice(0, 300));
    assert.ok(values.includes(JSON.parse((JSON.parse(root.result.body) as { choices: { message: { content: string } }[] }).choices[0]!.message.content) as string));

    // the slowest schema to convert within the bounds (2,000 properties, ~51 KB; 30-370 ms of JS,
    // now in the worker): only the answer's start is needed, /health is the measurement
    const fields = { type: 'object', properties: Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`f${i}`, { type: 'string' }])) };
    const slowest = await whilePolling(service.url, () => post(`${service.url}/v1/chat/completions`, chat(fields, { max_tokens: 8 })));
    console.log(`2,000 properties, ${JSON.stringify(fields).length} bytes: ${slowest.result.status} in ${slowest.result.ms.toFixed(0)} ms; /health worst ${slowest.worstHealthMs.toFixed(0)} ms over ${slowest.polls} polls (measurement)`);
    assert.equal(slowest.result.status, 200, slowest.result.body.slice(0, 300));

    // 31 object levels plus the innermost enum = 64 levels of JSON: exactly GRAMMAR_MAX_DEPTH
    // (the grammar indents each level: ~1,000 tokens of output)
    const deepest = nestedObjects(31);
    const ok = await post(`${service.url}/v1/chat/completions`, chat(deepest, { max_tokens: 1900 }));
    assert.equal(ok.status, 200, ok.body.slice(0, 300));
    let value: unknown = JSON.parse((JSON.parse(ok.body) as { choices: { message: { content: string } }[] }).choices[0]!.message.content);
    for (let i = 0; i < 31; i++) value = (value as { a: unknown }).a;
    assert.equal(value, 'x');
    assertLimit(await post(`${service.url}/v1/chat/completions`, chat(nestedObjects(32))), 'GRAMMAR_MAX_DEPTH');
  });
});
