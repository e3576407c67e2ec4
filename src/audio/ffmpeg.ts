/**
 * ffmpeg as a streaming encoder (mp3, opus, aac, flac, tempo changes): raw PCM in on stdin, the
 * encoded stream out of stdout as it is produced. Found once at start-up (FFMPEG_PATH); when it is
 * absent the formats that need it answer 501 `encoder_unavailable` naming the remedy.
 */
import { spawn, spawnSync } from 'node:child_process';
import { ApiError } from '../errors.ts';

export interface Ffmpeg {
  path: string;
  available: boolean;
  version?: string;
}

export function probeFfmpeg(path: string): Ffmpeg {
  const result = spawnSync(path, ['-hide_banner', '-version'], { encoding: 'utf8', timeout: 10_000 });
  if (result.status !== 0 || result.error) return { path, available: false };
  return { path, available: true, version: /ffmpeg version (\S+)/.exec(result.stdout)?.[1] };
}

export function requireFfmpeg(ffmpeg: Ffmpeg, what: string): void {
  if (!ffmpeg.available) {
    throw new ApiError(501, 'server_error', `${what} needs ffmpeg, which this server cannot run (FFMPEG_PATH=${ffmpeg.path}). Install it (apt-get install ffmpeg) or ask for wav or pcm.`, {
      code: 'encoder_unavailable',
    });
  }
}

/**
 * Pipes `input` through `ffmpeg args` and yields stdout as it comes. Backpressure both ways; an
 * abort (or the consumer stopping early) kills the process; a non-zero exit throws with the tail
 * of stderr.
 */
export async function* ffmpegPipe(ffmpeg: Ffmpeg, args: string[], input: AsyncIterable<Buffer>, signal: AbortSignal): AsyncGenerator<Buffer> {
  const child = spawn(ffmpeg.path, ['-hide_banner', '-loglevel', 'error', '-nostdin', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    stderr = (stderr + d).slice(-2000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const spawnFailed = new Promise<never>((_, reject) => child.once('error', reject));
  spawnFailed.catch(() => {});
  child.stdin.on('error', () => {}); // EPIPE when ffmpeg exits early; the exit code tells the story
  let inputError: unknown;
  // room to write again, or no reader any more: ffmpeg may exit (done, or failed) while its stdin
  // is full, and then `drain` never comes
  const writable = () =>
    new Promise<void>((resolve) => {
      const go = () => {
        child.stdin.off('drain', go);
        child.stdin.off('close', go);
        child.off('exit', go);
        resolve();
      };
      child.stdin.once('drain', go);
      child.stdin.once('close', go);
      child.once('exit', go);
    });
  const reading = () => !child.stdin.destroyed && child.exitCode === null && child.signalCode === null;
  const pump = (async () => {
    try {
      for await (const chunk of input) {
        if (!reading()) break; // leaving the loop closes the input: nothing reads the rest
        if (!child.stdin.write(chunk)) await writable();
        if (!reading()) break;
      }
    } catch (error) {
      inputError = error;
      child.kill('SIGKILL');
    } finally {
      child.stdin.end();
    }
  })();
  const kill = () => child.kill('SIGKILL');
  signal.addEventListener('abort', kill, { once: true });
  try {
    for await (const chunk of child.stdout) yield chunk as Buffer;
    const code = await Promise.race([exited, spawnFailed]);
    await pump;
    if (inputError) throw inputError;
    signal.throwIfAborted();
    if (code !== 0) throw new Error(`ffmpeg exited with ${code}: ${stderr.trim()}`);
  } finally {
    signal.removeEventListener('abort', kill);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

/** The `atempo` filter chain for a speed factor (each stage takes 0.5–2.0). */
export function atempoFilter(speed: number): string {
  const stages: number[] = [];
  let rest = speed;
  while (rest > 2) {
    stages.push(2);
    rest /= 2;
  }
  while (rest < 0.5) {
    stages.push(0.5);
    rest /= 0.5;
  }
  stages.push(rest);
  return stages.map((s) => `atempo=${s.toFixed(6)}`).join(',');
}
