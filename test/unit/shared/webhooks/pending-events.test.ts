import { describe, expect, it } from 'vitest';
import { parseDuration } from '@signspool/shared/config';
import { pendingLifetimeMs } from '@signspool/shared/webhooks/pending-events';

const HOUR = 3_600_000;

describe('pendingLifetimeMs', () => {
  it('covers the rest of the default schedule (past a 24 h RETENTION) with jitter, timeouts and a margin', () => {
    const schedule = '0,5s,5m,30m,2h,5h,10h,14h,20h,24h'.split(',').map((d) => parseDuration(d) ?? 0);
    const total = schedule.reduce((a, b) => a + b, 0);
    const life = pendingLifetimeMs(schedule, 0, 15_000);
    expect(total).toBeGreaterThan(75 * HOUR);
    expect(life).toBeGreaterThanOrEqual(total * 1.1 + HOUR);
    // Before the last attempt only its own timeout and the margin remain.
    expect(pendingLifetimeMs(schedule, schedule.length - 1, 15_000)).toBe(15_000 + HOUR);
  });

  it('adds a Retry-After that reaches past the schedule', () => {
    expect(pendingLifetimeMs([0, 1000], 0, 100, 50_000) - pendingLifetimeMs([0, 1000], 0, 100)).toBe(50_000);
  });
});
