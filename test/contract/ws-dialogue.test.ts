/**
 * WS /ws/dialogue on the real engines (tiny Gemma, tiny whisper, the embedded voice, the WebRTC
 * VAD), fed synthesized speech with silences in real time: events in order, memory, typed turns,
 * and barge-in cancelling a reply in flight within 100 ms of the new speech being detected.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { startApp, type TestApp } from '../helpers/app.ts';
import { decodeWithFfmpeg } from '../helpers/ffmpeg.ts';
import { loopingGemmaPath, tinyGemmaPath, tinyWhisperPath } from '../helpers/models.ts';
import { closeSpeech, speech } from '../helpers/speech.ts';
import { eventLog, streamPcm } from '../helpers/ws.ts';

const REPLY = 'Hello from the tiny Gemma model.';

async function open(t: TestApp, query: string) {
  const ws = new WebSocket(`${t.wsUrl}/ws/dialogue${query}`);
  const log = eventLog(ws);
  await new Promise((r) => ws.once('open', r));
  await log.waitFor((e) => e.type === 'ready');
  return { ws, log };
}

describe('WS /ws/dialogue', () => {
  const apps: TestApp[] = [];
  let t: TestApp;
  before(async () => {
    t = await startApp({ env: { GEMMA_MODEL: tinyGemmaPath(), LOCAL_WHISPER_MODEL: tinyWhisperPath(), STT_PARTIAL_INTERVAL_MS: '0' } });
    apps.push(t);
  });
  after(async () => {
    for (const a of apps) await a.close();
    await closeSpeech();
  });

  it('a spoken turn: VAD, transcript, reply text and audio, done — in order; the next turn remembers', async () => {
    const { ws, log } = await open(t, '?session_id=ws-voice&output_sample_rate=16000');
    const pcm = await speech([{ silence: 0.3 }, 'What is the weather like today?', { silence: 0.9 }]);
    await streamPcm(ws, pcm, 16000, 2);
    const done = await log.waitFor((e) => e.type === 'reply.done');
    const kinds = log.events.map((e) => e.type);
    const order = ['ready', 'speech_started', 'speech_stopped', 'transcript.final', 'reply.text.delta', 'reply.audio.start', 'reply.done'];
    const firstIndex = order.map((k) => kinds.indexOf(k));
    assert.ok(firstIndex.every((i, n) => i >= 0 && (n === 0 || i > firstIndex[n - 1]! || order[n] === 'reply.audio.start')), kinds.join(', '));
    assert.ok(kinds.indexOf('reply.done') > kinds.lastIndexOf('reply.text.delta'));
    const transcript = log.events.find((e) => e.type === 'transcript.final')!;
    assert.match(transcript.text as string, /^(Hello from the tiny whisper model\.\s*)+$/);
    assert.equal(done.reply_text, REPLY);
    assert.equal(done.session_id, 'ws-voice');
    assert.ok(log.audio.length > 0 && log.audio[0]!.at > log.events.find((e) => e.type === 'reply.audio.start')!.at);
    const audio = Buffer.concat(log.audio.map((a) => a.bytes));
    const decoded = decodeWithFfmpeg(audio, 16000);
    assert.ok(decoded.seconds > 1 && decoded.rms > 0.02);
    // a typed turn on the same socket sees the spoken one
    ws.send(JSON.stringify({ type: 'text', text: 'And tomorrow?' }));
    await log.waitFor((e) => e.type === 'reply.done' && e.turn_id === 2);
    const history = (await (await fetch(`${t.url}/v1/sessions/ws-voice`)).json()) as { turns: { role: string; content: string }[] };
    assert.deepEqual(history.turns.map((x) => x.role), ['user', 'assistant', 'user', 'assistant']);
    assert.equal(history.turns[2]!.content, 'And tomorrow?');
    ws.close();
  });

  it('barge-in: speaking over a reply cancels it within 100 ms; history keeps only what was sent', async () => {
    const talkative = await startApp({ env: { GEMMA_MODEL: loopingGemmaPath(), LOCAL_WHISPER_MODEL: tinyWhisperPath(), STT_PARTIAL_INTERVAL_MS: '0', DIALOGUE_MAX_TOKENS: '4000' } });
    apps.push(talkative);
    const { ws, log } = await open(talkative, '?session_id=barge');
    await streamPcm(ws, await speech([{ silence: 0.3 }, 'Tell me a very long story.', { silence: 0.8 }]), 16000, 2);
    // the reply is being generated and played
    await log.waitFor((e) => e.type === 'reply.audio.start', 20_000);
    const speaking = log.events.length;
    await streamPcm(ws, await speech(['Stop, stop!', { silence: 0.2 }]), 16000, 1);
    const started = await log.waitFor((e) => e.type === 'speech_started' && log.events.indexOf(e) >= speaking);
    const cancelled = await log.waitFor((e) => e.type === 'reply.cancelled');
    assert.equal(cancelled.turn_id, 1);
    assert.equal(cancelled.reason, 'barge_in');
    assert.ok(cancelled.at - started.at <= 100, `cancelled ${(cancelled.at - started.at).toFixed(1)} ms after the new speech was detected`);
    assert.ok(!log.events.some((e) => e.type === 'reply.done' && e.turn_id === 1), 'the cancelled reply never completes');
    // nothing more of turn 1 arrives after the cancel
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(!log.events.some((e) => e.turn_id === 1 && e.type === 'reply.text.delta' && e.at > cancelled.at + 50));
    const history = (await (await fetch(`${talkative.url}/v1/sessions/barge`)).json()) as { turns: { role: string; content: string; interrupted?: boolean }[] };
    const reply = history.turns[1]!;
    assert.equal(reply.role, 'assistant');
    assert.equal(reply.interrupted, true);
    const streamed = log.events.filter((e) => e.turn_id === 1 && e.type === 'reply.text.delta').map((e) => e.text).join('');
    assert.ok(reply.content.length > 0 && reply.content.length <= streamed.length, `stored ${reply.content.length} chars of ${streamed.length} streamed`);
    ws.close();
  });

  it('cancel stops a typed turn at once', async () => {
    const talkative = apps[1]!;
    const { ws, log } = await open(talkative, '?response_modalities=text');
    ws.send(JSON.stringify({ type: 'text', text: 'Go on and on.' }));
    await log.waitFor((e) => e.type === 'reply.text.delta');
    ws.send(JSON.stringify({ type: 'cancel' }));
    const cancelled = await log.waitFor((e) => e.type === 'reply.cancelled');
    assert.deepEqual([cancelled.turn_id, cancelled.reason], [1, 'client']);
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(!log.events.some((e) => e.type === 'reply.text.delta' && e.at > cancelled.at + 50), 'no text after the cancel');
    assert.ok(!log.events.some((e) => e.type === 'reply.done'));
    ws.close();
  });

  it('bad messages and a bad session id are refused clearly', async () => {
    const { ws, log } = await open(t, '');
    ws.send('{"type":"text"}');
    const bad = await log.waitFor((e) => e.type === 'error');
    assert.equal((bad.error as { code: string }).code, 'invalid_message');
    const refused = new WebSocket(`${t.wsUrl}/ws/dialogue?session_id=${encodeURIComponent('not valid!')}`);
    const refusedLog = eventLog(refused);
    const code = await new Promise<number>((r) => refused.once('close', (c) => r(c)));
    assert.equal(code, 1008);
    assert.equal((refusedLog.events[0]!.error as { code: string }).code, 'invalid_session_id');
    ws.close();
  });
});
