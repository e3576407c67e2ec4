/**
 * The playground end to end in real headless Chromium (Debian's, driven by playwright-core)
 * against the real service on the generated tiny models: text streaming, speech to text from a
 * file, text to speech into a playable audio element, and a spoken dialogue turn through a fake
 * microphone (a WAV of synthesized speech fed to getUserMedia). Screenshots of each panel go to
 * test-artifacts/playground/ (git-ignored).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { int16ToBytes } from '../../src/audio/pcm.ts';
import { wavHeader } from '../../src/audio/wav.ts';
import { startApp, type TestApp } from '../helpers/app.ts';
import { wav } from '../helpers/audio.ts';
import { tinyGemmaPath, tinyWhisperPath } from '../helpers/models.ts';
import { closeSpeech, speech } from '../helpers/speech.ts';

const ARTIFACTS = path.resolve('test-artifacts/playground');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const GEMMA_REPLY = 'Hello from the tiny Gemma model.';

describe('playground in headless Chromium', () => {
  let t: TestApp;
  let browser: Browser;
  let page: Page;
  const consoleErrors: string[] = [];

  before(async () => {
    assert.ok(fs.existsSync('frontend/dist/index.html'), 'build the playground first: npm run build -w frontend (npm test does)');
    assert.ok(fs.existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM}: apt-get install chromium (.ci/run does)`);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    // the fake microphone: speech, then enough silence for the VAD to end the turn (Chromium loops the file)
    const pcm = await speech([{ silence: 0.5 }, 'What is the weather like today?', { silence: 2.5 }]);
    const micFile = path.join(ARTIFACTS, 'fake-mic.wav');
    fs.writeFileSync(micFile, Buffer.concat([wavHeader(16000, pcm.length * 2), int16ToBytes(pcm)]));
    t = await startApp({ env: { GEMMA_MODEL: tinyGemmaPath(), LOCAL_WHISPER_MODEL: tinyWhisperPath(), STT_PARTIAL_INTERVAL_MS: '0' } });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--autoplay-policy=no-user-gesture-required',
        '--use-fake-device-for-media-stream',
        '--use-fake-ui-for-media-stream',
        `--use-file-for-fake-audio-capture=${micFile}`,
      ],
    });
    page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
    page.on('pageerror', (e) => consoleErrors.push(e.message));
  });

  after(async () => {
    await browser?.close();
    await t?.close();
    await closeSpeech();
  });

  it('is served by the service at /playground/ (and / redirects there), with the status of every engine', async () => {
    await page.goto(`${t.url}/`);
    assert.match(page.url(), /\/playground\/$/);
    await page.getByRole('status', { name: 'Service status' }).waitFor();
    const status = await page.getByRole('status', { name: 'Service status' }).innerText();
    for (const capability of ['llm: llama-cpp', 'stt: whisper-cpp', 'tts: espeak']) assert.match(status, new RegExp(capability));
  });

  it('Text: streams the reply into the output', async () => {
    await page.getByRole('tab', { name: 'Text', exact: true }).click();
    await page.getByLabel('Prompt').fill('Say hello.');
    await page.getByRole('button', { name: 'Generate' }).click();
    await page.getByTestId('text-output').filter({ hasText: GEMMA_REPLY }).waitFor({ timeout: 20_000 });
    await page.getByText(/tokens · first token/).waitFor();
    await page.screenshot({ path: path.join(ARTIFACTS, 'text.png'), fullPage: true });
  });

  it('Speech to text: transcribes an uploaded file with segments', async () => {
    await page.getByRole('tab', { name: 'Speech to text' }).click();
    await page.getByLabel('Audio file').setInputFiles({ name: 'clip.wav', mimeType: 'audio/wav', buffer: wav(2) });
    await page.getByRole('button', { name: 'Transcribe file' }).click();
    const result = page.getByTestId('stt-result');
    await result.waitFor({ timeout: 20_000 });
    assert.match(await result.innerText(), /Hello from the tiny whisper model\.[\s\S]*whisper-cpp/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'speech-to-text.png'), fullPage: true });
  });

  it('Text to speech: produces a playable audio element', async () => {
    await page.getByRole('tab', { name: 'Text to speech' }).click();
    await page.getByRole('tabpanel').locator('textarea').fill('The playground speaks.');
    await page.getByRole('button', { name: 'Speak' }).click();
    const audio = page.getByTestId('tts-audio');
    await audio.waitFor({ timeout: 20_000 });
    // runs in the page (this project's Node typings have no DOM): the element as the browser sees it
    type AudioElement = { readyState: number; duration: number; addEventListener(type: string, listener: () => void): void };
    const duration = await audio.evaluate((node) => {
      const el = node as unknown as AudioElement;
      return new Promise<number>((resolve) => (el.readyState >= 1 ? resolve(el.duration) : el.addEventListener('loadedmetadata', () => resolve(el.duration))));
    });
    assert.ok(duration > 0.5 && duration < 10, `audio element duration ${duration}`);
    await page.getByText(/espeak · first audio/).waitFor();
    await page.screenshot({ path: path.join(ARTIFACTS, 'text-to-speech.png'), fullPage: true });
  });

  it('Dialogue: a spoken turn through the fake microphone gets a transcript, a reply and a latency bar', async () => {
    await page.getByRole('tab', { name: 'Dialogue' }).click();
    await page.getByLabel(/echo cancellation/).uncheck(); // keep the fake microphone's level
    await page.getByRole('button', { name: 'Start conversation' }).click();
    const chat = page.getByTestId('dialogue-chat');
    await chat.locator('.bubble.assistant').filter({ hasText: GEMMA_REPLY }).first().waitFor({ timeout: 30_000 });
    await chat.locator('.latency').first().waitFor({ timeout: 10_000 });
    assert.match(await chat.locator('.bubble.user').first().innerText(), /Hello from the tiny whisper model/);
    assert.match(await page.getByTestId('dialogue-state').innerText(), /session/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'dialogue.png'), fullPage: true });
    await page.getByRole('button', { name: 'End conversation' }).click();
  });

  it('shows errors readably (message and request id) and fits a 375 px screen', async () => {
    await page.getByRole('tab', { name: 'Text to speech' }).click();
    await page.getByRole('tabpanel').locator('textarea').fill('x'.repeat(5000));
    await page.getByRole('button', { name: 'Speak' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.match(await alert.innerText(), /MAX_TTS_TEXT_CHARS[\s\S]*request id: [0-9a-f-]{36}/);
    await page.setViewportSize({ width: 375, height: 800 });
    for (const tab of ['Text', 'Speech to text', 'Text to speech', 'Dialogue']) {
      await page.getByRole('tab', { name: tab, exact: true }).click();
      const overflow = await page.evaluate(() => (globalThis as unknown as { document: { documentElement: { scrollWidth: number } } }).document.documentElement.scrollWidth);
      assert.ok(overflow <= 375, `${tab} is ${overflow} px wide at 375 px`);
    }
    await page.screenshot({ path: path.join(ARTIFACTS, 'narrow-375.png'), fullPage: true });
    assert.deepEqual(consoleErrors.filter((e) => !/Failed to load resource/.test(e)), []);
  });
});
