/**
 * The per-tenant backlog metric without Redis: topTenants bounds the label set (top N, ties by name,
 * `_other` for the rest), the reader logs a failing Redis once, and the gauge resets before each
 * scrape, keeps its last values when the read fails, and exports nothing without a source.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '@signspool/shared/config';
import { createMetrics } from '@signspool/shared/metrics';
import { OTHER_TENANTS, TenantBacklogReader, backlogKey, topTenants } from '@signspool/shared/scheduling/tenant-backlog';

const METRIC = 'signspool_tenant_backlog_documents';

const exported = async (metrics: ReturnType<typeof createMetrics>): Promise<Record<string, number>> => {
  const m = await metrics.registry.getSingleMetric(METRIC)?.get();
  return Object.fromEntries((m?.values ?? []).map((v) => [String(v.labels['tenant']), v.value]));
};

describe('topTenants', () => {
  it('keeps the N largest (ties by name) and sums the rest into _other', () => {
    expect(topTenants({ a: 1, b: 5, c: 3, d: 3 }, 2)).toEqual([
      ['b', 5],
      ['c', 3],
      [OTHER_TENANTS, 4],
    ]);
    expect(topTenants({ a: 1 }, 2)).toEqual([
      ['a', 1],
      [OTHER_TENANTS, 0],
    ]);
    expect(topTenants({}, 2)).toEqual([[OTHER_TENANTS, 0]]);
    expect(topTenants({ a: 1 }, 0)).toEqual([]);
  });

  it('leaves out counts that are not positive, and counts a tenant named _other in _other', () => {
    expect(topTenants({ a: 0, b: -1, c: Number.NaN, [OTHER_TENANTS]: 7, d: 2 }, 1)).toEqual([
      ['d', 2],
      [OTHER_TENANTS, 7],
    ]);
  });

  it('exports at most N + 1 series however many tenants have a backlog', () => {
    const many = Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`t${i}`, (i % 97) + 1]));
    const top = topTenants(many, 20);
    expect(top).toHaveLength(21);
    expect(top.slice(0, 20).every(([, n]) => n === 97)).toBe(true);
    expect(top.reduce((sum, [, n]) => sum + n, 0)).toBe(Object.values(many).reduce((sum, n) => sum + n, 0));
  });
});

describe('TenantBacklogReader', () => {
  it('reads the backlog hash, and logs a failing Redis once (warn), then its return (info)', async () => {
    const logs: string[] = [];
    const logger = { warn: () => logs.push('warn'), info: () => logs.push('info') };
    let down = false;
    const keys: string[] = [];
    const redis = {
      hgetall: async (key: string): Promise<Record<string, string>> => {
        keys.push(key);
        if (down) throw new Error('Connection is closed.');
        return { acme: '3', globex: '1' };
      },
    };
    const reader = new TenantBacklogReader(redis, 'sp', 2, logger);
    expect(await reader.read()).toEqual({ acme: 3, globex: 1 });
    expect(keys).toEqual([backlogKey('sp')]);
    down = true;
    for (let i = 0; i < 3; i++) await expect(reader.read()).rejects.toThrow(/closed/);
    expect(logs).toEqual(['warn']);
    down = false;
    await reader.read();
    await reader.read();
    expect(logs).toEqual(['warn', 'info']);
  });
});

describe(METRIC, () => {
  it('resets before setting, keeps the last values when the read fails, and is bounded', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    let backlog: Record<string, number> | Error = { a: 4, b: 2, c: 1 };
    metrics.tenantBacklogSources.push({ series: 2, named: true, read: async () => (backlog instanceof Error ? Promise.reject(backlog) : backlog) });
    expect(await exported(metrics)).toEqual({ a: 4, b: 2, _other: 1 });
    backlog = { b: 2, c: 1 };
    expect(await exported(metrics)).toEqual({ b: 2, c: 1, _other: 0 });
    backlog = new Error('Redis down');
    expect(await exported(metrics)).toEqual({ b: 2, c: 1, _other: 0 });
    await expect(metrics.registry.metrics()).resolves.toContain(`${METRIC}{tenant="b"} 2`);
    backlog = {};
    expect(await exported(metrics)).toEqual({ _other: 0 });
  });

  it('exports nothing without a source (the worker) or with 0 series', async () => {
    const worker = createMetrics({ defaultMetrics: false });
    expect(await exported(worker)).toEqual({});
    const off = createMetrics({ defaultMetrics: false });
    off.tenantBacklogSources.push({ series: 0, named: true, read: async () => ({ a: 1 }) });
    expect(await exported(off)).toEqual({});
  });

  it('without tenant names (no METRICS_TOKEN) exports only _other, the sum of every backlog', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.tenantBacklogSources.push({ series: 2, named: false, read: async () => ({ acme: 4, globex: 2, initech: 1 }) });
    expect(await exported(metrics)).toEqual({ _other: 7 });
    expect(await metrics.registry.metrics()).not.toMatch(/acme|globex|initech/);
  });

  it('takes METRICS_TENANT_SERIES (default 20, 0 = off)', () => {
    expect(loadConfig({}).metrics.tenantSeries).toBe(20);
    expect(loadConfig({ METRICS_TENANT_SERIES: '0' }).metrics.tenantSeries).toBe(0);
    expect(() => loadConfig({ METRICS_TENANT_SERIES: '-1' })).toThrow(/METRICS_TENANT_SERIES/);
  });
});
