/**
 * Slow and stalled uploads (issue 14, defect 1): one tenant's stalled uploads hold at most its
 * share of the slots, so another tenant's upload is answered while they are still open; refusals
 * that need no body (401, 413, 415) never wait for a slot; a stalled or crawling upload ends with
 * 408 UPLOAD_TIMEOUT, its slot freed, no file and no descriptor left in the spool.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth, eventually, submit } from './harness/client.js';
import { incomingFiles, openFilesUnder, rawConnect, uploadHead, type RawConnection } from './harness/raw-http.js';
import { startStack, type Stack } from './harness/stack.js';

const BOUNDARY = 'stalledupload';
const partHead = (name: string): string =>
  `--${BOUNDARY}\r\ncontent-disposition: form-data; name="file"; filename="${name}"\r\ncontent-type: application/octet-stream\r\n\r\n`;

/** An upload that announces 1 MB, sends its first bytes and then nothing. */
const stalled = (stack: Stack, key: string, i: number): RawConnection =>
  rawConnect(stack.apiUrl, [uploadHead(key, BOUNDARY, 1_000_000), partHead(`stalled-${i}.bin`), 'x'.repeat(100)]);

const gauge = async (stack: Stack, state: 'reading' | 'waiting'): Promise<number> => {
  const text = await (await fetch(stack.metricsUrl)).text();
  return Number(new RegExp(`^signspool_uploads\\{state="${state}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
};

const withDeadline = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([
    p,
    new Promise<T>((_, reject) => {
      setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms).unref();
    }),
  ]);

describe('one tenant with 30 stalled uploads (UPLOAD_CONCURRENCY=16)', () => {
  let stack: Stack;
  let held: RawConnection[] = [];
  beforeAll(async () => {
    stack = await startStack({ worker: false, env: { UPLOAD_CONCURRENCY: '16', UPLOAD_IDLE_TIMEOUT: '120s', UPLOAD_MIN_RATE: '0' } });
    held = Array.from({ length: 30 }, (_, i) => stalled(stack, stack.keys.acme, i));
    await eventually('all 30 are read or waiting', async () => (await gauge(stack, 'reading')) + (await gauge(stack, 'waiting')) === 30);
  });
  afterAll(async () => {
    for (const h of held) h.socket.destroy();
    await stack?.stop();
  });

  it("answers another tenant's small upload 202 while they are still open", async () => {
    const res = await withDeadline(submit(stack.apiUrl, stack.keys.globex, [{ name: 'small.txt', content: 'ten bytes!' }]), 10_000, 'globex upload');
    expect(res.status).toBe(202);
    expect(held.every((h) => !h.socket.destroyed)).toBe(true);
    // acme holds its share (UPLOAD_TENANT_SHARE 0.5 of 16), the rest of its uploads wait.
    expect(await gauge(stack, 'reading')).toBe(8);
    expect(await gauge(stack, 'waiting')).toBe(22);
  });

  it('refuses without waiting for a slot: 401, 413 (declared length), 415', async () => {
    const bad = await withDeadline(fetch(`${stack.apiUrl}/v1/operations`, { method: 'POST', headers: auth('ssk_wrong'), body: 'x' }), 10_000, '401');
    expect(bad.status).toBe(401);
    const type = await withDeadline(
      fetch(`${stack.apiUrl}/v1/operations`, { method: 'POST', headers: { ...auth(stack.keys.acme), 'content-type': 'application/json' }, body: '{}' }),
      10_000,
      '415',
    );
    expect(type.status).toBe(415);
    const big = rawConnect(stack.apiUrl, [uploadHead(stack.keys.acme, BOUNDARY, 10 * 1024 ** 3)]);
    const tooLarge = await withDeadline(big.response, 10_000, '413');
    big.socket.destroy();
    expect(tooLarge?.status).toBe(413);
    expect(JSON.parse(tooLarge?.body ?? '{}')).toMatchObject({ code: 'REQUEST_TOO_LARGE' });
  });
});

describe('upload timeouts', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ worker: false, env: { UPLOAD_IDLE_TIMEOUT: '600ms', UPLOAD_MIN_RATE: '1KiB', UPLOAD_MIN_RATE_WINDOW: '1s' } });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('ends a stalled upload with 408 problem+json, frees its slot and keeps no file and no descriptor', async () => {
    const conn = stalled(stack, stack.keys.acme, 0);
    await eventually('the upload is being read', async () => (await gauge(stack, 'reading')) === 1);
    // The file is open in the spool while the upload is read.
    await eventually('its file is open', () => openFilesUnder(stack.config.spoolDir).length === 1);
    const res = await withDeadline(conn.response, 10_000, 'stalled upload');
    expect(res?.status).toBe(408);
    expect(res?.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res?.headers['connection']).toBe('close');
    expect(JSON.parse(res?.body ?? '{}')).toMatchObject({ code: 'UPLOAD_TIMEOUT', status: 408, reason: 'idle' });
    await withDeadline(conn.ended, 10_000, 'the server closes the connection');
    conn.socket.destroy();
    await eventually('slot freed', async () => (await gauge(stack, 'reading')) === 0);
    await eventually('no descriptor into the spool', () => openFilesUnder(stack.config.spoolDir).length === 0);
    expect(await incomingFiles(stack.config.spoolDir)).toEqual([]);
    expect(await (await fetch(stack.metricsUrl)).text()).toMatch(/^signspool_upload_timeouts_total\{reason="idle"\} 1$/m);
  });

  it('ends an upload slower than UPLOAD_MIN_RATE with 408 (reason slow)', async () => {
    const conn = rawConnect(stack.apiUrl, [uploadHead(stack.keys.acme, BOUNDARY, 1_000_000), partHead('slow.bin')]);
    // 20 bytes every 100 ms: never idle, 200 B/s against a floor of 1 KiB/s.
    const drip = setInterval(() => conn.socket.write('y'.repeat(20)), 100);
    try {
      const res = await withDeadline(conn.response, 10_000, 'slow upload');
      expect(res?.status).toBe(408);
      expect(JSON.parse(res?.body ?? '{}')).toMatchObject({ code: 'UPLOAD_TIMEOUT', reason: 'slow' });
    } finally {
      clearInterval(drip);
      conn.socket.destroy();
    }
    await eventually('no descriptor into the spool', () => openFilesUnder(stack.config.spoolDir).length === 0);
    expect(await incomingFiles(stack.config.spoolDir)).toEqual([]);
  });

  it('lets a steady upload through', async () => {
    const res = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'ok.bin', content: Buffer.alloc(256 * 1024, 7) }]);
    expect(res.status).toBe(202);
  });
});
