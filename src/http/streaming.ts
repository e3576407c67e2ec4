/** Server-Sent Events shared by every streaming route. */
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../errors.ts';
import { toApiError } from './error-handling.ts';
import { abortedByClient, logClientAbort } from './request-signal.ts';

export interface SseEvent {
  event?: string;
  data: unknown;
}

function frame(e: SseEvent): string {
  const data = typeof e.data === 'string' ? e.data : JSON.stringify(e.data);
  return `${e.event ? `event: ${e.event}\n` : ''}data: ${data}\n\n`;
}

/**
 * Sends `events` as text/event-stream. An error after the first byte becomes a final
 * `event: error` carrying the usual envelope (the status line is already gone) — or, for a route
 * whose protocol names its own failure event (the Responses API's `response.failed`), the event
 * `errorEvent` makes of it; either way logged here, once, and a client that left only at info.
 */
export function sendSse(request: FastifyRequest, reply: FastifyReply, events: AsyncIterable<SseEvent>, errorEvent: string | ((error: ApiError) => SseEvent) = 'error'): FastifyReply {
  async function* body() {
    try {
      for await (const e of events) yield frame(e);
    } catch (error) {
      if (abortedByClient(request, error)) return logClientAbort(request, error);
      const apiError = toApiError(error as Error);
      // as outside streams: a stack for the unexpected; our own 5xx (an upstream failure) is a warning
      if (apiError.statusCode >= 500 && !(error instanceof ApiError)) request.log.error({ err: error }, 'stream failed');
      else if (apiError.statusCode >= 500) request.log.warn({ status: apiError.statusCode, code: apiError.code, reason: apiError.message }, 'stream failed');
      yield frame(typeof errorEvent === 'string' ? { event: errorEvent, data: apiError.envelope(request.id) } : errorEvent(apiError));
    }
  }
  return reply
    .header('Content-Type', 'text/event-stream; charset=utf-8')
    .header('Cache-Control', 'no-cache')
    .header('X-Accel-Buffering', 'no')
    .send(Readable.from(body(), { objectMode: false }));
}
