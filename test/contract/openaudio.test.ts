/**
 * The fish-speech (OpenAudio-S1-mini) adapter against a local fake that follows its published
 * schema: the MessagePack body field by field, bearer auth, the streamed WAV, retries on
 * 502/503/504 only, 4xx mapping, timeouts, malformed audio, fallback to the embedded voice,
 * reference validation before any upstream call, health and voices.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import WebSocket from 'ws';
import { startApp, type TestApp } from '../helpers/app.ts';
import { freePort } from '../helpers/process.ts';
import { wav } from '../helpers/audio.ts';
import { eventLog } from '../helpers/ws.ts';
import { decodeWithFfmpeg } from '../helpers/ffmpeg.ts';
import { FISH_SAMPLE_RATE, SECONDS_PER_CHAR, startFakeFishSpeech, type FakeFishSpeech } from '../fakes/fish-speech.ts';

const LIGHT = { GEMMA_MODEL: '/absent.gguf', ENABLE_LOCAL_WHISPER: 'false' };

interface Reply {
  engine: string;
  audio_base64: string;
  error: { message: string; type: string; code: string };
}

async function speak(t: TestApp, body: Record<string, unknown>) {
  const res = await fetch(`${t.url}/v1/text-to-speech`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Reply };
}

/** Waits until the openaudio engine reports ready (the LLM is absent in these tests, so overall readiness never is). */
async function waitForReady(t: TestApp): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const body = (await (await fetch(`${t.url}/health/ready`)).json()) as { capabilities: { tts: { engines: { engine: string; status: string }[] } } };
    if (body.capabilities.tts.engines.find((e) => e.engine === 'openaudio')?.status === 'ready') return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('openaudio never became ready');
}

describe('the fish-speech stand-in follows the published server behaviour', () => {
  let fake: FakeFishSpeech;
  before(async () => {
    fake = await startFakeFishSpeech({ apiKey: 'k' });
  });
  after(() => fake.close());
  const post = (body: string, contentType: string, key = 'k') => fetch(`${fake.url}/v1/tts`, { method: 'POST', headers: { 'content-type': contentType, authorization: `Bearer ${key}` }, body });

  it('accepts JSON and multipart as well as MessagePack; 415 otherwise; 401 without the key', async () => {
    const json = await post(JSON.stringify({ text: 'json body', format: 'pcm' }), 'application/json');
    assert.equal(json.status, 200);
    assert.equal((await json.arrayBuffer()).byteLength, Math.round('json body'.length * SECONDS_PER_CHAR * FISH_SAMPLE_RATE) * 2);
    const form = new FormData();
    form.set('text', 'multipart body');
    form.set('format', 'wav');
    const multipart = await fetch(`${fake.url}/v1/tts`, { method: 'POST', headers: { authorization: 'Bearer k' }, body: form });
    assert.equal(multipart.status, 200);
    assert.equal(Buffer.from(await multipart.arrayBuffer()).toString('latin1', 0, 4), 'RIFF');
    const plain = await post('text', 'text/plain');
    assert.equal(plain.status, 415);
    assert.match(plain.headers.get('accept') ?? '', /application\/msgpack/);
    const denied = await post(JSON.stringify({ text: 'x' }), 'application/json', 'wrong');
    assert.equal(denied.status, 401);
    assert.deepEqual(await denied.json(), { statusCode: 401, message: 'Invalid or missing API key', error: 'Unauthorized' });
  });

  it('validates like pydantic (422) and refuses streaming in anything but wav (400)', async () => {
    const bad = await post(JSON.stringify({ text: 'x', chunk_length: 50, top_p: 2 }), 'application/json');
    assert.equal(bad.status, 422);
    assert.deepEqual(((await bad.json()) as { message: string[] }).message, ['chunk_length: must be an integer in [100, 1000]', 'top_p: must be a number in [0.1, 1]']);
    const stream = await post(JSON.stringify({ text: 'x', streaming: true, format: 'pcm' }), 'application/json');
    assert.equal(stream.status, 400);
    assert.equal(((await stream.json()) as { message: string }).message, 'Streaming only supports WAV format');
  });
});

