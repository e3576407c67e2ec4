/**
 * Audio built to crash, freeze or bloat the service, against a real process on the tiny models,
 * while a prober asks /health every 50 ms: non-finite float samples (whisper.cpp aborts the process
 * on NaN), an hour of FLAC silence in a few hundred kilobytes (with and without a declared length),
 * a WAV declaring 65,535 channels and a 4 GB data chunk, absurd sample rates, the same through the
 * dialogue and voice-reference routes, and more decodes than the pool takes. Each must be a fast 4xx
 * (or 503 `decoder_busy`), the process must live, /health must keep answering, and the process's
 * peak RSS is printed and bounded.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { wav } from '../helpers/audio.ts';
import type { ServiceProcess } from '../helpers/process.ts';
import { type HealthProber, peakRssMb } from '../helpers/health-prober.ts';
import { startProbedTinyService, type ProbedService } from '../helpers/tiny-service.ts';

const LIMIT_SECONDS = 300;

/** A float32 WAV whose samples are all `value`. */
function floatWav(seconds: number, value: number): Buffer {
  const b = wav(seconds, { format: 'float32' });
  for (let at = 44; at + 4 <= b.length; at += 4) b.writeFloatLE(value, at);
  return b;
}

/** `seconds` of digital silence as FLAC (ffmpeg): megabytes of samples in a few hundred kilobytes. */
function silentFlac(seconds: number, declareLength = true): Buffer {
  // to a file, not a pipe: ffmpeg writes STREAMINFO's total sample count by seeking back at the end
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flac-'));
  const out = path.join(dir, 'silence.flac');
  const result = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'anullsrc=r=44100:cl=stereo', '-t', String(seconds), '-c:a', 'flac', '-y', out]);
  if (result.status !== 0) throw new Error(`ffmpeg is needed for this test (apt-get install ffmpeg): ${result.stderr?.toString()}`);
  const flac = fs.readFileSync(out);
  fs.rmSync(dir, { recursive: true, force: true });
  if (!declareLength) {
    // STREAMINFO's 36-bit total sample count = 0: "unknown", as streaming encoders write it
    flac[21] = flac[21]! & 0xf0;
    flac.writeUInt32BE(0, 22);
  }
  return flac;
}

function wavHeaderLie(): Buffer {
  const b = wav(1); // 32 KB of real samples
  b.writeUInt16LE(65535, 22); // channels
  b.writeUInt32LE(0xfffffff0, 40); // data chunk: ~4 GB
  b.writeUInt32LE(0xfffffff8, 4);
  return b;
}

function rateWav(rate: number): Buffer {
  const b = wav(1);
  b.writeUInt32LE(rate >>> 0, 24);
  b.writeUInt32LE((rate * 2) >>> 0, 28);
  return b;
}

