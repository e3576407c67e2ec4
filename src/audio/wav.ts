/**
 * WAV (RIFF, 16-bit PCM): whole files through wavefile, plus the two streaming cases wavefile does
 * not cover — a header written before the length is known (sizes 0xFFFFFFFF, which players and
 * ffmpeg read as "until the end"), and reading a WAV that arrives in pieces (fish-speech's
 * streaming answer: a header with sizes 0, then PCM per text chunk).
 */
import wavefile from 'wavefile';
import { bytesToInt16, float32ToInt16 } from './pcm.ts';

export function encodeWavPcm16(samples: Float32Array, sampleRate: number): Buffer {
  const file = new wavefile.WaveFile();
  file.fromScratch(1, sampleRate, '16', float32ToInt16(samples));
  return Buffer.from(file.toBuffer());
}

const UNKNOWN = 0xffffffff;

/** A 44-byte mono 16-bit PCM header; `dataBytes` unknown (streaming) → sizes 0xFFFFFFFF. */
export function wavHeader(sampleRate: number, dataBytes?: number): Buffer {
  const header = Buffer.alloc(44);
  header.write('RIFF', 0, 'latin1');
  header.writeUInt32LE(dataBytes === undefined ? UNKNOWN : 36 + dataBytes, 4);
  header.write('WAVE', 8, 'latin1');
  header.write('fmt ', 12, 'latin1');
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(sampleRate, 24);
  header.writeUInt32LE(sampleRate * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36, 'latin1');
  header.writeUInt32LE(dataBytes === undefined ? UNKNOWN : dataBytes, 40);
  return header;
}

/** Sets the RIFF and data sizes of a whole WAV written with a streaming header. */
export function finalizeWav(file: Buffer): Buffer {
  if (file.length >= 44) {
    file.writeUInt32LE(file.length - 8, 4);
    file.writeUInt32LE(file.length - 44, 40);
  }
  return file;
}

export class WavFormatError extends Error {}

export interface WavFormat {
  sampleRate: number;
  channels: number;
}

/**
 * Reads a 16-bit PCM WAV delivered in pieces: `push` returns the mono samples now complete
 * (several channels are mixed down), `format` is known once the header is in.
 */
export class WavStreamReader {
  private pending = Buffer.alloc(0);
  private inData = false;
  format: WavFormat | undefined;

  push(bytes: Uint8Array): Int16Array {
    this.pending = this.pending.length === 0 ? Buffer.from(bytes) : Buffer.concat([this.pending, bytes]);
    if (!this.inData) this.readHeader();
    if (!this.inData) return new Int16Array(0);
    const frameBytes = 2 * this.format!.channels;
    const usable = this.pending.length - (this.pending.length % frameBytes);
    if (usable === 0) return new Int16Array(0);
    const interleaved = bytesToInt16(this.pending.subarray(0, usable));
    this.pending = this.pending.subarray(usable);
    return mixdown(interleaved, this.format!.channels);
  }

  /** Call at the end: throws when no valid header ever arrived. */
  end(): void {
    if (!this.inData) throw new WavFormatError(this.pending.length === 0 ? 'empty audio' : 'not a 16-bit PCM WAV');
  }

  private readHeader(): void {
    const b = this.pending;
    if (b.length < 12) return;
    if (b.toString('latin1', 0, 4) !== 'RIFF' || b.toString('latin1', 8, 12) !== 'WAVE') throw new WavFormatError('not a RIFF/WAVE stream');
    let offset = 12;
    while (offset + 8 <= b.length) {
      const id = b.toString('latin1', offset, offset + 4);
      const size = b.readUInt32LE(offset + 4);
      if (id === 'data') {
        if (!this.format) throw new WavFormatError('data chunk before fmt chunk');
        this.pending = b.subarray(offset + 8);
        this.inData = true;
        return;
      }
      if (offset + 8 + size > b.length) return; // wait for the rest of this chunk
      if (id === 'fmt ') {
        const formatTag = b.readUInt16LE(offset + 8);
        const channels = b.readUInt16LE(offset + 10);
        const sampleRate = b.readUInt32LE(offset + 12);
        const bits = b.readUInt16LE(offset + 22);
        if ((formatTag !== 1 && formatTag !== 0xfffe) || bits !== 16 || channels < 1 || sampleRate < 1000) {
          throw new WavFormatError(`unsupported WAV encoding (format ${formatTag}, ${bits} bits, ${channels} channels, ${sampleRate} Hz); 16-bit PCM expected`);
        }
        this.format = { sampleRate, channels };
      }
      offset += 8 + size + (size % 2);
    }
  }
}

function mixdown(interleaved: Int16Array, channels: number): Int16Array {
  if (channels === 1) return interleaved;
  const out = new Int16Array(interleaved.length / channels);
  for (let i = 0; i < out.length; i++) {
    let sum = 0;
    for (let c = 0; c < channels; c++) sum += interleaved[i * channels + c]!;
    out[i] = Math.round(sum / channels);
  }
  return out;
}
