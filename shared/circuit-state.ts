/**
 * Workers' upstream circuit states, published to Redis so the api (which holds no circuit) can
 * report them in GET /v1/admin/stats. One hash per queue prefix: field = worker id, value = state
 * and expiry. A closed circuit removes its field (no field = closed); an open or half-open one
 * expires after `ttlMs`, so a worker that died with an open circuit stops being reported.
 */
import os from 'node:os';
import type { Redis } from 'ioredis';

export type PublishedCircuitState = 'closed' | 'open' | 'half_open';

export interface WorkerCircuit {
  worker: string;
  state: Exclude<PublishedCircuitState, 'closed'>;
  since: string;
}

const key = (prefix: string): string => `${prefix}:circuits`;

/** This process's id in the hash: host and pid. */
export const workerIdentity = (): string => `${os.hostname()}:${process.pid}`;

/** Records a worker's state; never throws (a status report must not break the worker). */
export const publishCircuitState = async (
  redis: Redis,
  prefix: string,
  state: PublishedCircuitState,
  ttlMs: number,
  worker = workerIdentity(),
): Promise<void> => {
  try {
    if (state === 'closed') await redis.hdel(key(prefix), worker);
    else {
      const now = Date.now();
      await redis.hset(key(prefix), worker, JSON.stringify({ state, since: now, until: now + ttlMs }));
    }
  } catch {
    // Redis unavailable: the next change publishes again.
  }
};

/** Open and half-open circuits of live workers; expired entries are removed on the way. */
export const readCircuitStates = async (redis: Redis, prefix: string, now = Date.now()): Promise<WorkerCircuit[]> => {
  const all = await redis.hgetall(key(prefix));
  const out: WorkerCircuit[] = [];
  const expired: string[] = [];
  for (const [worker, raw] of Object.entries(all)) {
    let entry: { state?: unknown; since?: unknown; until?: unknown };
    try {
      entry = JSON.parse(raw) as typeof entry;
    } catch {
      expired.push(worker);
      continue;
    }
    const state = entry.state === 'open' || entry.state === 'half_open' ? entry.state : undefined;
    if (!state || typeof entry.until !== 'number' || entry.until <= now || typeof entry.since !== 'number') {
      expired.push(worker);
      continue;
    }
    out.push({ worker, state, since: new Date(entry.since).toISOString() });
  }
  if (expired.length > 0) await redis.hdel(key(prefix), ...expired);
  return out.sort((a, b) => a.worker.localeCompare(b.worker));
};
