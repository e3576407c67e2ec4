/**
 * G.711 (ITU-T): μ-law (`audio/pcmu`) and A-law (`audio/pcma`), 8 kHz, one byte per sample —
 * what telephony voice agents send and expect. Small enough to write out rather than pull in a
 * codec: each byte expands to one 16-bit sample and back (the segment tables of the standard).
 */
const MULAW_BIAS = 0x84;
const MULAW_CLIP = 32635;

export function mulawToLinear(byte: number): number {
  const u = ~byte & 0xff;
  const exponent = (u >> 4) & 0x07;
  const magnitude = ((((u & 0x0f) << 3) + MULAW_BIAS) << exponent) - MULAW_BIAS;
  return u & 0x80 ? -magnitude : magnitude;
}

export function linearToMulaw(sample: number): number {
  let s = Math.max(-32768, Math.min(32767, Math.round(sample)));
  const sign = s < 0 ? 0x80 : 0;
  if (sign) s = -s;
  s = Math.min(s, MULAW_CLIP) + MULAW_BIAS;
  let exponent = 7;
  for (let mask = 0x4000; (s & mask) === 0 && exponent > 0; mask >>= 1) exponent--;
  const mantissa = (s >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

export function alawToLinear(byte: number): number {
  const a = byte ^ 0x55;
  const exponent = (a >> 4) & 0x07;
  let magnitude = (a & 0x0f) << 4;
  magnitude = exponent === 0 ? magnitude + 8 : (magnitude + 0x108) << (exponent - 1);
  return a & 0x80 ? magnitude : -magnitude;
}

export function linearToAlaw(sample: number): number {
  let pcm = Math.max(-32768, Math.min(32767, Math.round(sample))) >> 3; // 13-bit
  let mask: number;
  if (pcm >= 0) mask = 0xd5;
  else {
    mask = 0x55;
    pcm = -pcm - 1;
  }
  let segment = 0;
  while (segment < 8 && pcm > (0x20 << segment) - 1) segment++;
  if (segment >= 8) return 0x7f ^ mask;
  const value = (segment << 4) | ((segment < 2 ? pcm >> 1 : pcm >> segment) & 0x0f);
  return value ^ mask;
}

export type G711Law = 'mulaw' | 'alaw';

export function decodeG711(bytes: Uint8Array, law: G711Law): Int16Array {
  const out = new Int16Array(bytes.length);
  const decode = law === 'mulaw' ? mulawToLinear : alawToLinear;
  for (let i = 0; i < bytes.length; i++) out[i] = decode(bytes[i]!);
  return out;
}

export function encodeG711(samples: Int16Array, law: G711Law): Buffer {
  const out = Buffer.alloc(samples.length);
  const encode = law === 'mulaw' ? linearToMulaw : linearToAlaw;
  for (let i = 0; i < samples.length; i++) out[i] = encode(samples[i]!);
  return out;
}
