/** The embedded STT on the real whisper.cpp (smart-whisper), with the generated tiny model. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { TINY_WHISPER_TEXT } from '../../scripts/models/tiny-whisper.ts';
import { loadConfig } from '../../src/config.ts';
import { EngineRegistry } from '../../src/engines/registry.ts';
import { WhisperCppEngine, type WhisperCppOptions } from '../../src/engines/stt/whisper-cpp.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { TranscriptionService } from '../../src/services/transcription.ts';
import type { SttEvent, Transcript, TranscriptionRequest } from '../../src/engines/stt/types.ts';
import { startFakeHub } from '../fakes/hf-hub.ts';
import { halfNoSpeechWhisperPath, tinyGemmaPath, tinyWhisperPath } from '../helpers/models.ts';

const logger = pino({ level: 'silent' });
const options = (model: string, over: Partial<WhisperCppOptions> = {}): WhisperCppOptions => ({ model, threads: 1, parallel: 1, hf: { download: false, timeoutMs: 1000, home: os.tmpdir() }, ...over });

/** Noise-like audio (the tiny model transcribes the same text whatever it hears). */
function audio(seconds: number): Float32Array {
  return Float32Array.from({ length: Math.round(seconds * 16000) }, (_, i) => Math.sin(i / 7) * 0.1);
}

async function run(engine: WhisperCppEngine, request: Partial<TranscriptionRequest> & { audio: Float32Array }, signal = new AbortController().signal) {
  const events: SttEvent[] = [];
  for await (const e of engine.transcribe({ task: 'transcribe', wordTimestamps: false, ...request }, signal)) events.push(e);
  const done = events.at(-1);
  assert.equal(done?.type, 'done');
  return { events, transcript: (done as { transcript: Transcript }).transcript };
}

