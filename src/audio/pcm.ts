/** Conversions between the PCM representations the audio paths use. */

/** Int16 samples as little-endian bytes (a view when the platform is little-endian, as x86/ARM are). */
export function int16ToBytes(samples: Int16Array): Buffer {
  return Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
}

/** Little-endian 16-bit PCM bytes (even length) as Int16 samples (copied, so alignment is safe). */
export function bytesToInt16(bytes: Uint8Array): Int16Array {
  const out = new Int16Array(bytes.length >> 1);
  new Uint8Array(out.buffer).set(bytes.subarray(0, out.length * 2));
  return out;
}

export function int16ToFloat32(samples: Int16Array): Float32Array {
  const out = new Float32Array(samples.length);
  for (let i = 0; i < samples.length; i++) out[i] = samples[i]! / 32768;
  return out;
}

export function float32ToInt16(samples: Float32Array): Int16Array {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i]! * 32768;
    out[i] = s >= 32767 ? 32767 : s <= -32768 ? -32768 : Math.round(s);
  }
  return out;
}
