/** The upstream circuit breaker: when it opens, how its single probe goes, and what waiting callers see. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CircuitBreaker, type CircuitState } from '@signspool/worker/batch/circuit-breaker';

const never = new AbortController().signal;

describe('CircuitBreaker', () => {
  let states: CircuitState[];
  let breaker: CircuitBreaker;
  beforeEach(() => {
    vi.useFakeTimers();
    states = [];
    breaker = new CircuitBreaker({ threshold: 3, cooldownMs: 1000, onStateChange: (s) => states.push(s) });
  });
  afterEach(() => {
    breaker.stop();
    vi.useRealTimers();
  });

  it('opens after `threshold` consecutive failures, not before; a success resets the count', async () => {
    breaker.failure();
    breaker.failure();
    breaker.success();
    breaker.failure();
    breaker.failure();
    expect(breaker.state).toBe('closed');
    expect(await breaker.acquire(never)).toBe('normal');
    breaker.failure();
    expect(breaker.state).toBe('open');
    expect(states).toEqual(['open']);
    expect(breaker.retryInMs).toBe(1000);
  });

  it('holds callers while open, lets exactly one probe go after the cooldown, and closes on its success', async () => {
    for (let i = 0; i < 3; i++) breaker.failure();
    const granted: string[] = [];
    const a = breaker.acquire(never).then((p) => granted.push(`a:${p}`));
    const b = breaker.acquire(never).then((p) => granted.push(`b:${p}`));
    await vi.advanceTimersByTimeAsync(999);
    expect(granted).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(breaker.state).toBe('half_open');
    expect(granted).toEqual(['a:probe']);
    breaker.success();
    await Promise.all([a, b]);
    expect(granted).toEqual(['a:probe', 'b:normal']);
    expect(states).toEqual(['open', 'half_open', 'closed']);
  });

  it('opens again when the probe fails, for a whole new cooldown', async () => {
    for (let i = 0; i < 3; i++) breaker.failure();
    await vi.advanceTimersByTimeAsync(1000);
    expect(await breaker.acquire(never)).toBe('probe');
    breaker.failure();
    expect(breaker.state).toBe('open');
    expect(breaker.retryInMs).toBe(1000);
    expect(states).toEqual(['open', 'half_open', 'open']);
  });

  it('gives the probe to the next caller when it ends without a verdict (release)', async () => {
    for (let i = 0; i < 3; i++) breaker.failure();
    await vi.advanceTimersByTimeAsync(1000);
    expect(await breaker.acquire(never)).toBe('probe');
    let second: string | undefined;
    const pending = breaker.acquire(never).then((p) => (second = p));
    await vi.advanceTimersByTimeAsync(0);
    expect(second).toBeUndefined();
    breaker.release();
    await pending;
    expect(second).toBe('probe');
  });

  it('rejects a waiting caller with the abort reason, and one already aborted at once', async () => {
    for (let i = 0; i < 3; i++) breaker.failure();
    const ctl = new AbortController();
    const waiting = breaker.acquire(ctl.signal);
    ctl.abort(new Error('shutting down'));
    await expect(waiting).rejects.toThrow('shutting down');
    await expect(breaker.acquire(ctl.signal)).rejects.toThrow('shutting down');
  });

  it('turns callers away without waiting while blocked (open, or probing), and says for how long (tryAcquire)', async () => {
    expect(breaker.tryAcquire(never)).toBe('normal');
    expect([breaker.blocked, breaker.deferMs]).toEqual([false, 0]);
    for (let i = 0; i < 3; i++) breaker.failure();
    expect(breaker.tryAcquire(never)).toBe('open');
    expect([breaker.blocked, breaker.deferMs]).toEqual([true, 1000]);
    await vi.advanceTimersByTimeAsync(400);
    expect(breaker.deferMs).toBe(600);
    await vi.advanceTimersByTimeAsync(600);
    // Half-open: one probe, the others are turned away (not held) while it runs.
    expect(breaker.blocked).toBe(false);
    expect(breaker.tryAcquire(never)).toBe('probe');
    expect(breaker.tryAcquire(never)).toBe('open');
    expect([breaker.blocked, breaker.deferMs]).toEqual([true, 1000]);
    breaker.success();
    expect(breaker.tryAcquire(never)).toBe('normal');
    const ctl = new AbortController();
    ctl.abort(new Error('shutting down'));
    expect(() => breaker.tryAcquire(ctl.signal)).toThrow('shutting down');
  });
});
