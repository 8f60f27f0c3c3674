/**
 * Bull Board under /admin/queues, hardened: it renders in a real Chromium (playwright-core) under
 * its own CSP and lists the sign and webhook queues; it is read-only by default (every change 403
 * ADMIN_READ_ONLY, nothing queued); with ADMIN_QUEUES_WRITABLE=true a cross-site form post (Basic
 * credentials the browser resends) is refused while a same-origin change is accepted; answers carry
 * Cache-Control: no-store and no X-Powered-By; with Redis down its API answers 503 problem+json
 * with Retry-After, not a 500 with an internal message.
 */
import { existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QUEUES } from '@signspool/shared/queue';
import { startTestRedis, type TestRedis } from './harness/redis.js';
import { startStack, type Stack } from './harness/stack.js';

const ADMIN_TOKEN = 'adm_board-token-abcdefghijklmnopqrstuvwxyz';
const BASIC = { authorization: `Basic ${Buffer.from(`ops:${ADMIN_TOKEN}`).toString('base64')}` };
const executablePath = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

/** The writes Bull Board offers, as its UI sends them. */
const WRITES = [
  ['POST', '/api/queues/sign/add', { name: 'sign-document', data: { injected: true } }],
  ['PUT', '/api/queues/sign/empty', undefined],
  ['PUT', '/api/queues/sign/obliterate', undefined],
  ['PUT', '/api/queues/webhook/retry/failed', undefined],
  ['PUT', '/api/queues/webhook/promote', undefined],
  ['PUT', '/api/queues/webhook/clean/completed', undefined],
  ['PUT', '/api/queues/webhook/job-1/update-data', { data: {} }],
] as const;

const problemOf = async (res: Response) => ({ status: res.status, type: res.headers.get('content-type'), body: (await res.json()) as Record<string, unknown> });

