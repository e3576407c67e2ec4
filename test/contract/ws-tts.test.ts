/** WS /ws/tts on the real embedded voice: incremental text, sentence-level start, flush, cancel, formats, errors. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { startApp, type TestApp } from '../helpers/app.ts';
import { decodeWithFfmpeg } from '../helpers/ffmpeg.ts';
import { waitForGauge } from '../helpers/metrics.ts';

type Event = { type: string; [key: string]: unknown };

/** A client that records JSON events and binary audio, in arrival order, with timestamps. */
async function connect(t: TestApp, query = '') {
  const ws = new WebSocket(`${t.wsUrl}/ws/tts${query}`);
  const log: { at: number; event?: Event; audio?: Buffer }[] = [];
  const waiters: { test: (e: Event) => boolean; resolve: (e: Event) => void }[] = [];
  ws.on('message', (data, isBinary) => {
    const at = performance.now();
    if (isBinary) return void log.push({ at, audio: data as Buffer });
    const event = JSON.parse(data.toString()) as Event;
    log.push({ at, event });
    for (const w of [...waiters]) if (w.test(event)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(event);
    }
  });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const next = (type: string) =>
    new Promise<Event>((resolve, reject) => {
      const seen = log.find((l) => l.event?.type === type && !(l as { taken?: boolean }).taken);
      if (seen) {
        (seen as { taken?: boolean }).taken = true;
        return resolve(seen.event!);
      }
      const timer = setTimeout(() => reject(new Error(`no ${type} event within 10 s`)), 10_000);
      waiters.push({
        test: (e) => e.type === type,
        resolve: (e) => {
          clearTimeout(timer);
          const entry = log.find((l) => l.event === e) as { taken?: boolean };
          entry.taken = true;
          resolve(e);
        },
      });
    });
  const send = (message: object) => ws.send(JSON.stringify(message));
  const audio = () => Buffer.concat(log.filter((l) => l.audio).map((l) => l.audio!));
  return { ws, log, next, send, audio };
}

