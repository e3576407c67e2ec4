/**
 * Text-to-speech routes on the real embedded voice (eSpeak NG in a worker thread): every output
 * format decoded back with a real decoder (ffmpeg), streaming, speed and sample rate, limits and
 * errors, the OpenAI speech route through the official SDK.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { startApp, type TestApp } from '../helpers/app.ts';
import { wav } from '../helpers/audio.ts';
import { decodeWithFfmpeg } from '../helpers/ffmpeg.ts';
import { waitForGauge } from '../helpers/metrics.ts';

const LIGHT = { GEMMA_MODEL: '/absent.gguf', ENABLE_LOCAL_WHISPER: 'false' };

async function tts(t: TestApp, body: Record<string, unknown>, path = '/v1/text-to-speech') {
  const res = await fetch(`${t.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return res;
}

describe('text-to-speech on the embedded voice', () => {
  let t: TestApp;
  before(async () => {
    t = await startApp({ env: { ...LIGHT, MAX_TTS_TEXT_CHARS: '500', MAX_REFERENCE_AUDIO_SECONDS: '5', MAX_REFERENCE_AUDIO_BYTES: '200000' } });
  });
  after(() => t.close());

  it('speaks in every format; each decodes back to speech of the same length at the stated rate', async () => {
    const text = 'The quick brown fox jumps over the lazy dog. It was not amused.';
    let reference: number | undefined;
    for (const format of ['wav', 'pcm', 'mp3', 'opus', 'flac', 'aac'] as const) {
      const res = await tts(t, { text, format, sample_rate: 24000 });
      assert.equal(res.status, 200, format);
      assert.equal(res.headers.get('x-tts-engine'), 'espeak');
      const body = (await res.json()) as { audio_base64: string; format: string; sample_rate: number; duration_seconds: number; engine: string; truncated: boolean };
      assert.equal(body.engine, 'espeak');
      assert.equal(body.format, format);
      assert.equal(body.truncated, false);
      assert.equal(body.sample_rate, format === 'opus' ? 48000 : 24000);
      const audio = Buffer.from(body.audio_base64, 'base64');
      const decoded = decodeWithFfmpeg(audio, format === 'pcm' ? 24000 : undefined);
      assert.equal(decoded.sampleRate, body.sample_rate, `${format} decodes at the stated rate`);
      assert.ok(decoded.rms > 0.02, `${format} is not silence (rms ${decoded.rms})`);
      reference ??= body.duration_seconds;
      assert.ok(reference > 2 && reference < 8, `a 12-word sentence pair lasts seconds, got ${reference}`);
      assert.ok(Math.abs(body.duration_seconds - reference) < 0.01, `${format}: same speech length`);
      // encoders pad a little (mp3/aac priming, opus pre-skip); the content is the same length
      assert.ok(Math.abs(decoded.seconds - reference) < 0.12, `${format}: decoded ${decoded.seconds}s vs ${reference}s`);
      if (format === 'wav') {
        assert.equal(audio.toString('latin1', 0, 4), 'RIFF');
        assert.equal(audio.readUInt32LE(40), audio.length - 44, 'a whole WAV carries its real data size');
      }
    }
  });

  it('streams the audio itself with "stream": true (curl --output speech.wav works)', async () => {
    const res = await tts(t, { text: 'Streaming speech, sentence one. And sentence two follows.', stream: true });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'audio/wav');
    assert.equal(res.headers.get('x-tts-engine'), 'espeak');
    assert.equal(res.headers.get('x-sample-rate'), String(t.config.DEFAULT_AUDIO_SAMPLE_RATE));
    let chunks = 0;
    const parts: Buffer[] = [];
    for await (const part of res.body as unknown as AsyncIterable<Uint8Array>) {
      chunks++;
      parts.push(Buffer.from(part));
    }
    assert.ok(chunks > 1, `audio arrives in several chunks (${chunks})`);
    const decoded = decodeWithFfmpeg(Buffer.concat(parts));
    assert.equal(decoded.sampleRate, t.config.DEFAULT_AUDIO_SAMPLE_RATE);
    assert.ok(decoded.seconds > 2 && decoded.rms > 0.02);
  });

  it('speed changes the speaking rate; sample_rate the output rate', async () => {
    const text = 'One two three four five six seven eight nine ten.';
    const duration = async (speed: number) => ((await (await tts(t, { text, speed })).json()) as { duration_seconds: number }).duration_seconds;
    const normal = await duration(1);
    const fast = await duration(2);
    const slow = await duration(0.5);
    assert.ok(fast < normal * 0.7, `speed 2: ${fast}s vs ${normal}s`);
    assert.ok(slow > normal * 1.5, `speed 0.5: ${slow}s vs ${normal}s`);
    const veryFast = await duration(4); // beyond eSpeak's rate range: ffmpeg changes the tempo
    assert.ok(veryFast < fast, `speed 4: ${veryFast}s vs speed 2: ${fast}s`);
    const res = (await (await tts(t, { text: 'Rate check.', sample_rate: 8000, format: 'wav' })).json()) as { audio_base64: string; sample_rate: number };
    assert.equal(res.sample_rate, 8000);
    assert.equal(decodeWithFfmpeg(Buffer.from(res.audio_base64, 'base64')).sampleRate, 8000);
  });

  it('voices: OpenAI names and eSpeak languages; different voices sound different; unknown → 400', async () => {
    const list = (await (await fetch(`${t.url}/v1/audio/voices`)).json()) as { voices: { id: string; engine: string }[] };
    const ids = list.voices.map((v) => v.id);
    for (const id of ['alloy', 'nova', 'en-us', 'de', 'fr-fr']) assert.ok(ids.includes(id), id);
    const audio = async (voice: string) => ((await (await tts(t, { text: 'Same words, other voice.', voice, format: 'pcm' })).json()) as { audio_base64: string }).audio_base64;
    assert.notEqual(await audio('alloy'), await audio('nova'));
    assert.notEqual(await audio('en-us'), await audio('de'));
    const bad = await tts(t, { text: 'Hello.', voice: 'klingon-xx' });
    assert.equal(bad.status, 400);
    const err = (await bad.json()) as { error: { code: string; param: string } };
    assert.equal(err.error.code, 'unknown_voice');
    assert.equal(err.error.param, 'voice');
  });

  it('rejects bad input with a clear 4xx before any synthesis', async () => {
    const cases: [Record<string, unknown>, number, string][] = [
      [{ text: '' }, 400, 'empty_text'],
      [{ text: '   ' }, 400, 'empty_text'],
      [{ text: 'x'.repeat(501) }, 400, 'text_too_long'],
      [{ text: 'Hi.', format: 'ogg' }, 400, 'invalid_value'],
      [{ text: 'Hi.', speed: 5 }, 400, 'invalid_value'],
      [{ text: 'Hi.', sample_rate: 100 }, 400, 'invalid_value'],
      [{ text: 'Hi.', references: [{ audio: Buffer.from('not audio at all, not at all').toString('base64'), text: 'x' }] }, 415, 'unsupported_audio_format'],
      [{ text: 'Hi.', references: [{ audio: wav(6).toString('base64'), text: 'six seconds' }] }, 413, 'audio_too_long'],
      [{ text: 'Hi.', references: [{ audio: wav(8, { rate: 16000 }).toString('base64'), text: 'too many bytes' }] }, 413, 'reference_too_large'],
      [{ text: 'Hi.', references: [{ audio: wav(1).toString('base64'), text: ' ' }] }, 400, 'invalid_value'],
    ];
    for (const [body, status, code] of cases) {
      const res = await tts(t, body);
      const envelope = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(res.status, status, JSON.stringify(body).slice(0, 80));
      assert.equal(envelope.error.code, code, envelope.error.message);
    }
    const openai = await tts(t, { model: 'tts-1', input: '', voice: 'alloy' }, '/v1/audio/speech');
    assert.equal(openai.status, 400);
    assert.equal(((await openai.json()) as { error: { param: string } }).error.param, 'input');
  });

  it('works with the official OpenAI SDK: speech.create in every response format, and SSE', async () => {
    const client = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: 'unused' });
    for (const response_format of ['mp3', 'opus', 'aac', 'flac', 'wav', 'pcm'] as const) {
      const response = await client.audio.speech.create({ model: 'tts-1', voice: 'alloy', input: 'Hello from the OpenAI SDK.', response_format });
      const audio = Buffer.from(await response.arrayBuffer());
      const decoded = decodeWithFfmpeg(audio, response_format === 'pcm' ? t.config.DEFAULT_AUDIO_SAMPLE_RATE : undefined);
      assert.ok(decoded.seconds > 1 && decoded.rms > 0.02, `${response_format}: ${decoded.seconds}s rms ${decoded.rms}`);
    }
    const sse = await tts(t, { model: 'gpt-4o-mini-tts', input: 'Server-sent speech.', voice: 'coral', response_format: 'pcm', stream_format: 'sse' }, '/v1/audio/speech');
    assert.equal(sse.status, 200);
    assert.match(sse.headers.get('content-type') ?? '', /text\/event-stream/);
    const events = (await sse.text())
      .split('\n\n')
      .filter(Boolean)
      .map((frame) => JSON.parse(/data: (.*)/.exec(frame)![1]!) as { type: string; audio?: string; usage?: object });
    assert.ok(events.length > 2);
    assert.ok(events.slice(0, -1).every((e) => e.type === 'speech.audio.delta' && e.audio));
    assert.equal(events.at(-1)!.type, 'speech.audio.done');
    assert.ok(events.at(-1)!.usage);
    const pcm = Buffer.concat(events.slice(0, -1).map((e) => Buffer.from(e.audio!, 'base64')));
    const seconds = decodeWithFfmpeg(pcm, t.config.DEFAULT_AUDIO_SAMPLE_RATE).seconds;
    assert.ok(seconds > 0.8);
    // usage counts the audio too: 21.5 codec frames a second (it was 0)
    const usage = events.at(-1)!.usage as { input_tokens: number; output_tokens: number; total_tokens: number };
    assert.equal(usage.output_tokens, Math.ceil(seconds * 21.5));
    assert.equal(usage.total_tokens, usage.input_tokens + usage.output_tokens);
    // a validation error on an SSE request is plain JSON, before any event (as OpenAI)
    const bad = await tts(t, { model: 'tts-1', input: '', voice: 'alloy', stream_format: 'sse' }, '/v1/audio/speech');
    assert.equal(bad.status, 400);
    assert.match(bad.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(((await bad.json()) as { error: { param: string } }).error.param, 'input');
  });

  it('caps the audio at MAX_TTS_AUDIO_SECONDS and says so', async () => {
    const short = await startApp({ env: { ...LIGHT, MAX_TTS_AUDIO_SECONDS: '1' } });
    try {
      const res = (await (await tts(short, { text: 'This sentence is much longer than one second of speech, by far.' })).json()) as { duration_seconds: number; truncated: boolean };
      assert.equal(res.truncated, true);
      assert.ok(Math.abs(res.duration_seconds - 1) < 0.01, String(res.duration_seconds));
    } finally {
      await short.close();
    }
  });

  it('without ffmpeg: wav and pcm still work, compressed formats answer 501 naming the remedy', async () => {
    const bare = await startApp({ env: { ...LIGHT, FFMPEG_PATH: '/nonexistent/ffmpeg' } });
    try {
      assert.equal((await tts(bare, { text: 'Still fine.', format: 'wav' })).status, 200);
      const res = await tts(bare, { text: 'Needs an encoder.', format: 'mp3' });
      assert.equal(res.status, 501);
      const body = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, 'encoder_unavailable');
      assert.match(body.error.message, /apt-get install ffmpeg/);
    } finally {
      await bare.close();
    }
  });

  it('a client that disconnects mid-stream frees the synthesis slot', async () => {
    const controller = new AbortController();
    const res = await fetch(`${t.url}/v1/text-to-speech`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'A long text to speak. '.repeat(20), stream: true }),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    controller.abort();
    assert.equal(await waitForGauge(t.url, 'tts_requests_in_flight', 0), 0);
    assert.equal((await tts(t, { text: 'Next one works.' })).status, 200);
  });
});
