/**
 * The sign queue's consumer against a real Redis (worker/batch/sign-job-consumer.ts): a completion
 * fetches the next waiting job along while the worker wants more; that job is locked by this
 * consumer, handed out by `next` without asking Redis again, and given back to the queue at close
 * when it was never handed out.
 */
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, inject, it, vi } from 'vitest';
import { silentLogger } from '@signspool/shared/logger';
import { QUEUES } from '@signspool/shared/queue';
import { SignJobConsumer } from '@signspool/worker/batch/sign-job-consumer';
import { testPrefix } from './harness/stack.js';

describe('SignJobConsumer', () => {
  let redis: Redis;
  let queue: Queue;
  let prefix: string;
  const consumers: SignJobConsumer[] = [];
  beforeEach(() => {
    redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
    prefix = testPrefix();
    queue = new Queue(QUEUES.sign, { connection: redis, prefix });
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await Promise.all(consumers.splice(0).map((c) => c.close()));
    await queue.close();
    await redis.quit();
  });

  const consumer = async (wantsMore: () => boolean): Promise<SignJobConsumer> => {
    const c = new SignJobConsumer({ connection: redis.duplicate(), prefix, lockDurationMs: 30_000, maxStalled: 1, logger: silentLogger(), wantsMore });
    consumers.push(c);
    await c.start();
    return c;
  };
  const lockOf = (id: string): Promise<string | null> => redis.get(`${queue.toKey(id)}:lock`);

  it('fetches the next job along with a completion, holds it locked, and hands it out without asking Redis', async () => {
    for (let i = 0; i < 3; i++) await queue.add('sign-document', { i }, { jobId: `doc_${i}` });
    // At most one job held, as the worker's maxHeld: the completed job's place goes to the next one.
    const ref: { c?: SignJobConsumer } = {};
    const c = await consumer(() => (ref.c?.heldCount ?? 0) < 1);
    ref.c = c;
    const first = await c.next();
    expect(first?.id).toBe('doc_0');
    if (!first) throw new Error('no job');
    await c.complete(first, { signed: true });
    // doc_1 came with the completion: active, locked by this consumer, counted as held.
    expect(c.heldCount).toBe(1);
    expect(await redis.lrange(queue.toKey('active'), 0, -1)).toEqual(['doc_1']);
    expect(await lockOf('doc_1')).toBe(c.token);
    const getNextJob = vi.spyOn(Worker.prototype, 'getNextJob');
    const second = await c.next();
    expect(second?.id).toBe('doc_1');
    expect(second?.data).toEqual({ i: 1 });
    expect(getNextJob).not.toHaveBeenCalled();
    if (!second) throw new Error('no job');
    expect(c.owns(second)).toBe(true);
    expect(await queue.getJobState('doc_0')).toBe('completed');
    expect(await queue.getJobState('doc_2')).toBe('waiting');
  });

  it("never holds more jobs than the worker wants when a batch's completions run at once", async () => {
    for (let i = 0; i < 6; i++) await queue.add('sign-document', { i }, { jobId: `doc_${i}` });
    const ref: { c?: SignJobConsumer } = {};
    const c = await consumer(() => (ref.c?.heldCount ?? 0) < 2);
    ref.c = c;
    const batch = [await c.next(), await c.next()];
    await Promise.all(batch.map((job) => (job ? c.complete(job, { signed: true }) : undefined)));
    expect(c.heldCount).toBe(2);
    expect((await redis.lrange(queue.toKey('active'), 0, -1)).sort()).toEqual(['doc_2', 'doc_3']);
    expect(await queue.getJobState('doc_4')).toBe('waiting');
  });

  it('gives a job fetched along and never handed out back to the queue at close', async () => {
    for (let i = 0; i < 2; i++) await queue.add('sign-document', { i }, { jobId: `doc_${i}` });
    const c = await consumer(() => true);
    const first = await c.next();
    if (!first) throw new Error('no job');
    await c.complete(first, { signed: true });
    expect(await lockOf('doc_1')).toBe(c.token);
    await c.close();
    expect(await queue.getJobState('doc_1')).toBe('waiting');
    expect(await lockOf('doc_1')).toBeNull();
  });

  it('fetches nothing along while the worker wants no more', async () => {
    for (let i = 0; i < 2; i++) await queue.add('sign-document', { i }, { jobId: `doc_${i}` });
    let more = false;
    const c = await consumer(() => more);
    const first = await c.next();
    if (!first) throw new Error('no job');
    await c.complete(first, { signed: true });
    expect(c.heldCount).toBe(0);
    expect(await queue.getJobState('doc_1')).toBe('waiting');
    more = true;
    expect((await c.next())?.id).toBe('doc_1');
  });
});
