/**
 * JSON bodies, parsed as Fastify does (secure-json-parse, refusing `__proto__` and
 * `constructor.prototype` keys: prototype poisoning), but saying why. Fastify's own parser answers
 * a body with such a key "Body is not valid JSON" — wrong for well-formed JSON, and a client cannot
 * tell what to change. A body the default parser refuses is parsed once more with JSON.parse (which
 * never touches prototypes): if that succeeds, the refusal was a forbidden key.
 */
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../errors.ts';

/** `allowEmpty`: an empty body is no body (routes whose body is optional, e.g. POST /v1/models/{id}/load). */
export function registerJsonBody(app: FastifyInstance, options: { allowEmpty?: boolean } = {}): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (options.allowEmpty && (body as string).trim() === '') return done(null, undefined);
    void parse(request, body as string, (error: Error | null, value?: unknown) => {
      if (error && (error as { code?: string }).code === 'FST_ERR_CTP_INVALID_JSON_BODY' && wellFormed(body as string)) {
        done(new ApiError(400, 'invalid_request_error', 'JSON keys __proto__ and constructor.prototype are not accepted (prototype-poisoning protection); rename the key.', { code: 'forbidden_json_key' }), undefined);
        return;
      }
      done(error, value);
    });
  });
}

function wellFormed(body: string): boolean {
  try {
    JSON.parse(body);
    return true;
  } catch {
    return false;
  }
}
