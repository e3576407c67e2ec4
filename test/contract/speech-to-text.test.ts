/** Speech-to-text over real HTTP: the real whisper.cpp on the tiny model, the official OpenAI SDK. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createOpenAI } from '@ai-sdk/openai';
import { experimental_transcribe as transcribe } from 'ai';
import OpenAI, { toFile } from 'openai';
import { TINY_WHISPER_TEXT } from '../../scripts/models/tiny-whisper.ts';
import { startApp, type TestApp } from '../helpers/app.ts';
import { wav } from '../helpers/audio.ts';
import { CONTAINERS, encodeWith } from '../helpers/ffmpeg.ts';
import { tinyWhisperPath } from '../helpers/models.ts';

async function upload(url: string, file: Buffer, fields: Record<string, string> = {}, name = 'clip.wav') {
  const form = new FormData();
  form.set('file', new Blob([file]), name);
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  const res = await fetch(url, { method: 'POST', body: form });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** The model's no-speech probability (the patched whisper.cpp reports it): a number in [0, 1], not a placeholder. */
function assertProbability(p: unknown) {
  assert.equal(typeof p, 'number', `no_speech_prob ${String(p)}`);
  assert.ok((p as number) >= 0 && (p as number) <= 1, `no_speech_prob ${String(p)}`);
}

