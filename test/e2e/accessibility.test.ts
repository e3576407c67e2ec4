/**
 * Keyboard, screen reader and touch basics of the playground in real headless Chromium: the
 * connection drawer traps focus, closes on Escape and returns focus to its opener; the tabs move
 * with arrow keys, Home and End; one `main` landmark; a streamed reply is announced once, not token
 * by token; touch targets of at least 44 px on a phone; a focus ring with at least 3:1 contrast.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { startApp, type TestApp } from '../helpers/app.ts';
import { launchChromium } from '../helpers/browser.ts';
import { tinyGemmaPath } from '../helpers/models.ts';

const ARTIFACTS = path.resolve('test-artifacts/accessibility');
const GEMMA_REPLY = 'Hello from the tiny Gemma model.';

/** The focused element's accessible name-ish: its text, or its label's. */
async function focused(page: Page): Promise<string> {
  return page.evaluate(() => {
    const doc = (globalThis as unknown as { document: { activeElement: { textContent: string | null; id: string; closest(s: string): { textContent: string | null } | null } | null } }).document;
    const el = doc.activeElement;
    if (!el) return '';
    const inDialog = el.closest('[role="dialog"]') ? 'dialog:' : '';
    return `${inDialog}${el.closest('label')?.textContent?.trim() ?? el.textContent?.trim() ?? el.id}`;
  });
}

/** WCAG contrast ratio of two CSS rgb() colours. */
function contrast(a: string, b: string): number {
  const lum = (c: string) => {
    const [r, g, bl] = (c.match(/\d+(\.\d+)?/g) ?? []).slice(0, 3).map((v) => {
      const s = Number(v) / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r! + 0.7152 * g! + 0.0722 * bl!;
  };
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
  return (hi! + 0.05) / (lo! + 0.05);
}

describe('playground accessibility in headless Chromium', () => {
  let t: TestApp;
  let browser: Browser;
  let page: Page;

  before(async () => {
    assert.ok(fs.existsSync('frontend/dist/index.html'), 'build the playground first: npm run build -w frontend');
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    t = await startApp({ env: { GEMMA_MODEL: tinyGemmaPath() } });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    await page.goto(`${t.url}/playground/#text`);
    await page.getByRole('status', { name: 'Service status' }).waitFor();
  });

  after(async () => {
    await browser?.close();
    await t?.close();
  });

  it('the connection drawer takes focus, keeps it, closes on Escape and gives focus back to its opener', async () => {
    const opener = page.getByRole('button', { name: 'Connection settings' });
    await opener.focus();
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: 'Connection settings' });
    await dialog.waitFor();
    assert.match(await focused(page), /^dialog:/, 'focus moved into the drawer');
    for (let i = 0; i < 8; i++) {
      await page.keyboard.press(i % 3 === 2 ? 'Shift+Tab' : 'Tab');
      assert.match(await focused(page), /^dialog:/, `focus stays in the drawer (step ${i})`);
    }
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    assert.equal(await focused(page), 'Connection settings', 'focus is back on the opener');
  });

  it('tabs move with the arrow keys, Home and End, as one tab stop', async () => {
    await page.getByRole('tab', { name: 'Text', exact: true }).focus();
    const selected = async () => page.getByRole('tab', { selected: true }).innerText();
    await page.keyboard.press('ArrowRight');
    assert.equal(await selected(), 'Speech to text');
    assert.equal(await focused(page), 'Speech to text');
    await page.keyboard.press('End');
    assert.equal(await selected(), 'Dialogue');
    await page.keyboard.press('ArrowRight');
    assert.equal(await selected(), 'Text', 'wraps around');
    await page.keyboard.press('ArrowLeft');
    assert.equal(await selected(), 'Dialogue');
    await page.keyboard.press('Home');
    assert.equal(await selected(), 'Text');
    assert.deepEqual(await page.getByRole('tab').evaluateAll((tabs) => tabs.map((el) => (el as unknown as { tabIndex: number }).tabIndex)), [0, -1, -1, -1]);
  });

  it('has one main landmark holding the tab panel', async () => {
    assert.equal(await page.getByRole('main').count(), 1);
    assert.equal(await page.getByRole('main').getByRole('tabpanel').count(), 1);
  });

  it('announces a streamed reply once, when it is complete, not token by token', async () => {
    await page.getByLabel(/^Message/).fill('Say hello.');
    await page.getByRole('button', { name: 'Send' }).click();
    const announcement = page.getByTestId('text-announcement');
    await announcement.filter({ hasText: GEMMA_REPLY }).waitFor({ timeout: 20_000 });
    assert.equal(await announcement.getAttribute('aria-live'), 'polite');
    assert.equal(await announcement.innerText(), `Reply: ${GEMMA_REPLY}`);
    assert.equal(await page.getByTestId('text-output').getAttribute('aria-live'), null, 'the growing output is not a live region');
  });

  it('a focus ring with at least 3:1 contrast against the page', async () => {
    await page.getByRole('tab', { name: 'Text', exact: true }).focus();
    await page.keyboard.press('Shift+Tab');
    await page.keyboard.press('Tab'); // keyboard focus, so :focus-visible applies
    const { outline, width, page: background } = await page.evaluate(() => {
      const g = globalThis as unknown as { document: { activeElement: object; body: object }; getComputedStyle(e: object): { outlineColor: string; outlineWidth: string; backgroundColor: string; outlineStyle: string } };
      const style = g.getComputedStyle(g.document.activeElement);
      return { outline: style.outlineStyle === 'none' ? '' : style.outlineColor, width: style.outlineWidth, page: g.getComputedStyle(g.document.body).backgroundColor === 'rgba(0, 0, 0, 0)' ? 'rgb(246, 246, 248)' : g.getComputedStyle(g.document.body).backgroundColor };
    });
    assert.ok(outline, 'a visible outline');
    assert.ok(parseFloat(width) >= 2, `outline ${width}`);
    const ratio = contrast(outline, background);
    assert.ok(ratio >= 3, `focus ring ${outline} on ${background}: ${ratio.toFixed(2)}:1`);
    await page.screenshot({ path: path.join(ARTIFACTS, 'focus-ring.png') });
  });

  it('touch targets are at least 44 px high on a phone', async () => {
    const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true });
    await phone.goto(`${t.url}/playground/`);
    await phone.getByRole('status', { name: 'Service status' }).waitFor();
    for (const tab of ['Text', 'Speech to text', 'Text to speech', 'Dialogue']) {
      await phone.getByRole('tab', { name: tab, exact: true }).tap();
      await phone.getByRole('tabpanel').getByRole('heading', { name: tab, exact: true }).waitFor();
      const small = await phone.locator('button, select, input:not([type="checkbox"]):not([type="range"]):not([type="file"]), a').evaluateAll((els) =>
        els
          .map((el) => {
            const e = el as unknown as { getBoundingClientRect(): { height: number; width: number }; textContent: string | null; tagName: string };
            const r = e.getBoundingClientRect();
            return { what: `${e.tagName} ${e.textContent?.trim() ?? ''}`, height: r.height, width: r.width };
          })
          .filter((r) => r.width > 0 && r.height < 44),
      );
      assert.deepEqual(small, [], `${tab}: targets under 44 px`);
      await phone.screenshot({ path: path.join(ARTIFACTS, `phone-${tab.toLowerCase().replace(/ /g, '-')}.png`), fullPage: true });
    }
    await phone.close();
  });
});
