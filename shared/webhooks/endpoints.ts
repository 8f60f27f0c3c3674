/**
 * Endpoints disabled by a `410 Gone`: one key per tenant and URL (`<prefix>:webhook:disabled:<hash>`),
 * expiring after 30 days, so the set cannot grow forever. A redelivery requested through the API
 * enables the endpoint again: the tenant says it is back.
 */
import type { Redis } from 'ioredis';
import { keys } from '../redis/keys.js';

const DISABLED_FOR_S = 30 * 24 * 3600;

export class DisabledEndpoints {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  key(tenant: string, url: string): string {
    return keys.webhookDisabled(this.prefix, tenant, url);
  }

  async disable(tenant: string, url: string): Promise<void> {
    await this.redis.set(this.key(tenant, url), '1', 'EX', DISABLED_FOR_S);
  }

  async isDisabled(tenant: string, url: string): Promise<boolean> {
    return (await this.redis.exists(this.key(tenant, url))) === 1;
  }

  async enable(tenant: string, url: string): Promise<void> {
    await this.redis.del(this.key(tenant, url));
  }
}
