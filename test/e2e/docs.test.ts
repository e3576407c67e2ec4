/**
 * /docs in real headless Chromium against the real service process, opened on the browser port
 * (BROWSER_PORT; browsers refuse 6666): "Test Request" reaches the service that served the page,
 * /health needs no key, WebSockets are documented without a request client, the page has a title
 * and a language. Screenshots go to test-artifacts/docs/ (git-ignored).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/browser.ts';
import { freePort, spawnService, waitForHealth, type ServiceProcess } from '../helpers/process.ts';
import { recordSecrets } from '../helpers/test-logs.ts';

const ARTIFACTS = path.resolve('test-artifacts/docs');
const KEY = 'docs-e2e-key-0123';

describe('/docs in headless Chromium on the browser port', () => {
  let service: ServiceProcess;
  let browserUrl: string;
  let browser: Browser;
  let page: Page;

  before(async () => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    recordSecrets([KEY]);
    const browserPort = await freePort();
    service = spawnService({ LOG_LEVEL: 'info', API_KEY_ENABLED: 'true', API_KEYS: KEY, BROWSER_PORT: String(browserPort), TTS_BACKEND: 'embedded' }, await freePort());
    browserUrl = `http://127.0.0.1:${browserPort}`;
    await waitForHealth(browserUrl, 60_000);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  });

  after(async () => {
    await browser?.close();
    service?.child.kill('SIGTERM');
    await service?.exited;
  });

  it('has a title and a language, and lists the WebSocket protocols without a request client', async () => {
    await page.goto(`${browserUrl}/docs`);
    assert.equal(await page.title(), 'gemma-3-api · API reference');
    assert.equal(await page.locator('html').getAttribute('lang'), 'en');
    await page.getByRole('button', { name: /Open Group - health/ }).or(page.getByRole('button', { name: /Close Group - health/ })).first().waitFor({ timeout: 30_000 });
    const groups = (await page.getByRole('button', { name: /Group - / }).allInnerTexts()).join('\n');
    for (const tag of ['health', 'speech-to-text', 'text-to-speech', 'dialogue']) assert.match(groups, new RegExp(`Group - ${tag}$`, 'm'));
    assert.doesNotMatch(groups, /pending/);
    const spec = (await (await fetch(`${browserUrl}/docs/openapi.json`)).json()) as { servers: { url: string }[]; info: { description: string }; paths: Record<string, { get?: { security?: unknown[]; 'x-scalar-ignore'?: boolean } }> };
    assert.equal(spec.servers[0]!.url, '/', 'the first server is the page’s own origin');
    assert.deepEqual(spec.paths['/health']!.get!.security, []);
    assert.deepEqual(spec.paths['/health/ready']!.get!.security, []);
    assert.equal(spec.paths['/ws/stt']!.get!['x-scalar-ignore'], true);
    assert.match(spec.info.description, /## WebSockets[\s\S]*`\/ws\/dialogue`[\s\S]*`\/ws\/stt`[\s\S]*`\/ws\/tts`/);
    // /ws/stt appears once — its heading in the introduction — and not as an operation with a request client
    assert.equal(await page.getByText('/ws/stt', { exact: true }).count(), 1);
    assert.equal(await page.getByRole('heading', { name: 'WebSockets' }).count(), 1);
  });

  it('"Test Request" on /health is sent to the service on the browser port, with no key, and answers 200', async () => {
    await page.goto(`${browserUrl}/docs#tag/health/GET/health`);
    const testRequest = page.getByRole('button', { name: /Test Request/ }).first();
    await testRequest.waitFor({ timeout: 30_000 });
    await page.screenshot({ path: path.join(ARTIFACTS, 'docs-desktop.png') });
    await testRequest.click();
    const answered = page.waitForResponse((r) => r.url() === `${browserUrl}/health` && r.request().method() === 'GET', { timeout: 30_000 });
    await page.getByRole('button', { name: /^Send/ }).first().click();
    const response = await answered;
    assert.equal(response.status(), 200);
    assert.deepEqual(await response.json(), { status: 'ok' });
    await page.getByText('200 OK').first().waitFor({ timeout: 10_000 });
    await page.screenshot({ path: path.join(ARTIFACTS, 'docs-test-request.png') });
    assert.match(service.output(), /"route":"\/health"[^\n]*"status":200/, 'the service itself answered');
  });

  it('fits a phone screen', async () => {
    await page.keyboard.press('Escape');
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${browserUrl}/docs`);
    await page.waitForTimeout(1500); // the reference renders client-side; the screenshot is for a person to look at
    await page.screenshot({ path: path.join(ARTIFACTS, 'docs-phone.png') });
  });
});
