/** The audio formats synthesized speech can be delivered in, and what each needs. */
export const AUDIO_FORMATS = ['wav', 'pcm', 'mp3', 'opus', 'flac', 'aac'] as const;
export type AudioFormat = (typeof AUDIO_FORMATS)[number];

export const CONTENT_TYPES: Record<AudioFormat, string> = {
  wav: 'audio/wav',
  pcm: 'audio/pcm',
  mp3: 'audio/mpeg',
  opus: 'audio/ogg; codecs=opus',
  flac: 'audio/flac',
  aac: 'audio/aac',
};

/** Formats written in-process (no ffmpeg): 16-bit little-endian PCM, bare or in a WAV header. */
export function isNativeFormat(format: AudioFormat): boolean {
  return format === 'wav' || format === 'pcm';
}

/** Opus encodes at 48 kHz whatever the input (the Ogg Opus output always decodes at 48 kHz). */
export function outputSampleRate(format: AudioFormat, requested: number): number {
  return format === 'opus' ? 48_000 : requested;
}
