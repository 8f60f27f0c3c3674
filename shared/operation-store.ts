/**
 * Operation records in Redis and every change to them. Each change is one Lua script (lua/), so a
 * document's move, the operation's counters and its status change atomically, and a retried or
 * superseded batch cannot move a document twice.
 */
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { DocumentStatus, OperationStatus } from './operation-states.js';
import { operationFields, parseOperation, type DocumentUpdate, type NewOperation, type OperationRecord, type TransitionResult } from './operation-record.js';
import { defineScripts } from './redis-scripts.js';
import { WebhookDeliveryLog } from './webhook-deliveries.js';

const SCRIPTS = {
  signspoolTransition: { file: 'transition', numberOfKeys: 1 },
  signspoolCancel: { file: 'cancel', numberOfKeys: 1 },
  signspoolAccepted: { file: 'accepted', numberOfKeys: 1 },
  signspoolCreate: { file: 'create', numberOfKeys: 1 },
  signspoolAbandon: { file: 'abandon', numberOfKeys: 1 },
} as const;

interface ScriptedRedis extends Redis {
  signspoolTransition(key: string, now: number, retention: number, channel: string, updates: string): Promise<string>;
  signspoolCancel(key: string, now: number, retention: number, channel: string, message: string): Promise<string>;
  signspoolAccepted(key: string, retention: number): Promise<number>;
  signspoolCreate(key: string, ttl: number, ...fieldsAndValues: string[]): Promise<number>;
  signspoolAbandon(key: string): Promise<'abandoned' | 'committed' | 'missing'>;
}

// cjson encodes an empty Lua table as {}: both forms are accepted.
const list = <T extends z.ZodType>(item: T) => z.union([z.array(item), z.object({}).transform(() => [] as z.output<T>[])]);
const transitionResultSchema = z.object({
  status: z.string(),
  applied: list(z.string()),
  rejected: list(z.object({ docId: z.string(), status: z.string() })),
  becameTerminal: z.boolean(),
  webhook: z.boolean().default(false),
});

const parseTransition = (raw: string): TransitionResult => {
  const r = transitionResultSchema.parse(JSON.parse(raw));
  return {
    status: r.status as OperationStatus | 'missing',
    applied: r.applied,
    rejected: r.rejected.map((x) => ({ docId: x.docId, status: x.status as DocumentStatus | 'missing' | 'accepting' })),
    becameTerminal: r.becameTerminal,
    webhook: r.webhook,
  };
};

/** TTL of a record whose upload never finished being accepted (api died between record and jobs). */
const ACCEPTING_TTL_MS = 10 * 60 * 1000;

export class OperationStore {
  readonly redis: ScriptedRedis;
  readonly prefix: string;
  readonly retentionMs: number;
  readonly channel: string;
  /** Each operation's webhook delivery attempts. */
  readonly deliveries: WebhookDeliveryLog;

  constructor(redis: Redis, opts: { prefix: string; retentionMs: number }) {
    defineScripts(redis, SCRIPTS);
    this.redis = redis as ScriptedRedis;
    this.prefix = opts.prefix;
    this.retentionMs = opts.retentionMs;
    this.channel = `${opts.prefix}:events`;
    this.deliveries = new WebhookDeliveryLog(redis, opts.prefix, opts.retentionMs);
  }

  key(opId: string): string {
    return `${this.prefix}:op:${opId}`;
  }

  /** Writes a new operation in the "accepting" phase (expires unless `markAccepted` follows). */
  async create(op: NewOperation): Promise<void> {
    await this.redis.signspoolCreate(this.key(op.id), ACCEPTING_TTL_MS, ...Object.entries(operationFields(op)).flat());
  }

  /** The operation's jobs are enqueued: the record no longer expires (until it is terminal). */
  async markAccepted(opId: string): Promise<void> {
    await this.redis.signspoolAccepted(this.key(opId), this.retentionMs);
  }

  /** Deletes a record still accepting (a failed submission); says whether it was already committed. */
  async abandon(opId: string): Promise<'abandoned' | 'committed' | 'missing'> {
    return this.redis.signspoolAbandon(this.key(opId));
  }

  /** Owner and status only: what a long-poll checks before it waits (the whole record is read once, at the end). */
  async peek(opId: string): Promise<{ tenant: string; status: OperationStatus } | undefined> {
    const [id, tenant, status] = await this.redis.hmget(this.key(opId), 'id', 'tenant', 'status');
    if (!id) return undefined;
    return { tenant: tenant ?? '', status: (status ?? 'queued') as OperationStatus };
  }

  async get(opId: string): Promise<OperationRecord | undefined> {
    const h = await this.redis.hgetall(this.key(opId));
    if (!h['id']) return undefined;
    return parseOperation(h);
  }

  async transition(opId: string, updates: DocumentUpdate[]): Promise<TransitionResult> {
    const raw = await this.redis.signspoolTransition(this.key(opId), Date.now(), this.retentionMs, this.channel, JSON.stringify(updates));
    return parseTransition(raw);
  }

  /** Applies updates to many operations in one round trip. */
  async transitionMany(updates: Map<string, DocumentUpdate[]>): Promise<Map<string, TransitionResult>> {
    const entries = [...updates.entries()];
    if (entries.length === 0) return new Map();
    const pipe = this.redis.pipeline() as unknown as ScriptedRedis & { exec(): Promise<[Error | null, unknown][] | null> };
    const now = Date.now();
    for (const [opId, ups] of entries) void pipe.signspoolTransition(this.key(opId), now, this.retentionMs, this.channel, JSON.stringify(ups));
    const res = (await pipe.exec()) ?? [];
    const out = new Map<string, TransitionResult>();
    entries.forEach(([opId], i) => {
      const [err, raw] = res[i] ?? [new Error('no reply'), null];
      if (err) throw err;
      out.set(opId, parseTransition(String(raw)));
    });
    return out;
  }

  async cancel(opId: string): Promise<TransitionResult> {
    const raw = await this.redis.signspoolCancel(this.key(opId), Date.now(), this.retentionMs, this.channel, 'canceled by the caller before it was sent for signing');
    return parseTransition(raw);
  }

  /** Ids of operations that have a record (for the janitor). */
  async existing(opIds: string[]): Promise<Set<string>> {
    if (opIds.length === 0) return new Set();
    const pipe = this.redis.pipeline();
    for (const id of opIds) pipe.exists(this.key(id));
    const res = (await pipe.exec()) ?? [];
    return new Set(opIds.filter((_, i) => res[i]?.[1] === 1));
  }
}
