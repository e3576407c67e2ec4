/** Every error on every route leaves as the one envelope; nothing leaks a stack trace. */
import type { IncomingMessage } from 'node:http';
import type { FastifyError, FastifyInstance } from 'fastify';
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod';
import { ApiError, typeForStatus } from '../errors.ts';
import { isUpgrade } from './auth.ts';
import { stopDecoding } from './content-encoding.ts';
import { multipartTooLarge } from './multipart-audio.ts';
import { abortedByClient, deadlineError, logClientAbort } from './request-signal.ts';

const FASTIFY_CODES: Record<string, { status: number; code: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'body_too_large' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: 'unsupported_media_type' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: 'invalid_content_length' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'empty_body' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'invalid_json' },
  FST_ERR_CTP_EMPTY_TYPE: { status: 415, code: 'unsupported_media_type' },
  FST_ERR_CTP_INVALID_TYPE: { status: 415, code: 'unsupported_media_type' },
  // @fastify/multipart's part-count limits: a malformed form, not a body too large
  FST_FILES_LIMIT: { status: 400, code: 'invalid_multipart' },
  FST_FIELDS_LIMIT: { status: 400, code: 'invalid_multipart' },
  FST_PARTS_LIMIT: { status: 400, code: 'invalid_multipart' },
};

/** `/messages/0/content` → `messages[0].content` */
function paramFromPath(path: string): string | null {
  // a client's own keys can be any length (a 900 KB metadata key): echo at most 64 characters of each
  const parts = path
    .split('/')
    .filter(Boolean)
    .map((p) => (p.length > 64 ? `${p.slice(0, 61)}...` : p));
  if (parts.length === 0) return null;
  return parts.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

type ValidationIssue = FastifyError['validation'] extends (infer I)[] | undefined ? I : never;
interface ZodIssueLike {
  code: string;
  path: PropertyKey[];
  message: string;
}

/**
 * A body that may take one of several shapes (multipart form | JSON with `audio_base64`) is a zod
 * union at the root, and zod reports a mismatch there as one "Invalid input" with no path. The
 * issues of the shape the body came closest to name the field instead: fewest issues, where one
 * about a field the body does not have (the other shape's `file`) counts double.
 */
function closestShape(issues: ValidationIssue[], body: unknown): ValidationIssue[] {
  const has = (key: PropertyKey | undefined) => typeof body === 'object' && body !== null && key !== undefined && Object.hasOwn(body, key);
  const score = (branch: ZodIssueLike[]) => branch.reduce((sum, i) => sum + (body === undefined || has(i.path[0]) ? 1 : 2), 0);
  return issues.flatMap((issue) => {
    const branches = (issue.params as { errors?: unknown } | undefined)?.errors;
    if (issue.keyword !== 'invalid_union' || issue.instancePath !== '/' || !Array.isArray(branches) || branches.length === 0) return [issue];
    const closest = (branches as ZodIssueLike[][]).reduce((best, branch) => (score(branch) < score(best) ? branch : best));
    if (closest.length === 0) return [issue];
    return closest.map(({ code, path, message, ...params }) => ({ ...issue, keyword: code, instancePath: `/${path.map(String).join('/')}`, schemaPath: `#/${path.map(String).join('/')}/${code}`, message, params }));
  });
}

/** `body`: the request's parsed body, when there is one (it picks the closest shape of a union body). */
export function toApiError(error: FastifyError | ApiError | Error, body?: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (hasZodFastifySchemaValidationErrors(error)) {
    const issues = closestShape(error.validation, body);
    // a field a strict schema does not know: named as OpenAI names it (`Unknown parameter: 'x'.`)
    const unknown = issues.find((i) => i.keyword === 'unrecognized_keys');
    const key = (unknown?.params as { keys?: string[] } | undefined)?.keys?.[0];
    if (unknown && key !== undefined) {
      const param = paramFromPath(`${unknown.instancePath}/${key}`) ?? key;
      return new ApiError(400, 'invalid_request_error', `Unknown parameter: '${param}'.`, { param, code: 'unknown_parameter' });
    }
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
  // the multipart parser (busboy) rejects malformed bodies with plain Errors and no code
  if (!fastifyError.code && /^(Unexpected end of (multipart data|form)|Multipart: |Malformed part header|Part terminated early|Boundary not found)/i.test(error.message)) {
    return new ApiError(400, 'invalid_request_error', `Malformed multipart/form-data body: ${error.message}.`, { code: 'invalid_multipart' });
  }
  const known = fastifyError.code ? FASTIFY_CODES[fastifyError.code] : undefined;
  if (known?.code === 'invalid_multipart') {
    return new ApiError(400, 'invalid_request_error', `Malformed multipart/form-data body: ${fastifyError.message} (one file, at most 32 fields and 40 parts).`, { code: known.code, param: fastifyError.code === 'FST_FILES_LIMIT' ? 'file' : null });
  }
  if (known) return new ApiError(known.status, typeForStatus(known.status), fastifyError.message, { code: known.code });
  const status = fastifyError.statusCode;
  if (status && status >= 400 && status < 500) {
    return new ApiError(status, typeForStatus(status), fastifyError.message, { code: fastifyError.code?.toLowerCase() ?? null });
  }
  return new ApiError(500, 'server_error', 'Internal server error', { code: null, cause: error });
}

/** How much of a refused, oversized body is read and dropped so the client gets its 413 (and for how long). */
const DRAIN_LIMIT_BYTES = 64 * 1024 * 1024;
const DRAIN_LIMIT_MS = 5000;
const DRAIN_IDLE_MS = 250;

/**
 * A body refused before it was read: answering at once and closing a socket that still holds
 * unread data makes the kernel send a reset, and most clients then lose the answer. So the rest is
 * read and dropped first — up to DRAIN_LIMIT_BYTES / DRAIN_LIMIT_MS, then the socket is cut.
 */
function drain(raw: IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    let bytes = 0;
    const done = () => {
      clearTimeout(timer);
      clearTimeout(idle);
      raw.off('data', onData);
      resolve();
    };
    // a parser that gave up (multipart limits) may leave the stream without an 'end': stop once it goes quiet
    let idle = setTimeout(done, DRAIN_IDLE_MS);
    const onData = (chunk: Buffer) => {
      bytes += chunk.length;
      clearTimeout(idle);
      idle = setTimeout(done, DRAIN_IDLE_MS);
      if (bytes > DRAIN_LIMIT_BYTES) {
        raw.destroy();
        done();
      }
    };
    const timer = setTimeout(() => {
      raw.destroy();
      done();
    }, DRAIN_LIMIT_MS);
    raw.on('data', onData);
    raw.once('end', done);
    raw.once('error', done);
    raw.once('close', done);
    raw.resume();
  });
}

