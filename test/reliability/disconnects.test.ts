/**
 * Clients that leave mid-work, on a real service process (tiny Gemma, tiny whisper, the embedded
 * voice): a transcription (streamed, and queued behind another), a grammar-constrained chat
 * completion, a streamed generation and a streamed dialogue turn, each cut by the client. The
 * work is cancelled and logged once at info ("request aborted: the client disconnected", no
 * stack); nothing is logged as a server error, and the service answers normally afterwards.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { wav } from '../helpers/audio.ts';
import { metricSum } from '../helpers/metrics.ts';
import { loopingGemmaPath, tinyWhisperPath } from '../helpers/models.ts';
import { freePort, spawnService, waitForHealth, waitForReady, type ServiceProcess } from '../helpers/process.ts';

type LogLine = { level: string; msg: string; request_id?: string; err?: unknown; reason?: string };

function lines(service: ServiceProcess): LogLine[] {
  return service
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

/** Waits for the line that says how request `id` ended after its client left (whatever its level), and returns every line of that request. */
async function outcome(service: ServiceProcess, id: string): Promise<LogLine[]> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const mine = lines(service).filter((l) => l.request_id === id);
    if (mine.some((l) => JSON.stringify(l).includes('client disconnected') || l.msg === 'request completed')) return mine;
    if (Date.now() > deadline) throw new Error(`no outcome logged for ${id}: ${JSON.stringify(mine)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function assertLoggedAsClientAbort(mine: LogLine[], id: string) {
  const bad = mine.filter((l) => l.level === 'error' || l.level === 'fatal' || l.level === 'warn');
  assert.deepEqual(bad, [], `${id}: nothing above info`);
  const aborted = mine.filter((l) => l.msg === 'request aborted: the client disconnected');
  assert.equal(aborted.length, 1, `${id}: one info line says the client left (${JSON.stringify(mine)})`);
  assert.equal(aborted[0]!.level, 'info');
  assert.equal(aborted[0]!.reason, 'client disconnected');
  assert.ok(!JSON.stringify(aborted[0]).includes('stack'), 'no stack trace');
  assert.ok(!mine.some((l) => l.msg === 'request completed' && !JSON.stringify(l).includes('"status":499')), `${id} was cut mid-work, not completed`);
}

/** Starts a streamed request and returns once its first bytes arrived (the work is under way); abort() cuts it. */
async function startStream(url: string, init: RequestInit): Promise<{ abort: () => void; first: string }> {
  const controller = new AbortController();
  const res = await fetch(url, { ...init, signal: controller.signal });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  const first = new TextDecoder().decode((await reader.read()).value);
  return { abort: () => controller.abort(), first };
}

describe('clients that disconnect mid-work', () => {
  let service: ServiceProcess;
  before(async () => {
    service = spawnService(
      { GEMMA_MODEL: loopingGemmaPath(), LLM_DEVICE: 'cpu', LLM_CONTEXT_SIZE: '4096', LOCAL_WHISPER_MODEL: tinyWhisperPath(), STT_PARALLEL: '1', TTS_BACKEND: 'embedded', LOG_LEVEL: 'info' },
      await freePort(),
    );
    await waitForHealth(service.url);
    await waitForReady(service.url, 60_000);
  });
  after(() => service.child.kill('SIGKILL'));

  it('a transcription: streamed (cut after its first segment) and plain (cut while queued behind it) — info, no stack', async () => {
    const form = (seconds: number, stream: boolean) => {
      const f = new FormData();
      f.append('file', new Blob([wav(seconds)], { type: 'audio/wav' }), 'long.wav');
      if (stream) f.append('stream', 'true');
      return f;
    };
    // ten minutes of audio: its first segment arrives long before the rest is transcribed
    const streamed = await startStream(`${service.url}/v1/audio/transcriptions`, { method: 'POST', body: form(600, true), headers: { 'x-request-id': 'cut-stt-stream' } });
    assert.match(streamed.first, /transcript\.text\.delta/);
    // with STT_PARALLEL=1 this one waits for the first (or, had it finished, transcribes its own ten minutes)
    const plain = new AbortController();
    const pending = fetch(`${service.url}/v1/audio/transcriptions`, { method: 'POST', body: form(600, false), headers: { 'x-request-id': 'cut-stt-plain' }, signal: plain.signal }).catch((e: Error) => e.name);
    const decoded = Date.now() + 60_000;
    while (!lines(service).some((l) => l.request_id === 'cut-stt-plain' && l.msg === 'audio received') && Date.now() < decoded) await new Promise((r) => setTimeout(r, 20));
    plain.abort();
    assert.equal(await pending, 'AbortError');
    assertLoggedAsClientAbort(await outcome(service, 'cut-stt-plain'), 'cut-stt-plain');
    streamed.abort();
    assertLoggedAsClientAbort(await outcome(service, 'cut-stt-stream'), 'cut-stt-stream');
  });

  it('a grammar-constrained chat completion and a streamed generation — info, no stack', async () => {
    const json = { 'content-type': 'application/json' };
    // the looping model fills the string until max_tokens: long after the client has gone
    const schema = { type: 'object', properties: { answer: { type: 'string' }, kind: { enum: Array.from({ length: 200 }, (_, i) => `kind-${i}`) } }, required: ['answer', 'kind'] };
    const body = { model: 'gemma-3', messages: [{ role: 'user', content: 'go' }], max_tokens: 8000, response_format: { type: 'json_schema', json_schema: { name: 'reply', schema } } };
    const before = await metricSum(service.url, 'http_requests_in_flight');
    const cut = new AbortController();
    const pending = fetch(`${service.url}/v1/chat/completions`, { method: 'POST', headers: { ...json, 'x-request-id': 'cut-grammar' }, body: JSON.stringify(body), signal: cut.signal }).catch((e: Error) => e.name);
    // in flight (its headers read); give its small body a moment to arrive, then leave
    const seen = Date.now() + 30_000;
    while ((await metricSum(service.url, 'http_requests_in_flight')) <= before && Date.now() < seen) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 300));
    cut.abort();
    assert.equal(await pending, 'AbortError');
    assertLoggedAsClientAbort(await outcome(service, 'cut-grammar'), 'cut-grammar');

    const generation = await startStream(`${service.url}/v1/generate`, { method: 'POST', headers: { ...json, 'x-request-id': 'cut-generate-sse' }, body: JSON.stringify({ prompt: 'go', max_tokens: 8000, stream: true }) });
    generation.abort();
    assertLoggedAsClientAbort(await outcome(service, 'cut-generate-sse'), 'cut-generate-sse');
  });

  it('a streamed dialogue turn — info, no stack; the service then answers normally and nothing was logged as an error', async () => {
    const turn = await startStream(`${service.url}/v1/dialogue`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'cut-dialogue-sse' }, body: JSON.stringify({ text: 'go', max_tokens: 4000, stream: true }) });
    turn.abort();
    assertLoggedAsClientAbort(await outcome(service, 'cut-dialogue-sse'), 'cut-dialogue-sse');

    const res = await fetch(`${service.url}/v1/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'go', max_tokens: 4 }) });
    assert.equal(res.status, 200);
    const errors = lines(service).filter((l) => l.level === 'error' || l.level === 'fatal');
    assert.deepEqual(errors, [], 'no error-level line');
  });
});