describe('OpenAudio through the fish-speech API server (fake)', () => {
  let fake: FakeFishSpeech;
  const apps: TestApp[] = [];
  const app = async (env: Record<string, string> = {}) => {
    const t = await startApp({ env: { ...LIGHT, TTS_BACKEND: 'openaudio', OPENAUDIO_API_BASE: fake.url, OPENAUDIO_API_KEY: 'fish-key', OPENAUDIO_MAX_RETRIES: '2', ...env } });
    apps.push(t);
    return t;
  };
  let t: TestApp;
  before(async () => {
    fake = await startFakeFishSpeech({ apiKey: 'fish-key' });
    t = await app();
  });
  after(async () => {
    for (const a of apps) await a.close();
    await fake.close();
  });
  beforeEach(() => {
    fake.requests.length = 0;
    fake.failures = [];
    fake.delayMs = 0;
    fake.chunkDelayMs = 0;
    fake.malformed = false;
    fake.cutAfterHeader = false;
  });

  it('sends the published ServeTTSRequest as MessagePack with the bearer key; relays the streamed audio', async () => {
    const reference = wav(1.5, { rate: 22050 });
    const text = 'Hello from OpenAudio. This is a second sentence.';
    const res = await speak(t, {
      text,
      format: 'wav',
      sample_rate: FISH_SAMPLE_RATE,
      references: [{ audio: reference.toString('base64'), text: 'the reference transcript' }],
      seed: 42,
      temperature: 0.7,
      top_p: 0.9,
      repetition_penalty: 1.2,
      max_new_tokens: 900,
      chunk_length: 150,
      normalize: false,
      use_memory_cache: 'on',
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.engine, 'openaudio');
    assert.equal(res.headers.get('x-tts-engine'), 'openaudio');
    const sent = fake.requests.at(-1)!;
    assert.equal(sent.contentType, 'application/msgpack');
    assert.equal(sent.authorization, 'Bearer fish-key');
    const { references, ...fields } = sent.body as { references: { audio: Uint8Array; text: string }[] };
    assert.deepEqual(fields, {
      text,
      format: 'wav',
      streaming: true,
      normalize: false,
      reference_id: null,
      chunk_length: 150,
      seed: 42,
      use_memory_cache: 'on',
      max_new_tokens: 900,
      top_p: 0.9,
      repetition_penalty: 1.2,
      temperature: 0.7,
    });
    assert.equal(references.length, 1);
    assert.ok(references[0]!.audio instanceof Uint8Array, 'reference audio travels as msgpack bytes');
    assert.deepEqual(Buffer.from(references[0]!.audio), reference);
    assert.equal(references[0]!.text, 'the reference transcript');
    // the fake speaks 60 ms per character of each text chunk: what we got is what it sent
    const expected = text.length * SECONDS_PER_CHAR;
    const decoded = decodeWithFfmpeg(Buffer.from(res.body.audio_base64, 'base64'));
    assert.equal(decoded.sampleRate, FISH_SAMPLE_RATE);
    assert.ok(Math.abs(decoded.seconds - expected) < 0.1, `${decoded.seconds}s vs ${expected}s`);
    assert.ok(decoded.rms > 0.15, 'the tone came through');
  });

  it('leaves fish-speech defaults alone; voice names a reference id when the server has it', async () => {
    await speak(t, { text: 'Defaults.', voice: 'narrator' });
    assert.deepEqual(fake.requests.at(-1)!.body, { text: 'Defaults.', format: 'wav', streaming: true, normalize: true, references: [], reference_id: 'narrator' });
    await speak(t, { text: 'Explicit.', reference_id: 'other' });
    assert.equal(fake.requests.at(-1)!.body.reference_id, 'other');
  });

  it('streams: first bytes arrive before the upstream has finished', async () => {
    fake.chunkDelayMs = 300;
    const started = Date.now();
    const res = await fetch(`${t.url}/v1/text-to-speech`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text: `${'word '.repeat(40)}end. ${'more '.repeat(40)}done.`, stream: true, chunk_length: 100 }),
    });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    await reader.read();
    const first = Date.now() - started;
    let rest = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += value.length;
    }
    const total = Date.now() - started;
    assert.ok(rest > 0);
    assert.ok(total - first >= 500, `first bytes at ${first} ms, end at ${total} ms`);
  });

  it('a client that disconnects stops the upstream synthesis', async () => {
    fake.chunkDelayMs = 150;
    const controller = new AbortController();
    const res = await fetch(`${t.url}/v1/text-to-speech`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'word '.repeat(200), stream: true, chunk_length: 100 }),
      signal: controller.signal,
    });
    await res.body!.getReader().read();
    const before = fake.abandoned;
    controller.abort();
    const deadline = Date.now() + 3000;
    while (fake.abandoned === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    assert.equal(fake.abandoned, before + 1, 'fish-speech saw its client go away');
  });

  it('retries 502/503/504 with backoff, then succeeds', async () => {
    fake.failures = [503, 502];
    const res = await speak(t, { text: 'Third time lucky.' });
    assert.equal(res.status, 200);
    assert.equal(fake.requests.length, 3);
  });

  it('never retries a 4xx or a 500; maps them onto the envelope with the upstream message', async () => {
    fake.failures = [500];
    const failed = await speak(t, { text: 'Boom.' });
    assert.equal(failed.status, 502);
    assert.equal(failed.body.error.code, 'upstream_failed');
    assert.match(failed.body.error.message, /scripted failure 500/);
    assert.equal(fake.requests.length, 1);

    fake.requests.length = 0;
    fake.failures = [422];
    const rejected = await speak(t, { text: 'Refused.' });
    assert.equal(rejected.status, 400);
    assert.equal(rejected.body.error.code, 'upstream_rejected');
    assert.equal(fake.requests.length, 1);
  });

  it('gives up after OPENAUDIO_MAX_RETRIES and answers 502 when it stays down', async () => {
    fake.failures = [503, 503, 503, 503];
    const res = await speak(t, { text: 'Down.' });
    assert.equal(res.status, 502);
    assert.equal(res.body.error.type, 'upstream_error');
    assert.equal(fake.requests.length, 3);
  });

  it('a wrong key: 502 upstream_auth telling the operator to check OPENAUDIO_API_KEY', async () => {
    const wrong = await app({ OPENAUDIO_API_KEY: 'wrong' });
    const res = await speak(wrong, { text: 'Who am I?' });
    // the health probe fails with 401 too, so the engine is reported down
    assert.ok(res.status === 502 || res.status === 503, String(res.status));
    assert.match(res.body.error.message, /401|OPENAUDIO_API_KEY/);
  });

  it('times out a silent upstream with 504 (OPENAUDIO_TIMEOUT_SECONDS)', async () => {
    const impatient = await app({ OPENAUDIO_TIMEOUT_SECONDS: '1', OPENAUDIO_MAX_RETRIES: '0' });
    fake.delayMs = 2500;
    const res = await speak(impatient, { text: 'Slow.' });
    assert.equal(res.status, 504);
    assert.equal(res.body.error.code, 'upstream_timeout');
  });

  it('malformed audio → 502 upstream_bad_audio, never a 500', async () => {
    fake.malformed = true;
    const res = await speak(t, { text: 'Garbage.' });
    assert.equal(res.status, 502);
    assert.equal(res.body.error.code, 'upstream_bad_audio');
  });

  it('checks reference audio before any upstream call', async () => {
    const res = await speak(t, { text: 'Clone me.', references: [{ audio: Buffer.from('definitely not audio bytes').toString('base64'), text: 'x' }] });
    assert.equal(res.status, 415);
    assert.equal(fake.requests.length, 0);
  });

  it('falls back to the embedded voice before the first byte; the response names the engine', async () => {
    const chain = await app({ TTS_BACKEND: 'openaudio,embedded', OPENAUDIO_MAX_RETRIES: '0' });
    fake.failures = [503];
    const res = await speak(chain, { text: 'Fallback voice.' });
    assert.equal(res.status, 200);
    assert.equal(res.body.engine, 'espeak');
    const healthy = await speak(chain, { text: 'Back on OpenAudio.' });
    assert.equal(healthy.body.engine, 'openaudio');
  });

  it('a fish-speech server that is down: readiness says so and the chain answers from the embedded voice', async () => {
    const down = await app({ TTS_BACKEND: 'openaudio,embedded', OPENAUDIO_API_BASE: 'http://127.0.0.1:1' });
    const ready = (await (await fetch(`${down.url}/health/ready`)).json()) as { capabilities: { tts: { status: string; engines: { engine: string; status: string; detail?: string }[] } } };
    const openaudio = ready.capabilities.tts.engines.find((e) => e.engine === 'openaudio')!;
    assert.equal(openaudio.status, 'error');
    assert.match(openaudio.detail!, /unreachable.*OPENAUDIO_API_BASE/);
    assert.equal(ready.capabilities.tts.status, 'ready');
    const res = await speak(down, { text: 'Still speaking.' });
    assert.equal(res.body.engine, 'espeak');
    const alone = await app({ OPENAUDIO_API_BASE: 'http://127.0.0.1:1' });
    const refused = await speak(alone, { text: 'Nobody home.' });
    assert.equal(refused.status, 503);
    assert.match(refused.body.error.message, /fish-speech server at http:\/\/127\.0\.0\.1:1 is unreachable/);
  });

  it('a stream cut mid-way ends the response (no hang, no 500)', async () => {
    fake.cutAfterHeader = true;
    const res = await speak(t, { text: 'Cut short.' });
    assert.equal(res.status, 502);
    assert.equal(res.body.error.type, 'upstream_error');
  });

  it('lists the server references as voices', async () => {
    await waitForReady(t);
    const list = (await (await fetch(`${t.url}/v1/audio/voices`)).json()) as { voices: { id: string; engine: string }[] };
    assert.deepEqual(list.voices, [{ id: 'narrator', name: 'narrator', engine: 'openaudio' }], JSON.stringify(list));
  });

  it('cloned voices: POST /v1/audio/voices stores one on fish-speech, it speaks by id at once, DELETE removes it', async () => {
    await waitForReady(t);
    const clip = wav(2, { rate: 22050 });
    const add = (id: string, audio: Buffer = clip, text = 'the words in the clip') => {
      const form = new FormData();
      form.append('id', id);
      form.append('text', text);
      form.append('file', new Blob([audio], { type: 'audio/wav' }), 'voice.wav');
      return fetch(`${t.url}/v1/audio/voices`, { method: 'POST', body: form });
    };
    const added = await add('Ada Lovelace');
    assert.equal(added.status, 201);
    assert.deepEqual(await added.json(), { object: 'voice', id: 'Ada Lovelace', engine: 'openaudio' });
    // what fish-speech received: its /v1/references/add fields, the clip as bytes (MessagePack), the bearer key
    const sent = fake.requests.find((r) => r.body.id === 'Ada Lovelace')!;
    assert.equal(sent.contentType, 'application/msgpack');
    assert.equal(sent.authorization, 'Bearer fish-key');
    assert.deepEqual(Buffer.from(sent.body.audio as Uint8Array), clip);
    assert.equal(sent.body.text, 'the words in the clip');
    // listed and usable by id right away (the 30 s reference cache was refreshed)
    const voices = (await (await fetch(`${t.url}/v1/audio/voices`)).json()) as { voices: { id: string }[] };
    assert.ok(voices.voices.some((v) => v.id === 'Ada Lovelace'));
    fake.requests.length = 0;
    assert.equal((await speak(t, { text: 'In her voice.', voice: 'Ada Lovelace', format: 'wav' })).status, 200);
    assert.equal(fake.requests.find((r) => r.body.text === 'In her voice.')?.body.reference_id, 'Ada Lovelace');

    const taken = await add('Ada Lovelace');
    assert.equal(taken.status, 409);
    assert.equal(((await taken.json()) as { error: { code: string } }).error.code, 'voice_exists');
    // checked here before fish-speech sees anything
    fake.requests.length = 0;
    const badId = await add('../etc');
    assert.equal(badId.status, 400);
    assert.equal(((await badId.json()) as { error: { param: string } }).error.param, 'id');
    const notAudio = await add('noise', Buffer.from('definitely not audio'));
    assert.ok([400, 415].includes(notAudio.status), String(notAudio.status));
    const tooLong = await add('long', wav(40));
    assert.equal(tooLong.status, 413);
    assert.equal(fake.requests.length, 0, 'refused clips never reach fish-speech');

    const deleted = await fetch(`${t.url}/v1/audio/voices/${encodeURIComponent('Ada Lovelace')}`, { method: 'DELETE' });
    assert.equal(deleted.status, 200);
    assert.deepEqual(await deleted.json(), { object: 'voice', id: 'Ada Lovelace', engine: 'openaudio', deleted: true });
    assert.equal(fake.requests.at(-1)?.body.reference_id, 'Ada Lovelace');
    const again = await fetch(`${t.url}/v1/audio/voices/${encodeURIComponent('Ada Lovelace')}`, { method: 'DELETE' });
    assert.equal(again.status, 404);
    assert.equal(((await again.json()) as { error: { code: string } }).error.code, 'voice_not_found');
    const remaining = (await (await fetch(`${t.url}/v1/audio/voices`)).json()) as { voices: { id: string }[] };
    assert.ok(!remaining.voices.some((v) => v.id === 'Ada Lovelace'));
  });

  it('/ws/tts at speed 2 through fish-speech: the audio is half as long (the encoder changes the tempo)', async () => {
    await waitForReady(t);
    const utter = async (speed: number) => {
      const ws = new WebSocket(`${t.wsUrl}/ws/tts?format=pcm&sample_rate=16000&speed=${speed}`);
      const log = eventLog(ws);
      await log.waitFor((e) => e.type === 'ready');
      ws.send(JSON.stringify({ type: 'text', text: 'A sentence for the tempo test. And a second one.' }));
      ws.send(JSON.stringify({ type: 'flush' }));
      const end = await log.waitFor((e) => e.type === 'end');
      ws.close();
      const seconds = Buffer.concat(log.audio.map((a) => a.bytes)).length / 2 / 16000;
      return { seconds, reported: end.duration_seconds as number, engine: end.engine };
    };
    const normal = await utter(1);
    const fast = await utter(2);
    assert.equal(fast.engine, 'openaudio');
    assert.ok(Math.abs(fast.seconds / normal.seconds - 0.5) < 0.05, `speed 2: ${fast.seconds.toFixed(2)} s vs ${normal.seconds.toFixed(2)} s`);
    assert.ok(Math.abs(fast.reported - fast.seconds) < 0.1, `end.duration_seconds ${fast.reported} matches the audio sent (${fast.seconds.toFixed(2)})`);
  });

  it('cloned voices need fish-speech: 501 with only the embedded voice, 503 while fish-speech is down', async () => {
    const embedded = await startApp({ env: { ...LIGHT, TTS_BACKEND: 'embedded' } });
    apps.push(embedded);
    const form = () => {
      const f = new FormData();
      f.append('id', 'someone');
      f.append('text', 'hello');
      f.append('file', new Blob([wav(1)], { type: 'audio/wav' }), 'v.wav');
      return f;
    };
    const none = await fetch(`${embedded.url}/v1/audio/voices`, { method: 'POST', body: form() });
    assert.equal(none.status, 501);
    assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'voice_cloning_unavailable');
    const down = await app({ OPENAUDIO_API_BASE: `http://127.0.0.1:${await freePort()}` });
    const refused = await fetch(`${down.url}/v1/audio/voices`, { method: 'POST', body: form() });
    assert.equal(refused.status, 503);
  });
});
