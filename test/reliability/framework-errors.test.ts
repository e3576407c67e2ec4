/**
 * Requests refused before any route runs — by Fastify's router (a bad percent-encoding, a path
 * parameter over 1,024 characters) or by Node's HTTP parser before Fastify sees a request (a
 * 20 KB header, a malformed request line, a malformed header) — answer on a real service process
 * in the error envelope, with a request id (header = body) and the security headers, and are
 * logged once at info. Sent over raw sockets, byte for byte as a hostile client would.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { freePort, spawnService, waitForHealth, type ServiceProcess } from '../helpers/process.ts';

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: { error: { message: string; type: string; param: string | null; code: string | null }; request_id: string };
}

/** Writes `request` on a fresh connection and reads the one answer (the server closes the connection, or it is complete). */
function raw(port: number, request: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer; got ${JSON.stringify(data.toString('latin1'))}`));
    }, 20_000);
    const tryParse = (final: boolean) => {
      const text = data.toString('utf8');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return final ? reject(new Error(`not HTTP: ${JSON.stringify(text)}`)) : undefined;
      const [statusLine, ...headerLines] = text.slice(0, end).split('\r\n');
      const headers = Object.fromEntries(headerLines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      const body = Buffer.from(text.slice(end + 4), 'utf8');
      if (Buffer.byteLength(body) < Number(headers['content-length'] ?? Infinity)) return final ? reject(new Error(`short body: ${JSON.stringify(text)}`)) : undefined;
      clearTimeout(timer);
      socket.destroy();
      try {
        resolve({ status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine!)?.[1]), headers, body: JSON.parse(body.toString('utf8')) as RawAnswer['body'] });
      } catch {
        reject(new Error(`body is not JSON: ${JSON.stringify(text)}`));
      }
    };
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      tryParse(false);
    });
    socket.on('end', () => tryParse(true));
    socket.on('error', (error) => (data.length ? tryParse(true) : reject(error)));
    socket.write(request);
  });
}

describe('refusals before any route runs: the envelope, a request id, the security headers, an info log line', () => {
  let service: ServiceProcess;
  let port: number;
  before(async () => {
    port = await freePort();
    service = spawnService({ LOG_LEVEL: 'info', TTS_BACKEND: 'embedded' }, port);
    await waitForHealth(service.url);
  });
  after(() => service.child.kill('SIGKILL'));

  const upgrade = 'Connection: Upgrade\r\nUpgrade: websocket\r\n';
  const key = 'dGhlIHNhbXBsZSBub25jZQ==';
  const cases: { name: string; request: () => string; status: number; code: string; parser: boolean }[] = [
    { name: 'a bad percent-encoding in the path (FST_ERR_BAD_URL)', request: () => 'GET /v1/sessions/%zz HTTP/1.1\r\nHost: x\r\nX-Request-ID: bad-url-1\r\n\r\n', status: 400, code: 'invalid_url', parser: false },
    { name: 'a path parameter over 1,024 characters (FST_ERR_MAX_PARAM_LENGTH)', request: () => `GET /v1/sessions/${'a'.repeat(1100)} HTTP/1.1\r\nHost: x\r\n\r\n`, status: 414, code: 'path_too_long', parser: false },
    { name: 'a 20 KB header (Node: HPE_HEADER_OVERFLOW)', request: () => `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, status: 431, code: 'headers_too_large', parser: true },
    { name: 'a malformed request line (Node: HPE_INVALID_METHOD)', request: () => 'GARBAGE\r\n\r\n', status: 400, code: 'malformed_request', parser: true },
    // ws refused these handshakes itself, with a bare text/html 400; a handshake without Host was upgraded
    { name: 'a WebSocket handshake with a bad Sec-WebSocket-Key', request: () => `GET /ws/tts HTTP/1.1\r\nHost: x\r\n${upgrade}Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: bad\r\n\r\n`, status: 400, code: 'invalid_websocket_handshake', parser: false },
    { name: 'a WebSocket handshake without Sec-WebSocket-Key', request: () => `GET /ws/stt HTTP/1.1\r\nHost: x\r\n${upgrade}Sec-WebSocket-Version: 13\r\n\r\n`, status: 400, code: 'invalid_websocket_handshake', parser: false },
    { name: 'a WebSocket handshake with an unknown Sec-WebSocket-Version', request: () => `GET /ws/tts HTTP/1.1\r\nHost: x\r\n${upgrade}Sec-WebSocket-Version: 99\r\nSec-WebSocket-Key: ${key}\r\n\r\n`, status: 400, code: 'invalid_websocket_handshake', parser: false },
    { name: 'a WebSocket handshake without a Host header', request: () => `GET /ws/tts HTTP/1.1\r\n${upgrade}Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`, status: 400, code: 'missing_host', parser: false },
    // Node answered this one itself, a bare 400 with no body
    { name: 'an HTTP/1.1 request without a Host header', request: () => 'GET /health HTTP/1.1\r\n\r\n', status: 400, code: 'missing_host', parser: false },
    { name: 'a malformed header line (Node: HPE_INVALID_HEADER_TOKEN)', request: () => 'GET /health HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n', status: 400, code: 'malformed_request', parser: true },
  ];

  for (const c of cases) {
    it(c.name, async () => {
      const answer = await raw(port, c.request());
      assert.equal(answer.status, c.status);
      assert.deepEqual(Object.keys(answer.body).sort(), ['error', 'request_id']);
      assert.deepEqual(Object.keys(answer.body.error).sort(), ['code', 'message', 'param', 'type']);
      assert.equal(answer.body.error.code, c.code);
      assert.equal(answer.body.error.type, 'invalid_request_error');
      assert.match(answer.headers['content-type'] ?? '', /^application\/json/);
      const id = answer.headers['x-request-id'];
      assert.ok(id, 'a request id header');
      assert.equal(answer.body.request_id, id, 'the same id in header and body');
      if (c.name.includes('FST_ERR_BAD_URL')) assert.equal(id, 'bad-url-1', "the caller's sane id is kept");
      // helmet's headers, as on every other answer
      assert.equal(answer.headers['x-content-type-options'], 'nosniff');
      assert.match(answer.headers['strict-transport-security'] ?? '', /max-age=/);
      assert.equal(answer.headers['x-frame-options'], 'SAMEORIGIN');
      if (c.parser) assert.equal(answer.headers.connection, 'close');
      if (c.name.includes('Sec-WebSocket-Version')) assert.equal(answer.headers['sec-websocket-version'], '13, 8', 'RFC 6455 §4.4: the versions the server speaks');
      const deadline = Date.now() + 10_000;
      const logged = () => service.output().split('\n').find((l) => l.includes(`"request_id":"${id}"`));
      while (!logged() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const line = JSON.parse(logged() ?? '{}') as Record<string, unknown>;
      assert.equal(line.msg, 'request rejected', `logged: ${logged()}`);
      assert.equal(line.level, 'info', "the client's fault: info");
      assert.equal(line.status, c.status);
      assert.equal(line.code, c.code);
    });
  }

  // Node ignores a request timeout shorter than its headers timeout (60 s) when it is set after the
  // server is built (as Fastify sets it): a slow upload was not bounded by a short REQUEST_TIMEOUT_SECONDS.
  it('a body not received within REQUEST_TIMEOUT_SECONDS (2 s): 408 request_timeout in the envelope, connection closed', async () => {
    const shortPort = await freePort();
    const short = spawnService({ LOG_LEVEL: 'info', TTS_BACKEND: 'embedded', REQUEST_TIMEOUT_SECONDS: '2' }, shortPort);
    try {
      await waitForHealth(short.url);
      const answer = await raw(shortPort, 'POST /v1/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"pro');
      assert.equal(answer.status, 408);
      assert.equal(answer.body.error.code, 'request_timeout');
      assert.equal(answer.body.request_id, answer.headers['x-request-id']);
      assert.equal(answer.headers['x-content-type-options'], 'nosniff');
      assert.equal(answer.headers.connection, 'close');
    } finally {
      short.child.kill('SIGKILL');
    }
  });

  it('the service answers normally afterwards, and nothing was logged as an error', async () => {
    assert.equal((await fetch(`${service.url}/health`)).status, 200);
    const errors = service
      .output()
      .split('\n')
      .filter((l) => /"level":"(error|fatal)"/.test(l) && !l.includes('not available'));
    assert.deepEqual(errors, []);
  });
});