describe('WS /ws/tts', () => {
  let t: TestApp;
  before(async () => {
    t = await startApp({ env: { GEMMA_MODEL: '/absent.gguf', ENABLE_LOCAL_WHISPER: 'false' } });
  });
  after(() => t.close());

  it('speaks each sentence as soon as it is complete, while text still arrives; flush ends the utterance', async () => {
    const c = await connect(t);
    const ready = await c.next('ready');
    assert.equal(ready.format, 'pcm');
    assert.equal(ready.sample_rate, t.config.DEFAULT_AUDIO_SAMPLE_RATE);
    for (const token of ['Hello', ' there,', ' this is', ' the first', ' sentence.', ' And here']) c.send({ type: 'text', text: token });
    const start = await c.next('start');
    assert.equal(start.engine, 'espeak');
    assert.equal(start.utterance_id, 1);
    // audio for sentence one flows although the second sentence is unfinished and no flush came
    await new Promise((r) => setTimeout(r, 300));
    const before = c.audio().length;
    assert.ok(before > 0, 'audio before flush');
    c.send({ type: 'text', text: ' comes the second one.' });
    c.send({ type: 'flush' });
    const end = await c.next('end');
    assert.equal(end.utterance_id, 1);
    assert.equal(end.text, 'Hello there, this is the first sentence. And here comes the second one.');
    const pcm = c.audio();
    assert.ok(pcm.length > before);
    const decoded = decodeWithFfmpeg(pcm, t.config.DEFAULT_AUDIO_SAMPLE_RATE);
    assert.ok(Math.abs(decoded.seconds - (end.duration_seconds as number)) < 0.01);
    assert.ok(decoded.seconds > 3 && decoded.rms > 0.02);
    // order: ready, start, audio..., end
    const kinds = c.log.map((l) => l.event?.type ?? 'audio');
    assert.equal(kinds[0], 'ready');
    assert.equal(kinds[1], 'start');
    assert.equal(kinds.at(-1), 'end');
    assert.ok(kinds.slice(2, -1).every((k) => k === 'audio'));
    c.ws.close();
  });

  it('keeps utterances in order and honours config (format, rate, voice) per utterance', async () => {
    const c = await connect(t, '?format=wav&sample_rate=16000');
    await c.next('ready');
    c.send({ type: 'text', text: 'First utterance.' });
    c.send({ type: 'flush' });
    c.send({ type: 'config', format: 'opus', voice: 'nova' });
    c.send({ type: 'text', text: 'Second utterance, in opus.' });
    c.send({ type: 'flush' });
    const s1 = await c.next('start');
    const e1 = await c.next('end');
    const s2 = await c.next('start');
    const e2 = await c.next('end');
    assert.deepEqual([s1.utterance_id, e1.utterance_id, s2.utterance_id, e2.utterance_id], [1, 1, 2, 2]);
    assert.equal(s1.format, 'wav');
    assert.equal(s1.sample_rate, 16000);
    assert.equal(s2.format, 'opus');
    assert.equal(s2.sample_rate, 48000);
    const i1 = c.log.findIndex((l) => l.event === e1);
    const first = Buffer.concat(c.log.slice(0, i1).filter((l) => l.audio).map((l) => l.audio!));
    const second = Buffer.concat(c.log.slice(i1).filter((l) => l.audio).map((l) => l.audio!));
    assert.equal(decodeWithFfmpeg(first).sampleRate, 16000);
    const opus = decodeWithFfmpeg(second);
    assert.equal(opus.codec, 'opus');
    assert.ok(opus.seconds > 1 && opus.rms > 0.02);
    c.ws.close();
  });

  it('cancel stops the utterance in flight; the socket stays usable', async () => {
    const c = await connect(t);
    await c.next('ready');
    c.send({ type: 'text', text: 'This is a long passage that will be cancelled. '.repeat(10) });
    await c.next('start');
    c.send({ type: 'cancel' });
    const cancelled = await c.next('cancelled');
    assert.equal(cancelled.utterance_id, 1);
    c.send({ type: 'text', text: 'After the cancel.' });
    c.send({ type: 'flush' });
    const end = await c.next('end');
    assert.equal(end.utterance_id, 2);
    assert.ok(!c.log.some((l) => l.event?.type === 'end' && l.event.utterance_id === 1), 'the cancelled utterance never ends normally');
    c.ws.close();
  });

  it('cancel while waiting for the rest of a sentence does not block later utterances', async () => {
    const c = await connect(t);
    await c.next('ready');
    c.send({ type: 'text', text: 'Short one. And an unfinished' });
    await c.next('start');
    await new Promise((r) => setTimeout(r, 400)); // sentence one spoken; the utterance now waits for text
    c.send({ type: 'cancel' });
    await c.next('cancelled');
    c.send({ type: 'text', text: 'Fresh start.' });
    c.send({ type: 'flush' });
    const end = await c.next('end');
    assert.equal(end.text, 'Fresh start.');
    c.ws.close();
  });

  it('bad messages get an error event and the socket stays open', async () => {
    const c = await connect(t);
    await c.next('ready');
    c.ws.send('not json');
    const e1 = await c.next('error');
    assert.equal((e1.error as { code: string }).code, 'invalid_message');
    c.send({ type: 'shout', text: 'x' });
    await c.next('error');
    c.ws.send(Buffer.from([1, 2, 3]));
    const e3 = await c.next('error');
    assert.match((e3.error as { message: string }).message, /Binary/);
    c.send({ type: 'config', voice: 'no-such-voice' });
    c.send({ type: 'text', text: 'Unknown voice.' });
    c.send({ type: 'flush' });
    const e4 = await c.next('error');
    assert.equal((e4.error as { code: string }).code, 'unknown_voice');
    c.send({ type: 'config', voice: 'en-us' });
    c.send({ type: 'text', text: 'Recovered.' });
    c.send({ type: 'flush' });
    await c.next('end');
    c.ws.close();
  });

  it('an empty flush still pairs its events: start, then end with no audio, then the next utterance as usual', async () => {
    const c = await connect(t);
    await c.next('ready');
    c.send({ type: 'flush' }); // nothing written yet
    c.send({ type: 'text', text: '   ' });
    c.send({ type: 'flush' }); // only blanks
    c.send({ type: 'text', text: 'Now some words.' });
    c.send({ type: 'flush' });
    await c.next('end');
    await c.next('end');
    const last = await c.next('end');
    assert.equal(last.text, 'Now some words.');
    const events = c.log.filter((l) => l.event && l.event.type !== 'ready').map((l) => `${l.event!.type}:${String(l.event!.utterance_id)}`);
    assert.deepEqual(events, ['start:1', 'end:1', 'start:2', 'end:2', 'start:3', 'end:3']);
    const empty = c.log.find((l) => l.event?.type === 'end')!.event!;
    assert.equal(empty.duration_seconds, 0);
    assert.equal(empty.text, '');
    // no audio frame belongs to the empty utterances: every binary frame comes after start:3
    const firstAudio = c.log.findIndex((l) => l.audio);
    const start3 = c.log.findIndex((l) => l.event?.type === 'start' && l.event.utterance_id === 3);
    assert.ok(firstAudio > start3, 'audio only for the utterance with words');
    c.ws.close();
  });

  it('the documented client example (examples/tts-websocket.mjs) runs against it', async () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tts-example-')), 'speech.wav');
    const { stdout } = await promisify(execFile)(process.execPath, ['examples/tts-websocket.mjs', out], { env: { ...process.env, GEMMA_API_URL: t.wsUrl } });
    const result = JSON.parse(stdout) as { duration_seconds: number; engine: string };
    assert.equal(result.engine, 'espeak');
    const decoded = decodeWithFfmpeg(fs.readFileSync(out));
    assert.equal(decoded.sampleRate, 24000);
    assert.ok(Math.abs(decoded.seconds - result.duration_seconds) < 0.01 && decoded.rms > 0.02);
  });

  it('closing the socket mid-utterance frees the synthesis slot', async () => {
    const c = await connect(t);
    await c.next('ready');
    c.send({ type: 'text', text: 'Speak for a long while. '.repeat(30) });
    await c.next('start');
    c.ws.terminate();
    assert.equal(await waitForGauge(t.url, 'tts_requests_in_flight', 0), 0);
  });
});
