/** G.711 WAV (μ-law tag 7, A-law tag 6): our expansion matches ffmpeg's decoder sample for sample. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { g711Pieces, g711Wav } from '../../src/audio/wav-g711.ts';
import { wav } from '../helpers/audio.ts';
import { decodeWithFfmpeg, encodeWith } from '../helpers/ffmpeg.ts';

describe('G.711 WAV', () => {
  for (const [container, law] of [
    ['wav-mulaw', 'mulaw'],
    ['wav-alaw', 'alaw'],
  ] as const) {
    it(`${law}: the layout is read and every sample equals ffmpeg's, across pieces`, () => {
      const file = encodeWith(wav(1.3, { rate: 8000 }), container);
      const layout = g711Wav(file);
      assert.ok(layout, 'recognised');
      assert.deepEqual([layout.law, layout.channels, layout.sampleRate], [law, 1, 8000]);
      const ours: number[] = [];
      // an odd piece size: pieces must join without a gap or an overlap
      for (const piece of g711Pieces(file, layout, 999)) for (const x of piece.channelData[0]!) ours.push(Math.round(x * 32768));
      const reference = decodeWithFfmpeg(file).samples;
      assert.equal(ours.length, reference.length);
      assert.deepEqual(Int16Array.from(ours), reference);
    });
  }

  it('stereo frames are split into channels; a PCM WAV is not taken for G.711', () => {
    const file = encodeWith(wav(0.5, { rate: 8000, channels: 2 }), 'wav-alaw');
    const layout = g711Wav(file)!;
    assert.equal(layout.channels, 2);
    const pieces = [...g711Pieces(file, layout, 1001)];
    const frames = pieces.reduce((n, p) => n + p.channelData[1]!.length, 0);
    assert.equal(frames, 4000);
    assert.equal(g711Wav(wav(0.5)), undefined);
  });
});
