/**
 * Any audio container a client sends → 16 kHz mono Float32, what Whisper wants. Decoding is
 * audio-decode (wav at any rate/depth/channels, mp3, flac, ogg/vorbis, opus, webm/opus as
 * browsers' MediaRecorder sends, m4a/aac) — pure JS/WASM, no ffmpeg; resampling is libsamplerate
 * (WASM). Failures are 400/413/415 envelopes that say what was wrong, never a 500.
 */
import decodeAudioFile from 'audio-decode';
import { ApiError } from '../errors.ts';
import { resample } from './resample.ts';

import { STT_SAMPLE_RATE } from '../engines/stt/types.ts';

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
}

export async function decodeToWhisperInput(bytes: Uint8Array, limits: DecodeLimits, param = 'file'): Promise<DecodedAudio> {
  if (bytes.length === 0) throw ApiError.badRequest('The audio file is empty.', param, 'empty_audio');
  const container = sniffContainer(bytes);
  if (!container) {
    throw new ApiError(415, 'invalid_request_error', 'Unsupported or unrecognized audio format. Send wav, mp3, flac, ogg (vorbis/opus), webm/opus, m4a/aac.', { param, code: 'unsupported_audio_format' });
  }
  let decoded: { channelData: Float32Array[]; sampleRate: number };
  try {
    decoded = await decodeAudioFile(bytes);
  } catch (error) {
    throw ApiError.badRequest(`Could not decode the ${container} audio: ${(error as Error).message || 'corrupt data'}.`, param, 'invalid_audio');
  }
  const channels = decoded.channelData.length;
  const frames = decoded.channelData[0]?.length ?? 0;
  if (!channels || !decoded.sampleRate || !Number.isFinite(decoded.sampleRate) || decoded.sampleRate < 1000 || decoded.sampleRate > 768_000) {
    throw ApiError.badRequest(`The ${container} audio has no usable samples (rate ${decoded.sampleRate}, ${channels} channels).`, param, 'invalid_audio');
  }
  const duration = frames / decoded.sampleRate;
  if (duration < MIN_AUDIO_SECONDS) {
    throw ApiError.badRequest(
      `The ${container} audio holds ${(duration * 1000).toFixed(1)} ms of sound; at least ${MIN_AUDIO_SECONDS * 1000} ms is needed (a truncated or mislabelled file?).`,
      param,
      'audio_too_short',
    );
  }
  if (duration > limits.maxSeconds) {
    throw new ApiError(413, 'invalid_request_error', `The audio is ${duration.toFixed(1)} s long; the limit is ${limits.maxSeconds} s (${limits.setting ?? 'MAX_AUDIO_SECONDS'}).`, { param, code: 'audio_too_long' });
  }
  const mono = mixdown(decoded.channelData, frames);
  const samples = decoded.sampleRate === STT_SAMPLE_RATE ? mono : await resample(mono, decoded.sampleRate, STT_SAMPLE_RATE);
  return { samples, duration, source: { container, bytes: bytes.length, sampleRate: decoded.sampleRate, channels } };
}

function mixdown(channels: Float32Array[], frames: number): Float32Array {
  if (channels.length === 1) return channels[0]!;
  const out = new Float32Array(frames);
  for (const channel of channels) for (let i = 0; i < frames; i++) out[i]! += channel[i]! / channels.length;
  return out;
}
