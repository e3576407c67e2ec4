/** Packing speech regions for Whisper and mapping its times back (src/audio/speech-regions.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { packRegions, speechRegions, toOriginalTime } from '../../src/audio/speech-regions.ts';

const SR = 16000;

describe('speech regions: packing and time mapping', () => {
  const audio = Float32Array.from({ length: 100 * SR }, (_, i) => Math.sin(i / 5) * (1 + (i % 7)) * 0.01);

  it('packs regions back to back, maps times into each region, and never lets one straddle a window edge', async () => {
    const window = 30 * SR;
    const { audio: packed, chunks } = await packRegions(audio, [{ start: 10 * SR, end: 12 * SR }, { start: 40 * SR, end: 60 * SR }, { start: 80 * SR, end: 90 * SR }], window, new AbortController().signal);
    assert.deepEqual(chunks.map((c) => [c.origin / SR, c.at / SR, c.length / SR]), [[10, 0, 2], [40, 2, 20], [80, 30, 10]]);
    assert.equal(packed.length, 40 * SR);
    assert.equal(packed[2 * SR + 5], audio[40 * SR + 5]);
    assert.ok(packed.subarray(22 * SR, 30 * SR).every((s) => s === 0), 'the rest of the first window is zeros');
    assert.equal(toOriginalTime(chunks, 1, false), 11);
    assert.equal(toOriginalTime(chunks, 2, true), 12, 'an end on the joint belongs to the first region');
    assert.equal(toOriginalTime(chunks, 2, false), 40, 'a start on the joint to the second');
    assert.equal(toOriginalTime(chunks, 25, false), 80, 'a start in the zeros goes to the next region');
    assert.equal(toOriginalTime(chunks, 25, true), 60, 'an end in the zeros to the previous one');
    assert.equal(toOriginalTime(chunks, 31.5, true), 81.5);
  });

  it('splits a region longer than a window inside its last 5 s', async () => {
    const window = 30 * SR;
    const { chunks } = await packRegions(audio, [{ start: 0, end: 70 * SR }], window, new AbortController().signal);
    assert.equal(chunks.reduce((n, c) => n + c.length, 0), 70 * SR, 'nothing lost');
    for (const c of chunks.slice(0, -1)) assert.ok(c.length <= window && c.length >= 25 * SR, `${c.length / SR}`);
    for (const c of chunks) assert.equal(Math.floor(c.at / window), Math.floor((c.at + c.length - 1) / window), 'within one window');
  });

  it('the analysis of a long file gives the event loop back and stops once its signal aborts', async () => {
    const long = new Float32Array(600 * SR);
    long.fill(0.1, 100 * SR, 101 * SR);
    const controller = new AbortController();
    let ticks = 0;
    const timer = setInterval(() => {
      // a timer runs while the analysis is in progress: the loop is not held; the 3rd tick aborts it
      if (++ticks === 3) controller.abort(new Error('client gone'));
    }, 1);
    try {
      await assert.rejects(speechRegions(long, controller.signal), /client gone/);
    } finally {
      clearInterval(timer);
    }
    assert.ok(ticks >= 3);
  });
});
