/**
 * BullMQ's priority contract, as fair scheduling relies on it (shared/scheduling/bullmq-priority.ts):
 * jobs added through BullMQ's public API must land in `queue.toKey('prioritized')` scored
 * `priority × PRIORITY_SCORE_UNIT + counter`, priorities up to PRIORITY_LIMIT must be accepted and
 * one more refused, and workers must take the lowest priority first. A BullMQ upgrade that changes
 * any of this fails here before it can silently break fairness.
 */
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { QUEUES } from '@signspool/shared/queue';
import { PRIORITY_LIMIT, PRIORITY_SCORE_UNIT, priorityOfScore } from '@signspool/shared/scheduling/bullmq-priority';
import { testPrefix } from './harness/stack.js';

describe('BullMQ priority contract', () => {
  let redis: Redis;
  let queue: Queue;
  beforeAll(() => {
    redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
    queue = new Queue(QUEUES.sign, { connection: redis, prefix: testPrefix() });
  });
  afterAll(async () => {
    await queue?.close();
    await redis?.quit();
  });

  it('scores prioritized jobs priority × 2^32 + insertion counter', async () => {
    await queue.add('j', {}, { priority: 7 });
    await queue.add('j', {}, { priority: 3 });
    await queue.add('j', {}, { priority: 3 });
    const scored = await redis.zrange(queue.toKey('prioritized'), 0, -1, 'WITHSCORES');
    const scores = scored.filter((_, i) => i % 2 === 1).map(Number);
    expect(scores.map(priorityOfScore)).toEqual([3, 3, 7]);
    // Ties keep insertion order: the counter part grows.
    expect(scores[1]! - scores[0]!).toBeGreaterThan(0);
    expect(scores[1]! - scores[0]!).toBeLessThan(PRIORITY_SCORE_UNIT);
  });

  it('accepts priorities up to PRIORITY_LIMIT and refuses one more', async () => {
    const top = await queue.add('j', {}, { priority: PRIORITY_LIMIT });
    const score = await redis.zscore(queue.toKey('prioritized'), top.id!);
    expect(priorityOfScore(Number(score))).toBe(PRIORITY_LIMIT);
    await expect(queue.add('j', {}, { priority: PRIORITY_LIMIT + 1 })).rejects.toThrow();
  });

  it('serves the lowest priority first', async () => {
    const q = new Queue('order', { connection: redis, prefix: testPrefix() });
    await q.add('j', { p: 5 }, { priority: 5 });
    await q.add('j', { p: 1 }, { priority: 1 });
    await q.add('j', { p: 2 }, { priority: 2 });
    const worker = new Worker('order', null, { connection: redis.duplicate(), prefix: q.opts.prefix! });
    const taken: unknown[] = [];
    for (let i = 0; i < 3; i++) {
      const job = await worker.getNextJob('token');
      taken.push(job?.data.p);
      await job?.moveToCompleted('ok', 'token', false);
    }
    await worker.close();
    await q.close();
    expect(taken).toEqual([1, 2, 5]);
  });
});
