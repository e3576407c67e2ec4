/**
 * /ws/tts per-utterance bounds on a real service process with the embedded voice: a huge text
 * message gets `text_too_long` at once (MAX_TTS_TEXT_CHARS holds per utterance, not per sentence)
 * while another socket and /health carry on; an utterance whose speech runs past
 * MAX_TTS_AUDIO_SECONDS stops there and ends with `truncated: true`. The dialogue speaks its reply
 * through the same sentence stream: its audio has the same cap.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { freePort, spawnService, waitForHealth, waitForReady, type ServiceProcess } from '../helpers/process.ts';
import { loopingGemmaPath } from '../helpers/models.ts';
import { eventLog, type WsEvent } from '../helpers/ws.ts';

const AUDIO_CAP_SECONDS = 3;
const RATE = 16_000;

async function open(url: string) {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/ws/tts?format=pcm&sample_rate=${RATE}`);
  const log = eventLog(ws);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  await log.waitFor((e) => e.type === 'ready');
  const send = (message: object) => ws.send(JSON.stringify(message));
  const pcmSeconds = (afterAt = 0) => log.audio.filter((a) => a.at >= afterAt).reduce((n, a) => n + a.bytes.length, 0) / 2 / RATE;
  return { ws, ...log, send, pcmSeconds };
}

describe('/ws/tts per-utterance limits on a real process', () => {
  let service: ServiceProcess;
  before(async () => {
    service = spawnService(
      { GEMMA_MODEL: '/absent.gguf', ENABLE_LOCAL_WHISPER: 'false', TTS_BACKEND: 'embedded', STT_BACKEND: 'local', MAX_TTS_AUDIO_SECONDS: String(AUDIO_CAP_SECONDS), LOG_LEVEL: 'info' },
      await freePort(),
    );
    await waitForHealth(service.url, 60_000);
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const ready = (await (await fetch(`${service.url}/health/ready`)).json()) as { capabilities?: { tts?: { status: string } } };
      if (ready.capabilities?.tts?.status === 'ready') break;
      await new Promise((r) => setTimeout(r, 100));
    }
  });
  after(async () => {
    service.child.kill('SIGTERM');
    await service.exited;
  });

  it('a 900 KB text message gets text_too_long at once, is not spoken, and leaves the socket, other sockets and /health working', async () => {
    const huge = await open(service.url);
    const other = await open(service.url);
    const huge900k = 'This sentence is one of very many. '.repeat(Math.ceil(900_000 / 35));
    const sentAt = performance.now();
    huge.send({ type: 'text', text: huge900k });
    const error = await huge.waitFor((e) => e.type === 'error', 10_000);
    console.log(`900 KB text message → error ${(error as WsEvent & { error: { code: string } }).error.code} after ${(error.at - sentAt).toFixed(0)} ms`);
    assert.equal((error as WsEvent & { error: { code: string; param: string } }).error.code, 'text_too_long');
    assert.match((error as WsEvent & { error: { message: string } }).error.message, /MAX_TTS_TEXT_CHARS/);

    // meanwhile: another socket speaks, /health answers
    const healthStarted = performance.now();
    assert.equal((await fetch(`${service.url}/health`)).status, 200);
    const healthMs = performance.now() - healthStarted;
    other.send({ type: 'text', text: 'Another client is speaking.' });
    other.send({ type: 'flush' });
    const otherEnd = await other.waitFor((e) => e.type === 'end', 15_000);
    assert.equal(otherEnd.truncated, false);
    console.log(`/health ${healthMs.toFixed(0)} ms; the other socket's utterance ended after ${(otherEnd.at - sentAt).toFixed(0)} ms`);

    // the refused text was never spoken; the socket still works
    huge.send({ type: 'text', text: 'Still here.' });
    huge.send({ type: 'flush' });
    const end = await huge.waitFor((e) => e.type === 'end', 15_000);
    assert.equal(end.text, 'Still here.');
    assert.ok((end.duration_seconds as number) < AUDIO_CAP_SECONDS);
    assert.equal(huge.events.filter((e) => e.type === 'start').length, 1);
    huge.ws.close();
    other.ws.close();
  });

  it('text accumulates per utterance: pieces that together pass MAX_TTS_TEXT_CHARS are refused; flush starts afresh', async () => {
    const c = await open(service.url);
    const piece = 'word '.repeat(800); // 4,000 characters: under the 4,096 limit alone, over it twice
    c.send({ type: 'text', text: piece });
    c.send({ type: 'text', text: piece });
    const error = await c.waitFor((e) => e.type === 'error');
    assert.equal((error as WsEvent & { error: { code: string } }).error.code, 'text_too_long');
    c.send({ type: 'cancel' });
    await c.waitFor((e) => e.type === 'cancelled');
    c.send({ type: 'text', text: 'Fresh start.' });
    c.send({ type: 'flush' });
    const end = await c.waitFor((e) => e.type === 'end');
    assert.equal(end.text, 'Fresh start.');
    assert.equal(c.events.filter((e) => e.type === 'error').length, 1);
    c.ws.close();
  });

  it(`an utterance whose speech runs past MAX_TTS_AUDIO_SECONDS (${AUDIO_CAP_SECONDS} s) stops there and ends with truncated: true`, async () => {
    const c = await open(service.url);
    const sentences = Array.from({ length: 8 }, (_, i) => `This is sentence number ${i + 1} of a text that is allowed but takes far longer to say than the cap.`);
    c.send({ type: 'text', text: sentences.join(' ') });
    c.send({ type: 'flush' });
    const end = await c.waitFor((e) => e.type === 'end', 30_000);
    console.log(`utterance: ${end.duration_seconds} s of audio, truncated: ${String(end.truncated)}, sentences spoken: ${String(end.text).split('This is').length - 1} of 8`);
    assert.equal(end.truncated, true);
    assert.ok(Math.abs((end.duration_seconds as number) - AUDIO_CAP_SECONDS) < 0.05, `duration ${String(end.duration_seconds)}`);
    assert.ok(Math.abs(c.pcmSeconds() - AUDIO_CAP_SECONDS) < 0.05, `pcm ${c.pcmSeconds()} s`);
    // the next utterance is not affected
    const mark = performance.now();
    c.send({ type: 'text', text: 'Short one.' });
    c.send({ type: 'flush' });
    const next = await c.waitFor((e) => e.type === 'end' && e.utterance_id !== end.utterance_id, 15_000);
    assert.equal(next.truncated, false);
    assert.equal(next.text, 'Short one.');
    assert.ok(c.pcmSeconds(mark) > 0.2);
    c.ws.close();
  });
});

describe('the dialogue reply speech on a real process', () => {
  let service: ServiceProcess;
  before(async () => {
    service = spawnService(
      { GEMMA_MODEL: loopingGemmaPath(), LLM_DEVICE: 'cpu', LLM_CONTEXT_SIZE: '1024', ENABLE_LOCAL_WHISPER: 'false', TTS_BACKEND: 'embedded', MAX_TTS_AUDIO_SECONDS: '2', LOG_LEVEL: 'info' },
      await freePort(),
    );
    await waitForHealth(service.url, 120_000);
    await waitForReady(service.url, 120_000);
  });
  after(async () => {
    service.child.kill('SIGTERM');
    await service.exited;
  });

  it('a long reply is spoken up to MAX_TTS_AUDIO_SECONDS over all its sentences; its text is whole', async () => {
    const res = await fetch(`${service.url}/v1/dialogue`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: 'Talk a lot.', format: 'wav', max_tokens: 120 }) });
    const body = (await res.json()) as { reply_text: string; duration_seconds: number | null };
    assert.equal(res.status, 200, JSON.stringify(body));
    const sentences = body.reply_text.split('.').length - 1;
    console.log(`dialogue reply: ${body.reply_text.length} characters (${sentences} sentences), ${body.duration_seconds} s of speech`);
    assert.ok(sentences >= 4, body.reply_text);
    assert.ok(body.duration_seconds !== null && Math.abs(body.duration_seconds - 2) < 0.05, `duration ${String(body.duration_seconds)}`);
  });
});
