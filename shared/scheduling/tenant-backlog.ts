/**
 * The backlog of each tenant: how many of its accepted documents have not ended yet (queued or
 * signing). One Redis hash, `<prefix>:backlog`, tenant → count, kept by the operation scripts
 * (shared/lua/includes/backlog.lua) in the same atomic step as the state change: an operation adds its
 * unfinished documents when it is accepted (`markAccepted`), and every document that ends
 * (signed, failed, canceled) afterwards takes one off. Documents that end while their operation
 * is still being accepted are never counted, so a request that fails half-way, or an api that
 * dies before `markAccepted`, leaves the count exact. The api reads it for the backlog quota, and
 * at scrape time for `signspool_tenant_backlog_documents` (`TenantBacklogReader`, `topTenants`).
 */
import type { Redis } from 'ioredis';
import { keys } from '../redis/keys.js';

export const backlogKey = keys.backlog;

/** Unfinished documents of `tenant` (0 when none). */
export const readBacklog = async (redis: Redis, prefix: string, tenant: string): Promise<number> => Number((await redis.hget(backlogKey(prefix), tenant)) ?? 0);

/** The label value of the tenants outside the top N (summed); a tenant really named so is counted there too. */
export const OTHER_TENANTS = '_other';

/**
 * The `series` tenants with the largest backlog (ties by name), then `_other` with the sum of the
 * rest (0 when there is none): at most `series + 1` entries, whatever the number of tenants.
 * `series` 0 gives nothing. Counts that are not positive numbers are left out.
 */
export const topTenants = (backlog: Readonly<Record<string, number>>, series: number): [string, number][] => {
  if (series <= 0) return [];
  const ranked = Object.entries(backlog)
    .filter(([tenant, n]) => tenant !== OTHER_TENANTS && Number.isFinite(n) && n > 0)
    .sort(([ta, a], [tb, b]) => b - a || (ta < tb ? -1 : ta > tb ? 1 : 0));
  const rest = ranked.slice(series).reduce((sum, [, n]) => sum + n, Math.max(0, backlog[OTHER_TENANTS] ?? 0));
  return [...ranked.slice(0, series), [OTHER_TENANTS, rest]];
};

/** Without tenant names (scrapes without METRICS_TOKEN): one `_other` entry, the sum of every backlog. */
export const anonymousBacklog = (backlog: Readonly<Record<string, number>>): [string, number][] => [
  [OTHER_TENANTS, Object.values(backlog).reduce((sum, n) => sum + (Number.isFinite(n) && n > 0 ? n : 0), 0)],
];

/** What the reader needs of Redis and of the logger (an ioredis client and a pino logger are such). */
export interface BacklogHashClient {
  hgetall(key: string): Promise<Record<string, string>>;
}
export interface BacklogReadLogger {
  warn(obj: object, msg: string): void;
  info(msg: string): void;
}

/**
 * Reads the whole backlog hash for the metric: one HGETALL (the hash holds only tenants with
 * unfinished documents; however many there are, `topTenants` bounds what is exported). A failed
 * read rejects (the gauge then keeps its last values) and is logged once, at warn, until a read
 * succeeds again (logged at info): not once per scrape.
 */
export class TenantBacklogReader {
  private failing = false;

  constructor(
    private readonly redis: BacklogHashClient,
    private readonly prefix: string,
    /** Tenants that get a series of their own (METRICS_TENANT_SERIES). */
    readonly series: number,
    private readonly logger: BacklogReadLogger,
    /** Whether tenant names may be exported (only when every scrape carries METRICS_TOKEN). */
    readonly named = true,
  ) {}

  async read(): Promise<Record<string, number>> {
    let raw: Record<string, string>;
    try {
      raw = await this.redis.hgetall(backlogKey(this.prefix));
    } catch (err) {
      if (!this.failing)
        this.logger.warn(
          { err: { message: (err as Error).message } },
          'tenant backlog metric: cannot read the backlog from Redis; keeping the last values until it can',
        );
      this.failing = true;
      throw err;
    }
    if (this.failing) this.logger.info('tenant backlog metric: reading the backlog from Redis again');
    this.failing = false;
    return Object.fromEntries(Object.entries(raw).map(([tenant, n]) => [tenant, Number(n)]));
  }
}
