/**
 * No group of tenants and no stranger can hold the others up (issue 25, points 1 and 2), against
 * the api as a real process:
 *   - tenants A and B each keep 10 uploads crawling (1 KiB every 500 ms, above UPLOAD_MIN_RATE) and
 *     hold every upload slot: a third tenant's small upload is still answered 202 at once, and the
 *     uploads left waiting get 503 UPLOADS_BUSY with Retry-After after UPLOAD_QUEUE_TIMEOUT;
 *   - under `ulimit -n 256`, 400 connections trickling a request head and 300 of one tenant
 *     sending a head and 5 bytes: /healthz and another tenant's upload are still answered.
 * The timing targets (a newcomer within a second; latencies under 20,000 hostile connections)
 * are measured by `npm run bench:connections`.
 */
import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateApiKey, hashApiKey } from '@signspool/api/auth/auth';
import { eventually, submit } from './harness/client.js';
import { startService } from './harness/processes.js';
import { rawConnect, uploadHead, type RawConnection, type RawResponse } from './harness/raw-http.js';
import { testPrefix } from './harness/stack.js';

const BOUNDARY = 'crawlingupload';
const partHead = `--${BOUNDARY}\r\ncontent-disposition: form-data; name="file"; filename="crawl.bin"\r\ncontent-type: application/octet-stream\r\n\r\n`;

const keys = { a: generateApiKey(), b: generateApiKey(), c: generateApiKey() };

const withDeadline = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([
    p,
    new Promise<T>((_, reject) => {
      setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms).unref();
    }),
  ]);