describe('hostile audio on a real service process', () => {
  let service: ServiceProcess;
  let prober: HealthProber;
  let running: ProbedService | undefined;
  const flacs: Record<string, Buffer> = {};

  before(async () => {
    flacs.declared = silentFlac(LIMIT_SECONDS + 100);
    flacs.undeclared = silentFlac(LIMIT_SECONDS + 100, false);
    running = await startProbedTinyService({ MAX_AUDIO_SECONDS: String(LIMIT_SECONDS), DECODE_THREADS: '1', DECODE_QUEUE_SIZE: '1', LOG_LEVEL: 'info' });
    ({ service, prober } = running);
  });

  after(async () => {
    await running?.stop();
  });

  async function transcribe(file: Buffer, name = 'clip.wav'): Promise<{ status: number; body: Record<string, unknown>; ms: number }> {
    const form = new FormData();
    form.append('file', new Blob([file]), name);
    form.append('model', 'whisper-1');
    const started = performance.now();
    const res = await fetch(`${service.url}/v1/audio/transcriptions`, { method: 'POST', body: form });
    return { status: res.status, body: (await res.json()) as Record<string, unknown>, ms: performance.now() - started };
  }

  const code = (body: Record<string, unknown>) => (body.error as { code?: string } | undefined)?.code;

  it('non-finite float samples are a 400 on every route that reaches Whisper, and the process lives', async () => {
    for (const [name, value] of [
      ['NaN', Number.NaN],
      ['+Inf', Number.POSITIVE_INFINITY],
      ['-Inf', Number.NEGATIVE_INFINITY],
    ] as const) {
      const clip = floatWav(1, value);
      const stt = await transcribe(clip);
      assert.equal(stt.status, 400, `${name}: ${JSON.stringify(stt.body)}`);
      assert.equal(code(stt.body), 'invalid_audio');
      const form = new FormData();
      form.append('file', new Blob([clip]), 'turn.wav');
      form.append('response_modalities', 'text');
      const multipart = await fetch(`${service.url}/v1/dialogue`, { method: 'POST', body: form });
      assert.equal(multipart.status, 400, `${name} dialogue multipart`);
      assert.equal(code((await multipart.json()) as Record<string, unknown>), 'invalid_audio');
      const json = await fetch(`${service.url}/v1/dialogue`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ audio_base64: clip.toString('base64'), response_modalities: ['text'], max_tokens: 4 }),
      });
      assert.equal(json.status, 400, `${name} dialogue base64`);
      assert.equal(code((await json.json()) as Record<string, unknown>), 'invalid_audio');
    }
    assert.equal(service.child.exitCode, null, 'the service process is still running');
    // finite samples far outside [-1, 1] are clipped, not passed on (their spectrum would overflow to Infinity)
    const loud = floatWav(1, 1e30);
    assert.equal((await transcribe(loud)).status, 200);
    assert.equal((await transcribe(wav(1))).status, 200, 'a normal transcription still works');
  });

  it('an hour of FLAC silence that says so is refused from its header at once', async () => {
    const res = await transcribe(flacs.declared!, 'silence.flac');
    assert.equal(res.status, 413);
    assert.equal(code(res.body), 'audio_too_long');
    assert.match(String((res.body.error as { message: string }).message), /declared as 400\.0 s.*MAX_AUDIO_SECONDS/);
  });

  it('a long MP3 that says so in its Xing/Info header is refused before decoding', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mp3-'));
    const out = path.join(dir, 'long.mp3');
    const made = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'anullsrc=r=8000:cl=mono', '-t', String(LIMIT_SECONDS + 100), '-b:a', '8k', '-y', out]);
    assert.equal(made.status, 0, made.stderr?.toString());
    const res = await transcribe(fs.readFileSync(out), 'long.mp3');
    fs.rmSync(dir, { recursive: true, force: true });
    assert.equal(res.status, 413);
    assert.match(String((res.body.error as { message: string }).message), /declared as 400\.\d s.*MAX_AUDIO_SECONDS/);
  });

  it('FLAC silence that hides its length is stopped once decoding passes the limit, off the event loop', async () => {
    const res = await transcribe(flacs.undeclared!, 'silence.flac');
    assert.equal(res.status, 413, JSON.stringify(res.body));
    assert.equal(code(res.body), 'audio_too_long');
    assert.match(String((res.body.error as { message: string }).message), /30[0-9]\.\d s long; the limit is 300 s/);
  });

  it('a WAV declaring 65,535 channels and a 4 GB data chunk, and absurd rates, are 400s without decoding', async () => {
    const lie = await transcribe(wavHeaderLie());
    assert.equal(lie.status, 400);
    assert.equal(code(lie.body), 'invalid_audio');
    assert.match(String((lie.body.error as { message: string }).message), /65535 channels/);
    for (const rate of [400_000, 2 ** 31, 1]) {
      const res = await transcribe(rateWav(rate));
      assert.equal(res.status, 400, `rate ${rate}: ${JSON.stringify(res.body)}`);
      assert.equal(code(res.body), 'invalid_audio');
    }
  });

  it('a voice-reference clip is bounded by MAX_REFERENCE_AUDIO_SECONDS the same way', async () => {
    for (const clip of [flacs.declared!, flacs.undeclared!]) {
      const res = await fetch(`${service.url}/v1/text-to-speech`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ text: 'Hello.', references: [{ audio: clip.toString('base64'), text: 'silence' }] }),
      });
      const body = (await res.json()) as Record<string, unknown>;
      assert.equal(res.status, 413, JSON.stringify(body));
      assert.match(String((body.error as { message: string }).message), /MAX_REFERENCE_AUDIO_SECONDS/);
    }
  });

  it('more long decodes than the pool and its queue take: the extra one gets 503 decoder_busy', async () => {
    const results = await Promise.all([1, 2, 3, 4].map(() => transcribe(flacs.undeclared!, 'silence.flac')));
    const statuses = results.map((r) => r.status).sort();
    assert.ok(statuses.includes(503), `one of four concurrent decodes is refused with DECODE_THREADS=1, DECODE_QUEUE_SIZE=1: ${statuses.join(',')}`);
    for (const r of results) {
      if (r.status === 503) assert.equal(code(r.body), 'decoder_busy');
      else assert.equal(r.status, 413);
    }
  });

  it('m4a sample tables whose entry count does not fit their box are 400 invalid_audio from the header (the decoder would allocate them: V8 aborted the process)', async () => {
    const m4a = (faststart: boolean): Buffer => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'm4a-'));
      const out = path.join(dir, 'tone.m4a');
      const args = ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'sine=frequency=440:duration=3', '-ar', '16000', '-ac', '1', '-c:a', 'aac', ...(faststart ? ['-movflags', '+faststart'] : []), '-y', out];
      const made = spawnSync('ffmpeg', args);
      assert.equal(made.status, 0, made.stderr?.toString());
      const file = fs.readFileSync(out);
      fs.rmSync(dir, { recursive: true, force: true });
      return file;
    };
    /** `file` with the 32-bit field `at` bytes into the first `box` box set to `value`. */
    const patch = (file: Buffer, box: string, at: number, value: number) => {
      const copy = Buffer.from(file);
      copy.writeUInt32BE(value, copy.indexOf(box) - 4 + at);
      return copy;
    };
    for (const [layout, file] of [['fast-start', m4a(true)], ['moov at end', m4a(false)]] as const) {
      assert.equal((await transcribe(file, 'tone.m4a')).status, 200, `${layout}: the honest file transcribes`);
      const hostile: Record<string, Buffer> = {
        'stsz count 2^31-1': patch(file, 'stsz', 16, 0x7fffffff),
        'stsz constant size × huge count': patch(patch(file, 'stsz', 12, 4), 'stsz', 16, 0x7fffffff),
        'stco count 2^32-1': patch(file, 'stco', 12, 0xffffffff),
        'stsc count 2^32-1': patch(file, 'stsc', 12, 0xffffffff),
        'stts count 2^32-1': patch(file, 'stts', 12, 0xffffffff),
      };
      for (const [name, crafted] of Object.entries(hostile)) {
        const res = await transcribe(crafted, 'tone.m4a');
        assert.equal(res.status, 400, `${layout}, ${name}: ${JSON.stringify(res.body)}`);
        assert.equal(code(res.body), 'invalid_audio');
        assert.match(String((res.body.error as { message: string }).message), /sample table is corrupt/);
        assert.equal(service.child.exitCode, null, `${layout}, ${name}: the service process is still running`);
      }
    }
    assert.equal((await transcribe(wav(1))).status, 200, 'a normal transcription still works');
  });

  it('/health answered throughout, and the peak RSS stayed bounded', async () => {
    const stats = await prober.stop();
    const rss = peakRssMb(service.child.pid!);
    console.log(`# hostile audio: /health probed ${stats.count}× every 50 ms: p50 ${stats.p50.toFixed(1)} ms, p99 ${stats.p99.toFixed(1)} ms, max ${stats.max.toFixed(1)} ms, failures ${stats.failures}; service peak RSS ${rss} MB`);
    assert.equal(stats.failures, 0);
    assert.ok(stats.count > 20, 'the prober ran');
    // generous: before the decode pool, /health went unanswered for 20 s and more during these decodes
    assert.ok(stats.max < 2000, `/health took ${stats.max.toFixed(0)} ms at worst`);
    assert.ok(rss < 1500, `peak RSS ${rss} MB`);
    assert.ok(fs.existsSync(`/proc/${service.child.pid}`), 'the service is alive');
  });
});
