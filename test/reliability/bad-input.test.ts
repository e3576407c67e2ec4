/**
 * A generated bad-input corpus against a real service process on the tiny models: every REST route
 * and every WebSocket gets malformed audio, absurd WAV headers, broken and hostile JSON, wrong
 * content types, path-like ids, oversized and many-part uploads, wrong frame kinds, oversized
 * frames, frames after close and abrupt disconnects. Each case must end in a 4xx error envelope
 * (or, for inputs the API tolerates by design — unknown JSON fields, unusual Unicode — a 2xx),
 * never a 5xx, a hang or a crash; the service must answer normally afterwards. Prints the counts.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { wav } from '../helpers/audio.ts';
import { tinyGemmaPath, tinyWhisperPath } from '../helpers/models.ts';
import { freePort, spawnService, waitForHealth, waitForReady, type ServiceProcess } from '../helpers/process.ts';

type Expect = 'reject' | 'tolerate';
interface Case {
  name: string;
  expect: Expect;
  run: () => Promise<{ status: number; body: string }>;
}

const LIMITS = { MAX_UPLOAD_BYTES: '300000', MAX_BODY_BYTES: '200000', WS_MAX_MESSAGE_BYTES: '65536', MAX_TTS_TEXT_CHARS: '1000', MAX_AUDIO_SECONDS: '60' };
const TIMEOUT_MS = 20_000;

function header(opts: { rate?: number; channels?: number; bits?: number; format?: number; dataBytes?: number; riffBytes?: number }): Buffer {
  const b = wav(0.05);
  if (opts.format !== undefined) b.writeUInt16LE(opts.format, 20);
  if (opts.channels !== undefined) b.writeUInt16LE(opts.channels, 22);
  if (opts.rate !== undefined) b.writeUInt32LE(opts.rate >>> 0, 24);
  if (opts.bits !== undefined) b.writeUInt16LE(opts.bits, 34);
  if (opts.dataBytes !== undefined) b.writeUInt32LE(opts.dataBytes >>> 0, 40);
  if (opts.riffBytes !== undefined) b.writeUInt32LE(opts.riffBytes >>> 0, 4);
  return b;
}

let seed = 42;
const random = (n: number) => Buffer.from(Array.from({ length: n }, () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed & 255)));

/** Audio payloads that must be refused (4xx): garbage, truncation, absurd headers, lies about length. */
const BAD_AUDIO: [string, Buffer][] = [
  ['empty', Buffer.alloc(0)],
  ['one byte', Buffer.from([0])],
  ['random bytes', random(4000)],
  ['text', Buffer.from('this is not audio, it is a sentence')],
  ['wav header only', wav(1).subarray(0, 44)],
  ['wav truncated header', wav(1).subarray(0, 20)],
  ['wav 1 sample', wav(1 / 16000)],
  ['wav rate 0', header({ rate: 0 })],
  ['wav rate 4e9', header({ rate: 4_000_000_000 })],
  ['wav 0 channels', header({ channels: 0 })],
  ['wav 65535 channels', header({ channels: 65535 })],
  ['wav 7 bits', header({ bits: 7 })],
  ['wav format 99', header({ format: 99 })],
  ['wav says 10 hours of data', header({ dataBytes: 16000 * 2 * 36000 })],
  ['wav riff size 0', header({ riffBytes: 0 })],
  ['id3 then junk', Buffer.concat([Buffer.from('ID3\x04\x00\x00\x00\x00\x00\x00'), random(2000)])],
  ['mpeg sync then junk', Buffer.concat([Buffer.from([0xff, 0xfb, 0x90, 0x00]), random(2000)])],
  ['OggS then junk', Buffer.concat([Buffer.from('OggS'), random(2000)])],
  ['fLaC then junk', Buffer.concat([Buffer.from('fLaC'), random(2000)])],
  ['webm magic then junk', Buffer.concat([Buffer.from([0x1a, 0x45, 0xdf, 0xa3]), random(2000)])],
  ['mp4 ftyp then junk', Buffer.concat([Buffer.from([0, 0, 0, 0x20]), Buffer.from('ftypM4A '), random(2000)])],
  ['wav with garbage data', Buffer.concat([wav(1).subarray(0, 44), random(100)])],
  ['wav over the upload limit', wav(12)],
];

