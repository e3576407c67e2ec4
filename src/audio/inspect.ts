/**
 * What an audio file's header declares — sample rate, channels, bits, length — read before a single
 * sample is decoded, so a file that declares 65,535 channels, a 4 GB data chunk or an hour of
 * silence squeezed into a few hundred kilobytes of FLAC is refused in microseconds instead of after
 * gigabytes of decoding. Only headers are read (bounded loops over chunk/box headers); the decoder
 * still enforces the same limits on what it actually produces, because a header can lie.
 */
import { ApiError } from '../errors.ts';
import { G711_WAV_TAGS } from './wav-g711.ts';

/**
 * Rates a real recording has; beyond them a file is broken or hostile. The upper bound is what the
 * resampler (libsamplerate-js) accepts — it refuses input rates above 192 kHz — so a file that
 * passes here can be converted to Whisper's 16 kHz.
 */
export const MIN_SAMPLE_RATE = 4000;
export const MAX_SAMPLE_RATE = 192_000;
/** 7.1.4 is 12; ambisonic recordings reach 16–25. Anything beyond is no recording a person sends. */
export const MAX_CHANNELS = 32;
/** Header chunks/boxes walked before giving up (a real file has a handful). */
const MAX_HEADER_ITEMS = 4096;

export interface DeclaredAudio {
  sampleRate?: number;
  channels?: number;
  /** The length the header declares (or implies from its sizes), when it does. */
  seconds?: number;
}

export interface InspectLimits {
  maxSeconds: number;
  setting: string;
  param: string;
}

/** Reads the header of `container` (sniffed from the bytes) and refuses what cannot be a sane file of allowed length. */
export function inspectAudio(bytes: Uint8Array, container: string, limits: InspectLimits): DeclaredAudio {
  const declared =
    container === 'wav' ? inspectWav(bytes, limits.param) : container === 'flac' ? inspectFlac(bytes) : container === 'mp4' ? inspectMp4(bytes, limits.param) : container === 'mp3' ? inspectMp3(bytes) : {};
  checkDeclared(declared, container, limits);
  return declared;
}

/** The one 413 for audio past its length limit (also thrown by the decoder as samples arrive). */
export function tooLong(seconds: number, limits: { maxSeconds: number; setting: string; param: string }, declared = false): ApiError {
  return new ApiError(
    413,
    'invalid_request_error',
    `The audio is ${declared ? 'declared as ' : ''}${seconds.toFixed(1)} s long; the limit is ${limits.maxSeconds} s (${limits.setting}).`,
    { param: limits.param, code: 'audio_too_long' },
  );
}

function checkDeclared(d: DeclaredAudio, container: string, limits: InspectLimits): void {
  if (d.sampleRate !== undefined && !(d.sampleRate >= MIN_SAMPLE_RATE && d.sampleRate <= MAX_SAMPLE_RATE)) {
    throw ApiError.badRequest(`The ${container} audio declares a sample rate of ${d.sampleRate} Hz; ${MIN_SAMPLE_RATE}–${MAX_SAMPLE_RATE} Hz is accepted.`, limits.param, 'invalid_audio');
  }
  if (d.channels !== undefined && !(d.channels >= 1 && d.channels <= MAX_CHANNELS)) {
    throw ApiError.badRequest(`The ${container} audio declares ${d.channels} channels; 1–${MAX_CHANNELS} are accepted.`, limits.param, 'invalid_audio');
  }
  if (d.seconds !== undefined && d.seconds > limits.maxSeconds) throw tooLong(d.seconds, limits, true);
}

