/**
 * A decode task, run on a worker thread of the decode pool (src/audio/decode-pool.ts): container
 * bytes → 16 kHz mono Float32 for Whisper. The bytes go to audio-decode's streaming decoder in
 * small pieces, and every piece's output is checked, mixed down and resampled before the next is
 * fed, so:
 * - the length limit is enforced while decoding (a file that decodes to more than `maxSeconds` stops
 *   at that point, whatever its header said);
 * - memory is what the 16 kHz result needs plus one piece's output, not the whole file at its own
 *   rate and channel count;
 * - non-finite samples (NaN/Infinity: whisper.cpp aborts the process on them) are refused, and finite
 *   ones are clipped to [-1, 1] (a float WAV may hold 1e30; its spectrum overflows to Infinity too).
 * Refusals come back as values ({ ok: false, … }): an ApiError does not survive the thread boundary.
 */
import type { MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import decode from 'audio-decode';
import audioType from 'audio-type';
import * as samplerate from '@alexanderolsen/libsamplerate-js';
import { MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE } from './inspect.ts';
import { g711Pieces, g711Wav } from './wav-g711.ts';
import { moovFirst } from './mp4-faststart.ts';

export interface DecodeTask {
  bytes: Uint8Array;
  maxSeconds: number;
  targetRate: number;
  /** Told the seconds decoded so far, every PROGRESS_SECONDS (the audio budget reserves against it). */
  progress?: MessagePort;
}

/**
 * How often (seconds of audio) the caller is told the progress, and how far ahead of what is decoded
 * each report reserves: 5 s is 320 KB of output. A short clip holds at most this much more than its
 * length while it decodes (at 30 s, a 1 s clip alone was refused under MAX_AUDIO_IN_FLIGHT_SECONDS=10);
 * an hour sends 720 reports, nothing next to decoding it.
 */
export const PROGRESS_SECONDS = 5;

export type DecodeOutcome =
  | { ok: true; samples: Float32Array; duration: number; sampleRate: number; channels: number }
  | { ok: false; status: 400 | 413; code: 'invalid_audio' | 'audio_too_long' | 'unsupported_audio_format'; message: string; seconds?: number };

type DecoderName = 'wav' | 'mp3' | 'aac' | 'flac' | 'm4a' | 'opus' | 'oga' | 'webm';
const SUPPORTED = new Set<string>(['wav', 'mp3', 'aac', 'flac', 'm4a', 'opus', 'oga', 'webm']);

/**
 * Bytes fed per decoder call. Compressed silence expands enormously (a FLAC frame of digital
 * silence is a few bytes for 4,096 samples), so pieces are small; PCM WAV expands at most 4×.
 */
const PIECE_BYTES = 4096;
const WAV_PIECE_BYTES = 256 * 1024;

class Refusal extends Error {
  constructor(readonly outcome: Extract<DecodeOutcome, { ok: false }>) {
    super(outcome.message);
  }
}

const invalid = (message: string) => new Refusal({ ok: false, status: 400, code: 'invalid_audio', message });

// piscina loads this file through require() first (tsx's CommonJS path), where the package's
// namespace has no `default`; through import() it has only `default`: take whichever is there.
const libsamplerate = ((samplerate as unknown as { default?: typeof samplerate }).default ?? samplerate) as typeof samplerate;
type Converter = Awaited<ReturnType<typeof libsamplerate.create>>;

/** Mixes, checks and resamples each decoded piece as it arrives; holds only the 16 kHz output. */
class Collector {
  private rate = 0;
  private channels = 0;
  private frames = 0;
  /** Frames decoded so far (at the source rate). */
  get decodedFrames(): number {
    return this.frames;
  }
  private converter: Converter | undefined;
  private readonly out: Float32Array[] = [];
  private outLength = 0;
  /** Seconds last reported to task.progress (the first piece reports at once). */
  private reported = -PROGRESS_SECONDS;

  constructor(private readonly task: DecodeTask) {}

  async add(piece: { channelData: Float32Array[]; sampleRate: number }): Promise<void> {
    const { channelData, sampleRate } = piece;
    const n = channelData[0]?.length ?? 0;
    if (channelData.length === 0 || n === 0) return;
    if (this.rate === 0) {
      if (!(sampleRate >= MIN_SAMPLE_RATE && sampleRate <= MAX_SAMPLE_RATE)) throw invalid(`The audio has a sample rate of ${sampleRate} Hz; ${MIN_SAMPLE_RATE}–${MAX_SAMPLE_RATE} Hz is accepted.`);
      if (channelData.length > MAX_CHANNELS) throw invalid(`The audio has ${channelData.length} channels; 1–${MAX_CHANNELS} are accepted.`);
      this.rate = sampleRate;
      this.channels = channelData.length;
      if (sampleRate !== this.task.targetRate) {
        this.converter = await libsamplerate.create(1, sampleRate, this.task.targetRate, { converterType: libsamplerate.ConverterType.SRC_SINC_FASTEST });
      }
    } else if (sampleRate !== this.rate) {
      throw invalid(`The audio changes its sample rate mid-stream (${this.rate} → ${sampleRate} Hz).`);
    }
    this.frames += n;
    const seconds = this.frames / this.rate;
    if (seconds > this.task.maxSeconds) throw new Refusal({ ok: false, status: 413, code: 'audio_too_long', message: '', seconds });
    if (this.task.progress && seconds - this.reported >= PROGRESS_SECONDS) {
      // told before this piece is kept: the caller stops the thread once its budget is spent
      this.reported = seconds;
      this.task.progress.postMessage(Math.min(seconds + PROGRESS_SECONDS, this.task.maxSeconds));
    }
    this.push(mixdown(channelData, n));
  }

  private push(mono: Float32Array): void {
    const chunk = this.converter ? this.converter.full(mono) : mono;
    if (chunk.length === 0) return;
    // `full` may hand back a view of its own buffer, reused by the next call: keep a copy
    this.out.push(this.converter ? chunk.slice() : chunk);
    this.outLength += chunk.length;
  }

  finish(): DecodeOutcome {
    if (this.frames === 0) throw invalid('The audio holds no samples.');
    const expected = Math.round((this.frames * this.task.targetRate) / this.rate);
    if (this.converter) {
      // the filter holds back a few ms; push silence through and cut at the exact length
      while (this.outLength < expected) this.push(new Float32Array(Math.max(256, Math.ceil(((expected - this.outLength) * this.rate) / this.task.targetRate) + 64)));
      this.converter.destroy();
    }
    const samples = new Float32Array(expected);
    let at = 0;
    // each piece is let go once copied, so the pieces and the whole are not both held to the end
    for (let chunk = this.out.shift(); chunk && at < expected; chunk = this.out.shift()) {
      const take = Math.min(chunk.length, expected - at);
      samples.set(take === chunk.length ? chunk : chunk.subarray(0, take), at);
      at += take;
    }
    this.out.length = 0;
    return { ok: true, samples, duration: this.frames / this.rate, sampleRate: this.rate, channels: this.channels };
  }

  dispose(): void {
    this.converter?.destroy();
    this.converter = undefined;
  }
}

/**
 * audio-decode's FLAC decoder, fed in pieces, drops the last few frames at the end of the stream
 * (whole-file decoding does not). STREAMINFO says how many samples there are; the missing end is
 * decoded from the header plus the file's last bytes (the decoder finds the next frame sync) and
 * its last `missing` frames are appended. Without a declared total (streamed encoders write 0) the
 * end may stay short by up to a few frames.
 */
async function flacTail(bytes: Uint8Array, decoded: number): Promise<{ channelData: Float32Array[]; sampleRate: number }> {
  const none = { channelData: [], sampleRate: 0 };
  if (bytes.length < 42 || (bytes[4]! & 0x7f) !== 0) return none;
  const total = (bytes[21]! & 0x0f) * 2 ** 32 + new DataView(bytes.buffer, bytes.byteOffset).getUint32(22);
  const missing = total - decoded;
  if (total === 0 || missing <= 0) return none;
  let headerEnd = 4;
  for (let blocks = 0; headerEnd + 4 <= bytes.length && blocks < 1024; blocks++) {
    const last = bytes[headerEnd]! & 0x80;
    headerEnd += 4 + ((bytes[headerEnd + 1]! << 16) | (bytes[headerEnd + 2]! << 8) | bytes[headerEnd + 3]!);
    if (last) break;
  }
  // grow the tail until it decodes to at least the missing frames (a few KB for real files)
  for (let tailBytes = 8192; ; tailBytes *= 4) {
    const start = Math.max(headerEnd, bytes.length - tailBytes);
    const mini = new Uint8Array(headerEnd + bytes.length - start);
    mini.set(bytes.subarray(0, headerEnd));
    mini.set(bytes.subarray(start), headerEnd);
    const decoder = await decode.flac();
    const parts = [await decoder(mini), await decoder()].filter((p) => p.channelData.length > 0);
    const channels = parts[0]?.channelData.length ?? 0;
    const length = parts.reduce((n, p) => n + p.channelData[0]!.length, 0);
    if (length >= missing || start === headerEnd) {
      const channelData = Array.from({ length: channels }, (_, c) => {
        const all = new Float32Array(length);
        let at = 0;
        for (const p of parts) {
          all.set(p.channelData[c] ?? p.channelData[0]!, at);
          at += p.channelData[0]!.length;
        }
        return all.subarray(Math.max(0, length - missing));
      });
      return { channelData, sampleRate: parts[0]?.sampleRate ?? 0 };
    }
  }
}

/** Mono average of the channels, each sample checked for NaN/Infinity and clipped to [-1, 1]. */
function mixdown(channels: Float32Array[], n: number): Float32Array {
  const out = new Float32Array(n);
  const scale = 1 / channels.length;
  for (const channel of channels) {
    for (let i = 0; i < n; i++) {
      const x = channel[i]!;
      if (!Number.isFinite(x)) throw invalid('The audio holds non-finite samples (NaN or Infinity); a float WAV must hold finite values.');
      out[i]! += x * scale;
    }
  }
  for (let i = 0; i < n; i++) out[i] = Math.min(1, Math.max(-1, out[i]!));
  return out;
}

/**
 * The outcome, its samples moved (not copied) to the calling thread: piscina clones a result
 * unless it is a Transferable (a clone would hold the hour's 230 MB twice, once per thread).
 */
function handOver(outcome: DecodeOutcome): DecodeOutcome {
  if (!outcome.ok) return outcome;
  return Piscina.move({ [Piscina.transferableSymbol]: [outcome.samples.buffer], [Piscina.valueSymbol]: outcome } as never) as unknown as DecodeOutcome;
}

export default async function decodeTask(task: DecodeTask): Promise<DecodeOutcome> {
  try {
    return handOver(await decodeAll(task));
  } finally {
    task.progress?.close();
  }
}

async function decodeAll(task: DecodeTask): Promise<DecodeOutcome> {
  const bytes = task.bytes;
  const type = audioType(bytes);
  if (!type || !SUPPORTED.has(type)) return { ok: false, status: 400, code: 'unsupported_audio_format', message: `No decoder for this audio (${type ?? 'unknown format'}).` };
  const collector = new Collector(task);
  // μ-law / A-law WAV: no decoder in audio-decode; expanded here, piece by piece all the same
  const g711 = type === 'wav' ? g711Wav(bytes) : undefined;
  if (g711) {
    try {
      for (const piece of g711Pieces(bytes, g711, WAV_PIECE_BYTES)) await collector.add(piece);
      return collector.finish();
    } catch (error) {
      collector.dispose();
      return refusalOf(error);
    }
  }
  const decoder = await decode[type as DecoderName]();
  const step = type === 'wav' ? WAV_PIECE_BYTES : PIECE_BYTES;
  // an m4a with its tables (moov) at the end would be decoded whole in one call: tables first
  const input = type === 'm4a' ? moovFirst(bytes) : bytes;
  try {
    for (let offset = 0; offset < input.length; offset += step) await collector.add(await decoder(input.subarray(offset, offset + step)));
    await collector.add(await decoder());
    if (type === 'flac') await collector.add(await flacTail(bytes, collector.decodedFrames));
    return collector.finish();
  } catch (error) {
    decoder.free();
    collector.dispose();
    return refusalOf(error);
  }
}

/** Whatever decoding threw, as a refusal: every failure on the way from bytes to samples is the file's (400), never a 500. */
function refusalOf(error: unknown): Extract<DecodeOutcome, { ok: false }> {
  if (error instanceof Refusal) return error.outcome;
  // the decoders throw Errors, strings (the resampler) or anything else on corrupt data
  const reason = error instanceof Error ? error.message : typeof error === 'string' ? error : '';
  return { ok: false, status: 400, code: 'invalid_audio', message: reason || 'corrupt data' };
}