const JSON_ROUTES = ['/v1/generate', '/v1/chat/completions', '/v1/completions', '/v1/text-to-speech', '/v1/audio/speech', '/v1/dialogue'] as const;
const VALID: Record<(typeof JSON_ROUTES)[number], Record<string, unknown>> = {
  '/v1/generate': { prompt: 'hi', max_tokens: 4 },
  '/v1/chat/completions': { model: 'gemma', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 },
  '/v1/completions': { model: 'gemma', prompt: 'hi', max_tokens: 4 },
  '/v1/text-to-speech': { text: 'hi', format: 'pcm' },
  '/v1/audio/speech': { model: 'tts-1', input: 'hi', voice: 'alloy', response_format: 'pcm' },
  '/v1/dialogue': { text: 'hi', response_modalities: ['text'], max_tokens: 4 },
};
const TEXT_FIELD: Record<(typeof JSON_ROUTES)[number], (v: unknown) => Record<string, unknown>> = {
  '/v1/generate': (v) => ({ prompt: v, max_tokens: 4 }),
  '/v1/chat/completions': (v) => ({ model: 'gemma', messages: [{ role: 'user', content: v }], max_tokens: 4 }),
  '/v1/completions': (v) => ({ model: 'gemma', prompt: v, max_tokens: 4 }),
  '/v1/text-to-speech': (v) => ({ text: v, format: 'pcm' }),
  '/v1/audio/speech': (v) => ({ model: 'tts-1', input: v, voice: 'alloy', response_format: 'pcm' }),
  '/v1/dialogue': (v) => ({ text: v, response_modalities: ['text'], max_tokens: 4 }),
};

