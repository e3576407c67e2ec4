/**
 * VAD before Whisper (`vad_filter`) over real HTTP: the real whisper.cpp on the tiny model (which
 * transcribes its fixed sentence at 0.00–1.00 s of every 30 s window it decodes, whatever it
 * hears) and real speech from the embedded eSpeak voice. With the filter, timestamps refer to the
 * original audio, and silence gives empty text instead of the model's sentence.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { TINY_WHISPER_TEXT } from '../../scripts/models/tiny-whisper.ts';
import { int16ToFloat32 } from '../../src/audio/pcm.ts';
import { encodeWavPcm16 } from '../../src/audio/wav.ts';
import { startApp, type TestApp } from '../helpers/app.ts';
import { tinyWhisperPath } from '../helpers/models.ts';
import { closeSpeech, speech, type Part } from '../helpers/speech.ts';
import { eventLog, streamPcm } from '../helpers/ws.ts';

interface Verbose {
  text: string;
  duration: number;
  segments: { start: number; end: number; text: string }[];
  words?: { word: string; start: number; end: number }[];
}

const LONG = 'The quick brown fox jumps over the lazy dog, and then it runs far away across the wide green field. ';

async function clip(parts: Part[]): Promise<Buffer> {
  return encodeWavPcm16(int16ToFloat32(await speech(parts)), 16000);
}

describe('vad_filter: Whisper on the speech regions only', () => {
  let t: TestApp;
  before(async () => {
    t = await startApp({ env: { LOCAL_WHISPER_MODEL: tinyWhisperPath(), STT_BACKEND: 'local', MAX_UPLOAD_BYTES: '20000000', MAX_AUDIO_SECONDS: '300', GEMMA_MODEL: '/absent.gguf', STT_VAD_FILTER: 'false' } });
  });
  after(async () => {
    await closeSpeech();
    await t.close();
  });

  async function transcribe(file: Buffer, fields: Record<string, string>): Promise<Verbose> {
    const form = new FormData();
    form.set('file', new Blob([file]), 'clip.wav');
    form.set('response_format', 'verbose_json');
    form.append('timestamp_granularities[]', 'word');
    form.append('timestamp_granularities[]', 'segment');
    for (const [k, v] of Object.entries(fields)) form.set(k, v);
    const res = await fetch(`${t.url}/v1/audio/transcriptions`, { method: 'POST', body: form });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    return JSON.parse(text) as Verbose;
  }

  it('timestamps after 20 s of leading silence refer to the original audio', async () => {
    const file = await clip([{ silence: 20 }, 'Hello there, how are you today?', { silence: 3 }]);
    const on = await transcribe(file, { vad_filter: 'true' });
    assert.equal(on.text, TINY_WHISPER_TEXT);
    assert.ok(on.duration > 24, `duration ${on.duration}`);
    assert.equal(on.segments.length, 1);
    const [segment] = on.segments;
    // the speech starts at 20 s; the region keeps ≤ 0.3 s of padding before it
    assert.ok(segment!.start >= 19.6 && segment!.start <= 20.2, `start ${segment!.start}`);
    assert.ok(segment!.end > segment!.start && segment!.end <= on.duration);
    assert.ok(on.words!.length > 0 && on.words!.every((w) => w.start >= 19.6 && w.end <= on.duration), JSON.stringify(on.words));
    // without the filter the same request keeps Whisper's own (packed-free) times
    const off = await transcribe(file, { vad_filter: 'false' });
    assert.equal(off.segments[0]!.start, 0);
  });

  it('silence only: empty text and no segments (no made-up sentence)', async () => {
    const file = encodeWavPcm16(new Float32Array(16000 * 40), 16000);
    const on = await transcribe(file, { vad_filter: 'true' });
    assert.deepEqual({ text: on.text, segments: on.segments, words: on.words }, { text: '', segments: [], words: [] });
    assert.equal(on.duration, 40);
    // the JSON route and its default shape too
    const res = await fetch(`${t.url}/v1/speech-to-text`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ audio_base64: encodeWavPcm16(new Float32Array(16000 * 5), 16000).toString('base64'), vad_filter: true }),
    });
    const body = (await res.json()) as { text: string; segments: unknown[]; duration: number };
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.deepEqual([body.text, body.segments, body.duration], ['', [], 5]);
  });

  it('speech in two places far apart: segments at both places', async () => {
    // two long stretches of speech (≈ 20 s and ≈ 14 s): together more than a 30 s window, so the
    // second one starts a window of its own in the packed audio, and the tiny model (one segment
    // per window) answers once for each
    const file = await clip([{ silence: 5 }, LONG.repeat(3), { silence: 60 }, LONG.repeat(2), { silence: 10 }]);
    const on = await transcribe(file, { vad_filter: 'true' });
    const starts = on.segments.map((s) => s.start);
    assert.equal(on.segments.length, 2, JSON.stringify(on.segments));
    assert.ok(starts[0]! >= 4.6 && starts[0]! <= 5.2, `first at ${starts[0]}`);
    // the second stretch starts after 5 s + the first stretch + 60 s of silence
    assert.ok(starts[1]! > 60 + 5 + 10, `second at ${starts[1]}`);
    assert.ok(on.segments.every((s) => s.end >= s.start && s.end <= on.duration));
  });

  it('STT_VAD_FILTER=true is the default when the request does not say', async () => {
    const on = await startApp({ env: { LOCAL_WHISPER_MODEL: tinyWhisperPath(), STT_BACKEND: 'local', GEMMA_MODEL: '/absent.gguf', STT_VAD_FILTER: 'true' } });
    try {
      const form = new FormData();
      form.set('file', new Blob([encodeWavPcm16(new Float32Array(16000 * 10), 16000)]), 'silence.wav');
      const res = await fetch(`${on.url}/v1/audio/transcriptions`, { method: 'POST', body: form });
      assert.deepEqual([res.status, await res.json()], [200, { text: '' }]);
      form.set('vad_filter', 'false');
      const off = await fetch(`${on.url}/v1/audio/transcriptions`, { method: 'POST', body: form });
      assert.deepEqual([off.status, await off.json()], [200, { text: TINY_WHISPER_TEXT }], 'the field overrides it');
    } finally {
      await on.close();
    }
  });

  it('rejects a vad_filter that is not a boolean', async () => {
    const form = new FormData();
    form.set('file', new Blob([encodeWavPcm16(new Float32Array(16000), 16000)]), 'clip.wav');
    form.set('vad_filter', 'maybe');
    const res = await fetch(`${t.url}/v1/audio/transcriptions`, { method: 'POST', body: form });
    assert.equal(res.status, 400, await res.text());
  });
});

describe('STT_VAD_FILTER=true under live turns (/ws/stt): the turn VAD and the region VAD agree', () => {
  let t: TestApp;
  before(async () => {
    t = await startApp({ env: { GEMMA_MODEL: '/absent.gguf', LOCAL_WHISPER_MODEL: tinyWhisperPath(), STT_PARTIAL_INTERVAL_MS: '0', STT_VAD_FILTER: 'true' } });
  });
  after(async () => {
    await closeSpeech();
    await t.close();
  });

  it('each spoken turn is still transcribed (not emptied as silence), with times on the stream timeline', async () => {
    const pcm = await speech([{ silence: 0.4 }, 'Hello there, how are you doing today?', { silence: 1.0 }, 'This is the second turn.', { silence: 0.9 }]);
    const ws = new WebSocket(`${t.wsUrl}/ws/stt?sample_rate=16000&language=en`);
    const log = eventLog(ws);
    await new Promise((r) => ws.once('open', r));
    await log.waitFor((e) => e.type === 'ready');
    await streamPcm(ws, pcm, 16000, 4);
    await log.waitFor((e) => e.type === 'transcript.final' && e.turn_id === 2, 60_000);
    const finals = log.events.filter((e) => e.type === 'transcript.final');
    assert.deepEqual(finals.map((e) => e.turn_id), [1, 2]);
    for (const f of finals) {
      assert.equal(f.text, TINY_WHISPER_TEXT, JSON.stringify(f));
      const [segment] = f.segments as { start: number; end: number }[];
      // the region VAD keeps ≤ 0.3 s of padding: the segment starts inside its turn, not at the stream's 0
      assert.ok(segment!.start * 1000 >= (f.start_ms as number) - 1 && segment!.start * 1000 <= (f.end_ms as number), JSON.stringify(f));
    }
    ws.close();
  });
});
