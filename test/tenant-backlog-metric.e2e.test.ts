/**
 * signspool_tenant_backlog_documents on the api's /metrics: with METRICS_TENANT_SERIES=2 and three
 * tenants with queued documents (no worker), the two largest backlogs have a series each and
 * tenant="_other" sums the third; a tenant whose documents end (canceled, then signed by a worker
 * started afterwards) leaves the exposition at the next scrape. With Redis gone the scrape still
 * answers 200 with the last values; METRICS_TENANT_SERIES=0 exports no series. Tenant names are
 * exported only behind METRICS_TOKEN: without it tenant="_other" carries every backlog.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey, hashApiKey } from '@signspool/api/auth/auth';
import { auth, submit, waitForTerminal } from './harness/client.js';
import { startTestRedis, type TestRedis } from './harness/redis.js';
import { scrapeMetrics, startStack, TEST_METRICS_TOKEN, type Stack } from './harness/stack.js';

const METRIC = 'signspool_tenant_backlog_documents';

/** tenant → value of every sample of the metric in one scrape of the api's /metrics. */
const scrape = async (stack: Stack): Promise<Record<string, number>> => {
  const res = await scrapeMetrics(stack);
  expect(res.status).toBe(200);
  const out: Record<string, number> = {};
  for (const [, tenant = '', value] of (await res.text()).matchAll(new RegExp(`^${METRIC}\\{tenant="([^"]*)"\\} (\\S+)$`, 'gm'))) out[tenant] = Number(value);
  return out;
};

/** Three tenants (the harness knows two): API_KEYS of our own. */
const tenantKeys = () => {
  const keys = { acme: generateApiKey(), globex: generateApiKey(), initech: generateApiKey() };
  const apiKeys = Object.entries(keys)
    .map(([tenant, key]) => `${tenant}:${hashApiKey(key)}`)
    .join(',');
  return { keys, apiKeys };
};

const files = (tenant: string, n: number) => Array.from({ length: n }, (_, i) => ({ name: `${tenant}-${i}.txt`, content: `${tenant} document ${i}` }));

describe(`${METRIC} with METRICS_TENANT_SERIES=2`, () => {
  const { keys, apiKeys } = tenantKeys();
  const env = { API_KEYS: apiKeys, METRICS_TOKEN: TEST_METRICS_TOKEN, METRICS_TENANT_SERIES: '2', RATE_LIMIT_REQUESTS: '0', DEFAULT_SIGNATURE_TYPE: 'CAdES' };
  let api: Stack;
  let worker: Stack | undefined;
  beforeAll(async () => {
    // No worker: what is submitted stays queued until this test starts one.
    api = await startStack({ worker: false, env });
  });
  afterAll(async () => {
    await worker?.stop();
    await api?.stop();
  });

  it('exports the two largest backlogs and _other for the rest; a tenant whose documents end disappears', async () => {
    expect(await scrape(api)).toEqual({ _other: 0 });

    const acme = await submit(api.apiUrl, keys.acme, files('acme', 3));
    // Two operations of globex: the backlog is per tenant, not per operation.
    const globex = [await submit(api.apiUrl, keys.globex, files('globex', 1)), await submit(api.apiUrl, keys.globex, files('globex-b', 1))];
    const initech = await submit(api.apiUrl, keys.initech, files('initech', 1));
    for (const r of [acme, ...globex, initech]) expect(r.status).toBe(202);
    // Top 2 with their counts; initech (1) only in _other.
    expect(await scrape(api)).toEqual({ acme: 3, globex: 2, _other: 1 });

    // acme's documents end (canceled): acme leaves the exposition, initech moves into the top 2.
    const cancel = await fetch(`${api.apiUrl}/v1/operations/${acme.body.id}`, { method: 'DELETE', headers: auth(keys.acme) });
    expect(cancel.status).toBe(200);
    expect(await scrape(api)).toEqual({ globex: 2, initech: 1, _other: 0 });

    // A worker signs the rest: no tenant has a backlog, so only _other (0) is left.
    worker = await startStack({ api: false, env, reuse: { dir: api.dir, prefix: api.config.queuePrefix } });
    for (const r of globex) expect((await waitForTerminal(api.apiUrl, keys.globex, r.body.id)).status).toBe('succeeded');
    expect((await waitForTerminal(api.apiUrl, keys.initech, initech.body.id)).status).toBe('succeeded');
    expect(await scrape(api)).toEqual({ _other: 0 });
  });
});

describe(`${METRIC} when Redis cannot be read`, () => {
  let redis: TestRedis;
  let api: Stack;
  beforeAll(async () => {
    redis = await startTestRedis();
    api = await startStack({ worker: false, env: { REDIS_URL: redis.url, METRICS_TOKEN: TEST_METRICS_TOKEN } });
  });
  afterAll(async () => {
    await api?.stop().catch(() => undefined);
    await redis?.stop();
  });

  it('does not fail the scrape, and keeps the last values', async () => {
    expect((await submit(api.apiUrl, api.keys.acme, files('acme', 2))).status).toBe(202);
    expect(await scrape(api)).toEqual({ acme: 2, _other: 0 });
    await redis.stop();
    // Twice: the scrape keeps answering (the reader logs the failure once, not per scrape).
    expect(await scrape(api)).toEqual({ acme: 2, _other: 0 });
    expect(await scrape(api)).toEqual({ acme: 2, _other: 0 });
  });
});

describe(`${METRIC} with METRICS_TENANT_SERIES=0`, () => {
  it('exports no series', async () => {
    const api = await startStack({ worker: false, env: { METRICS_TENANT_SERIES: '0' } });
    try {
      expect((await submit(api.apiUrl, api.keys.acme, files('acme', 1))).status).toBe(202);
      expect(await scrape(api)).toEqual({});
    } finally {
      await api.stop();
    }
  });
});

describe(`${METRIC} without METRICS_TOKEN`, () => {
  it('names no tenant: tenant="_other" carries every backlog', async () => {
    const { keys, apiKeys } = tenantKeys();
    const api = await startStack({ worker: false, env: { API_KEYS: apiKeys, RATE_LIMIT_REQUESTS: '0', DEFAULT_SIGNATURE_TYPE: 'CAdES' } });
    try {
      expect((await submit(api.apiUrl, keys.acme, files('acme', 2))).status).toBe(202);
      expect((await submit(api.apiUrl, keys.initech, files('initech', 1))).status).toBe(202);
      expect(await scrape(api)).toEqual({ _other: 3 });
      expect(await (await fetch(api.metricsUrl)).text()).not.toMatch(/acme|globex|initech/);
    } finally {
      await api.stop();
    }
  });
});
