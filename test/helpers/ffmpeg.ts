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
