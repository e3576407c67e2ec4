/** The GGUF writer's Q8_0 blocks, checked against ggml's layout: an F16 scale, then 32 signed bytes. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { toF16, toQ8_0 } from '../../scripts/models/gguf-writer.ts';

/** F16 bits → number (normal and zero values only: all the scales below are normal). */
function fromF16(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const mant = bits & 0x3ff;
  return exp === 0 ? sign * mant * 2 ** -24 : sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

describe('GGUF writer: Q8_0', () => {
  // Like ggml's reference quantizer: values are divided by the exact scale, the scale is stored as
  // F16, so a value comes back within half a step plus 127 × the scale's F16 rounding (≤ amax / 2^11).
  it('stores 32 values as 34 bytes that dequantize to within half a step (plus the F16 scale rounding)', () => {
    const values = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i * 0.7) * (i < 32 ? 0.1 : 3));
    const bytes = toQ8_0(values);
    assert.equal(bytes.length, 2 * 34);
    const view = new DataView(bytes.buffer);
    for (let b = 0; b < 2; b++) {
      const d = fromF16(view.getUint16(b * 34, true));
      const run = values.subarray(b * 32, b * 32 + 32);
      const amax = Math.max(...run.map(Math.abs));
      assert.ok(Math.abs(d - amax / 127) < (amax / 127) * 1e-3, `block ${b}: scale ${d} for largest ${amax}`);
      for (let i = 0; i < 32; i++) {
        const q = view.getInt8(b * 34 + 2 + i);
        assert.ok(Math.abs(q) <= 127);
        assert.ok(Math.abs(q * d - run[i]!) <= d / 2 + amax * 2 ** -11, `value ${i} of block ${b}: ${q * d} vs ${run[i]}`);
      }
    }
  });

  it('writes an all-zero block as a zero scale and zero bytes, and refuses a row that is not whole blocks', () => {
    assert.deepEqual([...toQ8_0(new Float32Array(32))], new Array(34).fill(0));
    assert.equal(toF16(0), 0);
    assert.throws(() => toQ8_0(new Float32Array(33)), /multiple of 32/);
  });
});
