/** G.711 μ-law / A-law (the Realtime API's audio/pcmu and audio/pcma): reference values and round trips. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { alawToLinear, decodeG711, encodeG711, linearToAlaw, linearToMulaw, mulawToLinear } from '../../src/audio/g711.ts';

describe('G.711', () => {
  it('decodes the standard code points', () => {
    assert.deepEqual([mulawToLinear(0xff), mulawToLinear(0x00), mulawToLinear(0x80)], [0, -32124, 32124]);
    assert.deepEqual([alawToLinear(0xd5), alawToLinear(0x55), alawToLinear(0xaa), alawToLinear(0x2a)], [8, -8, 32256, -32256]);
  });

  it('every code survives decode → encode, and samples come back within the quantisation step', () => {
    for (let code = 0; code < 256; code++) {
      if (code !== 0x7f) assert.equal(linearToMulaw(mulawToLinear(code)), code, `μ-law ${code}`); // 0x7f is −0, which encodes as +0
      assert.equal(linearToAlaw(alawToLinear(code)), code, `A-law ${code}`);
    }
    const samples = Int16Array.from({ length: 2000 }, (_, i) => Math.round(Math.sin(i / 7) * 20000));
    for (const law of ['mulaw', 'alaw'] as const) {
      const back = decodeG711(encodeG711(samples, law), law);
      for (let i = 0; i < samples.length; i++) assert.ok(Math.abs(back[i]! - samples[i]!) <= Math.max(64, Math.abs(samples[i]!) * 0.07), `${law} ${samples[i]} → ${back[i]}`);
    }
  });
});
