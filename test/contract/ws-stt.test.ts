/** WS /ws/stt on the real whisper.cpp (tiny model) and the WebRTC VAD, fed synthesized speech in real time. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { startApp, type TestApp } from '../helpers/app.ts';
import { tinyWhisperPath } from '../helpers/models.ts';
import { closeSpeech, speech } from '../helpers/speech.ts';
import { eventLog, streamPcm } from '../helpers/ws.ts';

const WHISPER_TEXT = /^(Hello from the tiny whisper model\.\s*)+$/;

describe('WS /ws/stt', () => {
  let t: TestApp;
  before(async () => {
    t = await startApp({ env: { GEMMA_MODEL: '/absent.gguf', LOCAL_WHISPER_MODEL: tinyWhisperPath(), STT_PARTIAL_INTERVAL_MS: '600' } });
  });
  after(async () => {
    await t.close();
    await closeSpeech();
  });

  it('detects each turn with the VAD and transcribes it, in order, with times in the stream', async () => {
    const pcm = await speech([{ silence: 0.4 }, 'Hello there, how are you doing today?', { silence: 1.0 }, 'This is the second turn.', { silence: 0.9 }]);
    const ws = new WebSocket(`${t.wsUrl}/ws/stt?sample_rate=16000&language=en`);
    const log = eventLog(ws);
    await new Promise((r) => ws.once('open', r));
    await log.waitFor((e) => e.type === 'ready');
    await streamPcm(ws, pcm, 16000, 4);
    await log.waitFor((e) => e.type === 'transcript.final' && e.turn_id === 2);
    // ready first; VAD events alternate started/stopped; final n comes after the n-th speech_stopped
    assert.equal(log.events[0]!.type, 'ready');
    const vad = log.events.filter((e) => e.type.startsWith('speech_')).map((e) => e.type);
    assert.deepEqual(vad, ['speech_started', 'speech_stopped', 'speech_started', 'speech_stopped']);
    const stops = log.events.filter((e) => e.type === 'speech_stopped');
    log.events.filter((e) => e.type === 'transcript.final').forEach((f, i) => assert.ok(f.at >= stops[i]!.at));
    const starts = log.events.filter((e) => e.type === 'speech_started').map((e) => e.audio_ms as number);
    assert.equal(starts.length, 2);
    assert.ok(Math.abs(starts[0]! - 400) <= 100, `turn 1 starts at ${starts[0]} ms`);
    const finals = log.events.filter((e) => e.type === 'transcript.final');
    assert.deepEqual(finals.map((e) => e.turn_id), [1, 2]);
    for (const f of finals) {
      // the tiny model says its sentence once per second of audio
      assert.match(f.text as string, WHISPER_TEXT);
      assert.equal(f.engine, 'whisper-cpp');
    }
    // whisper's segment times are placed on the stream's timeline
    const seg = (finals[1]!.segments as { start: number }[])[0]!;
    assert.ok(Math.abs(seg.start * 1000 - (finals[1]!.start_ms as number)) < 1, JSON.stringify(finals[1]));
    assert.ok((finals[1]!.start_ms as number) > (finals[0]!.end_ms as number));
    ws.close();
  });

  it('a one-word turn (well under a second of speech) is transcribed, not answered with an empty text', async () => {
    const pcm = await speech([{ silence: 0.3 }, 'Yes.', { silence: 1.0 }]);
    const ws = new WebSocket(`${t.wsUrl}/ws/stt`);
    const log = eventLog(ws);
    await new Promise((r) => ws.once('open', r));
    await streamPcm(ws, pcm, 16000, 4);
    const final = await log.waitFor((e) => e.type === 'transcript.final');
    const spoken = ((final.end_ms as number) - (final.start_ms as number)) / 1000;
    assert.ok(spoken < 1, `the turn holds ${spoken} s`);
    assert.match(final.text as string, WHISPER_TEXT, JSON.stringify(final));
    ws.close();
  });

  it('sends partial transcripts while someone speaks; commit ends a turn at once', async () => {
    const pcm = await speech(['This is a rather long sentence that keeps going on and on for a few seconds.']);
    const ws = new WebSocket(`${t.wsUrl}/ws/stt`);
    const log = eventLog(ws);
    await new Promise((r) => ws.once('open', r));
    await streamPcm(ws, pcm, 16000, 2);
    ws.send(JSON.stringify({ type: 'commit' }));
    const final = await log.waitFor((e) => e.type === 'transcript.final');
    assert.equal(final.turn_id, 1);
    const partials = log.events.filter((e) => e.type === 'transcript.partial');
    assert.ok(partials.length >= 1, 'at least one partial during a multi-second turn');
    assert.ok(partials.every((p) => p.at < final.at));
    ws.close();
  });

  it('resamples other input rates; control errors keep the socket open', async () => {
    const at16k = await speech([{ silence: 0.3 }, 'Resampled speech arrives here.', { silence: 0.8 }]);
    // the same speech as 48 kHz: repeat each sample three times (a crude but valid upsampling)
    const at48k = new Int16Array(at16k.length * 3).map((_, i) => at16k[Math.floor(i / 3)]!);
    const ws = new WebSocket(`${t.wsUrl}/ws/stt?sample_rate=48000`);
    const log = eventLog(ws);
    await new Promise((r) => ws.once('open', r));
    ws.send('{"type":"dance"}');
    await log.waitFor((e) => e.type === 'error');
    await streamPcm(ws, at48k, 48000, 4);
    const final = await log.waitFor((e) => e.type === 'transcript.final');
    assert.match(final.text as string, WHISPER_TEXT);
    ws.close();
  });

  it('silence produces no turn; a click shorter than VAD_MIN_SPEECH_MS is dropped, never transcribed', async () => {
    const ws = new WebSocket(`${t.wsUrl}/ws/stt`);
    const log = eventLog(ws);
    await new Promise((r) => ws.once('open', r));
    const audio = new Int16Array(16000 * 2);
    let seed = 7;
    for (let i = 16000; i < 16000 + 640; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      audio[i] = (seed % 20000) - 10000; // 40 ms of loud noise: a click
    }
    await streamPcm(ws, audio, 16000, 8);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(log.events.filter((e) => e.type === 'transcript.final').length, 0);
    const stopped = log.events.filter((e) => e.type === 'speech_stopped');
    assert.ok(stopped.every((e) => e.discarded === true), JSON.stringify(log.events));
    ws.close();
  });
});
