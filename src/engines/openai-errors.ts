/** OpenAI-compatible upstreams (via the official SDK): their connection options, the client, and their errors mapped onto our envelope. */
import OpenAI from 'openai';
import { ApiError } from '../errors.ts';

/** What every OpenAI-compatible adapter needs to reach its server. */
export interface OpenAiUpstreamOptions {
  /** Base URL of the server's OpenAI API, e.g. `http://vllm:8000/v1`. */
  baseUrl: string;
  /** Bearer key, when the server needs one. */
  apiKey?: string;
  /** The model name sent upstream (and reported as this engine's model). */
  model: string;
  /** Bound of one attempt, in milliseconds. */
  timeoutMs: number;
  /** Retries with backoff on 408/409/429/5xx and connection errors. */
  maxRetries: number;
  /** What to tell the operator to fix when the server cannot be used (names their settings). */
  remedy?: string;
}

export function openAiClient(options: OpenAiUpstreamOptions, fetchImpl: typeof fetch): OpenAI {
  return new OpenAI({ baseURL: options.baseUrl, apiKey: options.apiKey ?? 'not-needed', maxRetries: options.maxRetries, timeout: options.timeoutMs, fetch: fetchImpl });
}

/** Upstream 4xx → 400 with its message (401/403 → 502: our credentials are wrong), 429 → 429, 5xx/connection/malformed JSON → 502, timeout → 504. */
export function upstreamError(error: unknown, upstream: string): unknown {
  if (error instanceof OpenAI.APIUserAbortError) return error;
  if (error instanceof OpenAI.APIConnectionTimeoutError) {
    return new ApiError(504, 'upstream_error', `${upstream} did not answer in time.`, { code: 'upstream_timeout', cause: error });
  }
  if (error instanceof OpenAI.APIConnectionError) {
    return new ApiError(502, 'upstream_error', `${upstream} is unreachable (${error.message}).`, { code: 'upstream_unreachable', cause: error });
  }
  if (error instanceof SyntaxError) {
    // a 200 whose body is not the JSON the API promises (a proxy's HTML page, a truncated answer)
    return new ApiError(502, 'upstream_error', `${upstream} sent a malformed answer (${error.message}).`, { code: 'upstream_bad_response', cause: error });
  }
  if (error instanceof OpenAI.APIError && error.status !== undefined) {
    if (error.status === 429) return new ApiError(429, 'rate_limit_error', `${upstream} is rate limiting: ${error.message}`, { code: 'upstream_rate_limited', headers: { 'Retry-After': '1' } });
    if (error.status >= 400 && error.status < 500) {
      return new ApiError(error.status === 401 || error.status === 403 ? 502 : 400, error.status === 401 || error.status === 403 ? 'upstream_error' : 'invalid_request_error', `${upstream} refused the request: ${error.message}`, {
        code: error.status === 401 || error.status === 403 ? 'upstream_auth' : 'upstream_rejected',
        cause: error,
      });
    }
    return new ApiError(502, 'upstream_error', `${upstream} failed: ${error.message}`, { code: 'upstream_failed', cause: error });
  }
  return error;
}