describe('speech-to-text routes', () => {
  let t: TestApp;
  let client: OpenAI;
  before(async () => {
    t = await startApp({ env: { LOCAL_WHISPER_MODEL: tinyWhisperPath(), STT_BACKEND: 'local', MAX_UPLOAD_BYTES: '2000000', MAX_AUDIO_SECONDS: '20', GEMMA_MODEL: '/absent.gguf' } });
    client = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: 'none', maxRetries: 0 });
  });
  after(() => t.close());

  it('the OpenAI SDK: audio.transcriptions.create (json)', async () => {
    const result = await client.audio.transcriptions.create({ file: await toFile(wav(2), 'clip.wav'), model: 'whisper-1' });
    assert.equal(result.text, TINY_WHISPER_TEXT);
    // the engine that answered, as the README promises (and /v1/speech-to-text sends)
    for (const response_format of ['json', 'text']) {
      const res = await upload(`${t.url}/v1/audio/transcriptions`, wav(2), { model: 'whisper-1', response_format });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.headers.get('x-stt-engine'), 'whisper-cpp', response_format);
    }
  });

  it('the OpenAI SDK: verbose_json with word and segment timestamps', async () => {
    const result = await client.audio.transcriptions.create({
      file: await toFile(wav(2, { rate: 44100, channels: 2 }), 'stereo.wav'),
      model: 'whisper-1',
      response_format: 'verbose_json',
      timestamp_granularities: ['word', 'segment'],
    });
    assert.equal(result.text, TINY_WHISPER_TEXT);
    assert.equal(result.duration, 2);
    assert.equal(result.language, 'english', 'verbose_json names the language as OpenAI does');
    assert.equal(result.segments?.length, 1);
    const segment = result.segments![0]!;
    assert.ok(segment.tokens.length >= 6 && segment.tokens.every((id) => Number.isInteger(id) && id >= 0), `token ids: ${segment.tokens}`);
    assert.deepEqual([segment.start, segment.end, segment.text.trim()], [0, 1, TINY_WHISPER_TEXT]);
    assert.ok(segment.compression_ratio > 0);
    assertProbability(segment.no_speech_prob);
    assert.deepEqual(result.words?.map((w) => w.word), ['Hello', 'from', 'the', 'tiny', 'whisper', 'model.']);
    assert.ok(result.words!.every((w) => w.end >= w.start && w.end <= 1));
  });

  it('the Vercel AI SDK: experimental_transcribe with whisper-1 (verbose_json, numeric no_speech_prob)', async () => {
    const provider = createOpenAI({ baseURL: `${t.url}/v1`, apiKey: 'none' });
    const result = await transcribe({ model: provider.transcription('whisper-1'), audio: new Uint8Array(wav(2)), maxRetries: 0 });
    assert.equal(result.text, TINY_WHISPER_TEXT);
    assert.equal(result.durationInSeconds, 2);
    assert.deepEqual(result.segments.map((s) => [s.text.trim(), s.startSecond, s.endSecond]), [[TINY_WHISPER_TEXT, 0, 1]]);
  });

  it('the OpenAI SDK: stream=true gives transcript.text.delta events, then transcript.text.done', async () => {
    const stream = await client.audio.transcriptions.create({ file: await toFile(wav(2), 'clip.wav'), model: 'gpt-4o-mini-transcribe', stream: true });
    const events: { type: string; delta?: string; text?: string }[] = [];
    for await (const event of stream) events.push(event as { type: string; delta?: string; text?: string });
    assert.deepEqual(events.map((e) => e.type), ['transcript.text.delta', 'transcript.text.done']);
    assert.equal(events[0]!.delta!.trim(), TINY_WHISPER_TEXT);
    assert.equal(events[1]!.text, TINY_WHISPER_TEXT);
  });

  it('text, srt and vtt formats', async () => {
    const text = await upload(`${t.url}/v1/audio/transcriptions`, wav(2), { model: 'whisper-1', response_format: 'text' });
    assert.equal(text.text, `${TINY_WHISPER_TEXT}\n`);
    const srt = await upload(`${t.url}/v1/audio/transcriptions`, wav(2), { response_format: 'srt' });
    assert.equal(srt.text, `1\n00:00:00,000 --> 00:00:01,000\n${TINY_WHISPER_TEXT}\n`);
    const vtt = await upload(`${t.url}/v1/audio/transcriptions`, wav(2), { response_format: 'vtt' });
    assert.equal(vtt.text, `WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n${TINY_WHISPER_TEXT}\n`);
    assert.match(vtt.headers.get('content-type') ?? '', /^text\/vtt/);
  });

  it('POST /v1/speech-to-text answers the seed shape with the engine, from float WAV at 48 kHz', async () => {
    const res = await upload(`${t.url}/v1/speech-to-text`, wav(2, { rate: 48000, format: 'float32' }), { language: 'en' });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-stt-engine'), 'whisper-cpp');
    const body = JSON.parse(res.text) as { text: string; engine: string; segments: { start: number; end: number; no_speech_prob: number }[]; duration: number };
    assert.equal(body.text, TINY_WHISPER_TEXT);
    assert.equal(body.engine, 'whisper-cpp');
    assert.equal(body.duration, 2);
    assert.deepEqual(body.segments.map((s) => [s.start, s.end]), [[0, 1]]);
    assertProbability(body.segments[0]!.no_speech_prob);
  });

  it('decodes every container clients send (mp3, flac, ogg/vorbis, ogg/opus, webm/opus, m4a/aac, μ-law and A-law wav)', async () => {
    // 1.5 s: encoders pad a little, and the tiny model emits one segment per second it is left with
    const source = wav(1.5, { rate: 44100, channels: 2 });
    for (const container of Object.keys(CONTAINERS) as (keyof typeof CONTAINERS)[]) {
      const res = await upload(`${t.url}/v1/speech-to-text`, encodeWith(source, container), {}, `clip.${container}`);
      assert.equal(res.status, 200, `${container}: ${res.text}`);
      const body = JSON.parse(res.text) as { text: string; duration: number };
      assert.equal(body.text, TINY_WHISPER_TEXT, container);
      assert.ok(Math.abs(body.duration - 1.5) < 0.1, `${container}: duration ${body.duration}`);
    }
    const log = t.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'audio received').map((l) => l.container);
    for (const c of ['mp3', 'flac', 'ogg', 'webm', 'mp4']) assert.ok(log.includes(c), `${c} sniffed`);
  });

  it('a language Whisper does not know is a 400 naming `language` and listing the valid codes, on every transcription route', async () => {
    const cases: [string, () => Promise<{ status: number; text: string }>][] = [
      ['/v1/audio/transcriptions', () => upload(`${t.url}/v1/audio/transcriptions`, wav(1), { model: 'whisper-1', language: 'xx' })],
      ['/v1/audio/translations', () => upload(`${t.url}/v1/audio/translations`, wav(1), { model: 'whisper-1', language: 'qq' })],
      ['/v1/speech-to-text', () => upload(`${t.url}/v1/speech-to-text`, wav(1), { language: 'zz' })],
      ['/v1/audio/transcriptions/jobs', () => upload(`${t.url}/v1/audio/transcriptions/jobs`, wav(1), { language: 'xx' })],
      [
        '/v1/speech-to-text (JSON)',
        async () => {
          const res = await fetch(`${t.url}/v1/speech-to-text`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ audio_base64: wav(1).toString('base64'), language: 'abc' }) });
          return { status: res.status, text: await res.text() };
        },
      ],
    ];
    for (const [route, send] of cases) {
      const res = await send();
      assert.equal(res.status, 400, `${route}: ${res.text}`);
      const error = (JSON.parse(res.text) as { error: { param: string; message: string } }).error;
      assert.equal(error.param, 'language', route);
      assert.match(error.message, /docs\/api\.md#languages/, route);
      assert.match(error.message, /\ben, zh, de\b.*\byue\b/, `${route}: the codes are listed`);
    }
    // a known code in any case still works
    const ok = await upload(`${t.url}/v1/audio/transcriptions`, wav(1), { model: 'whisper-1', language: 'EN' });
    assert.equal(ok.status, 200, ok.text);
    await assert.rejects(client.audio.transcriptions.create({ file: await toFile(wav(1), 'a.wav'), model: 'whisper-1', language: 'xx' }), (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'language');
  });

  it('an m4a with its moov at the end is decoded piece by piece: MAX_AUDIO_SECONDS stops it while decoding, even when its header hides the length', async () => {
    // ffmpeg's m4a (-f ipod) puts moov after mdat; mvhd/mdhd durations set to "unknown" (all ones) pass the header check
    const file = encodeWith(wav(60), 'm4a-aac');
    const v = new DataView(file.buffer, file.byteOffset, file.byteLength);
    const walk = (start: number, end: number) => {
      for (let at = start; at + 8 <= end; ) {
        const size = v.getUint32(at);
        const type = file.toString('latin1', at + 4, at + 8);
        if (size < 8) return;
        if (['moov', 'trak', 'mdia'].includes(type)) walk(at + 8, at + size);
        if (type === 'mvhd' || type === 'mdhd') v.setUint32(at + 8 + (file[at + 8] === 1 ? 28 : 16), 0xffffffff);
        at += size;
      }
    };
    walk(0, file.length);
    const types: string[] = [];
    for (let at = 0; at + 8 <= file.length; at += v.getUint32(at)) types.push(file.toString('latin1', at + 4, at + 8));
    assert.ok(types.indexOf('moov') > types.indexOf('mdat'), `moov after mdat: ${types.join(',')}`);
    const res = await upload(`${t.url}/v1/speech-to-text`, file, {}, 'long.m4a');
    assert.equal(res.status, 413, res.text);
    const seconds = Number(/The audio is ([\d.]+) s long/.exec(JSON.parse(res.text).error.message)?.[1]);
    // refused as the decoded length passed 20 s, not after all 60 s had been decoded at once
    assert.ok(seconds > 20 && seconds < 25, `refused at ${seconds} s`);
    // and an honest one under the limit still decodes whole
    const ok = await upload(`${t.url}/v1/speech-to-text`, encodeWith(wav(3), 'm4a-aac'), {}, 'short.m4a');
    assert.equal(ok.status, 200, ok.text);
    assert.ok(Math.abs((JSON.parse(ok.text) as { duration: number }).duration - 3) < 0.1, ok.text);
  });

  it('a μ-law WAV longer than MAX_AUDIO_SECONDS is a 413, like any other', async () => {
    const long = encodeWith(wav(21, { rate: 8000 }), 'wav-mulaw');
    const res = await upload(`${t.url}/v1/speech-to-text`, long);
    assert.equal(res.status, 413, res.text);
    assert.equal(JSON.parse(res.text).error.code, 'audio_too_long');
  });

  it('a G.711 or PCM WAV declaring a rate the resampler refuses (> 192 kHz) is a 400 invalid_audio on every route, not a 500', async () => {
    /** Half a second of `tag` (7 μ-law, 6 A-law: 8-bit; 1 PCM: 16-bit) at `rate`, header by hand. */
    const declared = (tag: number, rate: number) => {
      const bits = tag === 1 ? 16 : 8;
      const data = Buffer.alloc(((rate / 2) * bits) / 8, 0x33);
      const b = Buffer.alloc(44);
      b.write('RIFF', 0);
      b.writeUInt32LE(36 + data.length, 4);
      b.write('WAVEfmt ', 8);
      b.writeUInt32LE(16, 16);
      b.writeUInt16LE(tag, 20);
      b.writeUInt16LE(1, 22);
      b.writeUInt32LE(rate, 24);
      b.writeUInt32LE((rate * bits) / 8, 28);
      b.writeUInt16LE(bits / 8, 32);
      b.writeUInt16LE(bits, 34);
      b.write('data', 36);
      b.writeUInt32LE(data.length, 40);
      return Buffer.concat([b, data]);
    };
    for (const tag of [7, 6, 1]) {
      for (const rate of [200_000, 250_000, 384_000]) {
        const file = declared(tag, rate);
        const json = await fetch(`${t.url}/v1/speech-to-text`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ audio_base64: file.toString('base64') }) });
        const answers = [
          await upload(`${t.url}/v1/audio/transcriptions`, file, { model: 'whisper-1' }),
          await upload(`${t.url}/v1/speech-to-text`, file),
          { status: json.status, text: await json.text() },
        ];
        for (const res of answers) {
          assert.equal(res.status, 400, `format ${tag} at ${rate} Hz: ${res.text}`);
          assert.equal(JSON.parse(res.text).error.code, 'invalid_audio', res.text);
          assert.match(JSON.parse(res.text).error.message, /4000–192000 Hz is accepted/);
        }
      }
    }
    // the top of the accepted range decodes (resampled to 16 kHz)
    const top = await upload(`${t.url}/v1/speech-to-text`, declared(7, 192_000));
    assert.equal(top.status, 200, top.text);
  });

  it('accepts the audio base64 in JSON on /v1/speech-to-text', async () => {
    const post = (body: unknown) => fetch(`${t.url}/v1/speech-to-text`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const ok = await post({ audio_base64: wav(2).toString('base64'), format: 'wav', language: 'en' });
    assert.equal(ok.status, 200);
    assert.equal(((await ok.json()) as { text: string }).text, TINY_WHISPER_TEXT);
    const bad = await post({ audio_base64: 'not base64!!' });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { param: string } }).error.param, 'audio_base64');
  });

  it('a bad field in the JSON body of /v1/speech-to-text is a 400 naming that field, as on the form route', async () => {
    const audio = wav(1).toString('base64');
    const cases: [Record<string, unknown>, string][] = [
      [{ audio_base64: audio, language: 1 }, 'language'],
      [{ audio_base64: audio, language: null }, 'language'],
      [{ audio_base64: audio, language: ['en'] }, 'language'],
      [{ audio_base64: audio, vad_filter: 'true' }, 'vad_filter'],
      [{ audio_base64: audio, temperature: 'hot' }, 'temperature'],
      [{ audio_base64: audio, response_format: 'xml' }, 'response_format'],
      [{ audio_base64: 42 }, 'audio_base64'],
    ];
    for (const [body, field] of cases) {
      const res = await fetch(`${t.url}/v1/speech-to-text`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const text = await res.text();
      assert.equal(res.status, 400, text);
      const error = (JSON.parse(text) as { error: { param: string | null; message: string; code: string } }).error;
      assert.equal(error.param, field, `${JSON.stringify(body).replace(audio, '…')}: ${text}`);
      assert.match(error.message, new RegExp(`^${field}: `), text);
      assert.doesNotMatch(error.message, /file/, 'the form shape is not what this body was');
    }
    // the form route is unchanged: its bad field is named too
    const form = await upload(`${t.url}/v1/speech-to-text`, wav(1), { vad_filter: 'maybe' });
    assert.equal(form.status, 400, form.text);
    assert.equal(JSON.parse(form.text).error.param, 'vad_filter');
  });

  it('answers bad audio with clear 4xx envelopes', async () => {
    const cases: [Buffer, number, RegExp][] = [
      [Buffer.alloc(0), 400, /empty/],
      [Buffer.from('this is plain text, not audio at all'), 415, /Unsupported or unrecognized audio format/],
      [Buffer.concat([Buffer.from('RIFF\x24\x00\x00\x00WAVEfmt '), Buffer.alloc(40, 0xff)]), 400, /The wav audio declares a sample rate of 4294967295 Hz/],
      [wav(25), 413, /limit is 20 s \(MAX_AUDIO_SECONDS\)/],
      [Buffer.concat([wav(1), Buffer.alloc(2_000_000)]), 413, /./],
    ];
    for (const [file, status, pattern] of cases) {
      const res = await upload(`${t.url}/v1/audio/transcriptions`, file);
      assert.equal(res.status, status, res.text);
      const body = JSON.parse(res.text) as { error: { message: string; type: string }; request_id: string };
      assert.match(body.error.message, pattern);
      assert.equal(body.error.type, 'invalid_request_error');
    }
    const missing = new FormData();
    missing.set('model', 'whisper-1');
    const res = await fetch(`${t.url}/v1/audio/transcriptions`, { method: 'POST', body: missing });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { error: { param: string } }).error.param, 'file');
    const streamingBad = await upload(`${t.url}/v1/audio/transcriptions`, Buffer.from('not audio at all, really'), { stream: 'true' });
    assert.equal(streamingBad.status, 415, 'errors before the first byte stay HTTP errors');
    assert.match(streamingBad.headers.get('content-type') ?? '', /^application\/json/, 'in the JSON envelope, not as an event');
  });

  it('a form with two files or too many fields is a 400 invalid_multipart in the envelope (not a raw 413)', async () => {
    const twoFiles = new FormData();
    twoFiles.append('file', new Blob([wav(1)]), 'a.wav');
    twoFiles.append('file', new Blob([wav(1)]), 'b.wav');
    const manyFields = new FormData();
    manyFields.append('file', new Blob([wav(1)]), 'a.wav');
    for (let i = 0; i < 100; i++) manyFields.append(`x${i}`, 'y');
    for (const [form, param] of [
      [twoFiles, 'file'],
      [manyFields, null],
    ] as const) {
      const res = await fetch(`${t.url}/v1/audio/transcriptions`, { method: 'POST', body: form });
      const body = (await res.json()) as { error: { code: string; param: string | null; message: string; type: string } };
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(body.error.code, 'invalid_multipart');
      assert.equal(body.error.param, param);
      assert.match(body.error.message, /^Malformed multipart\/form-data body: reach (files|fields) limit/);
    }
  });

  it('logs audio metadata (never the bytes) and feeds the STT metrics', async () => {
    await upload(`${t.url}/v1/speech-to-text`, wav(2), {}, 'meta.wav');
    const line = t.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'audio received');
    assert.ok(line);
    assert.deepEqual([line.container, line.duration_s, line.sample_rate, line.channels], ['wav', 2, 16000, 1]);
    assert.equal(typeof line.bytes, 'number');
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    assert.match(metrics, /dependency_duration_seconds_count\{dependency="whisper-cpp",operation="transcribe",outcome="success"\} \d+/);
    assert.match(metrics, /stt_audio_seconds_total\{engine="whisper-cpp"\} \d+/);
    assert.match(metrics, /stt_real_time_factor_count\{engine="whisper-cpp"\} \d+/);
  });
});

describe('speech-to-text without a model', () => {
  it('answers 503 with the remedy', async () => {
    const t = await startApp({ env: { LOCAL_WHISPER_MODEL: 'base.en', STT_BACKEND: 'local', GEMMA_MODEL: '/absent.gguf' } });
    try {
      const res = await upload(`${t.url}/v1/speech-to-text`, wav(1));
      assert.equal(res.status, 503);
      assert.match(JSON.parse(res.text).error.message, /MODEL_DOWNLOAD=false.*npm run pull/s);
    } finally {
      await t.close();
    }
  });
});
