/**
 * One error envelope for every route, OpenAI style so the OpenAI SDKs parse it:
 * {"error":{"message","type","param","code"},"request_id"}.
 */
import { z } from 'zod';

export const ERROR_TYPES = [
  'invalid_request_error',
  'authentication_error',
  'permission_error',
  'not_found_error',
  'rate_limit_error',
  'server_error',
  'upstream_error',
] as const;
export type ErrorType = (typeof ERROR_TYPES)[number];

export const errorEnvelopeSchema = z
  .object({
    error: z.object({
      message: z.string().describe('What went wrong, for a person to read.'),
      type: z.enum(ERROR_TYPES),
      param: z.string().nullable().describe('The request field at fault, when there is one.'),
      code: z.string().nullable().describe('A stable machine-readable code, when there is one.'),
    }),
    request_id: z.string().describe('The id of this request; also in the response header and every log line.'),
  })
  .meta({
    id: 'ErrorEnvelope',
    example: {
      error: { message: 'prompt: Required', type: 'invalid_request_error', param: 'prompt', code: 'invalid_value' },
      request_id: '6f1c2a9e-3c1b-4c55-9a55-0b4f7f2d1e11',
    },
  });
export type ErrorEnvelope = z.infer<typeof errorEnvelopeSchema>;

export interface ApiErrorOptions {
  param?: string | null;
  code?: string | null;
  headers?: Record<string, string>;
  cause?: unknown;
}

/** An error that knows its HTTP status and envelope fields. Throw it from services and routes. */
export class ApiError extends Error {
  readonly param: string | null;
  readonly code: string | null;
  readonly headers: Record<string, string>;

  constructor(
    readonly statusCode: number,
    readonly type: ErrorType,
    message: string,
    options: ApiErrorOptions = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'ApiError';
    this.param = options.param ?? null;
    this.code = options.code ?? null;
    this.headers = options.headers ?? {};
  }

  static badRequest(message: string, param: string | null = null, code: string | null = 'invalid_value'): ApiError {
    return new ApiError(400, 'invalid_request_error', message, { param, code });
  }

  static unavailable(message: string, code: string): ApiError {
    return new ApiError(503, 'server_error', message, { code });
  }

  envelope(requestId: string): ErrorEnvelope {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code }, request_id: requestId };
  }
}

/** Whether the next engine of a fallback chain should try: anything but a client error (4xx) is. */
export function isRetryable(error: unknown): boolean {
  return !(error instanceof ApiError) || error.statusCode >= 500;
}

/** The error type that matches an HTTP status, for errors that did not come as an ApiError. */
export function typeForStatus(status: number): ErrorType {
  if (status === 401) return 'authentication_error';
  // OpenAI's type for a 403 (its SDKs raise PermissionDeniedError on the status either way)
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  if (status === 502 || status === 504) return 'upstream_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}
