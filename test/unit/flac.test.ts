/**
 * FLAC from a pipe has total samples = 0 in STREAMINFO (browsers show 0:00, cannot seek);
 * finalizeFlac counts the frames' samples and writes them in. Checked against ffmpeg's own
 * seekable output, and through the real app's non-streamed /v1/text-to-speech.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { countFlacSamples, finalizeFlac } from '../../src/audio/flac.ts';
import { startApp, type TestApp } from '../helpers/app.ts';
import { encodeWith } from '../helpers/ffmpeg.ts';
import { wav } from '../helpers/audio.ts';

function streamInfoTotal(flac: Buffer): number {
  return (flac[21]! & 0x0f) * 2 ** 32 + flac.readUInt32BE(22);
}

/** PCM → FLAC through a pipe, as the service encodes it. */
function pipedFlac(pcm: Buffer, rate: number): Buffer {
  const result = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 's16le', '-ar', String(rate), '-ac', '1', '-i', 'pipe:0', '-c:a', 'flac', '-f', 'flac', 'pipe:1'], { input: pcm, maxBuffer: 64 << 20 });
  assert.equal(result.status, 0, result.stderr?.toString());
  return result.stdout;
}

/** Noise (so frames hold arbitrary bytes, sync-like patterns included) of `samples` samples. */
function noise(samples: number, seed: number): Buffer {
  const out = Buffer.alloc(samples * 2);
  let x = seed;
  for (let i = 0; i < samples; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    out.writeInt16LE((x % 65536) - 32768, i * 2);
  }
  return out;
}

describe('finalizeFlac', () => {
  it('writes the exact sample count of a piped FLAC, as ffmpeg does when it can seek', () => {
    for (const [samples, rate] of [
      [20_800, 16_000],
      [1, 24_000],
      [72_000 + 77, 24_000],
      [4_608 * 3, 44_100],
    ] as const) {
      const pcm = noise(samples, samples);
      const piped = pipedFlac(pcm, rate);
      assert.equal(streamInfoTotal(piped), 0, 'the pipe leaves the count out (the bug)');
      assert.equal(countFlacSamples(piped), samples);
      const fixed = finalizeFlac(piped);
      assert.equal(streamInfoTotal(fixed), samples);
      assert.equal(fixed.length, piped.length);
      const seekable = encodeWith(wavFile(pcm, rate), 'flac');
      assert.equal(streamInfoTotal(seekable), samples, 'ffmpeg writing to a file agrees');
    }
  });

  it('leaves anything that is not FLAC unchanged', () => {
    const notFlac = wav(0.1);
    assert.equal(finalizeFlac(notFlac), notFlac);
    assert.equal(countFlacSamples(Buffer.from('fLaC')), undefined);
  });
});

function wavFile(pcm: Buffer, rate: number): Buffer {
  const h = Buffer.alloc(44);
  h.write('RIFF', 0);
  h.writeUInt32LE(36 + pcm.length, 4);
  h.write('WAVEfmt ', 8);
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(1, 22);
  h.writeUInt32LE(rate, 24);
  h.writeUInt32LE(rate * 2, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36);
  h.writeUInt32LE(pcm.length, 40);
  return Buffer.concat([h, pcm]);
}

describe('non-streamed FLAC from /v1/text-to-speech', () => {
  let t: TestApp;
  before(async () => {
    t = await startApp({ env: { TTS_BACKEND: 'embedded' } });
  });
  after(async () => t?.close());

  it('carries its length in STREAMINFO', async () => {
    const res = await fetch(`${t.url}/v1/text-to-speech`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: 'A reply with a length.', format: 'flac' }) });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { audio_base64: string; sample_rate: number; duration_seconds: number };
    const flac = Buffer.from(body.audio_base64, 'base64');
    const total = streamInfoTotal(flac);
    assert.ok(total > 0, 'total samples written');
    assert.equal(total, countFlacSamples(flac));
    assert.ok(Math.abs(total / body.sample_rate - body.duration_seconds) < 0.05, `${total / body.sample_rate} s vs ${body.duration_seconds} s`);
  });
});
