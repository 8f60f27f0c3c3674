/** RedisHealth alone: which errors mark Redis down, who is told, and the PINGs that mark it up again. */
import { describe, expect, it } from 'vitest';
import { RedisHealth } from '@signspool/api/redis-health';

/** A PING whose answers the test gives, one at a time, in order. */
const scriptedPing = (): { ping: () => Promise<'PONG'>; sent: number; answer: (ok: boolean) => void } => {
  const waiting: { resolve: (v: 'PONG') => void; reject: (e: Error) => void }[] = [];
  const fake = {
    sent: 0,
    ping: () =>
      new Promise<'PONG'>((resolve, reject) => {
        fake.sent++;
        waiting.push({ resolve, reject });
      }),
    answer: (ok: boolean) => {
      const next = waiting.shift();
      if (ok) next?.resolve('PONG');
      else next?.reject(new Error('Command timed out'));
    },
  };
  return fake;
};

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('RedisHealth', () => {
  it('is marked down by an error that says Redis is unavailable, not by any other', () => {
    const health = new RedisHealth(scriptedPing());
    health.report(new Error('no such operation'));
    health.report(undefined);
    expect(health.available).toBe(true);
    health.report(new Error('Command timed out'));
    expect(health.available).toBe(false);
    health.stop();
  });

  it('tells its listeners once per fall, until they unsubscribe', () => {
    const health = new RedisHealth(scriptedPing());
    const told: string[] = [];
    health.onDown(() => told.push('a'));
    const unsubscribe = health.onDown(() => told.push('b'));
    health.report(new Error('Connection is closed.'));
    health.report(new Error('Command timed out'));
    expect(told).toEqual(['a', 'b']);
    unsubscribe();
    expect(told).toEqual(['a', 'b']);
    health.stop();
  });

  it('PINGs back to back while they time out, and is up again at the first answer', async () => {
    const redis = scriptedPing();
    const health = new RedisHealth(redis, 0);
    health.report(new Error('Command timed out'));
    expect(redis.sent).toBe(1);
    redis.answer(false);
    await flush();
    expect([health.available, redis.sent]).toEqual([false, 2]);
    redis.answer(true);
    await flush();
    expect(health.available).toBe(true);
    // Down again later: a new round of PINGs.
    health.report(new Error('Command timed out'));
    expect([health.available, redis.sent]).toEqual([false, 3]);
    health.stop();
  });
});
