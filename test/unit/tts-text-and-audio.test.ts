/** Our own logic in the TTS path: sentence splitting, the streamed-WAV reader, the atempo chain, the WAV header. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { atempoFilter } from '../../src/audio/ffmpeg.ts';
import { createStreamResampler } from '../../src/audio/resample.ts';
import { finalizeWav, WavFormatError, WavStreamReader, wavHeader } from '../../src/audio/wav.ts';
import { SentenceSplitter, splitSentences } from '../../src/text/sentences.ts';

describe('SentenceSplitter', () => {
  it('emits a sentence once text follows its end, keeps decimals whole, flushes the rest', () => {
    const s = new SentenceSplitter();
    const out: string[][] = ['Hello', ' world.', ' How are', ' you? I am', ' fine. Pi is 3', '.14 today.'].map((t) => s.push(t));
    assert.deepEqual(out, [[], [], ['Hello world.'], ['How are you?'], ['I am fine.'], []]);
    assert.deepEqual(s.flush(), ['Pi is 3.14 today.']);
    assert.deepEqual(s.flush(), []);
  });

  it('cuts run-on text at a clause or word break before maxChars', () => {
    const parts = splitSentences(`${'word '.repeat(30)}and, then ${'more '.repeat(30)}`, 60);
    assert.ok(parts.length > 3);
    for (const p of parts) assert.ok(p.length <= 60, p);
    assert.equal(parts.join(' ').replace(/\s+/g, ' '), `${'word '.repeat(30)}and, then ${'more '.repeat(30)}`.trim().replace(/\s+/g, ' '));
  });

  it('handles other scripts and drops empty pieces', () => {
    assert.deepEqual(splitSentences('これはペンです。あれは本です。'), ['これはペンです。', 'あれは本です。']);
    assert.deepEqual(splitSentences('   '), []);
  });
});

describe('WavStreamReader', () => {
  const pcm = Int16Array.from([1, -2, 3, -4, 5, -6]);
  const file = Buffer.concat([wavHeader(16000), Buffer.from(pcm.buffer)]);

  it('reads a WAV that arrives one byte at a time (odd splits included)', () => {
    const reader = new WavStreamReader();
    const got: number[] = [];
    for (const byte of file) got.push(...reader.push(Uint8Array.of(byte)));
    reader.end();
    assert.deepEqual(got, [...pcm]);
    assert.deepEqual(reader.format, { sampleRate: 16000, channels: 1 });
  });

  it('skips extra chunks (LIST) before data and mixes stereo down', () => {
    const stereo = wavHeader(8000);
    stereo.writeUInt16LE(2, 22);
    const list = Buffer.concat([Buffer.from('LIST'), Buffer.from([4, 0, 0, 0]), Buffer.from('abcd')]);
    const withList = Buffer.concat([stereo.subarray(0, 36), list, stereo.subarray(36), Buffer.from(Int16Array.from([10, 20, -10, -30]).buffer)]);
    const reader = new WavStreamReader();
    assert.deepEqual([...reader.push(withList)], [15, -20]);
  });

  it('rejects what is not 16-bit PCM WAV', () => {
    assert.throws(() => new WavStreamReader().push(Buffer.from('this is not a wav file at all')), WavFormatError);
    const float = wavHeader(16000);
    float.writeUInt16LE(3, 20);
    float.writeUInt16LE(32, 34);
    assert.throws(() => new WavStreamReader().push(float), /unsupported WAV encoding/);
    const empty = new WavStreamReader();
    assert.throws(() => empty.end(), /empty audio/);
  });

  it('finalizeWav writes the real sizes into a streaming header', () => {
    const whole = finalizeWav(Buffer.from(file));
    assert.equal(whole.readUInt32LE(4), whole.length - 8);
    assert.equal(whole.readUInt32LE(40), 12);
    assert.equal(wavHeader(16000).readUInt32LE(40), 0xffffffff);
  });
});

describe('atempoFilter', () => {
  const product = (f: string) => f.split(',').reduce((p, s) => p * Number(s.split('=')[1]), 1);
  it('chains stages within 0.5–2.0 whose product is the speed', () => {
    for (const speed of [0.25, 0.3, 0.5, 1.5, 2, 3.7, 4]) {
      const filter = atempoFilter(speed);
      for (const stage of filter.split(',')) {
        const v = Number(stage.split('=')[1]);
        assert.ok(v >= 0.5 && v <= 2, filter);
      }
      assert.ok(Math.abs(product(filter) - speed) < 1e-5, `${speed}: ${filter}`);
    }
  });
});

describe('createStreamResampler', () => {
  it('a pooled converter starts clean: the same input gives the same output as a fresh one', async () => {
    const input = Int16Array.from({ length: 4410 }, (_, i) => Math.round(Math.sin(i / 7) * 10000));
    const run = async () => {
      const r = await createStreamResampler(22050, 24000);
      const out = [...r.push(input.subarray(0, 2205)), ...r.push(input.subarray(2205))];
      r.close();
      return out;
    };
    const first = await run();
    const second = await run(); // reuses the converter the first run released
    assert.ok(first.length > 4600 && first.length <= 4800, String(first.length));
    assert.deepEqual(second, first);
  });
});
