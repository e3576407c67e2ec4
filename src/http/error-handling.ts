/** Every error on every route leaves as the one envelope; nothing leaks a stack trace. */
import type { FastifyError, FastifyInstance } from 'fastify';
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod';
import { ApiError, typeForStatus } from '../errors.ts';

const FASTIFY_CODES: Record<string, { status: number; code: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'body_too_large' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: 'unsupported_media_type' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: 'invalid_content_length' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'empty_body' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'invalid_json' },
  FST_ERR_CTP_EMPTY_TYPE: { status: 415, code: 'unsupported_media_type' },
  FST_ERR_CTP_INVALID_TYPE: { status: 415, code: 'unsupported_media_type' },
};

/** `/messages/0/content` → `messages[0].content` */
function paramFromPath(path: string): string | null {
  const parts = path.split('/').filter(Boolean);
  if (parts.length === 0) return null;
  return parts.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

export function toApiError(error: FastifyError | ApiError | Error): ApiError {
  if (error instanceof ApiError) return error;
  if (hasZodFastifySchemaValidationErrors(error)) {
    const issues = error.validation;
    const first = issues[0];
    const param = first ? paramFromPath(first.instancePath) : null;
    const message = issues
      .map((i) => {
        const p = paramFromPath(i.instancePath);
        return p ? `${p}: ${i.message}` : `${error.validationContext ?? 'request'}: ${i.message}`;
      })
      .join('; ');
    return new ApiError(400, 'invalid_request_error', message, { param, code: 'invalid_value' });
  }
  if (isResponseSerializationError(error)) {
    return new ApiError(500, 'server_error', 'Internal server error', { code: 'response_serialization', cause: error });
  }
  const fastifyError = error as FastifyError;
  const known = fastifyError.code ? FASTIFY_CODES[fastifyError.code] : undefined;
  if (known) return new ApiError(known.status, typeForStatus(known.status), fastifyError.message, { code: known.code });
  const status = fastifyError.statusCode;
  if (status && status >= 400 && status < 500) {
    return new ApiError(status, typeForStatus(status), fastifyError.message, { code: fastifyError.code?.toLowerCase() ?? null });
  }
  return new ApiError(500, 'server_error', 'Internal server error', { code: null, cause: error });
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const apiError = toApiError(error);
    if (apiError.statusCode >= 500 && !(error instanceof ApiError)) request.log.error({ err: error }, 'request failed');
    else request.log[apiError.statusCode >= 500 ? 'warn' : 'info']({ status: apiError.statusCode, code: apiError.code, reason: apiError.message }, 'request rejected');
    void reply.code(apiError.statusCode).headers(apiError.headers).send(apiError.envelope(request.id));
  });

  app.setNotFoundHandler((request, reply) => {
    const error = new ApiError(404, 'not_found_error', `No route for ${request.method} ${request.url.split('?')[0]}`, { code: 'route_not_found' });
    void reply.code(404).send(error.envelope(request.id));
  });
}
