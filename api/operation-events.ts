/**
 * Wakes requests waiting for an operation to end (`Prefer: wait=N`). One Redis subscriber per api
 * process listens on `<prefix>:events` (published by the state machine's Lua when an operation
 * becomes terminal) and resolves the waiters of that operation. No polling loop.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '@signspool/shared/logger';

export class OperationEvents {
  private readonly waiters = new Map<string, Set<() => void>>();
  private subscriber: Redis | undefined;
  private stopped = false;

  constructor(
    private readonly redis: Redis,
    private readonly channel: string,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    const sub = this.redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null });
    this.subscriber = sub;
    sub.on('error', (err: Error) => this.logger.warn({ err: { message: err.message } }, 'event subscriber error'));
    sub.on('message', (_channel: string, message: string) => {
      try {
        const { opId } = JSON.parse(message) as { opId?: string };
        if (opId) this.wake(opId);
      } catch {
        // not ours
      }
    });
    await sub.subscribe(this.channel);
  }

  /** Number of requests currently waiting (for metrics and tests). */
  get waiting(): number {
    let n = 0;
    for (const s of this.waiters.values()) n += s.size;
    return n;
  }

  /**
   * Resolves when `opId` ends or after `ms`, whichever first; `cancel` (client gone, or no wait
   * needed) ends it early and may be called any number of times. Register before re-reading the
   * record, so an event between the read and the wait is not lost. (A callback, not an AbortSignal:
   * aborting builds a DOMException, measurable at hundreds of long-polls per second.) Once stopped,
   * it resolves at once.
   */
  waitFor(opId: string, ms: number): { done: Promise<void>; cancel: () => void } {
    // Stopped: nothing would wake it, and the stop is not held up by a wait (answered at once).
    if (this.stopped) return { done: Promise.resolve(), cancel: () => undefined };
    let cancel = (): void => undefined;
    const done = new Promise<void>((resolve) => {
      const set = this.waiters.get(opId) ?? new Set<() => void>();
      this.waiters.set(opId, set);
      const finish = (): void => {
        clearTimeout(timer);
        set.delete(finish);
        if (set.size === 0 && this.waiters.get(opId) === set) this.waiters.delete(opId);
        resolve();
      };
      const timer = setTimeout(finish, ms);
      set.add(finish);
      cancel = finish;
    });
    return { done, cancel };
  }

  private wake(opId: string): void {
    const set = this.waiters.get(opId);
    if (!set) return;
    for (const finish of [...set]) finish();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const id of [...this.waiters.keys()]) this.wake(id);
    if (this.subscriber) {
      try {
        await this.subscriber.quit();
      } catch {
        this.subscriber.disconnect();
      }
    }
  }
}

/** Parses `Prefer: wait=N` (RFC 7240); returns seconds, capped, or undefined. */
export const preferredWait = (header: string | undefined, capSeconds = 60): number | undefined => {
  if (!header) return undefined;
  for (const pref of header.split(',')) {
    const m = /^\s*wait\s*=\s*"?(\d+)"?\s*(;.*)?$/i.exec(pref);
    if (m?.[1]) return Math.min(Number(m[1]), capSeconds);
  }
  return undefined;
};
