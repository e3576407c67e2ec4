/**
 * Limits on a real app: WebSockets per API key (WS_MAX_STREAMS_PER_KEY), the incoming message rate
 * per socket (WS_MAX_MESSAGES_PER_SECOND: paced, nothing dropped; a flood closed) and the request
 * deadline (REQUEST_TIMEOUT_SECONDS) on a real llama.cpp generation.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { startApp, type TestApp } from '../helpers/app.ts';
import { loopingGemmaPath } from '../helpers/models.ts';
import { recordSecrets } from '../helpers/test-logs.ts';

const LIGHT = { GEMMA_MODEL: '/absent.gguf', ENABLE_LOCAL_WHISPER: 'false' };

type Handshake = { status: number; body: string; ws?: WebSocket };

function connect(url: string, key?: string): Promise<Handshake> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, key ? { headers: { 'x-api-key': key } } : {});
    ws.once('open', () => resolve({ status: 101, body: '', ws }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body });
        ws.terminate();
      });
    });
    ws.once('error', () => undefined);
  });
}

const closed = (ws: WebSocket) => new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));

/** Error events on a socket, with arrival times. */
function errors(ws: WebSocket) {
  const seen: { at: number; code: string }[] = [];
  ws.on('message', (data, binary) => {
    if (binary) return;
    const event = JSON.parse(data.toString()) as { type: string; error?: { code: string } };
    if (event.type === 'error') seen.push({ at: performance.now(), code: event.error?.code ?? '' });
  });
  return seen;
}

