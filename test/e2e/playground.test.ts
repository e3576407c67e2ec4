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
import type { Browser, Page } from 'playwright-core';
import { startApp, type TestApp } from '../helpers/app.ts';
import { fakeMicrophoneWav, launchChromium } from '../helpers/browser.ts';
import { wav } from '../helpers/audio.ts';
import { freePort } from '../helpers/process.ts';
import { tinyGemmaPath, tinyWhisperPath } from '../helpers/models.ts';
import { closeSpeech } from '../helpers/speech.ts';

const ARTIFACTS = path.resolve('test-artifacts/playground');
const GEMMA_REPLY = 'Hello from the tiny Gemma model.';

/**
 * Probes installed before the page's own scripts: every microphone stream, WebSocket (and what it
 * sent) and AudioContext the page makes, so a test can ask whether they were released. With
 * `window.__noMic` set, getUserMedia fails as on a machine without a microphone.
 */
const PROBES = `(() => {
  const w = window;
  const probe = (w.__probe = { streams: [], sockets: [], contexts: [], sent: [], binary: 0, getUserMedia: 0 });
  const media = navigator.mediaDevices;
  if (media && media.getUserMedia) {
    const original = media.getUserMedia.bind(media);
    media.getUserMedia = async (constraints) => {
      probe.getUserMedia++;
      if (w.__noMic) throw new DOMException('Requested device not found', 'NotFoundError');
      const stream = await original(constraints);
      probe.streams.push(stream);
      return stream;
    };
  }
  const NativeSocket = w.WebSocket;
  w.WebSocket = class extends NativeSocket {
    constructor(...args) { super(...args); probe.sockets.push(this); }
    send(data) { if (typeof data === 'string') probe.sent.push(data); else probe.binary++; return super.send(data); }
  };
  const NativeContext = w.AudioContext;
  w.AudioContext = class extends NativeContext {
    constructor(...args) { super(...args); probe.contexts.push(this); }
  };
})();`;

interface ProbeView {
  liveTracks: number;
  tracks: number;
  sockets: { url: string; readyState: number }[];
  openContexts: number;
  contexts: number;
  sent: string[];
  binary: number;
  getUserMedia: number;
}

/** What the probes saw, as plain data (evaluated in the page; this project's Node typings have no DOM). */
async function probe(page: Page): Promise<ProbeView> {
  return page.evaluate(() => {
    type Track = { readyState: string };
    const p = (globalThis as unknown as { __probe: { streams: { getTracks(): Track[] }[]; sockets: { url: string; readyState: number }[]; contexts: { state: string }[]; sent: string[]; binary: number; getUserMedia: number } }).__probe;
    const tracks = p.streams.flatMap((s) => s.getTracks());
    return {
      liveTracks: tracks.filter((t) => t.readyState === 'live').length,
      tracks: tracks.length,
      sockets: p.sockets.map((s) => ({ url: s.url, readyState: s.readyState })),
      openContexts: p.contexts.filter((c) => c.state !== 'closed').length,
      contexts: p.contexts.length,
      sent: [...p.sent],
      binary: p.binary,
      getUserMedia: p.getUserMedia,
    };
  });
}

/** Polls until `check` holds (the page releases things asynchronously); fails with the last view. */
async function until(page: Page, check: (view: ProbeView) => boolean, what: string, timeoutMs = 15_000): Promise<ProbeView> {
  const deadline = Date.now() + timeoutMs;
  let view = await probe(page);
  while (!check(view)) {
    if (Date.now() > deadline) assert.fail(`${what}; the page holds ${JSON.stringify(view)}`);
    await new Promise((r) => setTimeout(r, 100));
    view = await probe(page);
  }
  return view;
}

