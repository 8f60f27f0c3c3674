/**
 * Operators' views: GET /v1/admin/stats and Bull Board under /admin/queues exist only with
 * ADMIN_TOKEN, take only that token, and report what Redis holds (backlog per tenant, oldest
 * waiting document, documents held by workers, circuits published by workers).
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminStatsReader, type AdminStats } from '@signspool/api/admin-stats';
import { publishCircuitState, readCircuitStates, workerIdentity } from '@signspool/shared/circuit-state';
import { QUEUES } from '@signspool/shared/queue';
import { auth, eventually, submit, waitForTerminal } from './harness/client.js';
import { useFakeSignstash } from './harness/fake-upstream.js';
import { startStack, type Stack } from './harness/stack.js';

const ADMIN_TOKEN = 'adm_test-token-abcdefghijklmnopqrstuvwxyz';

describe('admin routes without ADMIN_TOKEN', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ worker: false });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('do not exist (404), whatever is presented', async () => {
    for (const p of ['/v1/admin/stats', '/admin/queues', '/admin/queues/api/queues']) {
      for (const headers of [{}, auth(ADMIN_TOKEN), auth(stack.keys.acme)]) {
        const res = await fetch(`${stack.apiUrl}${p}`, { headers });
        expect(res.status, p).toBe(404);
        expect(((await res.json()) as { code: string }).code).toBe('ROUTE_NOT_FOUND');
      }
    }
  });
});

describe('admin routes with ADMIN_TOKEN', () => {
  let stack: Stack;
  let redis: Redis;
  const stats = async (): Promise<AdminStats> => {
    const res = await fetch(`${stack.apiUrl}/v1/admin/stats`, { headers: auth(ADMIN_TOKEN) });
    expect(res.status).toBe(200);
    return (await res.json()) as AdminStats;
  };

  beforeAll(async () => {
    // No worker: submitted documents stay waiting, so the backlog is exactly what was sent.
    stack = await startStack({ worker: false, env: { ADMIN_TOKEN } });
    redis = new Redis(stack.config.redisUrl ?? '', { maxRetriesPerRequest: null });
  });
  afterAll(async () => {
    await redis?.quit();
    await stack?.stop();
  });

  it('refuse a missing or wrong token and an API key (401 problem+json)', async () => {
    for (const p of ['/v1/admin/stats', '/admin/queues', '/admin/queues/api/queues']) {
      for (const headers of [{}, auth('adm_wrong-token-abcdefghijklmnopqrstuvwxyz'), auth(stack.keys.acme)]) {
        const res = await fetch(`${stack.apiUrl}${p}`, { headers });
        expect(res.status, `${p} ${JSON.stringify(headers)}`).toBe(401);
        expect(res.headers.get('content-type')).toMatch(/application\/problem\+json/);
        expect(((await res.json()) as { code: string }).code).toBe('UNAUTHORIZED');
      }
    }
    // The browser page asks for Basic credentials (the token as password).
    expect((await fetch(`${stack.apiUrl}/admin/queues`)).headers.get('www-authenticate')).toMatch(/^Basic /);
  });

  it('serve Bull Board with the sign and webhook queues (Bearer or Basic)', async () => {
    const page = await fetch(`${stack.apiUrl}/admin/queues`, { headers: auth(ADMIN_TOKEN) });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    const basic = { authorization: `Basic ${Buffer.from(`ops:${ADMIN_TOKEN}`).toString('base64')}` };
    const api = await fetch(`${stack.apiUrl}/admin/queues/api/queues`, { headers: basic });
    expect(api.status).toBe(200);
    const body = (await api.json()) as { queues: { name: string }[] };
    expect(body.queues.map((q) => q.name).sort()).toEqual([QUEUES.sign, QUEUES.webhook].sort());
  });

  it('report the backlog per tenant, the oldest waiting document and the circuits', async () => {
    const empty = await stats();
    expect(empty.backlog).toEqual({ waiting: 0, scanned: 0, complete: true, byTenant: {} });
    expect(empty.oldestWaiting).toBeNull();
    expect(empty.circuit).toEqual({ state: 'closed', workers: [] });

    const submittedAt = Date.now();
    const first = await submit(stack.apiUrl, stack.keys.acme, [
      { name: 'a1.txt', content: 'a1' },
      { name: 'a2.txt', content: 'a2' },
    ]);
    await submit(stack.apiUrl, stack.keys.globex, [{ name: 'g1.txt', content: 'g1' }]);
    await submit(stack.apiUrl, stack.keys.acme, [{ name: 'a3.txt', content: 'a3' }]);
    const s = await stats();
    expect(s.backlog).toEqual({ waiting: 4, scanned: 4, complete: true, byTenant: { acme: 3, globex: 1 } });
    expect(s.oldestWaiting?.opId).toBe(first.body.id);
    expect(first.body.documents.map((d) => d.id)).toContain(s.oldestWaiting?.docId);
    expect(s.oldestWaiting?.tenant).toBe('acme');
    // Its age: whole seconds since the first submission, no more than the time since we sent it.
    const acceptedAt = Date.parse(s.oldestWaiting?.acceptedAt ?? '');
    expect(acceptedAt).toBeGreaterThanOrEqual(submittedAt - 1000);
    expect(acceptedAt).toBeLessThanOrEqual(Date.now());
    expect(s.oldestWaiting?.ageSeconds).toBeLessThanOrEqual(Math.ceil((Date.now() - submittedAt) / 1000));
    expect(s.inFlight.documents).toBe(0);
    // Fair scheduling: the jobs carry a priority, so BullMQ counts them as prioritized.
    expect(s.queues['sign']?.['prioritized']).toBe(4);

    // How several workers' states add up (a real worker's publishing: the next describe block).
    const prefix = stack.config.queuePrefix;
    await publishCircuitState(redis, prefix, 'half_open', 60_000, 'worker-b');
    await publishCircuitState(redis, prefix, 'open', 60_000, 'worker-a');
    const open = await stats();
    expect(open.circuit.state).toBe('open');
    expect(open.circuit.workers.map((w) => [w.worker, w.state])).toEqual([
      ['worker-a', 'open'],
      ['worker-b', 'half_open'],
    ]);
    await publishCircuitState(redis, prefix, 'closed', 60_000, 'worker-a');
    expect((await stats()).circuit).toMatchObject({ state: 'half_open', workers: [{ worker: 'worker-b' }] });
    // A worker that died with its circuit open stops being reported when its entry expires.
    expect(await readCircuitStates(redis, prefix, Date.now() + 61_000)).toEqual([]);
    expect((await stats()).circuit).toEqual({ state: 'closed', workers: [] });
  });

  it('count per tenant over a bounded scan and say when it was not all', async () => {
    const sign = new Queue(QUEUES.sign, { connection: redis, prefix: stack.config.queuePrefix });
    const webhook = new Queue(QUEUES.webhook, { connection: redis, prefix: stack.config.queuePrefix });
    try {
      const s = await new AdminStatsReader(redis, stack.config.queuePrefix, { sign, webhook }, 2).read();
      expect(s.backlog.scanned).toBe(2);
      expect(s.backlog.complete).toBe(false);
      // The two oldest: the first operation's documents.
      expect(s.backlog.byTenant).toEqual({ acme: 2 });
    } finally {
      await sign.close();
      await webhook.close();
    }
  });
});

describe('circuits as a real worker publishes them', () => {
  const fake = useFakeSignstash();
  let stack: Stack;
  const circuit = async (): Promise<AdminStats['circuit']> => {
    const res = await fetch(`${stack.apiUrl}/v1/admin/stats`, { headers: auth(ADMIN_TOKEN) });
    return ((await res.json()) as AdminStats).circuit;
  };
  beforeAll(async () => {
    stack = await startStack({
      env: fake().clientEnv({
        ADMIN_TOKEN,
        DEFAULT_SIGNATURE_TYPE: 'CAdES',
        UPSTREAM_BREAKER_THRESHOLD: '1',
        UPSTREAM_BREAKER_COOLDOWN: '500ms',
        UPSTREAM_BACKOFF_BASE: '100ms',
      }),
    });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it("shows the worker's circuit open while the upstream fails, and closed once it signs again", async () => {
    expect(await circuit()).toEqual({ state: 'closed', workers: [] });
    fake().setOutage(60_000);
    const res = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'c.txt', content: 'circuit' }]);
    expect(res.status).toBe(202);
    await eventually('the worker publishes an open circuit', async () => (await circuit()).state !== 'closed');
    const open = await circuit();
    expect(open.workers.map((w) => w.worker)).toEqual([workerIdentity()]);
    expect(['open', 'half_open']).toContain(open.state);
    fake().endOutage();
    expect((await waitForTerminal(stack.apiUrl, stack.keys.acme, res.body.id, 30_000)).status).toBe('succeeded');
    await eventually('the worker publishes its circuit closed', async () => (await circuit()).state === 'closed');
    expect(await circuit()).toEqual({ state: 'closed', workers: [] });
  });
});
