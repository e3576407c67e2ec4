/**
 * Requests refused before any route or hook runs, answered in the same envelope as every other
 * error — with a request id and the security headers — and logged at info (the client's fault):
 * - Fastify's router (the `frameworkErrors` option): a path that is not valid percent-encoding
 *   (FST_ERR_BAD_URL → 400 `invalid_url`), a path parameter over maxParamLength
 *   (FST_ERR_MAX_PARAM_LENGTH → 414 `path_too_long`);
 * - Node's HTTP parser, before Fastify has a request (the server's `clientError`): headers over
 *   Node's size limit (431 `headers_too_large`), a malformed request line or header (400
 *   `malformed_request`), a request not received within REQUEST_TIMEOUT_SECONDS (408
 *   `request_timeout`). There is no response object then, so a minimal HTTP/1.1 response is
 *   written on the socket, which is then closed.
 * - A request without a Host header (HTTP/1.1 requires one; Node would answer a bare 400, and
 *   let a WebSocket handshake through), and a WebSocket handshake that `ws` would refuse with a
 *   bare text/html answer (bad Sec-WebSocket-Key, version, Upgrade): refused from the onRequest
 *   hook (requestShapeError) as 400 in the envelope, before authentication.
 */
import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { ConnectionError, FastifyBaseLogger, FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingMessage } from 'node:http';
import { ApiError, typeForStatus } from '../errors.ts';
import { redactUrl } from '../observability/logger.ts';

/** Headers every refusal carries besides the request id (the security headers; known once the app is built). */
export type HeaderSource = () => Record<string, string>;

const ROUTER_ERRORS: Record<string, { status: number; code: string; message: string }> = {
  FST_ERR_BAD_URL: { status: 400, code: 'invalid_url', message: 'The URL path is not valid percent-encoding.' },
  FST_ERR_MAX_PARAM_LENGTH: { status: 414, code: 'path_too_long', message: 'A path segment is too long (over 1024 characters).' },
};

/** At most this much of a refused URL goes into the log line. */
const LOGGED_URL_CHARS = 200;

/** The `frameworkErrors` option: router refusals in the envelope. */
export function frameworkErrorHandler(requestIdHeader: string, headers: HeaderSource) {
  return (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void => {
    const known = ROUTER_ERRORS[error.code];
    const status = known?.status ?? error.statusCode ?? 500;
    const apiError = new ApiError(status, typeForStatus(status), known?.message ?? (status >= 500 ? 'Internal server error' : error.message), { code: known?.code ?? error.code.toLowerCase() });
    const fields = { method: request.method, url: redactUrl(request.url.slice(0, LOGGED_URL_CHARS)), status, code: apiError.code };
    if (status >= 500) request.log.error({ ...fields, err: error }, 'request failed');
    else request.log.info(fields, 'request rejected');
    void reply
      .code(status)
      .headers({ ...headers(), [requestIdHeader]: request.id })
      .send(apiError.envelope(request.id));
  };
}

const PARSER_ERRORS: Record<string, { status: number; code: string; message: string }> = {
  HPE_HEADER_OVERFLOW: { status: 431, code: 'headers_too_large', message: 'The request headers are larger than the server accepts.' },
  HPE_CHUNK_EXTENSIONS_OVERFLOW: { status: 413, code: 'chunk_extensions_too_large', message: 'The chunk extensions of the request body are larger than the server accepts.' },
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, code: 'request_timeout', message: 'The request was not received in time (REQUEST_TIMEOUT_SECONDS).' },
};
/** How long the client gets to read the answer before its socket is destroyed. */
const LINGER_MS = 1000;

/**
 * The server's `clientError` handler. Nothing is written where a response has already started on
 * the socket (a pipelined request): that would corrupt it, so the socket is only closed.
 */
export function clientErrorHandler(requestIdHeader: string, headers: HeaderSource, log: FastifyBaseLogger) {
  let fixedHead: string | undefined;
  const head = () => (fixedHead ??= Object.entries(headers()).map(([name, value]) => `${name}: ${value}\r\n`).join(''));
  const answered = new WeakSet<Socket>();
  return (error: ConnectionError, socket: Socket): void => {
    // the parser may report again for data that follows; one answer per socket
    if (answered.has(socket)) return;
    answered.add(socket);
    if (error.code === 'ECONNRESET' || socket.destroyed) return void socket.destroy();
    const known = PARSER_ERRORS[error.code] ?? { status: 400, code: 'malformed_request', message: 'The request is not valid HTTP/1.1.' };
    const id = randomUUID();
    log.info({ request_id: id, status: known.status, code: known.code, reason: error.code, remote_address: socket.remoteAddress }, 'request rejected');
    const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (!socket.writable || inFlight?.headersSent) return void socket.destroy();
    const body = JSON.stringify(new ApiError(known.status, typeForStatus(known.status), known.message, { code: known.code }).envelope(id));
    socket.end(
      `HTTP/1.1 ${known.status} ${STATUS_CODES[known.status]}\r\n` +
        `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${requestIdHeader}: ${id}\r\n${head()}Connection: close\r\n\r\n${body}`,
    );
    // unread request bytes are dropped; the socket goes once the client had time to read the answer
    socket.resume();
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
  };
}

/** ws's own test of a handshake key: 16 random bytes, base64 (RFC 6455 §4.1). */
const WEBSOCKET_KEY = /^[+/0-9A-Za-z]{22}==$/;

/**
 * Why this request is refused before routing on (no Host header; a WebSocket handshake to a
 * WebSocket route that `ws` would refuse), or undefined. The server needs `requireHostHeader:
 * false` so that the first case reaches here instead of Node's bare 400.
 */
export function requestShapeError(raw: IncomingMessage, websocketRoute: boolean): ApiError | undefined {
  if (raw.headers.host === undefined && raw.httpVersionMajor === 1 && raw.httpVersionMinor >= 1) {
    return new ApiError(400, 'invalid_request_error', 'The request has no Host header; HTTP/1.1 requires one.', { param: 'Host', code: 'missing_host' });
  }
  if (!websocketRoute || raw.headers.upgrade === undefined) return undefined;
  const bad = (header: string, message: string, headers: Record<string, string> = {}) =>
    new ApiError(400, 'invalid_request_error', message, { param: header, code: 'invalid_websocket_handshake', headers });
  if (raw.headers.upgrade.toLowerCase() !== 'websocket') return bad('Upgrade', `This route upgrades only to "websocket", not "${raw.headers.upgrade.slice(0, 50)}".`);
  const key = raw.headers['sec-websocket-key'];
  if (key === undefined || !WEBSOCKET_KEY.test(key)) return bad('Sec-WebSocket-Key', 'The Sec-WebSocket-Key header is missing or not 16 bytes in base64 (RFC 6455).');
  const version = raw.headers['sec-websocket-version'];
  if (version !== '13' && version !== '8') return bad('Sec-WebSocket-Version', 'The Sec-WebSocket-Version header is missing or not supported; this server speaks version 13.', { 'Sec-WebSocket-Version': '13, 8' });
  return undefined;
}
