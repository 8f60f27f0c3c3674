/**
 * What a chaos run leaves behind once every operation's retention has passed: files under the
 * spool and Redis keys under the run's prefix. BullMQ is asked which keys are its own per-queue
 * structures (`Queue.keys`) and how many jobs each queue still holds (`getJobCounts`), so the
 * count does not depend on BullMQ's private key layout: its structures are not leftovers, the
 * jobs in them are; every other key (operation records, idempotency keys, job hashes, locks)
 * belongs to some operation and should be gone.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { QUEUES } from '@signspool/shared/queue';
import { fairShareKey } from '@signspool/shared/scheduling/fair-share';
import { keys as redisKeys } from '@signspool/shared/redis/keys';

export const listFiles = async (root: string): Promise<string[]> => {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(path.relative(root, p));
    }
  };
  await walk(root);
  return out.sort();
};

/**
 * Leftovers among `keys` (every key under the prefix): those that are neither one of BullMQ's
 * per-queue structures (`structures`) nor the fair-scheduling rounds; plus one entry per queue
 * state that still holds jobs (`<queue> jobs <state>=<n>`).
 */
export const judgeKeys = (keys: string[], structures: Set<string>, jobCounts: Record<string, Record<string, number>>): string[] => {
  const out = keys.filter((k) => !structures.has(k));
  for (const [queue, counts] of Object.entries(jobCounts)) for (const [state, n] of Object.entries(counts)) if (n > 0) out.push(`${queue} jobs ${state}=${n}`);
  return out.sort();
};

/** Leftover keys under `prefix` (judgeKeys), each named with its expiry. */
export const leftoverKeys = async (url: string, prefix: string): Promise<string[]> => {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  const queues = Object.values(QUEUES).map((name) => new Queue(name, { connection: redis, prefix }));
  try {
    // Bookkeeping of one small hash per prefix, each expiring by itself: the fair-scheduling rounds
    // (when idle) and the workers' circuit and identity heartbeats (when no worker renews them).
    const structures = new Set([
      fairShareKey(prefix),
      redisKeys.circuits(prefix),
      redisKeys.signerStates(prefix),
      ...queues.flatMap((q) => Object.values(q.keys)),
    ]);
    const jobCounts: Record<string, Record<string, number>> = {};
    for (const q of queues) jobCounts[q.name] = await q.getJobCounts();
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      keys.push(...found);
    } while (cursor !== '0');
    // Each leftover key with when it would go by itself: bounded (a TTL) or never.
    const all = new Set(keys);
    return await Promise.all(
      judgeKeys(keys, structures, jobCounts).map(async (k) => {
        if (!all.has(k)) return k;
        const ms = await redis.pttl(k);
        return `${k} (${ms >= 0 ? `expires in ${Math.round(ms / 1000)} s` : 'no expiry'})`;
      }),
    );
  } finally {
    await Promise.allSettled(queues.map((q) => q.close()));
    redis.disconnect();
  }
};
