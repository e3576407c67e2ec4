/** What every WebSocket route shares: JSON events out, errors as the envelope, validated JSON messages in. */
import type { FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { z } from 'zod';
import { ApiError } from '../../errors.ts';
import { toApiError } from '../error-handling.ts';
import { isAbortError } from '../request-signal.ts';

export class JsonSocket {
  constructor(
    readonly socket: WebSocket,
    readonly request: FastifyRequest,
    private readonly route: string,
  ) {}

  get open(): boolean {
    return this.socket.readyState === this.socket.OPEN;
  }

  send(message: object): void {
    if (this.open) this.socket.send(JSON.stringify(message));
  }

  /** Binary audio, resolved once handed to the socket (backpressure for the sender). */
  sendBinary(bytes: Buffer): Promise<void> {
    if (!this.open) return Promise.resolve();
    return new Promise((resolve, reject) => this.socket.send(bytes, (error) => (error ? reject(error) : resolve())));
  }

  /** The error event (the envelope's `error`), with any extra fields such as `turn_id`. */
  error(error: unknown, extra: object = {}): void {
    // work cancelled because the client closed the socket: nobody to tell, and not a server error
    if (!this.open && isAbortError(error)) return void this.request.log.info({ reason: (error as Error).message }, `${this.route}: work cancelled, the client closed the socket`);
    const apiError = toApiError(error as Error);
    // as over HTTP: a stack for the unexpected; our own 5xx answers (shutting_down, engine unavailable) are told, not failures
    if (apiError.statusCode >= 500 && !(error instanceof ApiError)) this.request.log.error({ err: error }, `${this.route} failed`);
    else if (apiError.statusCode >= 500) this.request.log.warn({ status: apiError.statusCode, code: apiError.code, reason: apiError.message }, `${this.route}: error event sent`);
    this.send({ type: 'error', ...extra, error: apiError.envelope(this.request.id).error, request_id: this.request.id });
  }

  /** Parses a text frame against `schema`; sends an error event and returns undefined when it does not fit. */
  parse<T extends z.ZodType>(data: Buffer, schema: T, example: string): z.infer<T> | undefined {
    let json: unknown;
    try {
      json = JSON.parse(data.toString('utf8'));
    } catch {
      this.error(badMessage(`Messages must be JSON, e.g. ${example}.`));
      return undefined;
    }
    const result = schema.safeParse(json);
    if (!result.success) {
      this.error(badMessage(`Invalid message: ${result.error.issues.map((i) => `${i.path.join('.') || 'message'}: ${i.message}`).join('; ')}`));
      return undefined;
    }
    return result.data;
  }
}

export function badMessage(message: string): ApiError {
  return ApiError.badRequest(message, null, 'invalid_message');
}

/**
 * Validates a socket's query string; on failure sends the error event and closes with 1008
 * (policy violation), returning undefined.
 */
export function parseQuery<T extends z.ZodType>(socket: WebSocket, request: FastifyRequest, schema: T, query: unknown, code = 'invalid_message'): z.infer<T> | undefined {
  const result = schema.safeParse(query);
  if (result.success) return result.data;
  const error = ApiError.badRequest(`Invalid query: ${result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, null, code);
  socket.send(JSON.stringify({ type: 'error', error: error.envelope(request.id).error, request_id: request.id }));
  socket.close(1008, 'invalid query');
  return undefined;
}

/** Refuses the socket (error event, then close) when a capability is not available. */
export function refuseUnavailable(socket: WebSocket, request: FastifyRequest, check: () => void): boolean {
  try {
    check();
    return false;
  } catch (error) {
    socket.send(JSON.stringify({ type: 'error', error: toApiError(error as Error).envelope(request.id).error, request_id: request.id }));
    socket.close(1013, 'engine unavailable');
    return true;
  }
}