describe('Bull Board, read-only by default', () => {
  let stack: Stack;
  let redis: Redis;
  let browser: Browser | undefined;

  beforeAll(async () => {
    stack = await startStack({ worker: false, env: { ADMIN_TOKEN } });
    redis = new Redis(stack.config.redisUrl ?? '', { maxRetriesPerRequest: null });
  });
  afterAll(async () => {
    await browser?.close();
    await redis?.quit();
    await stack?.stop();
  });

  it('renders in Chromium under its own CSP and lists the sign and webhook queues', async () => {
    if (!existsSync(executablePath)) throw new Error(`no Chromium at ${executablePath}: run scripts/setup.sh or set CHROMIUM_PATH`);
    browser = await chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
    const context = await browser.newContext({ httpCredentials: { username: 'ops', password: ADMIN_TOKEN } });
    const page = await context.newPage();
    const blockedScripts: string[] = [];
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text()) && /script/i.test(m.text())) blockedScripts.push(m.text());
    });
    const answer = await page.goto(`${stack.apiUrl}/admin/queues`);
    expect(answer?.status()).toBe(200);
    const csp = answer?.headers()['content-security-policy'] ?? '';
    expect(csp).toMatch(/script-src 'self'/);
    expect(csp).toMatch(/frame-ancestors 'none'/);
    // The queues are listed (the page left "Loading"): a link to each queue's page.
    for (const name of Object.values(QUEUES)) await page.locator(`a[href*="queue/${name}"]`).first().waitFor({ timeout: 30_000 });
    expect(blockedScripts).toEqual([]);
  }, 60_000);

  it('refuses every change (403 ADMIN_READ_ONLY problem+json), and queues nothing', async () => {
    for (const [method, path, body] of WRITES) {
      const res = await fetch(`${stack.apiUrl}/admin/queues${path}`, {
        method,
        headers: { ...BASIC, 'content-type': 'application/json', 'sec-fetch-site': 'same-origin' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const p = await problemOf(res);
      expect(p.status, `${method} ${path}`).toBe(403);
      expect(p.type).toContain('application/problem+json');
      expect(p.body['code']).toBe('ADMIN_READ_ONLY');
    }
    const sign = new Queue(QUEUES.sign, { connection: redis, prefix: stack.config.queuePrefix });
    try {
      expect(await sign.count()).toBe(0);
    } finally {
      await sign.close();
    }
    // The UI is told so: no buttons that would only fail.
    const queues = (await (await fetch(`${stack.apiUrl}/admin/queues/api/queues`, { headers: BASIC })).json()) as { queues: { readOnlyMode: boolean }[] };
    expect(queues.queues.map((q) => q.readOnlyMode)).toEqual([true, true]);
  });

  it('answers with Cache-Control: no-store and without X-Powered-By, page and API', async () => {
    for (const p of ['', '/api/queues']) {
      const res = await fetch(`${stack.apiUrl}/admin/queues${p}`, { headers: BASIC });
      await res.arrayBuffer();
      expect(res.status, p).toBe(200);
      expect(res.headers.get('cache-control'), p).toBe('no-store');
      expect(res.headers.get('x-powered-by'), p).toBeNull();
    }
  });
});

describe('Bull Board with ADMIN_QUEUES_WRITABLE=true', () => {
  let stack: Stack;
  let redis: Redis;
  let attacker: http.Server;
  let attackerUrl = '';

  beforeAll(async () => {
    stack = await startStack({ worker: false, env: { ADMIN_TOKEN, ADMIN_QUEUES_WRITABLE: 'true' } });
    redis = new Redis(stack.config.redisUrl ?? '', { maxRetriesPerRequest: null });
    // Another site: a page whose form posts to the board as soon as it loads.
    attacker = http.createServer((_req, res) => {
      res
        .writeHead(200, { 'content-type': 'text/html' })
        .end(
          `<form id="f" method="POST" action="${stack.apiUrl}/admin/queues/api/queues/sign/add" enctype="text/plain">` +
            `<input name='{"name":"sign-document","data":{"x":"' value='"}}'></form><script>document.getElementById('f').submit()</script>`,
        );
    });
    await new Promise<void>((r) => attacker.listen(0, 'localhost', () => r()));
    attackerUrl = `http://localhost:${(attacker.address() as AddressInfo).port}/`;
  });
  afterAll(async () => {
    await new Promise<void>((r) => attacker?.close(() => r()));
    await redis?.quit();
    await stack?.stop();
  });

  const signJobs = async (): Promise<number> => {
    const q = new Queue(QUEUES.sign, { connection: redis, prefix: stack.config.queuePrefix });
    try {
      return await q.count();
    } finally {
      await q.close();
    }
  };

  it('refuses a cross-site form post that carries the Basic credentials (in Chromium and by hand)', async () => {
    // By hand: what a browser sends for another site's form.
    const forged = await fetch(`${stack.apiUrl}/admin/queues/api/queues/sign/add`, {
      method: 'POST',
      headers: { ...BASIC, 'content-type': 'text/plain', origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' },
      body: '{"name":"sign-document","data":{}}',
    });
    const p = await problemOf(forged);
    expect(p.status).toBe(403);
    expect(p.body['code']).toBe('CROSS_SITE_REQUEST');
    // Neither header, and a form's content type: refused too (an old browser).
    const bare = await fetch(`${stack.apiUrl}/admin/queues/api/queues/sign/add`, {
      method: 'POST',
      headers: { ...BASIC, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'name=sign-document',
    });
    expect((await problemOf(bare)).body['code']).toBe('CROSS_SITE_REQUEST');

    // In Chromium: credentials for the board are cached, then another site's page submits its form.
    if (!existsSync(executablePath)) throw new Error(`no Chromium at ${executablePath}`);
    const browser = await chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
    try {
      const context = await browser.newContext({ httpCredentials: { username: 'ops', password: ADMIN_TOKEN } });
      const page = await context.newPage();
      const posted = page.waitForResponse((r) => r.url().endsWith('/admin/queues/api/queues/sign/add'), { timeout: 20_000 });
      await page.goto(attackerUrl);
      const answer = await posted;
      expect(answer.status()).toBe(403);
    } finally {
      await browser.close();
    }
    expect(await signJobs()).toBe(0);
  }, 60_000);

  it("accepts the board page's own changes in Chromium (a same-origin request without a body)", async () => {
    if (!existsSync(executablePath)) throw new Error(`no Chromium at ${executablePath}`);
    const browser = await chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
    try {
      const context = await browser.newContext({ httpCredentials: { username: 'ops', password: ADMIN_TOKEN } });
      const page = await context.newPage();
      await page.goto(`${stack.apiUrl}/admin/queues`);
      // What the page's "retry all failed" button sends (axios: PUT, no body, no content type).
      const status = await page.evaluate(async () => (await fetch('api/queues/webhook/retry/failed', { method: 'PUT' })).status);
      expect(status).toBe(200);
    } finally {
      await browser.close();
    }
  }, 60_000);

  it('accepts a same-origin change (what the board page sends)', async () => {
    const res = await fetch(`${stack.apiUrl}/admin/queues/api/queues/sign/add`, {
      method: 'POST',
      headers: { ...BASIC, 'content-type': 'application/json', origin: new URL(stack.apiUrl).origin, 'sec-fetch-site': 'same-origin' },
      body: JSON.stringify({ name: 'sign-document', data: { by: 'operator' } }),
    });
    expect(res.status).toBe(200);
    expect(await signJobs()).toBe(1);
  });
});

describe('Bull Board with Redis down', () => {
  let own: TestRedis;
  let stack: Stack;

  beforeAll(async () => {
    own = await startTestRedis();
    stack = await startStack({ worker: false, env: { ADMIN_TOKEN, REDIS_URL: own.url } });
  });
  afterAll(async () => {
    await stack?.stop();
    await own?.stop();
  });

  it('answers its API with 503 problem+json and Retry-After, no internal message', async () => {
    await own.stop();
    const res = await fetch(`${stack.apiUrl}/admin/queues/api/queues`, { headers: BASIC });
    const p = await problemOf(res);
    expect(p.status).toBe(503);
    expect(p.type).toContain('application/problem+json');
    expect(p.body['code']).toBe('SERVICE_UNAVAILABLE');
    expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(JSON.stringify(p.body)).not.toMatch(/Connection|ECONNREFUSED|writeable|stack/i);
  });
});