/** Refusals that come before the body is read: 401/429 (authentication), 413 (too large). */
const REFUSED_UNREAD = new Set([401, 413, 429]);
/** Refusals part-way through a body: a compressed one that is not valid data (src/http/content-encoding.ts). */
const REFUSED_PART_READ = new Set(['invalid_content_encoding']);

/** A request whose body has not been received yet (never an upgrade: it has no body). */
function hasUnreadBody(raw: IncomingMessage): boolean {
  if (raw.complete || isUpgrade(raw)) return false;
  return raw.headers['transfer-encoding'] !== undefined || Number(raw.headers['content-length'] ?? 0) > 0;
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler(async (error: FastifyError, request, reply) => {
    if (abortedByClient(request, error)) {
      // nobody reads this answer; 499 (nginx's "client closed request") is what any metric sees
      logClientAbort(request, error);
      return reply.code(499).send(new ApiError(499, 'invalid_request_error', 'The client disconnected.', { code: 'client_disconnected' }).envelope(request.id));
    }
    const apiError = deadlineError(request) ?? multipartTooLarge(error, request) ?? toApiError(error, request.body);
    if (apiError.statusCode >= 500 && !(error instanceof ApiError) && apiError.code !== 'request_timeout') request.log.error({ err: error }, 'request failed');
    else request.log[apiError.statusCode >= 500 ? 'warn' : 'info']({ status: apiError.statusCode, code: apiError.code, reason: apiError.message }, 'request rejected');
    if ((REFUSED_UNREAD.has(apiError.statusCode) || REFUSED_PART_READ.has(apiError.code ?? '')) && hasUnreadBody(request.raw)) {
      // a refused body (too large, not valid compressed data, or sent without a valid key) is not
      // read on: drain what is already on its way (bounded) so the answer arrives, then close
      // rather than keep reading; a body being inflated stops inflating first
      stopDecoding(request.raw);
      await drain(request.raw);
      void reply.header('Connection', 'close');
    }
    return reply.code(apiError.statusCode).headers(apiError.headers).send(apiError.envelope(request.id));
  });

  app.setNotFoundHandler((request, reply) => {
    const error = new ApiError(404, 'not_found_error', `No route for ${request.method} ${request.url.split('?')[0]}`, { code: 'route_not_found' });
    void reply.code(404).send(error.envelope(request.id));
  });
}
