/**
 * /docs in a real headless Chromium (Debian's, driven by playwright-core): the page renders every
 * route of the OpenAPI document grouped by tag, and the webhook event. Takes a screenshot into a temp
 * dir; `npm run docs:screenshot` (DOCS_SCREENSHOT=<path>) writes it over the tracked docs/docs-page.png.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from './harness/stack.js';

const root = path.resolve(import.meta.dirname, '..');
const executablePath = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

describe('API docs page', () => {
  let stack: Stack;
  let browser: Browser;
  let tmp: string;

  beforeAll(async () => {
    if (!existsSync(executablePath))
      throw new Error(`no Chromium at ${executablePath}: run scripts/setup.sh (installs Debian's chromium) or set CHROMIUM_PATH`);
    stack = await startStack({ worker: false });
    tmp = await mkdtemp(path.join(os.tmpdir(), 'signspool-docs-page-'));
    browser = await chromium.launch({
      executablePath,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('lists every route and webhook of the OpenAPI document, grouped by tag', async () => {
    const doc = (await (await fetch(`${stack.apiUrl}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
      webhooks: Record<string, Record<string, unknown>>;
      tags: { name: string }[];
    };
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const external: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(stack.apiUrl)) external.push(r.url());
    });
    // The page runs under its Content-Security-Policy: nothing it needs may be blocked.
    const blocked: string[] = [];
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) blocked.push(m.text());
    });
    const answer = await page.goto(`${stack.apiUrl}/docs`);
    expect(answer?.headers()['content-security-policy']).toMatch(/frame-ancestors 'none'/);
    expect(answer?.headers()['x-content-type-options']).toBe('nosniff');
    await page.waitForSelector('.opblock-summary-path', { timeout: 20_000 });
    const shown = await page.$$eval('.opblock', (blocks) =>
      blocks.map(
        (b) =>
          `${b.querySelector('.opblock-summary-method')?.textContent?.trim()} ${b.querySelector('.opblock-summary-path')?.getAttribute('data-path') ?? b.querySelector('.opblock-summary-path')?.textContent?.trim()}`,
      ),
    );
    const expected = [doc.paths, doc.webhooks].flatMap((group) =>
      Object.entries(group).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)),
    );
    expect(shown.map((s) => s.replace(/\u200b/g, '')).sort()).toEqual(expected.sort());
    const tags = await page.$$eval('.opblock-tag', (els) => els.map((e) => e.getAttribute('data-tag') ?? ''));
    expect(tags.filter((t) => t !== '').sort()).toEqual(doc.tags.map((t) => t.name).sort());
    expect(await page.locator('text=Webhooks').count()).toBeGreaterThan(0);
    expect(external).toEqual([]);
    expect(blocked).toEqual([]);
    const screenshot = process.env['DOCS_SCREENSHOT'] ? path.resolve(root, process.env['DOCS_SCREENSHOT']) : path.join(tmp, 'docs-page.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    expect((await stat(screenshot)).size).toBeGreaterThan(10_000);
  });
});
