/**
 * The log of an operation's webhook delivery attempts (`<prefix>:op:<opId>:webhooks`, the last 50,
 * kept as long as the operation), shown in its status response.
 */
import type { Redis } from 'ioredis';
import { keys } from '../redis/keys.js';

export interface WebhookAttempt {
  deliveryId: string;
  attempt: number;
  at: number;
  url: string;
  status: number | null;
  latencyMs: number;
  outcome: 'delivered' | 'failed' | 'refused' | 'disabled';
  error?: string;
}

const KEEP = 50;

export class WebhookDeliveryLog {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly retentionMs: number,
  ) {}

  key(opId: string): string {
    return keys.webhookDeliveries(this.prefix, opId);
  }

  async record(opId: string, attempt: WebhookAttempt): Promise<void> {
    const key = this.key(opId);
    await this.redis.multi().rpush(key, JSON.stringify(attempt)).ltrim(key, -KEEP, -1).pexpire(key, this.retentionMs).exec();
  }

  async list(opId: string): Promise<WebhookAttempt[]> {
    return (await this.redis.lrange(this.key(opId), 0, -1)).map((raw) => JSON.parse(raw) as WebhookAttempt);
  }
}
