/**
 * A FLAC file written to a pipe does not know its length: ffmpeg writes STREAMINFO before the
 * audio and fills in the total sample count by seeking back at the end, which a pipe cannot do.
 * Browsers then show 0:00 and cannot seek. For a FLAC held whole in memory, finalizeFlac counts
 * the samples from the frame headers and writes the count into STREAMINFO.
 */

function crc8(bytes: Buffer, from: number, to: number): number {
  let crc = 0;
  for (let i = from; i < to; i++) {
    crc ^= bytes[i]!;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
  }
  return crc;
}

interface FrameHeader {
  /** Frame number (fixed block size) or first sample number (variable block size). */
  number: number;
  variable: boolean;
  blockSize: number;
  length: number;
}

/** The frame header at `at`, when one is there (sync code, valid fields and its CRC-8). */
export function frameHeader(b: Buffer, at: number): FrameHeader | undefined {
  if (at + 6 > b.length || b[at] !== 0xff || (b[at + 1]! & 0xfe) !== 0xf8) return undefined;
  const variable = (b[at + 1]! & 1) === 1;
  const sizeCode = b[at + 2]! >> 4;
  const rateCode = b[at + 2]! & 0x0f;
  if (sizeCode === 0 || rateCode === 15 || b[at + 3]! >> 4 > 10 || (b[at + 3]! & 1) !== 0) return undefined;
  // the frame or sample number, UTF-8 coded (up to 7 bytes)
  let p = at + 4;
  const first = b[p++]!;
  let number: number;
  if (first < 0x80) number = first;
  else {
    let extra = 0;
    while (extra < 7 && first & (0x40 >> extra)) extra++;
    if (extra === 0 || extra > 6) return undefined;
    number = first & (0x3f >> extra);
    for (let i = 0; i < extra; i++) {
      const next = b[p++];
      if (next === undefined || (next & 0xc0) !== 0x80) return undefined;
      number = number * 64 + (next & 0x3f);
    }
  }
  let blockSize: number;
  if (sizeCode === 1) blockSize = 192;
  else if (sizeCode <= 5) blockSize = 576 << (sizeCode - 2);
  else if (sizeCode === 6) blockSize = (b[p++] ?? 0) + 1;
  else if (sizeCode === 7) {
    blockSize = ((b[p] ?? 0) << 8) + (b[p + 1] ?? 0) + 1;
    p += 2;
  } else blockSize = 256 << (sizeCode - 8);
  if (rateCode === 12) p += 1;
  else if (rateCode === 13 || rateCode === 14) p += 2;
  if (p >= b.length || crc8(b, at, p) !== b[p]) return undefined;
  return { number, variable, blockSize, length: p + 1 - at };
}

/** Samples in the FLAC's frames, or undefined when it is not a FLAC this can read. */
export function countFlacSamples(flac: Buffer): number | undefined {
  if (flac.length < 42 || flac.toString('latin1', 0, 4) !== 'fLaC') return undefined;
  let at = 4;
  for (let last = false; !last; ) {
    if (at + 4 > flac.length) return undefined;
    last = (flac[at]! & 0x80) !== 0;
    at += 4 + flac.readUIntBE(at + 1, 3);
  }
  let frames = 0;
  let total = 0;
  // each next header must carry the next frame number (or sample number): a sync pattern inside
  // the audio data that happens to pass the CRC-8 cannot be taken for a frame
  while (at < flac.length) {
    const header = frameHeader(flac, at);
    if (header && header.number === (header.variable ? total : frames)) {
      frames++;
      total += header.blockSize;
      at += header.length;
    } else at++;
  }
  return frames > 0 ? total : undefined;
}

/** The FLAC with its total sample count written into STREAMINFO (unchanged when it cannot be read). */
export function finalizeFlac(flac: Buffer): Buffer {
  const total = countFlacSamples(flac);
  // STREAMINFO is the first metadata block (type 0)
  if (total === undefined || (flac[4]! & 0x7f) !== 0) return flac;
  const out = Buffer.from(flac);
  // STREAMINFO data starts at byte 8; the 36-bit count is the low nibble of byte 21 and bytes 22-25
  out[21] = (out[21]! & 0xf0) | (Math.floor(total / 2 ** 32) & 0x0f);
  out.writeUInt32BE(total >>> 0, 22);
  return out;
}
