/** Headless Debian Chromium for the e2e tests (playwright-core drives the system browser: no download). */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { int16ToBytes } from '../../src/audio/pcm.ts';
import { wavHeader } from '../../src/audio/wav.ts';
import { speech } from './speech.ts';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const BASE_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

/**
 * Launches headless Chromium. `fakeMic`: a WAV file the browser's microphone plays (looped), with
 * media permissions granted and autoplay allowed, for the voice tests.
 */
export async function launchChromium(options: { fakeMic?: string } = {}): Promise<Browser> {
  assert.ok(fs.existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM}: apt-get install chromium (.ci/run does)`);
  const mic = options.fakeMic
    ? ['--autoplay-policy=no-user-gesture-required', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--use-file-for-fake-audio-capture=${options.fakeMic}`]
    : [];
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...BASE_ARGS, ...mic] });
}

/** Writes the fake microphone's WAV into `dir`: a spoken question, then enough silence for the VAD to end the turn. */
export async function fakeMicrophoneWav(dir: string): Promise<string> {
  fs.mkdirSync(dir, { recursive: true });
  const pcm = await speech([{ silence: 0.5 }, 'What is the weather like today?', { silence: 2.5 }]);
  const file = path.join(dir, 'fake-mic.wav');
  fs.writeFileSync(file, Buffer.concat([wavHeader(16000, pcm.length * 2), int16ToBytes(pcm)]));
  return file;
}