describe('whisper.cpp engine (real library, tiny model)', () => {
  let engine: WhisperCppEngine;
  before(async () => {
    engine = new WhisperCppEngine(options(tinyWhisperPath()), logger);
    await engine.load();
  });
  after(() => engine.close());

  it('loads and transcribes the known text as one segment', async () => {
    assert.deepEqual(engine.state(), { status: 'ready' });
    const { transcript, events } = await run(engine, { audio: audio(2) });
    assert.equal(transcript.text, TINY_WHISPER_TEXT);
    assert.equal(transcript.language, 'en');
    assert.equal(transcript.duration, 2);
    assert.equal(transcript.segments.length, 1);
    const [segment] = transcript.segments;
    assert.deepEqual({ start: segment!.start, end: segment!.end, text: segment!.text.trim() }, { start: 0, end: 1, text: TINY_WHISPER_TEXT });
    assert.ok(segment!.avgLogprob <= 0 && segment!.avgLogprob > -0.01, `avg_logprob ${segment!.avgLogprob}`);
    assert.equal(events.filter((e) => e.type === 'segment').length, 1);
  });

  it('skips the rest of a window after a single-timestamp ending (one encoder pass per padded utterance)', async () => {
    // the model's output ends "<|0.00|> text <|1.00|> EOT": whisper.cpp 2024 sought to 1.00 s and
    // transcribed the window's silent rest again, once per second (29 more segments); current
    // whisper.cpp and OpenAI's reference move on to the next window (scripts/whisper-patches.mjs)
    const { transcript } = await run(engine, { audio: audio(60) });
    assert.deepEqual(transcript.segments.map((s) => [s.start, s.end]), [[0, 1], [30, 31]]);
  });

  it('reports the model\'s no-speech probability on every segment', async () => {
    // this variant gives <|nospeech|> and <|0.00|> the same logit at SOT: P(no speech) = 0.5
    const half = new WhisperCppEngine(options(halfNoSpeechWhisperPath()), logger);
    await half.load();
    try {
      const { transcript } = await run(half, { audio: audio(40) });
      assert.equal(transcript.segments.length, 2);
      for (const s of transcript.segments) {
        assert.equal(s.text.trim(), TINY_WHISPER_TEXT);
        assert.ok(typeof s.noSpeechProb === 'number' && Math.abs(s.noSpeechProb - 0.5) < 0.01, `no_speech_prob ${s.noSpeechProb}`);
      }
    } finally {
      await half.close();
    }
    // the plain model puts no mass on it
    const { transcript } = await run(engine, { audio: audio(2) });
    assert.ok(transcript.segments[0]!.noSpeechProb! < 1e-6);
  });

  it('fills word timestamps when asked', async () => {
    const { transcript } = await run(engine, { audio: audio(2), wordTimestamps: true });
    const words = transcript.words ?? [];
    assert.deepEqual(words.map((w) => w.word), ['Hello', 'from', 'the', 'tiny', 'whisper', 'model.']);
    for (let i = 0; i < words.length; i++) {
      assert.ok(words[i]!.end >= words[i]!.start);
      if (i > 0) assert.ok(words[i]!.start >= words[i - 1]!.start);
    }
    assert.ok(words.at(-1)!.end <= 1.0 + 1e-9);
  });

  it('pads audio of a second or less so that whisper.cpp transcribes it (not an empty text), without crashing', async () => {
    // whisper.cpp skips input under 100 mel frames: padded to exactly 1 s these gave "" (a one-word turn lost)
    for (const seconds of [0.3, 1.0]) {
      const { transcript } = await run(engine, { audio: audio(seconds) });
      assert.equal(transcript.duration, seconds);
      assert.equal(transcript.text, TINY_WHISPER_TEXT, `${seconds} s`);
      assert.ok(transcript.segments.every((s) => s.end <= seconds));
    }
    const empty = await run(engine, { audio: new Float32Array(0) });
    assert.equal(empty.transcript.duration, 0);
  });

  it('processes long audio in 30 s windows with offset timestamps, and stops between windows on abort', async () => {
    const { transcript } = await run(engine, { audio: audio(40) });
    const spans = transcript.segments.map((s) => [s.start, s.end] as const);
    // whisper.cpp seeks past each segment inside a window; the second window starts at 30 s
    assert.ok(spans.some(([start]) => start === 30), JSON.stringify(spans));
    assert.ok(spans.every(([start, end]) => end > start && end <= 40 && !(start < 30 && end > 30)), 'no segment crosses a window edge');
    assert.ok(spans.every(([start], i) => i === 0 || start >= spans[i - 1]![0]), 'in order');
    assert.deepEqual(transcript.segments.map((s) => s.id), spans.map((_, i) => i));
    const controller = new AbortController();
    const seen: SttEvent[] = [];
    await assert.rejects(
      (async () => {
        for await (const e of engine.transcribe({ audio: audio(95), task: 'transcribe', wordTimestamps: false }, controller.signal)) {
          seen.push(e);
          controller.abort(new DOMException('client gone', 'AbortError'));
        }
      })(),
      (error: Error) => error.name === 'AbortError',
    );
    assert.equal(seen.length, 1, 'stopped after the first window');
  });

  it('schedules fairly through the service: a short request does not wait for a long one (STT_PARALLEL=1)', async () => {
    const service = new TranscriptionService(loadConfig({ STT_PARALLEL: '1', STT_QUEUE_SIZE: '4' }), new EngineRegistry({ llm: [], stt: [engine], tts: [] }), new Metrics());
    const finished: string[] = [];
    const request = (seconds: number) => ({ audio: audio(seconds), task: 'transcribe' as const, wordTimestamps: false });
    const long = service.transcribe(request(65), new AbortController().signal).then(() => finished.push('long'));
    await new Promise((r) => setTimeout(r, 200)); // the long one holds the slot for its first window
    const short = await service.transcribe(request(2), new AbortController().signal);
    finished.push('short');
    await long;
    assert.deepEqual(finished, ['short', 'long']);
    assert.equal(short.transcript.text, TINY_WHISPER_TEXT);
  });

  it('refuses translation with an English-only model', async () => {
    await assert.rejects(run(engine, { audio: audio(1), task: 'translate' }), (e: { statusCode: number }) => e.statusCode === 400);
  });

  it('resolves tier names through the Hugging Face cache', async () => {
    const hub = await startFakeHub({ 'ggerganov/whisper.cpp/ggml-tiny.en.bin': fs.readFileSync(tinyWhisperPath()) });
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'hf-'));
    try {
      const tier = new WhisperCppEngine(options('tiny.en', { hf: { home, endpoint: hub.url, download: true, timeoutMs: 10_000 } }), logger);
      await tier.load();
      assert.deepEqual(tier.state(), { status: 'ready' });
      assert.equal((await run(tier, { audio: audio(2) })).transcript.text, TINY_WHISPER_TEXT);
      await tier.close();
    } finally {
      await hub.close();
    }
  });

  it('never hands whisper.cpp a file it would crash on: missing, wrong format, truncated', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'whisper-'));
    const truncated = path.join(dir, 'truncated.bin');
    fs.writeFileSync(truncated, fs.readFileSync(tinyWhisperPath()).subarray(0, 3_000_000));
    const garbage = path.join(dir, 'garbage.bin');
    fs.writeFileSync(garbage, Buffer.alloc(2_000_000, 0x42));
    const cases: [string, RegExp][] = [
      [path.join(dir, 'absent.bin'), /not found.*npm run pull/s],
      [tinyGemmaPath(), /bad magic/],
      [garbage, /bad magic/],
      [truncated, /truncated/],
      ['base.fr', /not a Whisper tier or a file path/],
    ];
    for (const [model, pattern] of cases) {
      const e = new WhisperCppEngine(options(model), logger);
      await e.load();
      assert.equal(e.state().status, 'missing_model', model);
      assert.match(e.state().detail ?? '', pattern);
      await assert.rejects(run(e, { audio: audio(1) }), (err: { statusCode: number }) => err.statusCode === 503);
    }
  });

  it('STT_DEVICE=cuda runs on @fugood/whisper.node (here its CPU build, as no GPU is lent): same transcript, abort between windows', async () => {
    const gpuPath = new WhisperCppEngine(options(tinyWhisperPath(), { device: 'cuda', cudaVariant: 'default' }), logger);
    await gpuPath.load();
    try {
      assert.deepEqual(gpuPath.state(), { status: 'ready' });
      const { transcript } = await run(gpuPath, { audio: audio(40) });
      assert.deepEqual(transcript.segments.map((s) => [s.start, s.end, s.text.trim()]), [[0, 1, TINY_WHISPER_TEXT], [30, 31, TINY_WHISPER_TEXT]]);
      assert.ok(transcript.segments.every((s) => s.noSpeechProb === 0), 'this binding reports no probability: 0');
      const controller = new AbortController();
      setTimeout(() => controller.abort(new DOMException('client gone', 'AbortError')), 5);
      await assert.rejects(run(gpuPath, { audio: audio(65) }, controller.signal), (e: Error) => e.name === 'AbortError');
    } finally {
      await gpuPath.close();
    }
  });

  it('STT_DEVICE: cuda:N other than 0 is refused with the remedy; bad values fail the config', async () => {
    const e = new WhisperCppEngine(options(tinyWhisperPath(), { device: 'cuda:1' }), logger);
    await e.load();
    assert.equal(e.state().status, 'error');
    assert.match(e.state().detail ?? '', /CUDA_VISIBLE_DEVICES=1/);
    assert.equal(loadConfig({ STT_DEVICE: 'CUDA:0' }).STT_DEVICE, 'cuda:0');
    assert.throws(() => loadConfig({ STT_DEVICE: 'gpu' }), /STT_DEVICE/);
  });
});
