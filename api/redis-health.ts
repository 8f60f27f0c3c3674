/**
 * Whether the api's Redis answers, as its requests find it: a request that finds it unavailable (a
 * command timed out: hung; the connection refused or closed: down) marks it down, and the first
 * answer to the PINGs it then sends marks it up again. While it is down, uploads are
 * refused at once with 503 and Retry-After (upload/gate.ts), and so are those waiting for a slot:
 * otherwise each would hold a slot until its own first command timed out, and the others would
 * queue behind them far longer than a request deadline.
 */
import type { Redis } from 'ioredis';
import { isRedisUnavailable } from '@signspool/shared/redis/unavailable';

export class RedisHealth {
  private down = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners = new Set<() => void>();

  constructor(
    private readonly redis: Pick<Redis, 'ping'>,
    private readonly retryMs = 500,
  ) {}

  /** False from a request's finding Redis unavailable until a PING answers. */
  get available(): boolean {
    return !this.down;
  }

  /** Told the error a request ended with: one that says Redis is unavailable marks it down. */
  report(err: unknown): void {
    if (this.down || this.stopped || !isRedisUnavailable(err)) return;
    this.down = true;
    for (const listener of [...this.listeners]) listener();
    void this.probe();
  }

  /** Calls `listener` each time Redis is marked down, until the returned function is called. */
  onDown(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** PINGs until one answers: back to back while they time out (a hung Redis: one always waits for it), every `retryMs` while they fail at once (down). */
  private async probe(): Promise<void> {
    while (this.down && !this.stopped) {
      const sent = performance.now();
      if (
        await this.redis.ping().then(
          () => true,
          () => false,
        )
      ) {
        this.down = false;
        return;
      }
      const wait = this.retryMs - (performance.now() - sent);
      if (wait > 0) {
        await new Promise<void>((resolve) => {
          this.timer = setTimeout(resolve, wait);
          this.timer.unref();
        });
      }
    }
  }

  /** Idempotent: no more PINGs. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
