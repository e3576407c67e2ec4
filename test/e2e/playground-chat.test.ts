/**
 * The playground's chat, recording and voice features in real headless Chromium against the real
 * service (tiny generated models, partial transcripts on, a fake fish-speech server for cloned
 * voices): Text as a chat over POST /v1/responses (system prompt, history by previous_response_id,
 * regenerate, copy, stop, tokens/s, Ctrl+Enter), live partial transcripts in the Dialogue bubble,
 * the Speech to text record timer, and cloning a voice (uploaded or recorded clip) then speaking
 * with it. Screenshots, desktop and phone, go to test-artifacts/playground-chat/ (git-ignored).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page, Request } from 'playwright-core';
import { startFakeFishSpeech, type FakeFishSpeech } from '../fakes/fish-speech.ts';
import { startApp, type TestApp } from '../helpers/app.ts';
import { fakeMicrophoneWav, launchChromium } from '../helpers/browser.ts';
import { wav } from '../helpers/audio.ts';
import { tinyGemmaPath, tinyWhisperPath } from '../helpers/models.ts';
import { closeSpeech } from '../helpers/speech.ts';

const ARTIFACTS = path.resolve('test-artifacts/playground-chat');
const GEMMA_REPLY = 'Hello from the tiny Gemma model.';
const WHISPER_TEXT = 'Hello from the tiny whisper model.';
const DESKTOP = { width: 1100, height: 900 };
const PHONE = { width: 390, height: 844 };

/** Every text the user's Dialogue bubble showed while marked partial (they come and go between polls). */
const PARTIAL_PROBE = `(() => {
  const seen = (window.__partials = []);
  new MutationObserver(() => {
    for (const el of document.querySelectorAll('.bubble.user.partial')) {
      const text = el.textContent;
      if (seen[seen.length - 1] !== text) seen.push(text);
    }
  }).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
})();`;

