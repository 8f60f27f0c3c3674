/**
 * Fair scheduling across tenants: the BullMQ priority of each new sign job. Workers take jobs in
 * priority order, so one tenant's 20,000-document backlog no longer stands in front of another
 * tenant's next document: each tenant gets one round (`quantum`, a full batch by default) at a
 * time, round-robin. A document costs one unit, or more when it is large (its share of
 * BATCH_MAX_BYTES in BATCH_MAX_DOCS units), so a round is about one full batch in documents or
 * bytes, as in deficit round-robin. The rounds are kept by lua/fair-share.lua.
 *
 * Priorities are a hint: a lost reservation (a crash between it and the enqueue) only moves that
 * tenant's later documents one round back. With `TENANT_SCHEDULING=fifo` jobs carry no priority.
 */
import type { Redis } from 'ioredis';
import type { Config } from '../config.js';
import { defineScripts } from '../redis/scripts.js';
import { PRIORITY_LIMIT, PRIORITY_SCORE_UNIT } from './bullmq-priority.js';
import { keys } from '../redis/keys.js';

export type TenantScheduling = Config['scheduling']['mode'];

export interface FairShareOptions {
  /** The queue prefix (the rounds' hash is `<prefix>:fair`). */
  prefix: string;
  /** The sign queue's prioritized set, as BullMQ names it (`queue.toKey('prioritized')`). */
  prioritizedKey: string;
  scheduling: TenantScheduling;
  /** Cost units per tenant and round. */
  quantum: number;
  /** The batching rule: a document costs max(1, ⌈size × maxDocs / maxBytes⌉) units. */
  maxDocs: number;
  maxBytes: number;
}

const SCRIPTS = { signspoolFairShare: { file: 'fair-share', numberOfKeys: 2 } } as const;

interface ScriptedRedis extends Redis {
  signspoolFairShare(
    fairKey: string,
    prioritized: string,
    tenant: string,
    quantum: number,
    scoreUnit: number,
    priorityLimit: number,
    ...costs: number[]
  ): Promise<number[]>;
}

export const fairShareKey = keys.fairShare;

export class FairShare {
  private readonly redis: ScriptedRedis;

  constructor(
    redis: Redis,
    private readonly opts: FairShareOptions,
  ) {
    defineScripts(redis, SCRIPTS);
    this.redis = redis as ScriptedRedis;
  }

  /** Cost units of a document of `size` bytes. */
  cost(size: number): number {
    return Math.max(1, Math.ceil((size * this.opts.maxDocs) / this.opts.maxBytes));
  }

  /** The priority of each of `sizes` (a tenant's new documents, in order); undefined for FIFO. */
  async priorities(tenant: string, sizes: readonly number[]): Promise<(number | undefined)[]> {
    if (this.opts.scheduling === 'fifo' || sizes.length === 0) return sizes.map(() => undefined);
    const { prefix, prioritizedKey, quantum } = this.opts;
    return this.redis.signspoolFairShare(
      fairShareKey(prefix),
      prioritizedKey,
      tenant,
      quantum,
      PRIORITY_SCORE_UNIT,
      PRIORITY_LIMIT,
      ...sizes.map((s) => this.cost(s)),
    );
  }
}
