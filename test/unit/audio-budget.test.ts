/** The decoded-audio budget's accounting (src/audio/audio-budget.ts). */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { AudioBudget } from '../../src/audio/audio-budget.ts';
import { decodeToWhisperInput } from '../../src/audio/decode.ts';
import { closeDecodePool } from '../../src/audio/decode-pool.ts';
import { PROGRESS_SECONDS } from '../../src/audio/decode-worker.ts';
import { wav } from '../helpers/audio.ts';

describe('audio budget', () => {
  it('reservations grow against the capacity, shrink freely, and release once', () => {
    const seen: number[] = [];
    const budget = new AudioBudget(100, (held) => seen.push(held));
    const a = budget.open();
    const b = budget.open();
    assert.equal(a.reserve(60), true);
    assert.equal(b.reserve(50), false, 'past the capacity: refused, nothing held');
    assert.equal(budget.heldSeconds, 60);
    assert.equal(b.reserve(40), true);
    assert.equal(a.reserve(30), true, 'the exact length, shorter than the look-ahead');
    assert.equal(budget.heldSeconds, 70);
    a.release();
    a.release();
    assert.equal(budget.heldSeconds, 40);
    assert.equal(a.reserve(90), true, 'a released reservation holds nothing more');
    assert.equal(budget.heldSeconds, 40);
    b.release();
    assert.equal(budget.heldSeconds, 0);
    assert.deepEqual(seen, [60, 100, 70, 40, 0]);
    assert.equal(budget.exceeded().code, 'audio_budget_exceeded');
    assert.equal(budget.exceeded().statusCode, 503);
  });

  after(() => closeDecodePool());

  it('a decode reserves little more than its length while it runs: a 1 s clip fits a 10 s budget, 60 s fit 66', async () => {
    for (const [seconds, capacity] of [[1, 10], [60, 60 + PROGRESS_SECONDS + 1]] as const) {
      const budget = new AudioBudget(capacity);
      const reservation = budget.open();
      let most = 0;
      const decoded = await decodeToWhisperInput(new Uint8Array(wav(seconds)), {
        maxSeconds: 3600,
        budget: {
          reserve: (s) => {
            most = Math.max(most, s);
            return reservation.reserve(s);
          },
          refusal: () => budget.exceeded(),
        },
      });
      assert.equal(decoded.duration, seconds);
      assert.ok(most <= seconds + PROGRESS_SECONDS, `${seconds} s reserved up to ${most} s`);
      assert.equal(budget.heldSeconds, seconds, 'the exact length once decoded');
      reservation.release();
    }
  });
});
