/**
 * Synthesized speech (mono PCM chunks at the engine's rate) → the requested format and sample
 * rate, as a byte stream: resampled in-process (libsamplerate), wav/pcm written in-process, the
 * compressed formats and tempo changes through ffmpeg. Nothing is buffered beyond what an encoder
 * needs, so the first bytes leave with the first synthesized chunk.
 */
import type { PcmChunk } from '../engines/tts/types.ts';
import { atempoFilter, ffmpegPipe, requireFfmpeg, type Ffmpeg } from './ffmpeg.ts';
import { CONTENT_TYPES, isNativeFormat, outputSampleRate, type AudioFormat } from './formats.ts';
import { int16ToBytes } from './pcm.ts';
import { createStreamResampler, type StreamResampler } from './resample.ts';
import { wavHeader } from './wav.ts';

export interface EncodeOptions {
  format: AudioFormat;
  /** Requested output rate (Hz); opus always comes out at 48 kHz. */
  sampleRate: number;
  /** Tempo change applied by ffmpeg (1 = none; engines that speak faster natively pass 1). */
  tempo: number;
  ffmpeg: Ffmpeg;
}

export interface EncodedAudio {
  format: AudioFormat;
  contentType: string;
  sampleRate: number;
  bytes: AsyncIterable<Buffer>;
  /** Samples delivered at `sampleRate` before any tempo change (for durations). */
  samples(): number;
}

const CODEC_ARGS: Record<Exclude<AudioFormat, 'wav' | 'pcm'>, string[]> = {
  mp3: ['-c:a', 'libmp3lame', '-b:a', '128k', '-f', 'mp3'],
  // small Ogg pages so a streaming client gets audio every 20 ms instead of once a second
  opus: ['-c:a', 'libopus', '-b:a', '48k', '-page_duration', '20000', '-f', 'ogg'],
  aac: ['-c:a', 'aac', '-b:a', '96k', '-f', 'adts'],
  flac: ['-c:a', 'flac', '-f', 'flac'],
};

/** Fails fast (501) when the format or tempo needs ffmpeg and there is none. */
export function assertEncodable(format: AudioFormat, tempo: number, ffmpeg: Ffmpeg): void {
  if (!isNativeFormat(format)) requireFfmpeg(ffmpeg, `The ${format} format`);
  else if (tempo !== 1) requireFfmpeg(ffmpeg, 'Changing the speed of this voice');
}

export function encodeSpeech(pcm: AsyncIterable<PcmChunk>, options: EncodeOptions, signal: AbortSignal): EncodedAudio {
  assertEncodable(options.format, options.tempo, options.ffmpeg);
  const sampleRate = outputSampleRate(options.format, options.sampleRate);
  let delivered = 0;

  async function* atTargetRate(): AsyncGenerator<Buffer> {
    let resampler: StreamResampler | undefined;
    let from = 0;
    try {
      for await (const chunk of pcm) {
        if (!resampler || chunk.sampleRate !== from) {
          resampler?.close();
          from = chunk.sampleRate;
          resampler = await createStreamResampler(from, sampleRate);
        }
        const samples = resampler.push(chunk.samples);
        if (samples.length === 0) continue;
        delivered += samples.length;
        yield int16ToBytes(samples);
      }
    } finally {
      resampler?.close();
    }
  }

  async function* bytes(): AsyncGenerator<Buffer> {
    const raw = atTargetRate();
    const input = ['-f', 's16le', '-ar', String(sampleRate), '-ac', '1', '-i', 'pipe:0', '-flush_packets', '1'];
    const tempo = options.tempo === 1 ? [] : ['-filter:a', atempoFilter(options.tempo)];
    if (isNativeFormat(options.format)) {
      const pcmBytes = options.tempo === 1 ? raw : ffmpegPipe(options.ffmpeg, [...input, ...tempo, '-f', 's16le', 'pipe:1'], raw, signal);
      // the WAV header leaves with the first audio, so "first bytes" always means first sound
      let header = options.format === 'wav' ? wavHeader(sampleRate) : undefined;
      for await (const chunk of pcmBytes) {
        yield header ? Buffer.concat([header, chunk]) : chunk;
        header = undefined;
      }
      if (header) yield header; // no audio at all: still a valid (empty) WAV
      return;
    }
    const codec = CODEC_ARGS[options.format as keyof typeof CODEC_ARGS];
    yield* ffmpegPipe(options.ffmpeg, [...input, ...tempo, ...codec, 'pipe:1'], raw, signal);
  }

  return { format: options.format, contentType: CONTENT_TYPES[options.format], sampleRate, bytes: bytes(), samples: () => delivered };
}