describe('bad-input corpus', () => {
  let service: ServiceProcess;
  let base: string;
  const outcomes = new Map<string, number>();
  const failures: string[] = [];

  before(async () => {
    const port = await freePort();
    service = spawnService({ GEMMA_MODEL: tinyGemmaPath(), LOCAL_WHISPER_MODEL: tinyWhisperPath(), TTS_BACKEND: 'embedded', LOG_LEVEL: 'warn', STT_PARTIAL_INTERVAL_MS: '0', ...LIMITS }, port);
    base = service.url;
    await waitForHealth(base);
    assert.ok(await waitForReady(base, 30_000), 'every engine ready');
  });
  after(() => {
    service.child.kill('SIGKILL');
  });

  const post = (path: string, body: string | FormData | undefined, headers: Record<string, string> = {}) => async () => {
    const res = await fetch(`${base}${path}`, { method: 'POST', body, headers, signal: AbortSignal.timeout(TIMEOUT_MS) });
    return { status: res.status, body: await res.text() };
  };
  /** For bodies over the limit: the server answers 413 and stops reading, so the answer is read while still sending. */
  const rawPost = (path: string, body: string) => () =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, timeout: TIMEOUT_MS }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { name: 'TimeoutError' })));
      req.on('error', (error) => {
        const code = (error as NodeJS.ErrnoException).code;
        // the server may answer and close while the client still sends: the answer, if any, is still read
        if (code === 'EPIPE' || code === 'ECONNRESET') setTimeout(() => resolve({ status: 0, body: `connection ${code} before an answer` }), 2000);
        else reject(error);
      });
      req.end(body);
    });
  const json = (path: string, value: unknown) => post(path, typeof value === 'string' ? value : JSON.stringify(value), { 'content-type': 'application/json' });
  const form = (path: string, fields: Record<string, string>, file?: Buffer, name = 'file') => () => {
    const data = new FormData();
    for (const [k, v] of Object.entries(fields)) data.append(k, v);
    if (file) data.set(name, new Blob([file]), 'audio.bin');
    return post(path, data)();
  };

  function cases(): Case[] {
    const all: Case[] = [];
    const add = (name: string, expect: Expect, run: Case['run']) => all.push({ name, expect, run });
    // 1. bad audio into every audio input
    for (const [label, audio] of BAD_AUDIO) {
      add(`speech-to-text multipart: ${label}`, 'reject', form('/v1/speech-to-text', {}, audio));
      add(`speech-to-text base64: ${label}`, 'reject', json('/v1/speech-to-text', { audio_base64: audio.toString('base64') || 'AA==' }));
      add(`transcriptions: ${label}`, 'reject', form('/v1/audio/transcriptions', { model: 'whisper-1' }, audio));
      add(`translations: ${label}`, 'reject', form('/v1/audio/translations', { model: 'whisper-1' }, audio));
      add(`dialogue multipart: ${label}`, 'reject', form('/v1/dialogue', { response_modalities: 'text' }, audio));
      add(`dialogue base64: ${label}`, 'reject', json('/v1/dialogue', { audio_base64: audio.toString('base64') || 'AA==', response_modalities: ['text'] }));
      add(`tts reference: ${label}`, 'reject', json('/v1/text-to-speech', { text: 'hi', references: [{ audio: audio.toString('base64') || 'AA==', text: 'x' }] }));
      add(`voice clip: ${label}`, 'reject', form('/v1/audio/voices', { id: 'corpus', text: 'the words' }, audio));
    }
    // 2. hostile JSON into every JSON route
    const nested = `${'{"a":'.repeat(5000)}"x"${'}'.repeat(5000)}`;
    for (const route of JSON_ROUTES) {
      const valid = VALID[route];
      add(`${route}: invalid JSON`, 'reject', json(route, '{"prompt": "hi",'));
      add(`${route}: JSON null`, 'reject', json(route, 'null'));
      add(`${route}: JSON array`, 'reject', json(route, '[1,2,3]'));
      add(`${route}: deeply nested JSON`, 'reject', json(route, nested));
      add(`${route}: NaN literal`, 'reject', json(route, '{"max_tokens": NaN}'));
      add(`${route}: empty body`, 'reject', post(route, '', { 'content-type': 'application/json' }));
      add(`${route}: no content type`, 'reject', post(route, JSON.stringify(valid)));
      add(`${route}: text/plain`, 'reject', post(route, JSON.stringify(valid), { 'content-type': 'text/plain' }));
      add(`${route}: application/xml`, 'reject', post(route, '<a/>', { 'content-type': 'application/xml' }));
      add(`${route}: body over its limit`, 'reject', rawPost(route, JSON.stringify({ ...valid, pad: 'x'.repeat(3_000_000) })));
      add(`${route}: unknown field`, 'tolerate', json(route, { ...valid, surprise: { deep: [1, 2, 3] } }));
      add(`${route}: text is a number`, 'reject', json(route, TEXT_FIELD[route](42)));
      add(`${route}: text is an object`, 'reject', json(route, TEXT_FIELD[route]({ a: 1 })));
      // OpenAI accepts an empty message or prompt; our own routes refuse empty text
      add(`${route}: text is empty`, route === '/v1/chat/completions' || route === '/v1/completions' ? 'tolerate' : 'reject', json(route, TEXT_FIELD[route]('')));
      add(`${route}: text is huge`, 'reject', json(route, TEXT_FIELD[route]('word '.repeat(30_000))));
      add(`${route}: RTL and combining marks`, 'tolerate', json(route, TEXT_FIELD[route]('שלום ̸̡̢ e\u0301\u0301\u0301 مرحبا')));
      add(`${route}: emoji and NUL`, 'tolerate', json(route, TEXT_FIELD[route]('hi 👋🏽\u0000 there\u200b')));
      add(`${route}: lone surrogate`, 'tolerate', json(route, `{"text":"\\ud800","prompt":"\\ud800","input":"\\ud800","voice":"alloy","model":"m","messages":[{"role":"user","content":"\\ud800"}],"response_modalities":["text"],"max_tokens":4}`));
      add(`${route}: negative numbers`, 'reject', json(route, { ...valid, max_tokens: -5, speed: -1, sample_rate: -16000 }));
      add(`${route}: huge numbers`, 'reject', json(route, { ...valid, max_tokens: 1e308, temperature: 1e308, speed: 1e308, sample_rate: 1e308 }));
    }
    // 3. path-like and hostile ids
    for (const id of ['..%2F..%2Fetc%2Fpasswd', '%2e%2e', 'a'.repeat(500), '%00', 'id%20with%20spaces', '%E2%80%AE']) {
      add(`GET session ${id.slice(0, 20)}`, 'reject', async () => {
        const res = await fetch(`${base}/v1/sessions/${id}`, { signal: AbortSignal.timeout(TIMEOUT_MS) });
        return { status: res.status, body: await res.text() };
      });
      add(`DELETE session ${id.slice(0, 20)}`, 'reject', async () => {
        const res = await fetch(`${base}/v1/sessions/${id}`, { method: 'DELETE', signal: AbortSignal.timeout(TIMEOUT_MS) });
        return { status: res.status, body: await res.text() };
      });
      add(`dialogue session_id ${id.slice(0, 20)}`, 'reject', json('/v1/dialogue', { text: 'hi', session_id: decodeURIComponent(id), response_modalities: ['text'] }));
      // a voice id may hold spaces (fish-speech's rule); the others are refused before anything else
      if (!id.includes('%20')) {
        add(`DELETE voice ${id.slice(0, 20)}`, 'reject', async () => {
          const res = await fetch(`${base}/v1/audio/voices/${id}`, { method: 'DELETE', signal: AbortSignal.timeout(TIMEOUT_MS) });
          return { status: res.status, body: await res.text() };
        });
        add(`add voice id ${id.slice(0, 20)}`, 'reject', form('/v1/audio/voices', { id: decodeURIComponent(id), text: 'the words' }, wav(1)));
      }
    }
    // 4. multipart abuse
    add('multipart: no file', 'reject', form('/v1/speech-to-text', { language: 'en' }));
    add('multipart: file under another name', 'reject', form('/v1/audio/transcriptions', { model: 'whisper-1' }, wav(1), 'audio'));
    add('multipart: two files', 'reject', () => {
      const data = new FormData();
      data.append('file', new Blob([wav(1)]), 'a.wav');
      data.append('file', new Blob([wav(1)]), 'b.wav');
      return post('/v1/speech-to-text', data)();
    });
    add('multipart: 200 fields', 'reject', () => {
      const data = new FormData();
      for (let i = 0; i < 200; i++) data.append(`f${i}`, 'x');
      data.set('file', new Blob([wav(1)]), 'a.wav');
      return post('/v1/speech-to-text', data)();
    });
    add('multipart: huge field', 'reject', form('/v1/speech-to-text', { prompt: 'x'.repeat(200_000) }, wav(1)));
    add('multipart: bad language', 'reject', form('/v1/speech-to-text', { language: '../../x' }, wav(1)));
    add('multipart: broken boundary', 'reject', post('/v1/speech-to-text', '--xyz\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc', { 'content-type': 'multipart/form-data; boundary=abc' }));
    add('multipart: no boundary', 'reject', post('/v1/speech-to-text', 'abc', { 'content-type': 'multipart/form-data' }));
    return all;
  }

  it('every REST case ends in a 4xx envelope (or a tolerated 2xx): no 5xx, no hang, no crash', async () => {
    const all = cases();
    assert.ok(all.length >= 200, `corpus size ${all.length}`);
    for (const c of all) {
      if (process.env.CORPUS_TRACE) process.stderr.write(`case: ${c.name}\n`);
      let outcome: string;
      try {
        const { status, body } = await c.run();
        if (status >= 500) outcome = `5xx`;
        else if (status >= 400) {
          const envelope = JSON.parse(body) as { error?: { message?: string; type?: string }; request_id?: string };
          outcome = envelope.error?.message && envelope.error.type && envelope.request_id ? '4xx envelope' : '4xx without envelope';
        } else outcome = c.expect === 'tolerate' ? '2xx tolerated' : '2xx accepted bad input';
        if (outcome !== '4xx envelope' && outcome !== '2xx tolerated') failures.push(`${c.name}: ${status} ${body.slice(0, 160)}`);
      } catch (error) {
        outcome = (error as Error).name === 'TimeoutError' ? 'hang' : 'connection error';
        failures.push(`${c.name}: ${outcome} (${(error as Error).message})`);
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      assert.equal(service.child.exitCode, null, `the service died on: ${c.name}`);
    }
    console.log(JSON.stringify({ rest_cases: all.length, outcomes: Object.fromEntries(outcomes) }));
    assert.deepEqual(failures, []);
  });

  it('every WebSocket refuses bad frames cleanly and survives abrupt disconnects', async () => {
    const wsOutcomes = new Map<string, number>();
    const wsFailures: string[] = [];
    const ws = base.replace('http', 'ws');
    type WsCase = { name: string; path: string; act: (socket: WebSocket) => void; want: 'error' | 'close-1009' | 'survive' };
    const list: WsCase[] = [];
    for (const path of ['/ws/stt', '/ws/tts', '/ws/dialogue']) {
      list.push({ name: `${path}: invalid JSON`, path, act: (s) => s.send('{nope'), want: 'error' });
      list.push({ name: `${path}: unknown message type`, path, act: (s) => s.send('{"type":"explode"}'), want: 'error' });
      list.push({ name: `${path}: JSON with wrong types`, path, act: (s) => s.send('{"type":"config","sample_rate":"fast","language":7,"voice":[]}'), want: 'error' });
      list.push({ name: `${path}: oversized frame`, path, act: (s) => s.send(Buffer.alloc(70_000)), want: 'close-1009' });
      list.push({ name: `${path}: abrupt disconnect mid-stream`, path, act: (s) => {
        s.send(path === '/ws/tts' ? '{"type":"text","text":"A long sentence being spoken when the client vanishes. "}' : Buffer.alloc(6400, 7));
        setTimeout(() => s.terminate(), 20);
      }, want: 'survive' });
    }
    list.push({ name: '/ws/tts: binary where text is expected', path: '/ws/tts', act: (s) => s.send(Buffer.from([1, 2, 3])), want: 'error' });
    list.push({ name: '/ws/stt: odd-length and random binary', path: '/ws/stt', act: (s) => s.send(random(3333)), want: 'survive' });
    list.push({ name: '/ws/dialogue: text turn too long', path: '/ws/dialogue', act: (s) => s.send(JSON.stringify({ type: 'text', text: 'x'.repeat(200_000) })), want: 'close-1009' });
    list.push({ name: '/ws/stt: bad query', path: '/ws/stt?sample_rate=-4', act: () => undefined, want: 'error' });
    list.push({ name: '/ws/tts: bad query', path: '/ws/tts?format=ogg', act: () => undefined, want: 'error' });
    list.push({ name: '/ws/dialogue: bad query', path: '/ws/dialogue?session_id=..%2F..', act: () => undefined, want: 'error' });
    list.push({ name: '/ws/tts: frames after close', path: '/ws/tts', act: (s) => {
      s.close();
      try {
        s.send('{"type":"text","text":"late"}');
      } catch {
        // the client library refuses too; the server must not mind either way
      }
    }, want: 'survive' });
    for (const c of list) {
      const outcome = await new Promise<string>((resolve) => {
        const socket = new WebSocket(`${ws}${c.path}`);
        const timer = setTimeout(() => resolve('hang'), TIMEOUT_MS);
        let sawError = false;
        socket.on('message', (data, isBinary) => {
          if (!isBinary && /"type":"error"/.test(data.toString())) {
            sawError = true;
            if (c.want === 'error') {
              clearTimeout(timer);
              socket.terminate();
              resolve('error event');
            }
          }
        });
        socket.on('close', (code) => {
          clearTimeout(timer);
          if (c.want === 'close-1009') resolve(code === 1009 ? 'closed 1009' : `closed ${code}`);
          else if (c.want === 'survive') resolve('survived');
          else resolve(sawError ? 'error event' : `closed ${code} without error`);
        });
        socket.on('error', () => undefined);
        socket.once('open', () => {
          c.act(socket);
          if (c.want === 'survive') setTimeout(() => socket.terminate(), 300);
        });
      });
      const ok = { error: 'error event', 'close-1009': 'closed 1009', survive: 'survived' }[c.want] === outcome;
      if (!ok) wsFailures.push(`${c.name}: ${outcome}`);
      wsOutcomes.set(outcome, (wsOutcomes.get(outcome) ?? 0) + 1);
      assert.equal(service.child.exitCode, null, `the service died on: ${c.name}`);
    }
    console.log(JSON.stringify({ ws_cases: list.length, outcomes: Object.fromEntries(wsOutcomes) }));
    assert.deepEqual(wsFailures, []);
  });

  it('afterwards the service is healthy and answers a normal request on every surface', async () => {
    assert.equal((await fetch(`${base}/health`)).status, 200);
    const generated = (await (await fetch(`${base}/v1/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"prompt":"hi"}' })).json()) as { generated_text: string };
    assert.equal(generated.generated_text, 'Hello from the tiny Gemma model.');
    const data = new FormData();
    data.set('file', new Blob([wav(2)]), 'ok.wav');
    assert.equal((await fetch(`${base}/v1/speech-to-text`, { method: 'POST', body: data })).status, 200);
    assert.equal((await fetch(`${base}/v1/text-to-speech`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"text":"still here"}' })).status, 200);
    const errors = service.output().split('\n').filter((line) => /"level":"(error|fatal)"/.test(line));
    assert.deepEqual(errors, [], 'no error or fatal log lines: every case was refused as a client error');
  });
});
