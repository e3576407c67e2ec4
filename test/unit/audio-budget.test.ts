/** The decoded-audio budget's accounting (src/audio/audio-budget.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AudioBudget } from '../../src/audio/audio-budget.ts';

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
});