describe('playground chat, partial transcripts, record timer and voice cloning in headless Chromium', () => {
  let t: TestApp;
  let fish: FakeFishSpeech;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const consoleErrors: string[] = [];

  /** The desktop screenshot, then the same state at phone width. */
  async function screenshots(name: string) {
    await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
    await page.setViewportSize(PHONE);
    await page.screenshot({ path: path.join(ARTIFACTS, `${name}-phone.png`), fullPage: true });
    const width = await page.evaluate(() => (globalThis as unknown as { document: { documentElement: { scrollWidth: number } } }).document.documentElement.scrollWidth);
    assert.ok(width <= PHONE.width, `${name} is ${width} px wide on a ${PHONE.width} px phone`);
    await page.setViewportSize(DESKTOP);
  }

  before(async () => {
    assert.ok(fs.existsSync('frontend/dist/index.html'), 'build the playground first: npm run build -w frontend (npm test does)');
    const micFile = await fakeMicrophoneWav(ARTIFACTS);
    fish = await startFakeFishSpeech();
    t = await startApp({
      env: {
        GEMMA_MODEL: tinyGemmaPath(),
        LOCAL_WHISPER_MODEL: tinyWhisperPath(),
        STT_PARTIAL_INTERVAL_MS: '200',
        TTS_BACKEND: 'openaudio,embedded',
        OPENAUDIO_API_BASE: fish.url,
      },
    });
    browser = await launchChromium({ fakeMic: micFile });
    context = await browser.newContext({ viewport: DESKTOP });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: t.url });
    page = await context.newPage();
    await page.addInitScript(PARTIAL_PROBE);
    page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
    page.on('pageerror', (e) => consoleErrors.push(e.message));
    await page.goto(`${t.url}/playground/#text`);
    await page.getByRole('status', { name: 'Service status' }).filter({ hasText: 'openaudio' }).waitFor({ timeout: 15_000 });
  });

  after(async () => {
    await browser?.close();
    await t?.close();
    await fish?.close();
    await closeSpeech();
  });

  it('Text is a chat over /v1/responses: system prompt, history by previous_response_id, tokens/s, Ctrl+Enter, regenerate, copy', async () => {
    const sent: Record<string, unknown>[] = [];
    const onRequest = (r: Request) => {
      if (r.url().endsWith('/v1/responses') && r.method() === 'POST') sent.push(JSON.parse(r.postData() ?? '{}') as Record<string, unknown>);
    };
    page.on('request', onRequest);
    const chat = page.getByTestId('text-chat');
    const replies = chat.locator('.bubble.assistant');
    // only the sampling controls the Responses API has
    await page.getByText('Sampling').click();
    await page.getByLabel('Top p').fill('0.5');
    await page.getByLabel('Temperature').fill('0.3');
    await page.getByLabel('Max tokens').fill('64');
    assert.equal(await page.getByLabel(/penalty|stop sequence/i).count(), 0, 'no controls the route would ignore');

    await page.getByLabel('System prompt').fill('You answer in one sentence.');
    await page.getByLabel(/^Message/).fill('Say hello.');
    await page.getByLabel(/^Message/).press('Control+Enter');
    await replies.first().filter({ hasText: GEMMA_REPLY }).waitFor({ timeout: 20_000 });
    const meta = replies.first().locator('.meta');
    await meta.filter({ hasText: /tokens\/s/ }).waitFor({ timeout: 10_000 });
    assert.match(await meta.innerText(), /^\d+ tokens · [\d.]+ tokens\/s · first token \d+ ms$/);
    assert.equal(await page.getByLabel(/^Message/).inputValue(), '', 'the box is cleared once sent');
    assert.equal(sent.length, 1);
    assert.deepEqual(sent[0], { input: 'Say hello.', instructions: 'You answer in one sentence.', max_output_tokens: 64, temperature: 0.3, top_p: 0.5, stream: true });
    const firstId = await replies.first().getAttribute('data-response-id');
    assert.match(firstId ?? '', /^resp_/);

    // the next turn continues the stored conversation (the system prompt goes again: it is not carried over)
    await page.getByLabel(/^Message/).fill('And again?');
    await page.getByRole('button', { name: 'Send' }).click();
    await replies.nth(1).locator('.meta').filter({ hasText: /tokens\/s/ }).waitFor({ timeout: 20_000 });
    assert.equal(sent[1]!.previous_response_id, firstId);
    assert.equal(sent[1]!.instructions, 'You answer in one sentence.');
    const secondId = await replies.nth(1).getAttribute('data-response-id');
    const stored = (await (await fetch(`${t.url}/v1/responses/${secondId}/input_items`)).json()) as { data: { content: { text: string }[] }[] };
    assert.equal(stored.data[0]?.content[0]?.text, 'And again?');

    // regenerate: the last user turn again, after the reply before it, in place of the last reply
    assert.equal(await replies.first().getByRole('button', { name: 'Regenerate' }).count(), 0, 'only the last reply regenerates');
    await replies.nth(1).getByRole('button', { name: 'Regenerate' }).click();
    const deadline = Date.now() + 20_000;
    while (sent.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual({ input: sent[2]!.input, previous: sent[2]!.previous_response_id }, { input: 'And again?', previous: firstId });
    await replies.nth(1).locator('.meta').filter({ hasText: /tokens\/s/ }).waitFor({ timeout: 20_000 });
    assert.equal(await chat.locator('.bubble.user').count(), 2);
    assert.equal(await replies.count(), 2);
    const regenerated = await replies.nth(1).getAttribute('data-response-id');
    assert.ok(regenerated && regenerated !== secondId && regenerated !== firstId, `a new response (${regenerated})`);

    // copy a reply
    await replies.first().getByRole('button', { name: 'Copy' }).click();
    await replies.first().getByRole('button', { name: 'Copied' }).waitFor();
    assert.equal(await page.evaluate(() => (globalThis as unknown as { navigator: { clipboard: { readText(): Promise<string> } } }).navigator.clipboard.readText()), GEMMA_REPLY);
    assert.equal(await page.getByTestId('text-announcement').innerText(), `Reply: ${GEMMA_REPLY}`);
    await screenshots('text-chat');
    page.off('request', onRequest);
  });

  it('Text: Stop ends a reply that is still coming, and the chat goes on', async () => {
    const chat = page.getByTestId('text-chat');
    const before = await chat.locator('.bubble.assistant').count();
    // hold the request at the network so the reply is certainly still running when Stop is pressed
    let release: () => void = () => undefined;
    await page.route('**/v1/responses', async (route) => {
      await new Promise<void>((r) => (release = r));
      await route.abort().catch(() => undefined);
    });
    await page.getByLabel(/^Message/).fill('A long story, please.');
    await page.getByRole('button', { name: 'Send' }).click();
    const stop = page.getByRole('button', { name: 'Stop' });
    assert.ok(await page.getByRole('button', { name: 'Send' }).isDisabled(), 'one reply at a time');
    await stop.click();
    await chat.locator('.bubble.assistant').nth(before).filter({ hasText: 'stopped' }).waitFor({ timeout: 10_000 });
    assert.ok(await stop.isDisabled());
    release();
    await page.unroute('**/v1/responses');
    assert.equal(await page.getByRole('alert').count(), 0, 'stopping is not an error');
    await page.getByLabel(/^Message/).fill('Still there?');
    await page.getByRole('button', { name: 'Send' }).click();
    await chat.locator('.bubble.assistant').nth(before + 1).filter({ hasText: GEMMA_REPLY }).waitFor({ timeout: 20_000 });
    await page.getByRole('button', { name: 'New chat' }).click();
    assert.equal(await chat.locator('.bubble').count(), 0);
  });

  it('Speech to text: a timer runs while recording', async () => {
    await page.getByRole('tab', { name: 'Speech to text' }).click();
    await page.getByRole('button', { name: 'Record' }).click();
    const timer = page.getByTestId('stt-recording');
    await timer.waitFor({ timeout: 15_000 });
    assert.match(await timer.innerText(), /Recording\s+0:0\d/);
    await timer.filter({ hasText: /0:0[2-9]/ }).waitFor({ timeout: 15_000 });
    await screenshots('speech-to-text-recording');
    await page.getByRole('button', { name: 'Stop recording' }).click();
    await page.getByTestId('stt-result').filter({ hasText: WHISPER_TEXT }).waitFor({ timeout: 30_000 });
    assert.equal(await timer.count(), 0, 'the timer goes with the recording');
  });

  it('Dialogue: the partial transcript shows in the user bubble while speaking, then the final one', async () => {
    await page.getByRole('tab', { name: 'Dialogue' }).click();
    await page.getByLabel(/echo cancellation/).uncheck(); // keep the fake microphone's level
    await page.getByRole('button', { name: 'Start conversation' }).click();
    const chat = page.getByTestId('dialogue-chat');
    const partial = chat.locator('.bubble.user.partial');
    await partial.first().waitFor({ timeout: 30_000 });
    await page.screenshot({ path: path.join(ARTIFACTS, 'dialogue-partial.png'), fullPage: true });
    await chat.locator('.bubble.assistant').filter({ hasText: GEMMA_REPLY }).first().waitFor({ timeout: 30_000 });
    const seen = await page.evaluate(() => (globalThis as unknown as { __partials: string[] }).__partials);
    assert.ok(seen.some((s) => s.includes(`${WHISPER_TEXT.replace(/\.$/, '')}…`)), `partials seen: ${JSON.stringify(seen)}`);
    const user = chat.locator('.bubble.user').first();
    const final = await user.innerText();
    assert.ok(final.includes(WHISPER_TEXT) && !final.endsWith('…'), `the final text, without the partial ellipsis: ${final}`);
    assert.equal(await user.evaluate((el) => (el as unknown as { classList: { contains(c: string): boolean } }).classList.contains('partial')), false);
    // the fake microphone loops: the next turn's partial may already be showing (and interrupt the reply), after this turn's reply
    await page.waitForTimeout(1500);
    const roles = await chat.locator('.bubble').evaluateAll((els) => els.map((el) => (el as unknown as { className: string }).className));
    assert.deepEqual(roles.slice(0, 2).map((c) => c.split(' ')[1]), ['user', 'assistant'], `each user turn before its reply: ${JSON.stringify(roles)}`);
    await screenshots('dialogue-final');
    await page.getByRole('button', { name: 'End conversation' }).click();
    await page.getByTestId('dialogue-state').filter({ hasText: 'not connected' }).waitFor();
    assert.equal(await partial.count(), 0, 'an unfinished partial does not stay after the conversation ends');
  });

  it('Text to speech: a voice cloned from an uploaded clip and its transcript speaks at once', async () => {
    await page.getByRole('tab', { name: 'Text to speech' }).click();
    await page.getByText('Clone a voice (fish-speech)').click();
    const clone = page.getByTestId('clone-voice');
    await clone.getByLabel('Voice name').fill('Ada Lovelace');
    await clone.getByLabel('Reference clip').setInputFiles({ name: 'ada.wav', mimeType: 'audio/wav', buffer: wav(2, { rate: 22050 }) });
    await clone.getByLabel('Transcript of the clip').fill('the words in the clip');
    await clone.getByRole('button', { name: 'Add voice' }).click();
    await clone.getByRole('status').filter({ hasText: 'Voice “Ada Lovelace” added' }).waitFor({ timeout: 20_000 });
    const added = fish.requests.find((r) => r.body.id === 'Ada Lovelace');
    assert.ok(added, 'fish-speech received the reference');
    assert.equal(added.body.text, 'the words in the clip');
    assert.deepEqual(Buffer.from(added.body.audio as Uint8Array), wav(2, { rate: 22050 }));
    const select = page.getByRole('combobox', { name: /^Voice/ });
    await select.locator('optgroup[label="Your voices (fish-speech)"] option', { hasText: 'Ada Lovelace' }).waitFor({ state: 'attached', timeout: 10_000 });
    assert.equal(await select.inputValue(), 'Ada Lovelace', 'the new voice is selected');
    await page.getByRole('tabpanel').locator('textarea').first().fill('In her voice.');
    await page.getByRole('button', { name: 'Speak' }).click();
    await page.getByTestId('tts-audio').waitFor({ timeout: 20_000 });
    assert.equal(fish.requests.find((r) => r.body.text === 'In her voice.')?.body.reference_id, 'Ada Lovelace');
    await screenshots('text-to-speech-clone');
  });

  it('Text to speech: a voice cloned from a clip recorded in the page, with a timer while recording', async () => {
    await page.getByRole('tab', { name: 'Text to speech' }).click();
    const clone = page.getByTestId('clone-voice');
    if (!(await clone.getByLabel('Voice name').isVisible())) await page.getByText('Clone a voice (fish-speech)').click();
    await clone.getByLabel('Voice name').fill('recorded-voice');
    await clone.getByRole('button', { name: 'Record a clip' }).click();
    const timer = clone.getByTestId('clone-recording');
    await timer.filter({ hasText: /0:0[2-9]/ }).waitFor({ timeout: 15_000 });
    assert.ok(await clone.getByRole('button', { name: 'Add voice' }).isDisabled(), 'not while recording');
    await clone.getByRole('button', { name: 'Stop recording' }).click();
    await clone.getByTestId('clone-clip').filter({ hasText: 'recording.webm' }).waitFor();
    await clone.getByLabel('Transcript of the clip').fill('What is the weather like today?');
    await clone.getByRole('button', { name: 'Add voice' }).click();
    await clone.getByRole('status').filter({ hasText: 'Voice “recorded-voice” added' }).waitFor({ timeout: 20_000 });
    const added = fish.requests.find((r) => r.body.id === 'recorded-voice');
    assert.ok(added && (added.body.audio as Uint8Array).length > 1000, 'the recording reached fish-speech');
    assert.equal(await page.getByRole('combobox', { name: /^Voice/ }).inputValue(), 'recorded-voice');
    await screenshots('text-to-speech-clone-recorded');
    assert.deepEqual(consoleErrors.filter((e) => !/Failed to load resource/.test(e)), []);
  });
});
