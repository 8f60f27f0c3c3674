/** The batch runner: its retry delay, capped exponential backoff with full jitter and Retry-After as a floor. */
import { describe, expect, it } from 'vitest';
import { backoffDelay } from '@signspool/worker/batch/runner';

const low = (): number => 0;
const high = (): number => 1;

describe('backoffDelay', () => {
  it('doubles per attempt from the base, jittered between half and the whole ceiling', () => {
    expect([1, 2, 3, 4].map((a) => backoffDelay(a, 100, 10_000, undefined, low))).toEqual([50, 100, 200, 400]);
    expect([1, 2, 3, 4].map((a) => backoffDelay(a, 100, 10_000, undefined, high))).toEqual([100, 200, 400, 800]);
    expect(backoffDelay(3, 100, 10_000, undefined, () => 0.5)).toBe(300);
  });

  it('never exceeds the cap, however many attempts', () => {
    expect(backoffDelay(40, 100, 5_000, undefined, high)).toBe(5_000);
    expect(backoffDelay(40, 100, 5_000, undefined, low)).toBe(2_500);
  });

  it('treats attempt 0 like the first', () => {
    expect(backoffDelay(0, 100, 5_000, undefined, high)).toBe(100);
  });

  it('waits at least Retry-After, but no more than five caps', () => {
    expect(backoffDelay(1, 100, 5_000, 3_000, low)).toBe(3_000);
    expect(backoffDelay(6, 100, 5_000, 10, high)).toBe(3_200);
    expect(backoffDelay(1, 100, 5_000, 3_600_000, low)).toBe(25_000);
  });
});
