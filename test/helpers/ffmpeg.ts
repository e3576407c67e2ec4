/** Encodes test audio into other containers with Debian's ffmpeg (installed by .ci/run). */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const CONTAINERS = {
  mp3: ['-c:a', 'libmp3lame', '-f', 'mp3'],
  flac: ['-c:a', 'flac', '-f', 'flac'],
  'ogg-vorbis': ['-c:a', 'libvorbis', '-f', 'ogg'],
  'ogg-opus': ['-c:a', 'libopus', '-f', 'ogg'],
  'webm-opus': ['-c:a', 'libopus', '-f', 'webm'],
  'm4a-aac': ['-c:a', 'aac', '-f', 'ipod'],
  // telephony WAV: G.711 at 8 kHz (WAVE format tags 7 and 6)
  'wav-mulaw': ['-c:a', 'pcm_mulaw', '-ar', '8000', '-f', 'wav'],
  'wav-alaw': ['-c:a', 'pcm_alaw', '-ar', '8000', '-f', 'wav'],
} as const;

/** Encodes through a file, not a pipe: real m4a files (moov atom written after the data) need a seekable output. */
export function encodeWith(wav: Buffer, container: keyof typeof CONTAINERS): Buffer {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ffmpeg-'));
  const out = path.join(dir, 'out');
  try {
    const result = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', '-i', 'pipe:0', ...CONTAINERS[container], out], { input: wav });
    if (result.error) throw new Error(`ffmpeg is needed for this test (apt-get install ffmpeg; .ci/run does): ${result.error.message}`);
    if (result.status !== 0) throw new Error(`ffmpeg failed for ${container}: ${result.stderr.toString()}`);
    return fs.readFileSync(out);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export interface DecodedPcm {
  samples: Int16Array;
  sampleRate: number;
  codec: string;
  seconds: number;
  /** Root-mean-square level in [0, 1]: ~0 means silence. */
  rms: number;
}

/** Decodes any audio (raw s16le when `pcmRate` is given) with ffmpeg: a real decoder, independent of ours. */
export function decodeWithFfmpeg(bytes: Buffer, pcmRate?: number): DecodedPcm {
  const input = pcmRate ? ['-f', 's16le', '-ar', String(pcmRate), '-ac', '1'] : [];
  const result = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'info', ...input, '-i', 'pipe:0', '-f', 's16le', '-ac', '1', 'pipe:1'], { input: bytes, maxBuffer: 1 << 28 });
  if (result.error) throw new Error(`ffmpeg is needed for this test (apt-get install ffmpeg; .ci/run does): ${result.error.message}`);
  const log = result.stderr.toString();
  if (result.status !== 0) throw new Error(`ffmpeg could not decode the audio: ${log.slice(-500)}`);
  const stream = /Stream #0:0.*?Audio: (\w+).*?, (\d+) Hz/.exec(log);
  if (!stream) throw new Error(`no audio stream found: ${log.slice(-500)}`);
  const out = result.stdout;
  const samples = new Int16Array(out.buffer.slice(out.byteOffset, out.byteOffset + (out.length & ~1)));
  const sampleRate = Number(stream[2]);
  let sum = 0;
  for (const s of samples) sum += (s / 32768) ** 2;
  return { samples, sampleRate, codec: stream[1]!, seconds: samples.length / sampleRate, rms: samples.length ? Math.sqrt(sum / samples.length) : 0 };
}