describe('playground in headless Chromium', () => {
  let t: TestApp;
  let browser: Browser;
  let page: Page;
  const consoleErrors: string[] = [];

  before(async () => {
    assert.ok(fs.existsSync('frontend/dist/index.html'), 'build the playground first: npm run build -w frontend (npm test does)');
    const micFile = await fakeMicrophoneWav(ARTIFACTS);
    t = await startApp({ env: { GEMMA_MODEL: tinyGemmaPath(), LOCAL_WHISPER_MODEL: tinyWhisperPath(), STT_PARTIAL_INTERVAL_MS: '0' } });
    browser = await launchChromium({ fakeMic: micFile });
    page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    await page.addInitScript(PROBES);
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

  it('Text: streams the reply into the chat', async () => {
    await page.getByRole('tab', { name: 'Text', exact: true }).click();
    await page.getByLabel(/^Message/).fill('Say hello.');
    await page.getByRole('button', { name: 'Send' }).click();
    await page.getByTestId('text-output').filter({ hasText: GEMMA_REPLY }).waitFor({ timeout: 20_000 });
    await page.getByText(/tokens\/s · first token/).waitFor();
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

  it('Text to speech: voices are grouped, searchable, labelled once, and can be previewed', async () => {
    await page.getByRole('tab', { name: 'Text to speech' }).click();
    const select = page.getByRole('combobox', { name: /^Voice/ });
    await select.locator('optgroup').first().waitFor({ state: 'attached', timeout: 15_000 });
    assert.deepEqual(await select.locator('optgroup').evaluateAll((gs) => gs.map((g) => (g as unknown as { label: string }).label)), ['OpenAI voice names', 'Languages (eSpeak)']);
    const labels = await select.locator('option').allInnerTexts();
    assert.ok(labels.length > 100, `${labels.length} voices`);
    assert.deepEqual(labels.filter((l) => /\((espeak|openaudio)\)$/.test(l)), [], 'no engine suffix doubling the label');
    assert.equal(await page.getByTestId('clone-voice').count(), 0, 'no voice cloning without fish-speech');
    await page.getByLabel('Find a voice').fill('vietnam');
    assert.deepEqual(await select.locator('option').allInnerTexts(), ['default', 'Vietnamese (Central)', 'Vietnamese (Northern)', 'Vietnamese (Southern)']);
    await select.selectOption({ label: 'Vietnamese (Central)' });
    const sent = page.waitForRequest((r) => r.url().endsWith('/v1/text-to-speech') && r.method() === 'POST');
    await page.getByRole('button', { name: 'Preview voice' }).click();
    assert.equal((JSON.parse((await sent).postData() ?? '{}') as { voice?: string }).voice, 'vi-vn-x-central');
    assert.match(await page.getByTestId('voice-preview').innerText({ timeout: 20_000 }), /^Preview: Vietnamese \(Central\) · [\d.]+ s$/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'text-to-speech-voices.png'), fullPage: true });
    await page.getByLabel('Find a voice').fill('');
    await select.selectOption('');
  });

  it('Text to speech: a FLAC reply has its length and can seek', async () => {
    await page.getByRole('tab', { name: 'Text to speech' }).click();
    await page.getByRole('tabpanel').locator('textarea').fill('A reply in FLAC has a length.');
    await page.getByLabel('Format').selectOption('flac');
    await page.getByRole('button', { name: 'Speak' }).click();
    await page.getByText(/espeak · ready in/).waitFor({ timeout: 20_000 });
    type AudioElement = { readyState: number; duration: number; seekable: { length: number; end(i: number): number }; addEventListener(type: string, listener: () => void): void };
    const { duration, seekableEnd } = await page.getByTestId('tts-audio').evaluate((node) => {
      // no named helpers in here: tsx would wrap them in a __name() the page does not have
      const el = node as unknown as AudioElement;
      return new Promise<{ duration: number; seekableEnd: number }>((resolve) =>
        el.readyState >= 1
          ? resolve({ duration: el.duration, seekableEnd: el.seekable.length ? el.seekable.end(0) : 0 })
          : el.addEventListener('loadedmetadata', () => resolve({ duration: el.duration, seekableEnd: el.seekable.length ? el.seekable.end(0) : 0 })),
      );
    });
    assert.ok(Number.isFinite(duration) && duration > 0.5 && duration < 10, `FLAC duration ${duration}`);
    assert.ok(seekableEnd > 0.5, `FLAC seekable to ${seekableEnd} s`);
    await page.screenshot({ path: path.join(ARTIFACTS, 'text-to-speech-flac.png'), fullPage: true });
    await page.getByLabel('Format').selectOption('wav');
  });

  it('Dialogue: a spoken turn through the fake microphone gets a transcript, a reply and a latency bar', async () => {
    await page.getByRole('tab', { name: 'Dialogue' }).click();
    await page.getByLabel(/echo cancellation/).uncheck(); // keep the fake microphone's level
    await page.getByRole('button', { name: 'Start conversation' }).click();
    // recording feedback while the microphone is open: a level meter that moves, and a timer
    const recording = page.getByTestId('dialogue-recording');
    await recording.waitFor({ timeout: 15_000 });
    const meter = page.getByRole('meter', { name: 'Microphone level' });
    const deadline = Date.now() + 15_000;
    while (Number(await meter.getAttribute('value')) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.ok(Number(await meter.getAttribute('value')) > 0, 'the level meter shows the fake microphone');
    assert.match(await recording.innerText(), /\d:\d\d/);
    const chat = page.getByTestId('dialogue-chat');
    await chat.locator('.bubble.assistant').filter({ hasText: GEMMA_REPLY }).first().waitFor({ timeout: 30_000 });
    await chat.locator('.latency').first().waitFor({ timeout: 10_000 });
    // the latency bar has a legend and the total; the spoken reply can be replayed and downloaded
    assert.match(await chat.getByTestId('latency-legend').first().innerText(), /stt \d+ ms[\s\S]*llm → first sentence \d+ ms[\s\S]*tts → first audio \d+ ms[\s\S]*total \d+ ms/);
    const reply = chat.locator('.bubble.assistant').first();
    await reply.getByRole('button', { name: 'Replay' }).waitFor();
    const download = reply.getByRole('link', { name: 'Download' });
    assert.match((await download.getAttribute('href')) ?? '', /^blob:/);
    // loaded as media (the page's CSP lets media, not fetch, read blob: URLs)
    const seconds = await download.evaluate(
      (a) =>
        new Promise<number>((resolve) => {
          const g = globalThis as unknown as { Audio: new (src: string) => { duration: number; addEventListener(t: string, l: () => void): void } };
          const audio = new g.Audio((a as unknown as { href: string }).href);
          audio.addEventListener('loadedmetadata', () => resolve(audio.duration));
          audio.addEventListener('error', () => resolve(-1));
        }),
    );
    assert.ok(seconds > 0.3 && seconds < 20, `the reply's audio is kept (${seconds} s)`);
    assert.match(await chat.locator('.bubble.user').first().innerText(), /Hello from the tiny whisper model/);
    assert.match(await page.getByTestId('dialogue-state').innerText(), /session/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'dialogue.png'), fullPage: true });
    await page.getByRole('button', { name: 'End conversation' }).click();
  });

  it('Dialogue: "Hold to talk" released outside the button ends the turn and stops streaming the microphone', async () => {
    await page.getByRole('tab', { name: 'Dialogue' }).click();
    await page.getByRole('button', { name: 'Push-to-talk mode' }).click();
    const hold = page.getByRole('button', { name: 'Hold to talk' });
    await hold.waitFor({ timeout: 15_000 });
    await until(page, (v) => v.liveTracks > 0, 'the microphone opens');
    const usersBefore = await page.getByTestId('dialogue-chat').locator('.bubble.user').count();
    const box = (await hold.boundingBox())!;
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    const holding = await probe(page);
    await until(page, (v) => v.binary > holding.binary + 10, 'audio is streamed while the button is held');
    await new Promise((r) => setTimeout(r, 2500)); // hold through the fake microphone's sentence
    // a finger sliding off the button: released well outside it
    await page.mouse.move(box.x + box.width + 300, box.y + box.height + 300, { steps: 5 });
    await page.mouse.up();
    const released = await until(page, (v) => v.sent.includes('{"type":"commit"}'), 'the turn is committed on release');
    await new Promise((r) => setTimeout(r, 1500));
    const later = await probe(page);
    assert.equal(later.binary, released.binary, 'no microphone audio is sent after the release');
    assert.doesNotMatch(await page.getByTestId('dialogue-state').innerText(), /hearing you/);
    await page.getByTestId('dialogue-chat').locator('.bubble.user').nth(usersBefore).waitFor({ timeout: 30_000 });
    await page.screenshot({ path: path.join(ARTIFACTS, 'dialogue-push-to-talk.png'), fullPage: true });
    await page.getByRole('button', { name: 'End conversation' }).click();
    await until(page, (v) => v.liveTracks === 0 && v.openContexts === 0, 'End conversation releases the microphone and every AudioContext');
  });

  it('Dialogue: a cancelled pointer (the browser taking the gesture over) also ends the turn, once', async () => {
    await page.getByRole('tab', { name: 'Dialogue' }).click();
    await page.getByRole('button', { name: 'Push-to-talk mode' }).click();
    const hold = page.getByRole('button', { name: 'Hold to talk' });
    await hold.waitFor({ timeout: 15_000 });
    await until(page, (v) => v.liveTracks > 0, 'the microphone opens');
    const commits = (v: ProbeView) => v.sent.filter((m) => m === '{"type":"commit"}').length;
    const before = commits(await probe(page));
    const box = (await hold.boundingBox())!;
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    const holding = await probe(page);
    await until(page, (v) => v.binary > holding.binary + 5, 'audio is streamed while the button is held');
    await hold.dispatchEvent('pointercancel', { pointerId: 1, isPrimary: true, pointerType: 'mouse' });
    const cancelled = await until(page, (v) => commits(v) === before + 1, 'pointercancel commits the turn');
    await page.mouse.up();
    await new Promise((r) => setTimeout(r, 1000));
    const later = await probe(page);
    assert.equal(commits(later), before + 1, 'the release after a cancel commits nothing more');
    assert.equal(later.binary, cancelled.binary, 'no microphone audio after the cancel');
    await page.getByRole('button', { name: 'End conversation' }).click();
    await until(page, (v) => v.liveTracks === 0, 'End conversation releases the microphone');
  });

  it('Speech to text: leaving the tab during live transcription ends the microphone track and closes the socket', async () => {
    await page.getByRole('tab', { name: 'Speech to text' }).click();
    await page.getByRole('button', { name: 'Live (WebSocket)' }).click();
    await page.getByRole('button', { name: 'Stop live' }).waitFor();
    await until(page, (v) => v.liveTracks > 0 && v.sockets.some((s) => s.url.includes('/ws/stt') && s.readyState === 1), 'live transcription runs');
    await page.getByRole('tab', { name: 'Text', exact: true }).click();
    await until(
      page,
      (v) => v.liveTracks === 0 && v.sockets.filter((s) => s.url.includes('/ws/stt')).every((s) => s.readyState === 3) && v.openContexts === 0,
      'the microphone track ends and /ws/stt closes when the tab changes',
    );
  });

  it('Speech to text: the language reads the same with and without word timestamps, the engine is named, and a bad file replaces the old transcript', async () => {
    await page.getByRole('tab', { name: 'Speech to text' }).click();
    const result = page.getByTestId('stt-result');
    for (const words of [false, true]) {
      await page.getByLabel('word timestamps').setChecked(words);
      await page.getByLabel('Audio file').setInputFiles({ name: 'clip.wav', mimeType: 'audio/wav', buffer: wav(2) });
      await page.getByRole('button', { name: 'Transcribe file' }).click();
      await result.filter({ hasText: 'Hello from the tiny whisper model' }).waitFor({ timeout: 20_000 });
      assert.match(await result.locator('.meta').first().innerText(), /^English \(en\) · [\d.]+ s of audio · whisper-cpp · \d+ ms$/, `word timestamps ${words}`);
    }
    await page.getByLabel('word timestamps').setChecked(false);
    await page.getByLabel('Audio file').setInputFiles({ name: 'bad.wav', mimeType: 'audio/wav', buffer: Buffer.from('this is not audio at all, just text') });
    await page.getByRole('button', { name: 'Transcribe file' }).click();
    await page.getByRole('alert').waitFor({ timeout: 20_000 });
    assert.equal(await result.count(), 0, 'the previous transcript is gone, so the error is not read as its error');
    await page.screenshot({ path: path.join(ARTIFACTS, 'speech-to-text-bad-file.png'), fullPage: true });
  });

  it('Dialogue without a microphone: typed turns open none, End then new turns keep the old bubbles, reply AudioContexts are closed', async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const phone = await context.newPage();
    const errors: string[] = [];
    phone.on('pageerror', (e) => errors.push(e.message));
    await phone.addInitScript('window.__noMic = true;');
    await phone.addInitScript(PROBES);
    await phone.goto(`${t.url}/playground/#dialogue`);
    const chat = phone.getByTestId('dialogue-chat');
    const say = async (text: string, replies: number) => {
      await phone.getByLabel('Type instead').fill(text);
      await phone.getByRole('button', { name: 'Send' }).click();
      await chat.locator('.bubble.assistant .latency').nth(replies - 1).waitFor({ timeout: 30_000 });
    };
    await say('First question', 1);
    await say('Second question', 2);
    const connected = await probe(phone);
    assert.equal(connected.getUserMedia, 0, 'a typed turn never asks for the microphone');
    assert.equal(await phone.getByRole('alert').count(), 0, 'no microphone error for a typed turn');
    assert.match(await phone.getByTestId('dialogue-state').innerText(), /typed turns/);
    assert.ok(connected.contexts >= 2, `each spoken reply played (${connected.contexts} AudioContexts)`);
    await until(phone, (v) => v.openContexts <= 1, 'only the current reply holds an AudioContext');
    await phone.getByRole('button', { name: 'End conversation' }).click();
    await until(phone, (v) => v.openContexts === 0, 'ending closes the last AudioContext');
    await say('Third question', 3);
    const users = await chat.locator('.bubble.user').allInnerTexts();
    assert.deepEqual(users.map((u) => u.replace(/^You\s*/, '')), ['First question', 'Second question', 'Third question'], 'the new connection’s turn 1 does not overwrite the old turn 1');
    assert.equal(await chat.locator('.bubble.assistant').count(), 3);
    assert.equal((await probe(phone)).getUserMedia, 0);
    await phone.screenshot({ path: path.join(ARTIFACTS, 'dialogue-typed-phone.png'), fullPage: true });
    assert.deepEqual(errors, []);
    await context.close();
  });

  it('a WebSocket that cannot open says so and leaves nothing pending (Dialogue, live Speech to text)', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
    const other = await context.newPage();
    // REST reaches the service, WebSockets do not (a proxy that drops upgrades): every socket goes to a closed port
    await other.addInitScript(`{ const Native = window.WebSocket; window.WebSocket = class extends Native { constructor(url, protocols) { super(String(url).replace(/^ws:\\/\\/[^/]+/, ${JSON.stringify(closed.replace('http', 'ws'))}), protocols); } }; }`);
    await other.addInitScript(PROBES);
    await other.goto(`${t.url}/playground/#dialogue`);
    await other.getByLabel('Type instead').fill('Anyone there?');
    await other.getByRole('button', { name: 'Send' }).click();
    assert.match(await other.getByRole('alert').innerText(), /\/ws\/dialogue connection could not be opened/);
    await other.getByText('not connected').waitFor();
    assert.equal(await other.getByLabel('Type instead').inputValue(), 'Anyone there?', 'what was typed is kept');
    await other.getByRole('button', { name: 'Start conversation' }).waitFor();
    await other.getByRole('tab', { name: 'Speech to text' }).click();
    await other.getByRole('button', { name: 'Live (WebSocket)' }).click();
    assert.match(await other.getByRole('alert').innerText(), /\/ws\/stt connection could not be opened/);
    await other.getByRole('button', { name: 'Live (WebSocket)' }).waitFor(); // not stuck on "Stop live"
    const view = await probe(other);
    assert.equal(view.liveTracks, 0, 'no microphone left open');
    await context.close();
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
      await page.screenshot({ path: path.join(ARTIFACTS, `phone-${tab.toLowerCase().replace(/ /g, '-')}.png`), fullPage: true });
    }
    await page.screenshot({ path: path.join(ARTIFACTS, 'narrow-375.png'), fullPage: true });
    assert.deepEqual(consoleErrors.filter((e) => !/Failed to load resource/.test(e)), []);
  });
});
