/**
 * What a pending webhook delivery needs to be sent again: the event body, its target and tenant,
 * kept under `<prefix>:webhook:pending:<deliveryId>` from its first attempt until its last possible
 * one. The operation record expires after RETENTION, but the default WEBHOOK_SCHEDULE reaches about
 * 76 h: retries after RETENTION send this copy (the event as it was when the operation ended; its
 * download links then answer 404). Removed once the delivery succeeds or can never succeed.
 */
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { keys } from '../redis/keys.js';

export const pendingEventSchema = z.object({
  tenant: z.string().min(1),
  url: z.string().min(1),
  body: z.string(),
});
export type PendingEvent = z.infer<typeof pendingEventSchema>;

/** Slack over the computed lifetime: deferrals by the fair share, clock drift, slow Redis. */
const MARGIN_MS = 3_600_000;

/**
 * How long a delivery's copy must be kept after attempt `attemptsMade + 1` starts: every remaining
 * delay of the schedule (+10 % jitter), a timeout per remaining attempt, a Retry-After beyond the
 * schedule, and a margin.
 */
export const pendingLifetimeMs = (scheduleMs: readonly number[], attemptsMade: number, timeoutMs: number, retryAfterMs = 0): number => {
  const remaining = scheduleMs.slice(attemptsMade + 1);
  const delays = remaining.reduce((sum, d) => sum + Math.ceil(d * 1.1), 0);
  return delays + retryAfterMs + (remaining.length + 1) * timeoutMs + MARGIN_MS;
};

export class PendingEvents {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  key(deliveryId: string): string {
    return keys.webhookPending(this.prefix, deliveryId);
  }

  /** The kept copy, or undefined (never kept, expired, or not readable as one). */
  async get(deliveryId: string): Promise<PendingEvent | undefined> {
    const raw = await this.redis.get(this.key(deliveryId));
    if (raw === null) return undefined;
    try {
      return pendingEventSchema.parse(JSON.parse(raw));
    } catch {
      return undefined;
    }
  }

  /** Keeps `event` for `lifetimeMs` (the first copy wins: every retry sends the same body). */
  async keep(deliveryId: string, event: PendingEvent, lifetimeMs: number): Promise<void> {
    await this.redis.set(this.key(deliveryId), JSON.stringify(pendingEventSchema.parse(event)), 'PX', lifetimeMs, 'NX');
  }

  /** Keeps the copy at least `lifetimeMs` more. */
  async extend(deliveryId: string, lifetimeMs: number): Promise<void> {
    await this.redis.pexpire(this.key(deliveryId), lifetimeMs, 'GT');
  }

  async remove(deliveryId: string): Promise<void> {
    await this.redis.del(this.key(deliveryId));
  }
}
