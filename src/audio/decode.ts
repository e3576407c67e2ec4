/**
 * Any audio container a client sends → 16 kHz mono Float32, what Whisper wants. Decoding is
 * audio-decode (wav at any rate/depth/channels, mp3, flac, ogg/vorbis, opus, webm/opus as
 * browsers' MediaRecorder sends, m4a/aac) — pure JS/WASM, no ffmpeg; resampling is libsamplerate
 * (WASM). Three stages, cheapest first:
 * 1. the bytes say which container it is (415 when none we decode);
 * 2. the header's declared rate, channels and length are checked (src/audio/inspect.ts): a file
 *    that declares too much is refused before any sample is decoded;
 * 3. decoding runs on the decode pool's worker threads (src/audio/decode-pool.ts), in small pieces,
 *    with the length limit and the sample checks applied as samples arrive.
 * Failures are 400/413/415 envelopes that say what was wrong, never a 500.
 */
import { ApiError } from '../errors.ts';
import { STT_SAMPLE_RATE } from '../engines/stt/types.ts';
import { runDecode, type DecodeBudget } from './decode-pool.ts';
import { inspectAudio, tooLong } from './inspect.ts';

export interface DecodedAudio {
  /** 16 kHz mono samples in [-1, 1]. */
  samples: Float32Array;
  duration: number;
  /** What came in, for logs and errors (never the bytes). */
  source: { container: string; bytes: number; sampleRate: number; channels: number };
}

/** The container, from magic bytes (what the bytes are, whatever the file name claims). */
export function sniffContainer(bytes: Uint8Array): string | undefined {
  const ascii = (start: number, end: number) => Buffer.from(bytes.subarray(start, end)).toString('latin1');
  if (bytes.length < 12) return undefined;
  if (ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WAVE') return 'wav';
  if (ascii(0, 4) === 'fLaC') return 'flac';
  if (ascii(0, 4) === 'OggS') return 'ogg';
  if (bytes[0] === 0x1a && bytes[1] === 0x45 && bytes[2] === 0xdf && bytes[3] === 0xa3) return 'webm';
  if (ascii(4, 8) === 'ftyp') return 'mp4';
  if (ascii(0, 3) === 'ID3') return 'mp3';
  if (ascii(0, 4) === 'FORM') return 'aiff';
  if (ascii(0, 4) === 'caff') return 'caf';
  if (bytes[0] === 0xff && (bytes[1]! & 0xf6) === 0xf0) return 'aac'; // ADTS
  if (bytes[0] === 0xff && (bytes[1]! & 0xe0) === 0xe0) return 'mp3'; // MPEG frame sync
  return undefined;
}

/** Shorter audio holds nothing to transcribe (whisper.cpp ignores under ~100 ms): a 400, not an empty transcript. */
export const MIN_AUDIO_SECONDS = 0.1;

export interface DecodeLimits {
  maxSeconds: number;
  /** The setting that holds the limit, named in the 413 message. */
  setting?: string;
  /** Cancels the decode (client gone, request deadline): its worker thread is stopped. */
  signal?: AbortSignal;
  /** The request's share of MAX_AUDIO_IN_FLIGHT_SECONDS, reserved as samples arrive (src/audio/audio-budget.ts). */
  budget?: DecodeBudget;
}

export async function decodeToWhisperInput(bytes: Uint8Array, limits: DecodeLimits, param = 'file'): Promise<DecodedAudio> {
  if (bytes.length === 0) throw ApiError.badRequest('The audio file is empty.', param, 'empty_audio');
  const container = sniffContainer(bytes);
  if (!container) {
    throw new ApiError(415, 'invalid_request_error', 'Unsupported or unrecognized audio format. Send wav, mp3, flac, ogg (vorbis/opus), webm/opus, m4a/aac.', { param, code: 'unsupported_audio_format' });
  }
  const bounds = { maxSeconds: limits.maxSeconds, setting: limits.setting ?? 'MAX_AUDIO_SECONDS', param };
  inspectAudio(bytes, container, bounds);
  const outcome = await runDecode({ bytes, maxSeconds: limits.maxSeconds, targetRate: STT_SAMPLE_RATE }, limits.signal, param, limits.budget);
  if (!outcome.ok) {
    if (outcome.code === 'audio_too_long') throw tooLong(outcome.seconds ?? limits.maxSeconds, bounds);
    if (outcome.code === 'unsupported_audio_format') throw new ApiError(415, 'invalid_request_error', outcome.message, { param, code: outcome.code });
    throw ApiError.badRequest(`Could not decode the ${container} audio: ${outcome.message.replace(/\.$/, '')}.`, param, 'invalid_audio');
  }
  const { samples, duration, sampleRate, channels } = outcome;
  if (duration < MIN_AUDIO_SECONDS) {
    throw ApiError.badRequest(
      `The ${container} audio holds ${(duration * 1000).toFixed(1)} ms of sound; at least ${MIN_AUDIO_SECONDS * 1000} ms is needed (a truncated or mislabelled file?).`,
      param,
      'audio_too_short',
    );
  }
  return { samples, duration, source: { container, bytes: bytes.length, sampleRate, channels } };
}
