/**
 * G.711 WAV files (WAVE format tag 7 μ-law, 6 A-law; 8 bits a sample) — what telephony systems
 * and call recorders write. audio-decode's WAV decoder knows only PCM and float, so these are
 * expanded here with the G.711 tables (src/audio/g711.ts), in pieces like every other format: the
 * decode worker checks each piece's length against MAX_AUDIO_SECONDS before the next is expanded.
 * The header itself was checked by src/audio/inspect.ts (rate, channels, declared length).
 */
import { decodeG711, type G711Law } from './g711.ts';

export const G711_WAV_TAGS: Record<number, G711Law> = { 7: 'mulaw', 6: 'alaw' };

export interface G711Wav {
  law: G711Law;
  channels: number;
  sampleRate: number;
  /** Where the sample bytes are in the file: the data chunk, cut to what is actually there. */
  start: number;
  end: number;
}

/** The layout of a G.711 WAV file, or undefined when it is another kind of WAV (or not one). */
export function g711Wav(b: Uint8Array): G711Wav | undefined {
  if (b.length < 12) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const id = (at: number) => String.fromCharCode(b[at]!, b[at + 1]!, b[at + 2]!, b[at + 3]!);
  if (id(0) !== 'RIFF' || id(8) !== 'WAVE') return undefined;
  let format: Omit<G711Wav, 'start' | 'end'> | undefined;
  // the same bound on header chunks as inspect.ts
  for (let offset = 12, items = 0; offset + 8 <= b.length && items < 64; items++) {
    const size = v.getUint32(offset + 4, true);
    if (id(offset) === 'fmt ' && offset + 24 <= b.length) {
      let tag = v.getUint16(offset + 8, true);
      if (tag === 0xfffe && size >= 40 && offset + 34 <= b.length) tag = v.getUint16(offset + 32, true);
      const law = G711_WAV_TAGS[tag];
      if (!law || v.getUint16(offset + 22, true) !== 8) return undefined;
      format = { law, channels: v.getUint16(offset + 10, true), sampleRate: v.getUint32(offset + 12, true) };
    } else if (id(offset) === 'data') {
      return format && { ...format, start: offset + 8, end: Math.min(b.length, offset + 8 + size) };
    }
    offset += 8 + size + (size % 2);
  }
  return undefined;
}

/** The samples, `pieceBytes` of the file at a time (whole frames), as float channels in [-1, 1). */
export function* g711Pieces(b: Uint8Array, wav: G711Wav, pieceBytes: number): Generator<{ channelData: Float32Array[]; sampleRate: number }> {
  const channels = Math.max(1, wav.channels);
  const step = Math.max(channels, pieceBytes - (pieceBytes % channels));
  const end = wav.end - ((wav.end - wav.start) % channels); // a trailing partial frame is dropped
  for (let at = wav.start; at < end; at += step) {
    const linear = decodeG711(b.subarray(at, Math.min(end, at + step)), wav.law);
    const frames = linear.length / channels;
    const channelData = Array.from({ length: channels }, (_, c) => {
      const out = new Float32Array(frames);
      for (let i = 0; i < frames; i++) out[i] = linear[i * channels + c]! / 32768;
      return out;
    });
    yield { channelData, sampleRate: wav.sampleRate };
  }
}
