/**
 * Every Redis key and channel signspool writes, named in one place. All sit under the queue prefix
 * (`QUEUE_PREFIX`, with a `{hash-tag}` on Redis Cluster), beside BullMQ's own keys under
 * `<prefix>:<queue>:`, which BullMQ names (`queue.toKey`).
 */
import { createHash } from 'node:crypto';

const hashed = (s: string): string => createHash('sha256').update(s).digest('hex');

export const keys = {
  /** An operation's record (hash). */
  operation: (prefix: string, opId: string): string => `${prefix}:op:${opId}`,
  /** An operation's webhook delivery log (list). */
  webhookDeliveries: (prefix: string, opId: string): string => `${prefix}:op:${opId}:webhooks`,
  /** A tenant's operations by creation time (sorted set). */
  tenantOperations: (prefix: string, tenant: string): string => `${prefix}:tenant:${tenant}:ops`,
  /** Pattern of every tenant's operation index (for SCAN). */
  tenantOperationsPattern: (prefix: string): string => `${prefix}:tenant:*:ops`,
  /** Operation events (pub/sub channel). */
  events: (prefix: string): string => `${prefix}:events`,
  /** Unfinished documents per tenant (hash). */
  backlog: (prefix: string): string => `${prefix}:backlog`,
  /** Fair-share rounds (hash). */
  fairShare: (prefix: string): string => `${prefix}:fair`,
  /** Circuit states per worker (hash). */
  circuits: (prefix: string): string => `${prefix}:circuits`,
  /** Signing identities' states as workers publish them (hash). */
  signerStates: (prefix: string): string => `${prefix}:signer-states`,
  /** A webhook endpoint disabled by `410 Gone`, per tenant and URL. */
  webhookDisabled: (prefix: string, tenant: string, url: string): string => `${prefix}:webhook:disabled:${hashed(`${tenant}|${url}`).slice(0, 32)}`,
  /** A webhook event kept until its last delivery attempt. */
  webhookPending: (prefix: string, deliveryId: string): string => `${prefix}:webhook:pending:${deliveryId}`,
  /** A rate-limit window's counter. */
  rateLimit: (prefix: string, window: string, key: string): string => `${prefix}:rl:${window}:${key}`,
  /** An idempotency key's record, per tenant. */
  idempotency: (prefix: string, tenant: string, key: string): string => `${prefix}:idem:${tenant}:${hashed(key)}`,
} as const;
