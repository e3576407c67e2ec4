/**
 * The browser port: browsers refuse 6666 (ERR_UNSAFE_PORT), so the real process also listens on
 * BROWSER_PORT — the same app: keys, request ids, WebSockets — prints both URLs, and closes both
 * on SIGTERM.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import WebSocket from 'ws';
import { loadConfig } from '../../src/config.ts';
import { freePort, spawnService, waitForHealth } from '../helpers/process.ts';
import { recordSecrets } from '../helpers/test-logs.ts';

const KEY = 'browser-port-key';

function wsOpens(url: string, protocols: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, protocols);
    socket.once('open', () => {
      socket.close();
      resolve(101);
    });
    socket.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    socket.once('error', reject);
  });
}

describe('BROWSER_PORT', () => {
  it('defaults to 6680, can be turned off, and refuses ports that browsers block', () => {
    assert.equal(loadConfig({}).BROWSER_PORT, 6680);
    assert.equal(loadConfig({ BROWSER_PORT: 'off' }).BROWSER_PORT, 0);
    assert.equal(loadConfig({ BROWSER_PORT: '0' }).BROWSER_PORT, 0);
    assert.throws(() => loadConfig({ BROWSER_PORT: '6667' }), /BROWSER_PORT: browsers refuse this port/);
    assert.throws(() => loadConfig({ BROWSER_PORT: 'web' }), /BROWSER_PORT: must be a port number, or 0\/off/);
  });

  it('serves the same app on both ports (keys, WebSockets), prints both URLs, and SIGTERM closes both', async () => {
    recordSecrets([KEY]);
    const port = await freePort();
    const browserPort = await freePort();
    const service = spawnService({ API_KEY_ENABLED: 'true', API_KEYS: KEY, LOG_LEVEL: 'info', BROWSER_PORT: String(browserPort), TTS_BACKEND: 'embedded' }, port);
    const browserUrl = `http://127.0.0.1:${browserPort}`;
    try {
      await waitForHealth(service.url);
      await waitForHealth(browserUrl);
      for (const base of [service.url, browserUrl]) {
        assert.equal((await fetch(`${base}/v1/models`)).status, 401, `${base}: the key is required`);
        const ok = await fetch(`${base}/v1/models`, { headers: { 'X-API-Key': KEY } });
        assert.equal(ok.status, 200, base);
        assert.match(ok.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
        const ws = base.replace('http', 'ws');
        assert.equal(await wsOpens(`${ws}/ws/tts`, ['gemma-3-api']), 401, `${base}: a WebSocket without a key is refused`);
        assert.equal(await wsOpens(`${ws}/ws/tts`, ['gemma-3-api', `api_key.${KEY}`]), 101, `${base}: a WebSocket with the key opens`);
      }
      assert.equal((await fetch(`${browserUrl}/docs/openapi.json`)).status, 200, 'the reference is on the browser port');
      assert.ok(service.output().includes(`${browserUrl}/playground/`), 'the playground URL is printed');
      assert.ok(service.output().includes(`${browserUrl}/docs`), 'the docs URL is printed');
      assert.ok(service.output().includes(`API clients: ${service.url}`), 'the API URL is printed');
    } finally {
      service.child.kill('SIGTERM');
    }
    assert.equal(await service.exited, 0);
    await assert.rejects(fetch(`${browserUrl}/health`), 'the browser port is closed');
    await assert.rejects(fetch(`${service.url}/health`), 'the API port is closed');
  });

  it('on SIGTERM a request in flight on the browser port is answered before the process exits', async () => {
    const browserPort = await freePort();
    const service = spawnService({ LOG_LEVEL: 'info', BROWSER_PORT: String(browserPort), SHUTDOWN_GRACE_SECONDS: '60' }, await freePort());
    try {
      await waitForHealth(`http://127.0.0.1:${browserPort}`);
      // a request whose body is still arriving when the shutdown begins
      const answer = new Promise<number>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: browserPort, path: '/v1/generate', method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.write('{"prompt":');
        setTimeout(() => {
          service.child.kill('SIGTERM');
          setTimeout(() => req.end('"hi"}'), 1500);
        }, 300);
      });
      // answered (503: no model here) rather than cut off by the exit
      assert.equal(await answer, 503);
    } finally {
      service.child.kill('SIGTERM');
    }
    assert.equal(await service.exited, 0);
  });

  it('a busy BROWSER_PORT stops the start-up with a clear message', async () => {
    const port = await freePort();
    const first = spawnService({ LOG_LEVEL: 'warn', BROWSER_PORT: String(await freePort()) }, port);
    try {
      await waitForHealth(first.url);
      const second = spawnService({ LOG_LEVEL: 'warn', BROWSER_PORT: String(port) }, await freePort());
      assert.equal(await second.exited, 1);
      assert.match(second.output(), new RegExp(`cannot listen on BROWSER_PORT ${port}.*set BROWSER_PORT to a free port, or to off`));
      assert.doesNotMatch(second.output(), /\n\s+at /, 'no stack trace');
    } finally {
      first.child.kill('SIGTERM');
      await first.exited;
    }
  });

  it('a busy PORT stops the start-up with one line naming the port and PORT, no stack trace, exit 1', async () => {
    const port = await freePort();
    const first = spawnService({ LOG_LEVEL: 'warn' }, port);
    try {
      await waitForHealth(first.url);
      const second = spawnService({ LOG_LEVEL: 'warn' }, port);
      assert.equal(await second.exited, 1);
      const lines = second.output().trim().split('\n');
      assert.deepEqual(lines, [`gemma-3-api: cannot listen on PORT ${port} (127.0.0.1): it is already in use (another process listens there); set PORT to a free port`]);
    } finally {
      first.child.kill('SIGTERM');
      await first.exited;
    }
  });

  it('with TLS_CERT_FILE/TLS_KEY_FILE both ports serve HTTPS, and print https URLs', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tls-'));
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const port = await freePort();
    const browserPort = await freePort();
    const service = spawnService({ LOG_LEVEL: 'info', BROWSER_PORT: String(browserPort), TLS_CERT_FILE: cert, TLS_KEY_FILE: key, TTS_BACKEND: 'embedded' }, port);
    const get = (p: number) =>
      new Promise<number>((resolve, reject) => {
        https.get({ host: '127.0.0.1', port: p, path: '/health', ca: fs.readFileSync(cert) }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).on('error', reject);
      });
    try {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const ok = await get(port).then((s) => s === 200, () => false);
        if (ok) break;
        assert.ok(Date.now() < deadline, 'the HTTPS port did not come up');
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(await get(browserPort), 200, 'the browser port speaks HTTPS too');
      const printed = new RegExp(`ready for browsers at https://127\\.0\\.0\\.1:${browserPort}/playground/`);
      while (!printed.test(service.output()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.match(service.output(), printed);
    } finally {
      service.child.kill('SIGTERM');
      await service.exited;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