/** An api process of its own (own data dir and queue prefix) with tenants a, b and c. */
const startApi = async (env: Record<string, string>, opts: { ulimitFiles?: number } = {}) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signspool-isolation-'));
  const api = await startService(
    'api',
    {
      REDIS_URL: inject('redisUrl'),
      QUEUE_PREFIX: testPrefix(),
      DATA_DIR: dir,
      LOG_LEVEL: 'warn',
      API_KEYS: `a:${hashApiKey(keys.a)},b:${hashApiKey(keys.b)},c:${hashApiKey(keys.c)}`,
      SPOOL_MIN_FREE_BYTES: '1MiB',
      ...env,
    },
    opts,
  );
  const gauge = async (state: 'reading' | 'waiting'): Promise<number> => {
    const text = await (await fetch(api.metricsUrl)).text();
    return Number(new RegExp(`^signspool_uploads\\{state="${state}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  };
  const tenantConnections = async (): Promise<number> => {
    const text = await (await fetch(api.metricsUrl)).text();
    return Number(/^signspool_http_connections\{holder="tenant"\} (\d+)/m.exec(text)?.[1] ?? NaN);
  };
  return {
    api,
    gauge,
    tenantConnections,
    async stop() {
      await api.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
};

/** An upload announcing 1 MiB that sends 1 KiB every 500 ms (2 KiB/s: above UPLOAD_MIN_RATE, so nothing times it out). */
const crawling = (url: string, key: string): RawConnection & { stop: () => void } => {
  const conn = rawConnect(url, [uploadHead(key, BOUNDARY, 1024 * 1024), partHead]);
  const timer = setInterval(() => {
    if (!conn.socket.destroyed) conn.socket.write(Buffer.alloc(1024, 0x61));
  }, 500);
  conn.socket.once('close', () => clearInterval(timer));
  return {
    ...conn,
    stop: () => {
      clearInterval(timer);
      conn.socket.destroy();
    },
  };
};

describe('two tenants crawling 10 uploads each (UPLOAD_CONCURRENCY 16, share 0.5)', () => {
  let svc: Awaited<ReturnType<typeof startApi>>;
  const held: ReturnType<typeof crawling>[] = [];
  beforeAll(async () => {
    svc = await startApi({ UPLOAD_CONCURRENCY: '16', UPLOAD_TENANT_SHARE: '0.5', UPLOAD_QUEUE_TIMEOUT: '3s' });
  });
  afterAll(async () => {
    for (const h of held) h.stop();
    await svc?.stop();
  });

  it("answers a third tenant's 6-byte upload 202 while A and B hold every slot, and ends their waiting uploads with 503 after UPLOAD_QUEUE_TIMEOUT", async () => {
    for (let i = 0; i < 10; i++) held.push(crawling(svc.api.url, keys.a), crawling(svc.api.url, keys.b));
    await eventually('16 uploads read, 4 waiting', async () => (await svc.gauge('reading')) === 16 && (await svc.gauge('waiting')) === 4, 30_000);

    const started = Date.now();
    const c = await withDeadline(submit(svc.api.url, keys.c, [{ name: 'c.txt', content: 'six b!' }]), 10_000, "tenant c's upload");
    expect(c.status).toBe(202);
    // What it took, for the record (the 1 s target is measured by npm run bench:connections).
    console.log(`tenant c answered in ${Date.now() - started} ms with 20 crawling uploads of a and b open`);

    // The 4 uploads that waited for a slot get 503 UPLOADS_BUSY with Retry-After; the 16 being read go on.
    const busy: RawResponse[] = [];
    for (const h of held) void h.response.then((r) => r && busy.push(r));
    await eventually('the 4 waiting uploads are answered', () => busy.length >= 4, 15_000);
    expect(busy).toHaveLength(4);
    for (const r of busy) {
      expect(r.status).toBe(503);
      expect(r.headers['content-type']).toContain('application/problem+json');
      expect(r.headers['retry-after']).toBe('5');
      expect(JSON.parse(r.body)).toMatchObject({ code: 'UPLOADS_BUSY', status: 503 });
    }
    expect(await svc.gauge('reading')).toBe(16);
    expect(await svc.gauge('waiting')).toBe(0);
  });
});

/** Not closed by the api (a half-open client socket is not destroyed when the server closes: it ends). */
const stillOpen = (c: RawConnection): boolean => !c.socket.destroyed && !c.socket.readableEnded;

describe('an api under ulimit -n 256 with 700 hostile connections', () => {
  let svc: Awaited<ReturnType<typeof startApi>>;
  const hostile: RawConnection[] = [];
  const timers: NodeJS.Timeout[] = [];
  beforeAll(async () => {
    // The caps follow the descriptor limit (128 connections, 32 anonymous, 32 per tenant at 256).
    svc = await startApi({}, { ulimitFiles: 256 });
  });
  afterAll(async () => {
    for (const t of timers) clearInterval(t);
    for (const h of hostile) h.socket.destroy();
    await svc?.stop();
  });

  it('keeps answering /healthz and another tenant while strangers trickle heads and one tenant piles up waiting uploads', async () => {
    const { url } = svc.api;
    // 400 strangers trickle a request head, one header line every second (Node gives them 60 s).
    for (let i = 0; i < 400; i++) {
      const conn = rawConnect(url, ['POST /v1/operations HTTP/1.1\r\nhost: localhost\r\n']);
      let n = 0;
      timers.push(setInterval(() => conn.socket.writable && conn.socket.write(`x-trickle-${n++}: 1\r\n`), 1000));
      hostile.push(conn);
    }
    // 300 uploads of tenant a that send their head and 5 bytes, then nothing.
    const tenantA = Array.from({ length: 300 }, () => rawConnect(url, [uploadHead(keys.a, BOUNDARY, 1024 * 1024), partHead.slice(0, 5)]));
    hostile.push(...tenantA);
    // The api has taken the burst in: each holder is down to its cap (the rest closed), while the
    // hostile connections that remain stay open. (A flood arriving faster than a request head is
    // read would close newcomers too: the caps bound what stays open, not the accept rate.)
    await eventually('tenant a holds at most its cap', () => tenantA.filter(stillOpen).length <= 32, 20_000);
    await eventually('strangers hold at most the anonymous cap', () => hostile.slice(0, 400).filter(stillOpen).length <= 32, 20_000);

    // Over a few seconds of the attack, every probe is answered: /healthz and tenant b's uploads.
    for (let i = 0; i < 5; i++) {
      const health = await withDeadline(fetch(`${url}/healthz`), 5000, '/healthz');
      expect(health.status).toBe(200);
      const b = await withDeadline(submit(url, keys.b, [{ name: `b${i}.txt`, content: `tenant b ${i}` }]), 5000, "tenant b's upload");
      expect(b.status).toBe(202);
    }
    // Tenant a fills its cap of requests in progress (the burst may have left it fewer: topped up
    // one at a time); one more request of a is then told so.
    for (let i = 0; i < 64 && (await svc.tenantConnections()) < 32; i++) {
      const before = await svc.tenantConnections();
      const conn = rawConnect(url, [uploadHead(keys.a, BOUNDARY, 1024 * 1024), partHead.slice(0, 5)]);
      hostile.push(conn);
      await eventually('the new connection of a is held or closed', async () => !stillOpen(conn) || (await svc.tenantConnections()) > before);
    }
    expect(await svc.tenantConnections()).toBe(32);
    // (Raw: the answer comes before the body is read, and a client still writing it may see the close first.)
    const more = await withDeadline(
      rawConnect(url, [uploadHead(keys.a, BOUNDARY, 1024 * 1024), partHead.slice(0, 5)]).response,
      5000,
      "tenant a's extra upload",
    );
    expect([more?.status, JSON.parse(more?.body ?? '{}').code]).toEqual([429, 'TOO_MANY_CONNECTIONS']);
    expect(more?.headers['retry-after']).toBe('1');
    // The api's descriptors stay under its limit.
    expect(readdirSync(`/proc/${svc.api.child.pid}/fd`).length).toBeLessThan(256);
    expect(svc.api.child.exitCode).toBeNull();
  });
});
