/**
 * The status read's fast path (api/read/fast-status.ts): a plain `GET /v1/operations/<id>` is
 * answered below express, anything else by express. The same requests are sent both ways (a
 * trailing `?` leaves one to express: same route, same answer) and must get the same bytes but
 * the Date, count the same metrics, and be answered by the path expected (statusReads.served).
 * Long polls (`Prefer: wait`) too: the wait run out, an ended operation, the tenant's cap, errors.
 */
import net from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey, hashApiKey } from '@signspool/api/auth/auth';
import { OperationStore } from '@signspool/shared/operations/store';
import { keys as redisKeys } from '@signspool/shared/redis/keys';
import { auth, eventually, submit } from './harness/client.js';
import { rawRequest } from './harness/raw-http.js';
import { metricCounts, metricDelta, startStack, type Stack } from './harness/stack.js';

/** The answer without its Date line (the only field that may differ between two answers). */
const withoutDate = (raw: string): string => raw.replace(/\r\nDate: [^\r]*/i, '');

describe('status read: fast path and express answer alike', () => {
  let stack: Stack;
  let redis: Redis;
  const keys = { acme: generateApiKey(), globex: generateApiKey(), writer: generateApiKey(), limited: generateApiKey() };
  let queued = '';
  let canceled = '';
  let limitedOp = '';

  beforeAll(async () => {
    stack = await startStack({
      worker: false,
      env: {
        API_KEYS: [
          `acme:${hashApiKey(keys.acme)}`,
          `globex:${hashApiKey(keys.globex)}`,
          `acme/writer:${hashApiKey(keys.writer)}:operations:write`,
          `lim:${hashApiKey(keys.limited)}`,
        ].join(','),
        // Reads unlimited but for tenant lim (its window is set by the tests).
        RATE_LIMIT_READS: '0',
        LONG_POLL_TENANT_MAX: '2',
        TENANT_LIMITS: JSON.stringify({ lim: { readsPerSecond: 5 } }),
      },
    });
    redis = new Redis(stack.config.redisUrl ?? '');
    const up = async (key: string): Promise<string> => {
      const r = await submit(stack.apiUrl, key, [{ name: 'a.pdf', content: '%PDF-1.4 fast path', type: 'application/pdf' }]);
      expect(r.status).toBe(202);
      return r.body.id;
    };
    queued = await up(keys.acme);
    canceled = await up(keys.acme);
    limitedOp = await up(keys.limited);
    const del = await fetch(`${stack.apiUrl}/v1/operations/${canceled}`, { method: 'DELETE', headers: auth(keys.acme) });
    expect(del.status).toBe(200);
  });
  afterAll(async () => {
    await redis?.quit();
    await stack?.stop();
  });

  const readsWindow = (): string => redisKeys.rateLimit(stack.config.queuePrefix, 'reads', 'lim');

  /** The request as the fast path gets it, then with a trailing `?` (express); `before` runs before each. */
  const bothWays = async (path: string, headers: Record<string, string>, before: () => Promise<unknown> = () => Promise.resolve()) => {
    const one = async (p: string) => {
      await before();
      const served = stack.api?.statusReads?.served ?? NaN;
      const m0 = await metricCounts(stack);
      const raw = await rawRequest(stack.apiUrl, 'GET', p, headers);
      return { raw, metrics: metricDelta(m0, await metricCounts(stack)), served: (stack.api?.statusReads?.served ?? NaN) - served };
    };
    const fast = await one(path);
    const slow = await one(`${path}?`);
    expect(slow.served).toBe(0);
    expect(withoutDate(fast.raw)).toBe(withoutDate(slow.raw));
    expect(fast.metrics).toEqual(slow.metrics);
    return { ...fast, status: Number(/^HTTP\/1\.1 (\d{3})/.exec(fast.raw)?.[1]) };
  };

  it('200 for a queued operation (Retry-After) and an ended one, from the fast path', async () => {
    const a = await bothWays(`/v1/operations/${queued}`, auth(keys.acme));
    expect(a).toMatchObject({ status: 200, served: 1 });
    expect(a.raw).toMatch(/\r\nRetry-After: 2\r\n/);
    expect(a.raw).toMatch(/\r\nCache-Control: no-store\r\n/);
    expect(a.raw).toMatch(/\r\nX-Frame-Options: DENY\r\n/);
    expect(a.metrics).toMatchObject({ 'signspool_http_request_duration_seconds_count{method="GET",route="/v1/operations/:id",status="200"}': 1 });
    const b = await bothWays(`/v1/operations/${canceled}`, auth(keys.acme));
    expect(b).toMatchObject({ status: 200, served: 1 });
    expect(b.raw).not.toMatch(/Retry-After/);
    expect(b.raw).toMatch(/"status":"canceled"/);
  });

  it('200 with the reads window: the same RateLimit fields and decisions counted', async () => {
    const r = await bothWays(`/v1/operations/${limitedOp}`, auth(keys.limited), () => redis.del(readsWindow()));
    expect(r).toMatchObject({ status: 200, served: 1 });
    expect(r.raw).toMatch(/\r\nRateLimit: "reads";r=4;t=1\r\n/);
    expect(r.metrics).toMatchObject({ 'signspool_rate_limit_decisions_total{limit="reads",outcome="allowed"}': 1 });
  });

  it("404 for a missing operation and for another tenant's", async () => {
    const missing = await bothWays(`/v1/operations/op_${'0'.repeat(32)}`, auth(keys.acme));
    expect(missing).toMatchObject({ status: 404, served: 1 });
    expect(missing.raw).toMatch(/\r\nContent-Type: application\/problem\+json; charset=utf-8\r\n/);
    // An error is labelled with the whole route on both paths, as an answer is (express had left its mount point: `/:id`).
    expect(missing.metrics).toMatchObject({ 'signspool_http_request_duration_seconds_count{method="GET",route="/v1/operations/:id",status="404"}': 1 });
    const foreign = await bothWays(`/v1/operations/${queued}`, auth(keys.globex));
    expect(foreign).toMatchObject({ status: 404, served: 1 });
    expect(withoutDate(foreign.raw).replace(queued, 'ID')).toBe(withoutDate(missing.raw).replace(`op_${'0'.repeat(32)}`, 'ID'));
  });

  it('429 over the reads window, with Retry-After and RateLimit fields', async () => {
    // A window far over its quota, 30.9 s left: both answers say 31 s.
    const r = await bothWays(`/v1/operations/${limitedOp}`, auth(keys.limited), () => redis.set(readsWindow(), 1000, 'PX', 30_900));
    expect(r).toMatchObject({ status: 429, served: 1 });
    expect(r.raw).toMatch(/\r\nRetry-After: 31\r\n/);
    expect(r.raw).toMatch(/\r\nRateLimit: "reads";r=0;t=31\r\n/);
    expect(r.metrics).toMatchObject({ 'signspool_rate_limit_decisions_total{limit="reads",outcome="limited"}': 1 });
    await redis.del(readsWindow());
  });

  it('a read at once is answered from its kept answer while the record is at the same revision, rendered again once it changed', async () => {
    const answers = stack.api?.statusReads?.answers;
    if (!answers) throw new Error('no fast path');
    const op = (await submit(stack.apiUrl, keys.acme, [{ name: 'c.pdf', content: '%PDF-1.4 kept', type: 'application/pdf' }])).body.id;
    const read = async (key: string) => {
      const hits = answers.hits;
      const r = await bothWays(`/v1/operations/${op}`, auth(key));
      return { ...r, hit: answers.hits - hits };
    };
    const first = await read(keys.acme);
    expect(first).toMatchObject({ status: 200, served: 1, hit: 0 });
    const again = await read(keys.acme);
    expect(again).toMatchObject({ status: 200, served: 1, hit: 1 });
    expect(withoutDate(again.raw)).toBe(withoutDate(first.raw));
    // Another tenant's read of it meets the kept answer, and is a 404 as express's.
    expect(await read(keys.globex)).toMatchObject({ status: 404, served: 1, hit: 1 });
    // A change written to Redis behind the api's back (no event, no api call), counting the record's
    // revision as every script that changes a record does: the next read shows it.
    const opKey = redisKeys.operation(stack.config.queuePrefix, op);
    await redis
      .multi()
      .hset(opKey, 'updatedAt', String(Date.parse('2031-01-02T03:04:05.678Z')))
      .hincrby(opKey, 'rev', 1)
      .exec();
    const changed = await read(keys.acme);
    expect(changed).toMatchObject({ status: 200, served: 1, hit: 0 });
    expect(changed.raw).toMatch(/"updatedAt":"2031-01-02T03:04:05.678Z"/);
    expect(await read(keys.acme)).toMatchObject({ status: 200, served: 1, hit: 1 });
    // As a script of a version without revisions changes it (a rolling upgrade): updatedAt set, rev not counted. Shown too.
    await redis.hset(opKey, 'status', 'processing', 'updatedAt', String(Date.parse('2031-01-02T03:04:06.000Z')));
    const older = await read(keys.acme);
    expect(older).toMatchObject({ status: 200, served: 1, hit: 0 });
    expect(older.raw).toMatch(/"status":"processing"/);
    // Canceled through the api: the next read shows it, Retry-After gone.
    expect((await fetch(`${stack.apiUrl}/v1/operations/${op}`, { method: 'DELETE', headers: auth(keys.acme) })).status).toBe(200);
    const canceledRead = await read(keys.acme);
    expect(canceledRead).toMatchObject({ status: 200, served: 1, hit: 0 });
    expect(canceledRead.raw).toMatch(/"status":"canceled"/);
    expect(canceledRead.raw).not.toMatch(/Retry-After/);
    // Gone from Redis (its retention ran out): 404, not the kept answer.
    await redis.del(opKey);
    expect(await read(keys.acme)).toMatchObject({ status: 404, served: 1, hit: 0 });
  });

  it("a worker's moves (signing, failed), a retry and a cancel each show at the next read at once", async () => {
    const answers = stack.api?.statusReads?.answers;
    if (!answers) throw new Error('no fast path');
    const store = new OperationStore(redis, { prefix: stack.config.queuePrefix, retentionMs: 60_000 });
    const op = (await submit(stack.apiUrl, keys.acme, [{ name: 'd.pdf', content: '%PDF-1.4 moves', type: 'application/pdf' }])).body.id;
    const read = async () => {
      const r = await bothWays(`/v1/operations/${op}`, auth(keys.acme));
      expect(r).toMatchObject({ status: 200, served: 1 });
      const body = JSON.parse(r.raw.slice(r.raw.indexOf('\r\n\r\n') + 4)) as { status: string; documents: { id: string; status: string }[] };
      return { status: body.status, doc: body.documents[0] };
    };
    const first = await read();
    const docId = first.doc?.id ?? '';
    const hits = answers.hits;
    expect(await read()).toEqual(first);
    expect(answers.hits - hits).toBe(1);
    await store.transition(op, [{ docId, to: 'signing', claim: 'batch_1' }]);
    expect(await read()).toMatchObject({ status: 'processing', doc: { status: 'signing' } });
    await store.transition(op, [{ docId, to: 'failed', claim: 'batch_1', error: { code: 'SPOOL_FILE_MISSING', message: 'gone' } }]);
    expect(await read()).toMatchObject({ status: 'failed', doc: { status: 'failed' } });
    await store.retry(op, [docId]);
    expect(await read()).toMatchObject({ status: 'queued', doc: { status: 'queued' } });
    expect((await fetch(`${stack.apiUrl}/v1/operations/${op}`, { method: 'DELETE', headers: auth(keys.acme) })).status).toBe(200);
    expect(await read()).toMatchObject({ status: 'canceled', doc: { status: 'canceled' } });
  });

  it('401 without a key or with an unknown one, 403 without the read scope: left to express', async () => {
    const cases: [Record<string, string>, number][] = [
      [{}, 401],
      [auth('ssk_not-a-key'), 401],
      [auth(keys.writer), 403],
    ];
    for (const [headers, status] of cases) expect(await bothWays(`/v1/operations/${queued}`, headers)).toMatchObject({ status, served: 0 });
  });

  it('a long poll whose wait runs out, of an ended operation, wait=0, another preference: from the fast path', async () => {
    const ranOut = await bothWays(`/v1/operations/${queued}`, { ...auth(keys.acme), prefer: 'wait=1' });
    expect(ranOut).toMatchObject({ status: 200, served: 1 });
    expect(ranOut.raw).toMatch(/\r\nPreference-Applied: wait=1\r\n/);
    expect(ranOut.raw).toMatch(/\r\nRetry-After: 2\r\n/);
    const ended = await bothWays(`/v1/operations/${canceled}`, { ...auth(keys.acme), prefer: 'respond-async, wait=30' });
    expect(ended).toMatchObject({ status: 200, served: 1 });
    expect(ended.raw).toMatch(/\r\nPreference-Applied: wait=30\r\n/);
    const now = await bothWays(`/v1/operations/${queued}`, { ...auth(keys.acme), prefer: 'wait=0' });
    expect(now).toMatchObject({ status: 200, served: 1 });
    expect(now.raw).toMatch(/\r\nPreference-Applied: wait=0\r\n/);
    const other = await bothWays(`/v1/operations/${queued}`, { ...auth(keys.acme), prefer: 'return=minimal' });
    expect(other).toMatchObject({ status: 200, served: 1 });
    expect(other.raw).not.toMatch(/Preference-Applied/);
  });

  it('a long poll: 404 and 429 with Preference-Applied, as express answers them', async () => {
    const missing = await bothWays(`/v1/operations/op_${'0'.repeat(32)}`, { ...auth(keys.acme), prefer: 'wait=30' });
    expect(missing).toMatchObject({ status: 404, served: 1 });
    expect(missing.raw).toMatch(/\r\nPreference-Applied: wait=30\r\n/);
    const limited = await bothWays(`/v1/operations/${limitedOp}`, { ...auth(keys.limited), prefer: 'wait=30' }, () =>
      redis.set(readsWindow(), 1000, 'PX', 30_900),
    );
    expect(limited).toMatchObject({ status: 429, served: 1 });
    expect(limited.raw).toMatch(/\r\nRetry-After: 31\r\n/);
    await redis.del(readsWindow());
  });

  it("a tenant at its long-poll cap is answered at once without Preference-Applied; a waiting client's leaving ends its wait", async () => {
    const served = stack.api?.statusReads?.served ?? NaN;
    const held = new AbortController();
    const holders = Array.from({ length: 2 }, () =>
      fetch(`${stack.apiUrl}/v1/operations/${queued}`, { headers: { ...auth(keys.acme), prefer: 'wait=30' }, signal: held.signal }).catch(() => undefined),
    );
    await eventually('acme holds 2 long polls', () => stack.api?.waitingRequests === 2);
    expect((stack.api?.statusReads?.served ?? NaN) - served).toBe(2);
    const capped = await bothWays(`/v1/operations/${queued}`, { ...auth(keys.acme), prefer: 'wait=30' });
    expect(capped).toMatchObject({ status: 200, served: 1 });
    expect(capped.raw).not.toMatch(/Preference-Applied/);
    expect(capped.raw).toMatch(/\r\nRetry-After: 2\r\n/);
    expect(stack.api?.waitingRequests).toBe(2);
    held.abort();
    await Promise.all(holders);
    await eventually('the waits ended with their clients', () => stack.api?.waitingRequests === 0);
    // Their slots are free again: a long poll is held, and answered when its operation ends.
    const op = (await submit(stack.apiUrl, keys.acme, [{ name: 'b.pdf', content: '%PDF-1.4 long poll', type: 'application/pdf' }])).body.id;
    const waiting = fetch(`${stack.apiUrl}/v1/operations/${op}`, { headers: { ...auth(keys.acme), prefer: 'wait=30' } });
    await eventually('acme waits again', () => stack.api?.waitingRequests === 1);
    expect((await fetch(`${stack.apiUrl}/v1/operations/${op}`, { method: 'DELETE', headers: auth(keys.acme) })).status).toBe(200);
    const answer = await waiting;
    expect(answer.headers.get('preference-applied')).toBe('wait=30');
    expect(((await answer.json()) as { status: string }).status).toBe('canceled');
  });

  it('a long poll whose client half-closes is let go, on either path', async () => {
    for (const path of [`/v1/operations/${queued}`, `/v1/operations/${queued}?`]) {
      const served = stack.api?.statusReads?.served ?? NaN;
      const url = new URL(stack.apiUrl);
      const socket = net.connect({ host: url.hostname, port: Number(url.port), allowHalfOpen: true });
      let received = '';
      socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      const head = Object.entries({ host: url.host, ...auth(keys.acme), prefer: 'wait=30' }).map(([k, v]) => `${k}: ${v}\r\n`);
      socket.write(`GET ${path} HTTP/1.1\r\n${head.join('')}\r\n`);
      await eventually('the long poll waits', () => stack.api?.waitingRequests === 1);
      expect((stack.api?.statusReads?.served ?? NaN) - served).toBe(path.endsWith('?') ? 0 : 1);
      socket.end();
      await closed;
      expect(received).toBe('');
      await eventually('its wait ended', () => stack.api?.waitingRequests === 0);
    }
  });
});