const ascii = (b: Uint8Array, start: number, end: number) => Buffer.from(b.buffer, b.byteOffset + start, Math.max(0, end - start)).toString('latin1');
const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** RIFF/WAVE: the fmt chunk, and the data chunk's size as far as the bytes actually reach. */
function inspectWav(b: Uint8Array, param: string): DeclaredAudio {
  const v = view(b);
  let offset = 12;
  let format: { tag: number; channels: number; rate: number; bits: number } | undefined;
  for (let items = 0; offset + 8 <= b.length && items < MAX_HEADER_ITEMS; items++) {
    const id = ascii(b, offset, offset + 4);
    const size = v.getUint32(offset + 4, true);
    if (id === 'fmt ' && offset + 24 <= b.length) {
      let tag = v.getUint16(offset + 8, true);
      // WAVE_FORMAT_EXTENSIBLE: the real format is the first two bytes of the sub-format GUID
      if (tag === 0xfffe && size >= 40 && offset + 34 <= b.length) tag = v.getUint16(offset + 32, true);
      format = { tag, channels: v.getUint16(offset + 10, true), rate: v.getUint32(offset + 12, true), bits: v.getUint16(offset + 22, true) };
    } else if (id === 'data') {
      if (!format) throw ApiError.badRequest('The wav audio has its data before its fmt chunk.', param, 'invalid_audio');
      const { tag, channels, rate, bits } = format;
      const pcm = tag === 1 && [8, 16, 24, 32].includes(bits);
      const float = tag === 3 && (bits === 32 || bits === 64);
      const g711 = G711_WAV_TAGS[tag] !== undefined && bits === 8;
      if (!pcm && !float && !g711) throw ApiError.badRequest(`The wav audio is in an unsupported encoding (format ${tag}, ${bits} bits); PCM 8/16/24/32-bit, float 32/64-bit or G.711 μ-law/A-law (8-bit) is accepted.`, param, 'invalid_audio');
      const present = Math.min(size, b.length - offset - 8); // a header may claim 4 GB; count what is there
      const frameBytes = (channels * bits) / 8;
      return { sampleRate: rate, channels, seconds: channels > 0 && rate > 0 ? present / frameBytes / rate : undefined };
    }
    offset += 8 + size + (size % 2);
  }
  return format ? { sampleRate: format.rate, channels: format.channels } : {};
}

/** FLAC: STREAMINFO (always the first metadata block) holds rate, channels and the total sample count (0 = unknown). */
function inspectFlac(b: Uint8Array): DeclaredAudio {
  if (b.length < 8 + 34 || (b[4]! & 0x7f) !== 0) return {};
  const s = 8; // STREAMINFO body
  const rate = (b[s + 10]! << 12) | (b[s + 11]! << 4) | (b[s + 12]! >> 4);
  const channels = ((b[s + 12]! >> 1) & 0x07) + 1;
  const total = (b[s + 13]! & 0x0f) * 2 ** 32 + view(b).getUint32(s + 14);
  return { sampleRate: rate, channels, seconds: total > 0 && rate > 0 ? total / rate : undefined };
}

/**
 * MP4/M4A: the movie and media headers' durations (mvhd, mdhd). Refusing a declared length here
 * keeps an honest long file from being decoded at all; one whose header hides it is stopped while
 * decoding (a moov after the mdat is moved first for that: src/audio/mp4-faststart.ts).
 */
function inspectMp4(b: Uint8Array, param: string): DeclaredAudio {
  const v = view(b);
  let longest: number | undefined;
  let items = 0;
  const walk = (start: number, end: number, depth: number): void => {
    let offset = start;
    while (offset + 8 <= end && items++ < MAX_HEADER_ITEMS) {
      let size = v.getUint32(offset);
      const type = ascii(b, offset + 4, offset + 8);
      let header = 8;
      if (size === 1 && offset + 16 <= end) {
        size = v.getUint32(offset + 8) * 2 ** 32 + v.getUint32(offset + 12);
        header = 16;
      } else if (size === 0) size = end - offset;
      if (size < header) return;
      const boxEnd = Math.min(end, offset + size);
      if (depth < 6 && MP4_CONTAINERS.has(type)) walk(offset + header, boxEnd, depth + 1);
      if (type in SAMPLE_TABLES) checkSampleTable(b, type, offset + header, boxEnd, param);
      if ((type === 'mvhd' || type === 'mdhd') && offset + header + 32 <= boxEnd) {
        const body = offset + header;
        const version = b[body]!;
        const [timescale, duration] =
          version === 1 ? [v.getUint32(body + 20), v.getUint32(body + 24) * 2 ** 32 + v.getUint32(body + 28)] : [v.getUint32(body + 12), v.getUint32(body + 16)];
        // all-ones durations mean "unknown" (fragmented files)
        if (timescale > 0 && duration !== 0xffffffff && duration < Number.MAX_SAFE_INTEGER) longest = Math.max(longest ?? 0, duration / timescale);
      }
      offset += size;
    }
  };
  walk(0, b.length, 0);
  return { seconds: longest };
}

