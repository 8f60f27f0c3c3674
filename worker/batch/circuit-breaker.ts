/**
 * The upstream circuit breaker. After `threshold` consecutive failed batches (server error,
 * network, timeout) it opens: no batch is sent for `cooldownMs`; then one probe batch goes
 * (half-open); its success closes the circuit, its failure opens it again. Callers wait in
 * `acquire()` instead of failing, so an outage costs documents time, not attempts; or, with
 * `tryAcquire()`, learn that it is blocked (open, or half-open with its probe under way) and give
 * their documents back to the queue for `deferMs` (a worker signs for several identities, each with
 * its own breaker: one's outage must not hold the slots and memory the others need).
 */
export type CircuitState = 'closed' | 'open' | 'half_open';

export interface CircuitBreakerOptions {
  threshold: number;
  cooldownMs: number;
  onStateChange?: (state: CircuitState) => void;
}

/** What `acquire` grants: a normal call, or the single probe of a half-open circuit. */
export type Permit = 'normal' | 'probe';

export class CircuitBreaker {
  private current: CircuitState = 'closed';
  private failures = 0;
  private openedAt = 0;
  private probing = false;
  private waiters: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: CircuitBreakerOptions) {}

  get state(): CircuitState {
    return this.current;
  }

  /** Resolves when a call may go; rejects with the signal's reason when aborted while waiting. */
  async acquire(signal: AbortSignal): Promise<Permit> {
    for (;;) {
      if (signal.aborted) throw signal.reason;
      if (this.current === 'closed') return 'normal';
      if (this.current === 'half_open' && !this.probing) {
        this.probing = true;
        return 'probe';
      }
      await this.waitForChange(signal);
    }
  }

  /** As acquire(), but never waits: 'open' while the circuit is blocked. */
  tryAcquire(signal: AbortSignal): Permit | 'open' {
    if (signal.aborted) throw signal.reason;
    if (this.current === 'closed') return 'normal';
    if (this.current === 'half_open' && !this.probing) {
      this.probing = true;
      return 'probe';
    }
    return 'open';
  }

  /** True while no call may go: open, or half-open with its probe under way. */
  get blocked(): boolean {
    return this.current === 'open' || (this.current === 'half_open' && this.probing);
  }

  /** How long a caller turned away should wait before trying again: the cool-down left, or (during a probe) a few seconds at most. */
  get deferMs(): number {
    if (this.current === 'open') return this.retryInMs;
    return this.blocked ? Math.min(this.opts.cooldownMs, 5000) : 0;
  }

  success(): void {
    this.failures = 0;
    this.probing = false;
    if (this.current !== 'closed') this.set('closed');
  }

  /** A failure that says the upstream is unavailable. */
  failure(): void {
    this.failures++;
    if (this.current === 'half_open' || (this.current === 'closed' && this.failures >= this.opts.threshold)) this.open();
  }

  /** The probe ended without telling whether the upstream is back (aborted, or a document-level answer). */
  release(): void {
    if (!this.probing) return;
    this.probing = false;
    this.wake();
  }

  private open(): void {
    this.probing = false;
    this.openedAt = Date.now();
    this.set('open');
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.set('half_open'), this.opts.cooldownMs);
    this.timer.unref();
  }

  /** Milliseconds until an open circuit lets its probe go (0 unless open). */
  get retryInMs(): number {
    return this.current === 'open' ? Math.max(0, this.openedAt + this.opts.cooldownMs - Date.now()) : 0;
  }

  private set(state: CircuitState): void {
    this.current = state;
    this.opts.onStateChange?.(state);
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private waitForChange(signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const onAbort = (): void => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  /** Idempotent. */
  stop(): void {
    clearTimeout(this.timer);
    this.wake();
  }
}
