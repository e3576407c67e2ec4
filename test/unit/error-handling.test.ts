import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ApiError } from '../../src/errors.ts';
import { registerErrorHandling } from '../../src/http/error-handling.ts';

async function appWithRoutes() {
  const app = Fastify({ bodyLimit: 1024 }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerErrorHandling(app);
  app.post('/v', { schema: { body: z.object({ prompt: z.string(), n: z.number().int().max(4), messages: z.array(z.object({ content: z.string() })).optional() }) } }, async () => ({ ok: true }));
  app.get('/boom', async () => {
    throw new Error('secret internals at /srv/app.ts:12');
  });
  app.get('/limited', async () => {
    throw new ApiError(429, 'rate_limit_error', 'Too many', { code: 'queue_full', headers: { 'Retry-After': '2' } });
  });
  return app;
}

function assertEnvelope(body: unknown) {
  const b = body as { error: Record<string, unknown>; request_id: string };
  assert.deepEqual(Object.keys(b).sort(), ['error', 'request_id']);
  assert.deepEqual(Object.keys(b.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(typeof b.request_id, 'string');
  return b;
}

describe('error envelope', () => {
  it('names the field that failed validation', async () => {
    const app = await appWithRoutes();
    const res = await app.inject({ method: 'POST', url: '/v', payload: { prompt: 1, n: 2 } });
    assert.equal(res.statusCode, 400);
    const body = assertEnvelope(res.json());
    assert.equal(body.error.type, 'invalid_request_error');
    assert.equal(body.error.param, 'prompt');
    assert.match(String(body.error.message), /^prompt: /);
    const nested = assertEnvelope((await app.inject({ method: 'POST', url: '/v', payload: { prompt: 'x', n: 1, messages: [{ content: 3 }] } })).json());
    assert.equal(nested.error.param, 'messages[0].content');
  });

  it('maps malformed JSON, wrong content type and oversized bodies to 4xx', async () => {
    const app = await appWithRoutes();
    const bad = await app.inject({ method: 'POST', url: '/v', headers: { 'content-type': 'application/json' }, payload: '{"prompt":' });
    assert.equal(bad.statusCode, 400);
    assert.equal(assertEnvelope(bad.json()).error.code, 'invalid_json');
    const type = await app.inject({ method: 'POST', url: '/v', headers: { 'content-type': 'application/x-nope' }, payload: 'x' });
    assert.equal(type.statusCode, 415);
    assert.equal(assertEnvelope(type.json()).error.type, 'invalid_request_error');
    const big = await app.inject({ method: 'POST', url: '/v', payload: { prompt: 'x'.repeat(5000), n: 1 } });
    assert.equal(big.statusCode, 413);
    assertEnvelope(big.json());
  });

  it('hides internals of unexpected errors behind a 500 envelope', async () => {
    const app = await appWithRoutes();
    const res = await app.inject({ method: 'GET', url: '/boom' });
    assert.equal(res.statusCode, 500);
    const body = assertEnvelope(res.json());
    assert.equal(body.error.message, 'Internal server error');
    assert.doesNotMatch(res.body, /secret internals|\.ts:/);
  });

  it('carries status, code and headers of an ApiError', async () => {
    const app = await appWithRoutes();
    const res = await app.inject({ method: 'GET', url: '/limited' });
    assert.equal(res.statusCode, 429);
    assert.equal(res.headers['retry-after'], '2');
    assert.equal(assertEnvelope(res.json()).error.type, 'rate_limit_error');
  });

  it('answers unknown routes with a 404 envelope', async () => {
    const app = await appWithRoutes();
    const res = await app.inject({ method: 'GET', url: '/nope?x=1' });
    assert.equal(res.statusCode, 404);
    assert.equal(assertEnvelope(res.json()).error.type, 'not_found_error');
  });
});

describe('error types by status', () => {
  it('a 403 is a permission_error (OpenAI\'s type), a 401 an authentication_error', async () => {
    const { typeForStatus } = await import('../../src/errors.ts');
    assert.equal(typeForStatus(401), 'authentication_error');
    assert.equal(typeForStatus(403), 'permission_error');
    assert.equal(typeForStatus(404), 'not_found_error');
  });
});
