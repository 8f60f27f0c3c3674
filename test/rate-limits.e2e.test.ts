/**
 * Per-tenant limits (issue 14, defect 3), counted in Redis and shared by api processes: requests
 * per second, uploaded bytes per second, documents in the backlog, redeliveries per operation;
 * 429 problem+json with Retry-After and the RateLimit-Policy / RateLimit fields; overrides per
 * tenant (TENANT_LIMITS); counted in metrics; 503 when the limits cannot be read (Redis down).
 */
import { Redis } from 'ioredis';
import type { Response } from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TenantRateLimits } from '@signspool/api/rate-limits';
import { loadConfig } from '@signspool/shared/config';
import { createLogger } from '@signspool/shared/logger';
import { createMetrics } from '@signspool/shared/metrics';
import { backlogKey } from '@signspool/shared/scheduling/tenant-backlog';
import { isTerminal } from '@signspool/shared/operations/states';
import { auth, download, eventually, getOperation, submit, waitForTerminal, type OperationView } from './harness/client.js';
import { startTestRedis } from './harness/redis.js';
import { startStack, testPrefix, type Stack } from './harness/stack.js';
import { inject } from 'vitest';

const UNKNOWN_OP = `/v1/operations/op_${'0'.repeat(32)}`;

const metric = async (stack: Stack, limit: string, outcome: string): Promise<number> => {
  const text = await (await fetch(stack.metricsUrl)).text();
  return Number(new RegExp(`^signspool_rate_limit_decisions_total\\{limit="${limit}",outcome="${outcome}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
};

describe('per-tenant limits, two api processes on one Redis', () => {
  let one: Stack;
  let two: Stack;
  let redis: Redis;
  beforeAll(async () => {
    const env = {
      TENANT_LIMITS: JSON.stringify({ acme: { readsPerSecond: 5, uploadBytesPerSecond: 1000, backlogDocuments: 3 } }),
      RATE_LIMIT_READS: '1000',
    };
    one = await startStack({ worker: false, env });
    two = await startStack({ worker: false, env, reuse: { dir: one.dir, prefix: one.config.queuePrefix } });
    redis = new Redis(one.config.redisUrl ?? '');
  });
  afterAll(async () => {
    await redis?.quit();
    await two?.stop();
    await one?.stop();
  });

  it('limits reads per second per tenant apart from other requests: 429 with Retry-After and RateLimit fields; other tenants unaffected', async () => {
    const [acme, globex] = await Promise.all([
      Promise.all(Array.from({ length: 12 }, () => fetch(`${one.apiUrl}${UNKNOWN_OP}`, { headers: auth(one.keys.acme) }))),
      Promise.all(Array.from({ length: 12 }, () => fetch(`${one.apiUrl}${UNKNOWN_OP}`, { headers: auth(one.keys.globex) }))),
    ]);
    const limited = acme.filter((r) => r.status === 429);
    expect(limited.length).toBeGreaterThan(0);
    expect(acme.filter((r) => r.status === 404).length).toBeGreaterThan(0);
    expect(globex.every((r) => r.status === 404)).toBe(true);
    const r = limited[0];
    expect(r?.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(Number(r?.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(r?.headers.get('ratelimit-policy')).toBe('"reads";q=5;w=1');
    expect(r?.headers.get('ratelimit')).toMatch(/^"reads";r=0;t=[01]$/);
    expect(await r?.json()).toMatchObject({ code: 'RATE_LIMITED', status: 429, policy: 'reads', limit: 5 });
    // An allowed answer tells what is left.
    const ok = globex[0];
    expect(ok?.headers.get('ratelimit-policy')).toBe('"reads";q=1000;w=1');
    expect(ok?.headers.get('ratelimit')).toMatch(/^"reads";r=\d+;t=[01]$/);
    expect(await metric(one, 'reads', 'limited')).toBe(limited.length);
    // Reads spent all of acme's read quota; a request that changes something has its own (the default).
    const del = await fetch(`${one.apiUrl}${UNKNOWN_OP}`, { method: 'DELETE', headers: auth(one.keys.acme) });
    expect(del.status).toBe(404);
    expect(del.headers.get('ratelimit-policy')).toBe('"requests";q=1000;w=1');
  });

  it('limits uploaded bytes per second across both api processes (10 s window), refusing before the body is read', async () => {
    await new Promise((r) => setTimeout(r, 1100)); // a fresh requests window (5/s for acme)
    // 1000 B/s over 10 s: 10,000 bytes. The first upload over the quota passes; the next is refused.
    const first = await submit(one.apiUrl, one.keys.acme, [{ name: 'a.bin', content: Buffer.alloc(6000, 1) }]);
    expect(first.status).toBe(202);
    const second = await submit(two.apiUrl, two.keys.acme, [{ name: 'b.bin', content: Buffer.alloc(6000, 2) }]);
    expect(second.status).toBe(202);
    const third = await submit(one.apiUrl, one.keys.acme, [{ name: 'c.bin', content: Buffer.alloc(100, 3) }]);
    expect(third.status).toBe(429);
    expect(third.body).toMatchObject({ code: 'RATE_LIMITED', policy: 'upload-bytes' });
    expect(third.headers.get('ratelimit-policy')).toBe('"upload-bytes";q=10000;w=10;qu="content-bytes"');
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // globex has the default (1 GiB/s).
    expect((await submit(two.apiUrl, two.keys.globex, [{ name: 'g.bin', content: Buffer.alloc(6000, 4) }])).status).toBe(202);
  });

  it('keeps a backlog quota per tenant: counted at accept, released when documents end', async () => {
    // acme has 2 accepted documents from the test above: room for one more.
    expect(Number(await redis.hget(backlogKey(one.config.queuePrefix), 'acme'))).toBe(2);
    // This test is about the backlog: acme's request and byte windows are reset before each request.
    const fresh = () => redis.del(`${one.config.queuePrefix}:rl:upload_bytes:acme`, `${one.config.queuePrefix}:rl:requests:acme`);
    await fresh();
    const two3 = await submit(one.apiUrl, one.keys.acme, [
      { name: 'x.txt', content: 'x' },
      { name: 'y.txt', content: 'y' },
    ]);
    // Two more would make 4 of 3: refused once the documents are counted, nothing kept.
    expect(two3.status).toBe(429);
    expect(two3.body).toMatchObject({ code: 'BACKLOG_FULL', limit: 3, backlog: 2 });
    await fresh();
    const three = await submit(one.apiUrl, one.keys.acme, [{ name: 'z.txt', content: 'z' }]);
    expect(three.status).toBe(202);
    expect(Number(await redis.hget(backlogKey(one.config.queuePrefix), 'acme'))).toBe(3);
    // Full: refused before the body is read.
    await fresh();
    const full = await submit(two.apiUrl, two.keys.acme, [{ name: 'w.txt', content: 'w' }]);
    expect(full.status).toBe(429);
    expect(full.body).toMatchObject({ code: 'BACKLOG_FULL' });
    expect(full.headers.get('retry-after')).toBe('30');
    // Canceling an operation ends its documents: room again.
    await fresh();
    const cancel = await fetch(`${one.apiUrl}${three.location ?? ''}`, { method: 'DELETE', headers: auth(one.keys.acme) });
    expect(cancel.status).toBe(200);
    expect(Number(await redis.hget(backlogKey(one.config.queuePrefix), 'acme'))).toBe(2);
    await fresh();
    expect((await submit(two.apiUrl, two.keys.acme, [{ name: 'v.txt', content: 'v' }])).status).toBe(202);
    expect(await metric(one, 'backlog', 'limited')).toBeGreaterThanOrEqual(1);
  });
});

describe('backlog with a worker', () => {
  it('returns to zero once every document is signed (also when a worker signs before the api marks the operation accepted)', async () => {
    const stack = await startStack({ env: { BACKLOG_MAX_DOCUMENTS: '1000' } });
    const redis = new Redis(stack.config.redisUrl ?? '');
    try {
      const ops = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          submit(stack.apiUrl, stack.keys.acme, [
            { name: `${i}.txt`, content: `doc ${i}` },
            { name: `${i}b.txt`, content: `doc ${i}b` },
          ]),
        ),
      );
      expect(ops.every((o) => o.status === 202)).toBe(true);
      for (const o of ops) await waitForTerminal(stack.apiUrl, stack.keys.acme, o.body.id);
      expect(await redis.hget(backlogKey(stack.config.queuePrefix), 'acme')).toBeNull();
    } finally {
      await redis.quit();
      await stack.stop();
    }
  });
});

describe('the default limits, one tenant', () => {
  it('let a client upload 160 documents at once, long-poll each and download each without a 429', async () => {
    // What a new user tries after `npm start`: every default limit, the local signer.
    const stack = await startStack({ env: { BATCH_LINGER: '300ms' } });
    try {
      const statuses: number[] = [];
      const ops = await Promise.all(
        Array.from({ length: 160 }, async (_, i) => {
          const r = await submit(stack.apiUrl, stack.keys.acme, [{ name: `${i}.txt`, content: `document ${i}` }]);
          statuses.push(r.status);
          return r.body.id;
        }),
      );
      // The documents end together (one batch or a few): their polls and downloads come in a burst.
      await Promise.all(
        ops.map(async (id) => {
          let view: OperationView | undefined;
          for (;;) {
            const res = await fetch(`${stack.apiUrl}/v1/operations/${id}`, { headers: { ...auth(stack.keys.acme), prefer: 'wait=20' } });
            statuses.push(res.status);
            if (res.status !== 200) return; // a refused poll: counted, and the test fails on it
            view = (await res.json()) as OperationView;
            if (isTerminal(view.status)) break;
          }
          for (const d of view.documents) statuses.push((await download(stack.apiUrl, stack.keys.acme, id, d.id)).status);
        }),
      );
      expect(statuses.filter((s) => s === 429)).toEqual([]);
      expect(statuses.length).toBeGreaterThanOrEqual(160 * 3);
      expect(new Set(statuses)).toEqual(new Set([202, 200]));
    } finally {
      await stack.stop();
    }
  }, 120_000);
});

describe('limits in the round trips a request makes anyway', () => {
  it('cost an upload one Redis command more than with every limit off, and a status read none', async () => {
    const own = await startTestRedis();
    const limited = await startStack({ worker: false, env: { REDIS_URL: own.url } });
    const unlimited = await startStack({
      worker: false,
      env: { REDIS_URL: own.url, RATE_LIMIT_REQUESTS: '0', RATE_LIMIT_READS: '0', RATE_LIMIT_UPLOAD_BYTES: '0', BACKLOG_MAX_DOCUMENTS: '0' },
    });
    const client = new Redis(own.url);
    const monitor = await client.monitor();
    let markers = 0;
    try {
      /** The commands (not those run by scripts) that name the stack's keys while `action` runs. */
      const commandsOf = async (stack: Stack, action: () => Promise<unknown>): Promise<string[][]> => {
        const marker = `marker-${markers++}`;
        const seen: string[][] = [];
        let done = false;
        const on = (_time: string, args: string[], source: string): void => {
          if (args.includes(marker)) done = true;
          else if (!done && source !== 'lua' && args.some((a) => a.includes(stack.config.queuePrefix))) seen.push(args);
        };
        monitor.on('monitor', on);
        await action();
        // Redis runs commands in order: the marker shows once every command of the action has.
        const echo = new Redis(own.url);
        await echo.echo(marker);
        await echo.quit();
        await eventually('the marker in MONITOR', () => done);
        monitor.off('monitor', on);
        return seen;
      };
      const ids = new Map<Stack, string>();
      const upload = (stack: Stack) => async () => {
        const r = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'a.txt', content: 'a' }]);
        expect(r.status).toBe(202);
        ids.set(stack, r.body.id);
      };
      const read = (stack: Stack) => async () => expect((await getOperation(stack.apiUrl, stack.keys.acme, ids.get(stack) ?? '')).status).toBe(200);
      // Once first, so that every script is loaded.
      for (const stack of [limited, unlimited]) await commandsOf(stack, async () => (await upload(stack)(), await read(stack)()));
      const uploadWith = await commandsOf(limited, upload(limited));
      const uploadWithout = await commandsOf(unlimited, upload(unlimited));
      expect(uploadWith.length - uploadWithout.length).toBe(1);
      const readWith = await commandsOf(limited, read(limited));
      const readWithout = await commandsOf(unlimited, read(unlimited));
      expect(readWith.length).toBe(1);
      expect(readWithout.length).toBe(1);
    } finally {
      monitor.disconnect();
      await client.quit();
      await limited.stop();
      await unlimited.stop();
      await own.stop();
    }
  });
});

describe('redeliveries per operation', () => {
  it('allows REDELIVERY_LIMIT redeliveries of one operation per hour, then 429', async () => {
    const redis = new Redis(inject('redisUrl'));
    await redis.ping();
    const config = loadConfig({ REDELIVERY_LIMIT: '2' });
    const metrics = createMetrics({ defaultMetrics: false });
    const limits = new TenantRateLimits(redis, testPrefix(), config.limits, metrics, createLogger({ level: 'silent' }));
    const headers = new Map<string, string>();
    const res = { setHeader: (k: string, v: string) => headers.set(k.toLowerCase(), v) } as unknown as Response;
    await limits.redelivery('acme', 'op_a', res);
    await limits.redelivery('acme', 'op_a', res);
    await expect(limits.redelivery('acme', 'op_a', res)).rejects.toMatchObject({ code: 'RATE_LIMITED', status: 429 });
    expect(headers.get('ratelimit-policy')).toBe('"redeliveries";q=2;w=3600');
    // Another operation has its own count.
    await limits.redelivery('acme', 'op_b', res);
    await redis.quit();
  });
});

describe('Redis down', () => {
  it('answers 503 with Retry-After (fail closed), counted as outcome "error"', async () => {
    const own = await startTestRedis();
    const stack = await startStack({ worker: false, env: { REDIS_URL: own.url } });
    try {
      await own.stop();
      const res = await fetch(`${stack.apiUrl}${UNKNOWN_OP}`, { headers: auth(stack.keys.acme) });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('5');
      expect(await res.json()).toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
      expect(await metric(stack, 'reads', 'error')).toBe(1);
    } finally {
      await stack.stop().catch(() => undefined);
    }
  });
});