const MP4_CONTAINERS = new Set(['moov', 'trak', 'mdia', 'minf', 'stbl']);

/** Sample tables: bytes before the entries (version/flags, count, …) and bytes per entry. */
const SAMPLE_TABLES: Record<string, { fixed: number; entry: number }> = {
  stsz: { fixed: 12, entry: 4 },
  stco: { fixed: 8, entry: 4 },
  co64: { fixed: 8, entry: 8 },
  stsc: { fixed: 8, entry: 12 },
  stts: { fixed: 8, entry: 8 },
  ctts: { fixed: 8, entry: 8 },
};

/**
 * A sample table's entry count must fit in its box. The decoder (@audio/decode-mp4) allocates
 * `new Array(count)` from the header and fills it: a 20 KB file claiming 2^31 entries grew a decode
 * thread's heap to gigabytes until V8 aborted the process. Checked here, on the header, first.
 */
function checkSampleTable(b: Uint8Array, type: string, body: number, end: number, param: string): void {
  const { fixed, entry } = SAMPLE_TABLES[type]!;
  const refuse = (why: string) => ApiError.badRequest(`The mp4 audio's ${type} sample table is corrupt: ${why}.`, param, 'invalid_audio');
  if (body + fixed > end) throw refuse('the box is shorter than its header');
  const v = view(b);
  const count = v.getUint32(body + fixed - 4);
  if (type === 'stsz') {
    const constant = v.getUint32(body + 4);
    // one size for every sample: the samples, not the box, must fit (they are somewhere in the file)
    if (constant > 0) {
      if (count * constant > b.length) throw refuse(`${count} samples of ${constant} bytes cannot fit in a ${b.length}-byte file`);
      return;
    }
  }
  const room = Math.floor((end - body - fixed) / entry);
  if (count > room) throw refuse(`it declares ${count} entries, its box holds at most ${room}`);
}

const MP3_RATES = [
  [11_025, 12_000, 8000], // MPEG 2.5
  [0, 0, 0],
  [22_050, 24_000, 16_000], // MPEG 2
  [44_100, 48_000, 32_000], // MPEG 1
];

/**
 * MP3: the frame count in the first frame's Xing/Info header (LAME and ffmpeg write it, for VBR and
 * CBR files alike) gives the length without decoding. Files without one are measured while they
 * decode (an estimate from the first frame's bitrate would be wrong for VBR files).
 */
function inspectMp3(b: Uint8Array): DeclaredAudio {
  let offset = 0;
  if (ascii(b, 0, 3) === 'ID3' && b.length >= 10) offset = 10 + ((b[6]! & 0x7f) << 21) + ((b[7]! & 0x7f) << 14) + ((b[8]! & 0x7f) << 7) + (b[9]! & 0x7f);
  if (offset + 4 > b.length || b[offset] !== 0xff || (b[offset + 1]! & 0xe0) !== 0xe0) return {};
  const version = (b[offset + 1]! >> 3) & 0x03; // 3 = MPEG 1, 2 = MPEG 2, 0 = MPEG 2.5
  const layer = (b[offset + 1]! >> 1) & 0x03; // 1 = layer III
  const rate = MP3_RATES[version]?.[(b[offset + 2]! >> 2) & 0x03] ?? 0;
  const mono = (b[offset + 3]! >> 6) === 3;
  if (version === 1 || layer !== 1 || rate === 0) return {};
  const samplesPerFrame = version === 3 ? 1152 : 576;
  const sideInfo = version === 3 ? (mono ? 17 : 32) : mono ? 9 : 17;
  const tag = offset + 4 + sideInfo;
  if (tag + 12 > b.length) return { sampleRate: rate };
  const id = ascii(b, tag, tag + 4);
  if ((id !== 'Xing' && id !== 'Info') || (view(b).getUint32(tag + 4) & 0x1) === 0) return { sampleRate: rate };
  const frames = view(b).getUint32(tag + 8);
  return { sampleRate: rate, seconds: (frames * samplesPerFrame) / rate };
}
