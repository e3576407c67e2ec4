/**
 * The signal every route hands to its service: cancelled when the client leaves, or when the
 * request runs past REQUEST_TIMEOUT_SECONDS before its response starts (then the error handler
 * answers 504 `request_timeout`, whatever the cancelled work threw).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import OpenAI from 'openai';
import { ApiError } from '../errors.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** REQUEST_TIMEOUT_SECONDS in ms (0 = none): how long a request may take until its response starts. */
    requestTimeoutMs: number;
  }
}

const timedOut = new WeakMap<FastifyRequest, ApiError>();
const clientLeft = new WeakSet<FastifyRequest>();

/** An error that only says the work was cancelled (ours, the OpenAI SDK's, p-retry's), here or in its causes. */
export function isAbortError(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e.name === 'AbortError' || (e as { code?: unknown }).code === 'ABORT_ERR' || e instanceof OpenAI.APIUserAbortError) return true;
  }
  return false;
}

/**
 * The work was cancelled because the client went away (it disconnected before its response was
 * finished): the client's doing, logged at info without a stack, not a server error.
 */
export function abortedByClient(request: FastifyRequest, error: unknown): boolean {
  return (clientLeft.has(request) || request.raw.socket?.destroyed === true) && isAbortError(error);
}

/** The one log line of a request whose client left mid-work. */
export function logClientAbort(request: FastifyRequest, error: unknown): void {
  request.log.info({ reason: error instanceof Error ? error.message : String(error) }, 'request aborted: the client disconnected');
}

/** The 504 of a request that ran past REQUEST_TIMEOUT_SECONDS, whatever its work threw when it was cancelled. */
export function deadlineError(request: FastifyRequest): ApiError | undefined {
  return timedOut.get(request);
}

/**
 * The signal a route hands to its service: it fires when the client goes away before the response
 * is finished, or when REQUEST_TIMEOUT_SECONDS (counted from the request's arrival) pass before
 * the response has started. A response that has started streaming is left to its own limits.
 */
export function clientSignal(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  const raw = reply.raw;
  const ms = reply.server.requestTimeoutMs;
  const timer =
    ms > 0
      ? setTimeout(() => {
          if (raw.headersSent || controller.signal.aborted) return;
          const error = new ApiError(504, 'server_error', `The request took longer than REQUEST_TIMEOUT_SECONDS (${ms / 1000} s) and was cancelled.`, { code: 'request_timeout' });
          timedOut.set(reply.request, error);
          controller.abort(error);
        }, Math.max(0, ms - reply.elapsedTime))
      : undefined;
  const onClose = () => {
    clearTimeout(timer);
    if (raw.writableFinished) return;
    clientLeft.add(reply.request);
    controller.abort(new DOMException('client disconnected', 'AbortError'));
  };
  // a client that left before the route asked for its signal (while the body was parsed) gets no 'close' event now
  if (raw.destroyed) onClose();
  else raw.on('close', onClose);
  return controller.signal;
}
