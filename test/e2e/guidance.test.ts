/**
 * The playground guiding a person past keys, missing models, a down server and microphone
 * trouble, in real headless Chromium against the real app with API keys on and no Gemma model:
 * a 401 opens the connection drawer saying a key is needed; the missing model's remedy is on the
 * page and what needs it is disabled with the reason; the status poll backs off while the server
 * is down; microphone errors say what to do; a link to /docs. Screenshots: test-artifacts/guidance/.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext } from 'playwright-core';
import { startApp, type TestApp } from '../helpers/app.ts';
import { launchChromium } from '../helpers/browser.ts';
import { tinyWhisperPath } from '../helpers/models.ts';
import { freePort } from '../helpers/process.ts';

const ARTIFACTS = path.resolve('test-artifacts/guidance');
const KEY = 'guidance-e2e-key-42';

describe('playground guidance in headless Chromium', () => {
  let t: TestApp;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  const fresh = async (viewport = { width: 1100, height: 900 }) => {
    const context = await browser.newContext({ viewport });
    contexts.push(context);
    return context.newPage();
  };
  const withKey = `localStorage.setItem('gemma-3-api.connection', JSON.stringify({ baseUrl: location.origin, apiKey: '${KEY}', keyHeader: 'X-API-Key' }));`;

  before(async () => {
    assert.ok(fs.existsSync('frontend/dist/index.html'), 'build the playground first: npm run build -w frontend');
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    t = await startApp({ env: { API_KEY_ENABLED: 'true', API_KEYS: KEY, GEMMA_MODEL: '/nonexistent/gemma-3.gguf', LOCAL_WHISPER_MODEL: tinyWhisperPath() } });
    browser = await launchChromium();
  });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    await t?.close();
  });

  it('a 401 opens the connection drawer saying the server needs a key; with the key saved, the call works', async () => {
    const page = await fresh();
    await page.goto(`${t.url}/playground/#tts`);
    const drawer = page.getByRole('dialog', { name: 'Connection settings' });
    await drawer.waitFor({ timeout: 15_000 });
    assert.match(await drawer.innerText(), /This server needs an API key/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'needs-key.png'), fullPage: true });
    await drawer.getByLabel('API key', { exact: true }).fill(KEY);
    await drawer.getByRole('button', { name: 'Save' }).click();
    await drawer.waitFor({ state: 'detached' });
    await page.getByRole('button', { name: 'Speak' }).click();
    await page.getByTestId('tts-audio').waitFor({ timeout: 20_000 });
  });

  it('a missing model shows its remedy on the page, and what needs it is disabled with the reason', async () => {
    const page = await fresh({ width: 390, height: 844 });
    await page.addInitScript(withKey);
    await page.goto(`${t.url}/playground/#text`);
    const remedies = page.getByRole('region', { name: 'What is not ready' });
    await remedies.waitFor({ timeout: 15_000 });
    assert.match(await remedies.innerText(), /llm · llama-cpp[\s\S]*missing model[\s\S]*GEMMA_MODEL/);
    assert.ok(await page.getByRole('button', { name: 'Send' }).isDisabled());
    await page.getByText('Unavailable: text generation is not available (llama-cpp: missing model).').waitFor();
    await page.screenshot({ path: path.join(ARTIFACTS, 'missing-model-phone.png'), fullPage: true });
    await page.getByRole('tab', { name: 'Dialogue' }).click();
    assert.ok(await page.getByRole('button', { name: 'Start conversation' }).isDisabled());
    assert.ok(await page.getByRole('button', { name: 'Send' }).isDisabled());
    await page.getByRole('tab', { name: 'Text to speech' }).click();
    assert.ok(await page.getByRole('button', { name: 'Speak' }).isEnabled(), 'text to speech is ready: not disabled');
  });

  it('links to the API reference on the same service', async () => {
    const page = await fresh();
    await page.addInitScript(withKey);
    await page.goto(`${t.url}/playground/`);
    const link = page.getByRole('link', { name: 'API reference' });
    assert.equal(await link.getAttribute('href'), `${t.url}/docs`);
    assert.equal((await fetch(`${t.url}/docs`)).status, 200);
  });

  it('microphone errors say what to do (blocked, none found)', async () => {
    for (const [name, advice] of [
      ['NotAllowedError', /Allow microphone access for this page/],
      ['NotFoundError', /No microphone found/],
    ] as const) {
      const page = await fresh();
      await page.addInitScript(withKey);
      await page.addInitScript(`navigator.mediaDevices.getUserMedia = async () => { throw new DOMException('browser words', '${name}'); };`);
      await page.goto(`${t.url}/playground/#stt`);
      await page.getByRole('button', { name: 'Record' }).click();
      assert.match(await page.getByRole('alert').innerText(), advice, name);
      await page.getByRole('tab', { name: 'Dialogue' }).click();
      // the spoken modes are disabled here (no Gemma), so Speech to text's live mode is the other path
      await page.getByRole('tab', { name: 'Speech to text' }).click();
      await page.getByRole('button', { name: 'Live (WebSocket)' }).click();
      assert.match(await page.getByRole('alert').innerText(), advice, `${name} (live)`);
      if (name === 'NotAllowedError') await page.screenshot({ path: path.join(ARTIFACTS, 'microphone-blocked.png'), fullPage: true });
    }
  });

  it('while the server is down, the status poll backs off instead of failing every 5 s', async () => {
    const page = await fresh();
    const down = `http://127.0.0.1:${await freePort()}`;
    await page.addInitScript(`localStorage.setItem('gemma-3-api.connection', JSON.stringify({ baseUrl: '${down}', apiKey: '', keyHeader: 'X-API-Key' }));`);
    const polls: string[] = [];
    page.on('request', (r) => r.url().startsWith(down) && r.url().endsWith('/health/ready') && polls.push(r.url()));
    await page.clock.install();
    await page.goto(`${t.url}/playground/`);
    await page.getByText(/cannot reach/).waitFor({ timeout: 15_000 });
    // one simulated minute, in 5 s steps, each given real time for the refused request to fail
    for (let i = 0; i < 12; i++) {
      await page.clock.runFor(5000);
      await new Promise((r) => setTimeout(r, 400));
    }
    assert.ok(polls.length >= 2, `it keeps checking (${polls.length} polls)`);
    assert.ok(polls.length <= 4, `${polls.length} polls in a minute while the server is down (every 5 s would be 13)`);
    const before = polls.length;
    await page.getByRole('button', { name: 'check again' }).click();
    const deadline = Date.now() + 10_000;
    while (polls.length === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.equal(polls.length, before + 1, 'check again polls at once');
  });
});