async function until(test: () => boolean, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('limits', () => {
  const apps: TestApp[] = [];
  const app = async (env: Record<string, string>) => {
    const t = await startApp({ env: { ...LIGHT, ...env } });
    apps.push(t);
    return t;
  };
  after(async () => {
    for (const t of apps) await t.close();
  });

  it('WS_MAX_STREAMS_PER_KEY: a key holding its maximum gets 429 too_many_streams; other keys are unaffected; a closed socket frees its place', async () => {
    const t = await app({ API_KEY_ENABLED: 'true', API_KEYS: 'key-one-0123456789,key-two-0123456789', WS_MAX_STREAMS_PER_KEY: '2' });
    const url = `${t.wsUrl}/ws/tts`;
    recordSecrets(['wrong-key-0123456789']);
    const a = await connect(url, 'key-one-0123456789');
    const b = await connect(url, 'key-one-0123456789');
    assert.deepEqual([a.status, b.status], [101, 101]);
    const refused = await connect(url, 'key-one-0123456789');
    assert.equal(refused.status, 429);
    const envelope = JSON.parse(refused.body) as { error: { code: string; message: string } };
    assert.equal(envelope.error.code, 'too_many_streams');
    assert.match(envelope.error.message, /WS_MAX_STREAMS_PER_KEY/);
    // a refused handshake (wrong key) does not count against anyone
    assert.equal((await connect(url, 'wrong-key-0123456789')).status, 401);
    const other = await connect(url, 'key-two-0123456789');
    assert.equal(other.status, 101, 'another key has its own allowance');
    a.ws!.close();
    await closed(a.ws!);
    let again: Handshake = { status: 0, body: '' };
    for (let i = 0; i < 50 && again.status !== 101; i++) {
      again = await connect(url, 'key-one-0123456789');
      if (again.status !== 101) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(again.status, 101, 'closing a socket frees its place');
    for (const h of [b, other, again]) h.ws?.close();
  });

  it('WS_MAX_MESSAGES_PER_SECOND: a fast sender is paced and every message is still handled', async () => {
    const paced = await app({ WS_MAX_MESSAGES_PER_SECOND: '40' });
    const unpaced = await app({ WS_MAX_MESSAGES_PER_SECOND: '0' });
    // 120 messages of 16 KiB (invalid JSON, each answered by one error event), sent at once:
    // the first second's budget (40) passes at once, the other 80 at 40 per second
    const run = async (t: TestApp) => {
      const { ws } = await connect(`${t.wsUrl}/ws/tts`);
      const seen = errors(ws!);
      const started = performance.now();
      const junk = Buffer.alloc(16 * 1024, 'x');
      for (let i = 0; i < 120; i++) ws!.send(junk, { binary: false });
      await until(() => seen.length >= 120, 20_000, '120 error events');
      const elapsed = performance.now() - started;
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(seen.length, 120, 'one answer per message: none dropped');
      assert.ok(seen.every((e) => e.code === 'invalid_message'));
      assert.equal(ws!.readyState, WebSocket.OPEN, 'a paced socket stays open');
      ws!.close();
      return elapsed;
    };
    const pacedMs = await run(paced);
    const unpacedMs = await run(unpaced);
    assert.ok(pacedMs >= 1500, `80 messages beyond the burst at 40/s take ≥ 2 s (took ${pacedMs.toFixed(0)} ms)`);
    assert.ok(unpacedMs < pacedMs / 2, `without the limit the same burst is not held back (${unpacedMs.toFixed(0)} vs ${pacedMs.toFixed(0)} ms)`);
  });

  it('WS_MAX_MESSAGES_PER_SECOND: a flood of tiny frames that pausing cannot hold back gets rate_limited and close 1008', async () => {
    const t = await app({ WS_MAX_MESSAGES_PER_SECOND: '40' });
    const { ws } = await connect(`${t.wsUrl}/ws/tts`);
    const seen = errors(ws!);
    const code = closed(ws!);
    for (let i = 0; i < 2000; i++) ws!.send('{}');
    assert.equal(await code, 1008);
    assert.ok(seen.some((e) => e.code === 'rate_limited'), `a rate_limited error event before the close (saw ${[...new Set(seen.map((e) => e.code))].join(', ')})`);
    assert.equal((await fetch(`${t.url}/health`)).status, 200);
  });

  it('REQUEST_TIMEOUT_SECONDS: a generation still running at the deadline is cancelled with 504 request_timeout; a started stream is not cut; the slot is freed', async () => {
    const t = await app({ GEMMA_MODEL: loopingGemmaPath(), LLM_DEVICE: 'cpu', LLM_CONTEXT_SIZE: '8192', LLM_MAX_TOKENS: '8000', LLM_PARALLEL: '1', LLM_QUEUE_SIZE: '2', REQUEST_TIMEOUT_SECONDS: '1' });
    const generate = (body: object) => fetch(`${t.url}/v1/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

    const started = performance.now();
    const slow = await generate({ prompt: 'go', max_tokens: 8000 });
    const took = performance.now() - started;
    const envelope = (await slow.json()) as { error: { code: string; type: string } };
    assert.equal(slow.status, 504);
    assert.equal(envelope.error.code, 'request_timeout');
    assert.ok(took >= 950 && took < 5000, `answered at the deadline (${took.toFixed(0)} ms)`);

    // a stream that started before the deadline runs on past it
    const controller = new AbortController();
    const stream = await generate({ prompt: 'go', max_tokens: 8000, stream: true }).then((r) => {
      assert.equal(r.status, 200);
      return r.body!.getReader();
    });
    const streamStarted = performance.now();
    // meanwhile a second request waits in the queue behind the stream and times out there
    const queued = generate({ prompt: 'go', max_tokens: 6 });
    let lateBytes = 0;
    while (performance.now() - streamStarted < 2000) {
      const { value, done } = await stream.read();
      assert.ok(!done, 'the stream is not ended by the deadline');
      if (performance.now() - streamStarted > 1500) lateBytes += value?.length ?? 0;
    }
    assert.ok(lateBytes > 0, 'tokens still arrive after the deadline');
    const queuedRes = await queued;
    assert.equal(queuedRes.status, 504, 'a request still queued at its deadline is answered 504');
    assert.equal(((await queuedRes.json()) as { error: { code: string } }).error.code, 'request_timeout');
    await stream.cancel();
    controller.abort();

    // the slot is free again: a short generation answers
    let ok = 0;
    for (let i = 0; i < 50 && ok !== 200; i++) {
      ok = (await generate({ prompt: 'go', max_tokens: 6 })).status;
      if (ok !== 200) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(ok, 200);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    assert.match(metrics, /dependency_duration_seconds_count\{dependency="llama-cpp",operation="generate",outcome="timeout"\} [1-9]/);
    assert.ok(!t.logs.some((l) => l.includes('"level":"error"')), 'a timeout is not logged as a server error');
  });
});
