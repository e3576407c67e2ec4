/**
 * Voice dialogue end to end on the real engines: the tiny Gemma (llama.cpp), the tiny whisper
 * (whisper.cpp) and the embedded voice (eSpeak NG); fish-speech's stand-in for the TTS failure path.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startApp, type TestApp } from '../helpers/app.ts';
import { wav } from '../helpers/audio.ts';
import { decodeWithFfmpeg } from '../helpers/ffmpeg.ts';
import { loopingGemmaPath, tinyGemmaPath, tinyWhisperPath } from '../helpers/models.ts';
import { startFakeFishSpeech, type FakeFishSpeech } from '../fakes/fish-speech.ts';

const GEMMA_REPLY = 'Hello from the tiny Gemma model.';
const WHISPER_TEXT = 'Hello from the tiny whisper model.';

interface Turn {
  session_id: string;
  transcript: { text: string; segments: { start: number; end: number; text: string; avg_logprob: number }[] } | null;
  reply_text: string;
  audio_base64: string | null;
  audio_format: string | null;
  sample_rate: number | null;
  duration_seconds: number | null;
  no_speech: boolean;
  degraded: { stage: string; reason: string }[];
  engines: { stt: string | null; llm: string; tts: string | null };
  usage: { prompt_tokens: number; completion_tokens: number };
  timings: Record<string, number | null>;
  error?: { code: string; message: string; param: string };
}

async function turn(t: TestApp, body: Record<string, unknown>) {
  const res = await fetch(`${t.url}/v1/dialogue`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, session: res.headers.get('x-session-id'), body: (await res.json()) as Turn };
}

function sseEvents(text: string): { event: string; data: Record<string, unknown> }[] {
  return text
    .split('\n\n')
    .filter(Boolean)
    .map((frame) => ({ event: /^event: (.*)$/m.exec(frame)![1]!, data: JSON.parse(/^data: (.*)$/m.exec(frame)![1]!) as Record<string, unknown> }));
}

describe('voice dialogue on the real engines', () => {
  let t: TestApp;
  before(async () => {
    t = await startApp({ env: { GEMMA_MODEL: tinyGemmaPath(), LOCAL_WHISPER_MODEL: tinyWhisperPath() } });
  });
  after(() => t.close());

  it('a text turn: the reply as text and speech, engines, timings, a new session id', async () => {
    const { status, session, body } = await turn(t, { text: 'Hi there!' });
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.reply_text, GEMMA_REPLY);
    assert.equal(body.transcript, null);
    assert.match(body.session_id, /^[0-9a-f-]{36}$/);
    assert.equal(session, body.session_id);
    assert.deepEqual(body.engines, { stt: null, llm: 'llama-cpp', tts: 'espeak' });
    assert.equal(body.audio_format, 'wav');
    const decoded = decodeWithFfmpeg(Buffer.from(body.audio_base64!, 'base64'));
    assert.equal(decoded.sampleRate, body.sample_rate);
    assert.ok(Math.abs(decoded.seconds - body.duration_seconds!) < 0.01 && decoded.seconds > 1 && decoded.rms > 0.02);
    for (const key of ['llm_first_token_ms', 'llm_total_ms', 'tts_first_audio_ms', 'tts_total_ms', 'first_audio_ms', 'total_ms']) assert.equal(typeof body.timings[key], 'number', key);
    assert.equal(body.timings.stt_ms, null);
    assert.ok(body.timings.first_audio_ms! <= body.timings.total_ms!);
    assert.equal(body.usage.completion_tokens, 7);
  });

  it('an audio turn (JSON base64 and multipart): transcript with timestamps, then the reply', async () => {
    const json = await turn(t, { audio_base64: wav(2).toString('base64'), response_modalities: ['text'] });
    assert.equal(json.status, 200, JSON.stringify(json.body));
    assert.equal(json.body.transcript!.text, WHISPER_TEXT);
    assert.deepEqual(json.body.transcript!.segments.map((s) => [s.start, s.end, s.text.trim()]), [[0, 1, WHISPER_TEXT]]);
    assert.equal(json.body.reply_text, GEMMA_REPLY);
    assert.equal(json.body.audio_base64, null);
    assert.equal(json.body.engines.stt, 'whisper-cpp');
    assert.equal(typeof json.body.timings.stt_ms, 'number');

    const form = new FormData();
    form.set('file', new Blob([wav(2)]), 'turn.wav');
    form.set('response_modalities', 'text,audio');
    form.set('format', 'mp3');
    const res = await fetch(`${t.url}/v1/dialogue`, { method: 'POST', body: form });
    const body = (await res.json()) as Turn;
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.transcript!.text, WHISPER_TEXT);
    assert.equal(decodeWithFfmpeg(Buffer.from(body.audio_base64!, 'base64')).codec, 'mp3');
  });

  // The body used to be one zod union whose JSON branch (every field optional) matched a form
  // first and dropped its `file`: a form with only `file` answered 400 empty_turn.
  it('a multipart turn with only `file` (or with session_id and language) is heard; other body types get 415', async () => {
    const post = async (fields: Record<string, string>) => {
      const form = new FormData();
      form.set('file', new Blob([wav(2)], { type: 'audio/wav' }), 'turn.wav');
      for (const [k, v] of Object.entries(fields)) form.set(k, v);
      const res = await fetch(`${t.url}/v1/dialogue`, { method: 'POST', body: form });
      return { status: res.status, body: (await res.json()) as Turn };
    };
    const variants: Record<string, string>[] = [{}, { session_id: 'form-only-file', language: 'en' }, { stream: 'false', max_tokens: '16' }];
    for (const fields of variants) {
      const { status, body } = await post(fields);
      assert.equal(status, 200, `${JSON.stringify(fields)}: ${JSON.stringify(body)}`);
      assert.equal(body.transcript?.text, WHISPER_TEXT);
      assert.equal(body.reply_text, GEMMA_REPLY);
      assert.equal(typeof body.audio_base64, 'string', 'both modalities by default');
      if ('session_id' in fields) assert.equal(body.session_id, 'form-only-file');
    }
    const plain = await fetch(`${t.url}/v1/dialogue`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"text":"hi"}' });
    assert.equal(plain.status, 415);
    assert.equal(((await plain.json()) as Turn).error!.code, 'unsupported_media_type');
  });

  it('remembers: the second turn carries the first (and only within its session); GET and DELETE the session', async () => {
    const first = await turn(t, { text: 'Remember me.', session_id: 'memory-test', response_modalities: ['text'] });
    const second = await turn(t, { text: 'Remember me.', session_id: 'memory-test', response_modalities: ['text'] });
    const elsewhere = await turn(t, { text: 'Remember me.', session_id: 'other-session', response_modalities: ['text'] });
    assert.ok(second.body.usage.prompt_tokens > first.body.usage.prompt_tokens + 10, `${second.body.usage.prompt_tokens} vs ${first.body.usage.prompt_tokens}: history in the prompt`);
    assert.equal(elsewhere.body.usage.prompt_tokens, first.body.usage.prompt_tokens);
    const history = (await (await fetch(`${t.url}/v1/sessions/memory-test`)).json()) as { turns: { role: string; content: string }[] };
    assert.deepEqual(
      history.turns.map((x) => [x.role, x.content]),
      [
        ['user', 'Remember me.'],
        ['assistant', GEMMA_REPLY],
        ['user', 'Remember me.'],
        ['assistant', GEMMA_REPLY],
      ],
    );
    assert.equal((await fetch(`${t.url}/v1/sessions/memory-test`, { method: 'DELETE' })).status, 204);
    const gone = await fetch(`${t.url}/v1/sessions/memory-test`);
    assert.equal(gone.status, 404);
    assert.equal(((await gone.json()) as { error: { code: string } }).error.code, 'session_not_found');
    assert.equal((await fetch(`${t.url}/v1/sessions/memory-test`, { method: 'DELETE' })).status, 404);
  });

  it('streams SSE in order: transcript, text and audio deltas, done; the audio is one decodable stream', async () => {
    const res = await fetch(`${t.url}/v1/dialogue`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ audio_base64: wav(2).toString('base64'), stream: true, format: 'pcm', sample_rate: 16000 }) });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const events = sseEvents(await res.text());
    assert.equal(events[0]!.event, 'transcript');
    assert.equal(events[0]!.data.text, WHISPER_TEXT);
    assert.equal(events.at(-1)!.event, 'done');
    const middle = events.slice(1, -1);
    assert.ok(middle.every((e) => e.event === 'text.delta' || e.event === 'audio.delta'));
    const text = middle.filter((e) => e.event === 'text.delta').map((e) => e.data.text).join('');
    assert.equal(text, GEMMA_REPLY);
    const done = events.at(-1)!.data as unknown as Turn;
    assert.equal(done.reply_text, GEMMA_REPLY);
    assert.equal(done.audio_base64, null, 'the stream carried the audio; done carries metadata');
    const audio = Buffer.concat(middle.filter((e) => e.event === 'audio.delta').map((e) => Buffer.from(e.data.audio as string, 'base64')));
    const decoded = decodeWithFfmpeg(audio, 16000);
    assert.ok(Math.abs(decoded.seconds - done.duration_seconds!) < 0.01 && decoded.rms > 0.02);
  });

  it('bad input: a clear 4xx before any work', async () => {
    const cases: [Record<string, unknown>, number, string][] = [
      [{}, 400, 'empty_turn'],
      [{ text: '   ' }, 400, 'empty_turn'],
      [{ text: 'hi', session_id: 'bad id with spaces' }, 400, 'invalid_session_id'],
      [{ text: 'hi', response_modalities: [] }, 400, 'invalid_value'],
      [{ audio_base64: Buffer.from('not audio at all, not at all').toString('base64') }, 415, 'unsupported_audio_format'],
    ];
    for (const [body, status, code] of cases) {
      const res = await turn(t, body);
      assert.equal(res.status, status, JSON.stringify(body));
      assert.equal(res.body.error!.code, code, res.body.error!.message);
    }
  });
});

describe('dialogue streaming at sentence level, and degrading', () => {
  let fake: FakeFishSpeech;
  const apps: TestApp[] = [];
  before(async () => {
    fake = await startFakeFishSpeech();
  });
  after(async () => {
    for (const a of apps) await a.close();
    await fake.close();
  });

  it('the first audio leaves while the model is still writing', async () => {
    const t = await startApp({ env: { GEMMA_MODEL: loopingGemmaPath(), ENABLE_LOCAL_WHISPER: 'false' } });
    apps.push(t);
    const res = await fetch(`${t.url}/v1/dialogue`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: 'Talk a lot.', stream: true, format: 'pcm', max_tokens: 200 }) });
    const events = sseEvents(await res.text());
    const firstAudio = events.findIndex((e) => e.event === 'audio.delta');
    const lastText = events.findLastIndex((e) => e.event === 'text.delta');
    assert.ok(firstAudio > 0 && firstAudio < lastText, `first audio.delta at ${firstAudio}, last text.delta at ${lastText}`);
    const done = events.at(-1)!.data as unknown as Turn;
    assert.ok(done.timings.first_audio_ms! < done.timings.llm_total_ms! + done.timings.llm_first_token_ms!, JSON.stringify(done.timings));
  });

  it('TTS failing: the turn still answers with text, flagged degraded', async () => {
    const t = await startApp({ env: { GEMMA_MODEL: tinyGemmaPath(), ENABLE_LOCAL_WHISPER: 'false', TTS_BACKEND: 'openaudio', OPENAUDIO_API_BASE: fake.url, OPENAUDIO_MAX_RETRIES: '0' } });
    apps.push(t);
    fake.failures = [500, 500, 500];
    const res = await turn(t, { text: 'Speak, please.' });
    assert.equal(res.status, 200);
    assert.equal(res.body.reply_text, GEMMA_REPLY);
    assert.equal(res.body.audio_base64, null);
    assert.equal(res.body.degraded[0]!.stage, 'tts');
    assert.match(res.body.degraded[0]!.reason, /fish-speech/);
    fake.failures = [];
    const healthy = await turn(t, { text: 'Speak, please.' });
    assert.equal(healthy.body.engines.tts, 'openaudio');
    assert.ok(healthy.body.audio_base64);
  });
});
