/**
 * Operation records in Redis and every change to them. Each change is one Lua script (lua/), so a
 * document's move, the operation's counters and its status change atomically, and a retried or
 * superseded batch cannot move a document twice.
 */
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { DocumentStatus, OperationStatus } from './states.js';
import { operationFields, parseOperation, type DocumentUpdate, type NewOperation, type OperationRecord, type TransitionResult } from './record.js';
import { defineScripts } from '../redis/scripts.js';
import { backlogKey } from '../scheduling/tenant-backlog.js';
import { WebhookDeliveryLog } from '../webhooks/deliveries.js';
import { keys } from '../redis/keys.js';

const SCRIPTS = {
  signspoolTransition: { file: 'transition', numberOfKeys: 2 },
  // Its keys: the backlog, then the operations' hashes.
  signspoolTransitionMany: { file: 'transition-many' },
  signspoolCancel: { file: 'cancel', numberOfKeys: 2 },
  // Its keys: the record, the backlog, the Idempotency-Key's record, then any jobs' hashes (markAcceptedAfter).
  signspoolAccepted: { file: 'accepted' },
  signspoolCreate: { file: 'create', numberOfKeys: 2 },
  signspoolRetry: { file: 'retry', numberOfKeys: 2 },
  signspoolAbandon: { file: 'abandon', numberOfKeys: 1 },
} as const;

interface ScriptedRedis extends Redis {
  signspoolTransition(key: string, backlog: string, now: number, retention: number, channel: string, updates: string): Promise<string>;
  signspoolTransitionMany(numberOfKeys: number, ...keysAndArgs: (string | number)[]): Promise<string>;
  signspoolCancel(key: string, backlog: string, now: number, retention: number, channel: string, message: string): Promise<string>;
  signspoolAccepted(numberOfKeys: number, ...keysAndArgs: (string | number)[]): Promise<number>;
  signspoolCreate(key: string, index: string, ttl: number, createdAt: number, opId: string, ...fieldsAndValues: string[]): Promise<number>;
  signspoolRetry(key: string, backlog: string, now: number, retention: number, channel: string, docIds: string): Promise<string>;
  signspoolAbandon(key: string): Promise<'abandoned' | 'committed' | 'missing'>;
}

/** What a commit found (markAcceptedAfter). */
export type CommitOutcome = 'committed' | 'late' | 'missing' | 'jobless';

/** A commit's bound (`withinMs` after the record's creation, by Redis's clock) and what it writes besides. */
export interface AcceptedOptions {
  withinMs?: number;
  also?: { key: string; value: string; ttlMs: number };
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

const parseTransition = (raw: string): TransitionResult => toTransitionResult(transitionResultSchema.parse(JSON.parse(raw)));

const toTransitionResult = (r: z.output<typeof transitionResultSchema>): TransitionResult => ({
  status: r.status as OperationStatus | 'missing',
  applied: r.applied,
  rejected: r.rejected.map((x) => ({ docId: x.docId, status: x.status as DocumentStatus | 'missing' | 'accepting' })),
  becameTerminal: r.becameTerminal,
  webhook: r.webhook,
});

const transitionResultsSchema = z.array(transitionResultSchema);

/** Operations per transition-many.lua call: bounds how long one call holds Redis. */
const OPERATIONS_PER_CALL = 64;

const retryResultSchema = z.object({ status: z.string(), applied: list(z.string()), round: z.number() });

export interface ListQuery {
  limit: number;
  after?: string | undefined;
  status?: OperationStatus | undefined;
  externalReference?: string | undefined;
  signer?: string | undefined;
  createdAfter?: number | undefined;
  createdBefore?: number | undefined;
}

const encodeCursor = (c: { score: number; id: string }): string => Buffer.from(`${c.score}:${c.id}`).toString('base64url');
const decodeCursor = (cursor: string): { score: number; id: string } => {
  const [score, id] = Buffer.from(cursor, 'base64url').toString().split(':');
  if (!id || !/^op_[0-9a-f]{32}$/.test(id) || !Number.isFinite(Number(score))) throw new InvalidCursorError();
  return { score: Number(score), id };
};

export class InvalidCursorError extends Error {
  constructor() {
    super('invalid cursor');
  }
}

/** TTL of a record whose upload never finished being accepted (api died between record and jobs); also how long an undo is retried. */
export const ACCEPTING_TTL_MS = 10 * 60 * 1000;

export class OperationStore {
  readonly redis: ScriptedRedis;
  readonly prefix: string;
  readonly retentionMs: number;
  readonly channel: string;
  /** Each operation's webhook delivery attempts. */
  readonly deliveries: WebhookDeliveryLog;
  /** The tenants' backlog hash (tenant-backlog.ts). */
  readonly backlogKey: string;

  constructor(redis: Redis, opts: { prefix: string; retentionMs: number }) {
    defineScripts(redis, SCRIPTS);
    this.redis = redis as ScriptedRedis;
    this.prefix = opts.prefix;
    this.retentionMs = opts.retentionMs;
    this.channel = keys.events(opts.prefix);
    this.deliveries = new WebhookDeliveryLog(redis, opts.prefix, opts.retentionMs);
    this.backlogKey = backlogKey(opts.prefix);
  }

  key(opId: string): string {
    return keys.operation(this.prefix, opId);
  }

  /** A tenant's operations by creation time (sorted set); entries whose record expired are dropped when met. */
  indexKey(tenant: string): string {
    return keys.tenantOperations(this.prefix, tenant);
  }

  /**
   * One page of a tenant's operations, newest first, from its index (no scan over records).
   * `after` is the cursor of the last operation of the previous page; operations created after
   * the first page was read never appear on later pages, and none appears twice.
   */
  async list(tenant: string, q: ListQuery): Promise<{ operations: OperationRecord[]; nextCursor: string | null }> {
    const index = this.indexKey(tenant);
    const out: OperationRecord[] = [];
    let bound = q.after ? decodeCursor(q.after) : { score: q.createdBefore ?? Number.POSITIVE_INFINITY, id: undefined };
    const min = q.createdAfter ?? Number.NEGATIVE_INFINITY;
    const chunk = Math.max(q.limit * 2, 50);
    for (;;) {
      const raw = await this.redis.zrevrangebyscore(
        index,
        bound.score === Number.POSITIVE_INFINITY ? '+inf' : bound.score,
        min === Number.NEGATIVE_INFINITY ? '-inf' : `(${min}`,
        'WITHSCORES',
        'LIMIT',
        0,
        chunk,
      );
      const entries: { id: string; score: number }[] = [];
      for (let i = 0; i + 1 < raw.length; i += 2) entries.push({ id: raw[i] ?? '', score: Number(raw[i + 1]) });
      // Same-millisecond entries already returned (members of equal score come in descending order).
      const fresh = entries.filter((e) => bound.id === undefined || e.score < bound.score || e.id < bound.id);
      if (fresh.length === 0) return { operations: out, nextCursor: null };
      const pipe = this.redis.pipeline();
      for (const e of fresh) pipe.hgetall(this.key(e.id));
      const records = (await pipe.exec()) ?? [];
      const gone: string[] = [];
      for (const [i, e] of fresh.entries()) {
        const h = (records[i]?.[1] ?? {}) as Record<string, string>;
        bound = { score: e.score, id: e.id };
        if (!h['id']) {
          gone.push(e.id);
          continue;
        }
        const op = parseOperation(h);
        if (q.status && op.status !== q.status) continue;
        if (q.externalReference !== undefined && op.externalReference !== q.externalReference) continue;
        if (q.signer !== undefined && op.signer !== q.signer) continue;
        out.push(op);
        if (out.length === q.limit) {
          if (gone.length) await this.redis.zrem(index, ...gone);
          return { operations: out, nextCursor: encodeCursor(bound) };
        }
      }
      if (gone.length) await this.redis.zrem(index, ...gone);
      if (entries.length < chunk) return { operations: out, nextCursor: null };
    }
  }

  /** Re-queues failed documents (`docIds`, chosen by the caller): the operation runs again. */
  async retry(opId: string, docIds: string[]): Promise<{ status: OperationStatus | 'missing'; applied: string[]; round: number }> {
    const raw = await this.redis.signspoolRetry(this.key(opId), this.backlogKey, Date.now(), this.retentionMs, this.channel, JSON.stringify(docIds));
    const r = retryResultSchema.parse(JSON.parse(raw));
    return { status: r.status as OperationStatus | 'missing', applied: r.applied, round: r.round };
  }

  /** How many times the operation was retried (the round of its next `operation.completed`). */
  async round(opId: string): Promise<number> {
    return Number((await this.redis.hget(this.key(opId), 'retries')) ?? 0);
  }

  /** Writes a new operation in the "accepting" phase (expires unless `markAccepted` follows). */
  async create(op: NewOperation): Promise<void> {
    await this.redis.signspoolCreate(
      this.key(op.id),
      this.indexKey(op.tenant),
      ACCEPTING_TTL_MS,
      op.createdAt,
      op.id,
      ...Object.entries(operationFields(op)).flat(),
    );
  }

  /**
   * The operation's jobs are enqueued: the record no longer expires (until it is terminal), and
   * `also` (the upload's Idempotency-Key record) is written in the same step. With `withinMs`, a
   * commit that reaches Redis more than that long after the record was created (by Redis's clock)
   * is refused: 'late', nothing changed.
   */
  async markAccepted(opId: string, opts: AcceptedOptions = {}): Promise<'committed' | 'late' | 'missing'> {
    const outcome = await this.markAcceptedAfter(opId, opts, []);
    // 'jobless' needs a job key to find missing: none is given here.
    return outcome === 'jobless' ? 'missing' : outcome;
  }

  /**
   * markAccepted sent right after the adds of the jobs whose hashes are `jobKeys`, on the same
   * connection, without waiting for their replies (Redis runs the commit after them): a job whose
   * add failed makes the commit refuse, 'jobless', and change nothing.
   */
  async markAcceptedAfter(opId: string, opts: AcceptedOptions, jobKeys: readonly string[]): Promise<CommitOutcome> {
    const { also } = opts;
    const r = await this.redis.signspoolAccepted(
      3 + jobKeys.length,
      this.key(opId),
      this.backlogKey,
      also?.key ?? this.key(opId),
      ...jobKeys,
      this.retentionMs,
      opts.withinMs === undefined ? '' : Math.max(0, Math.floor(opts.withinMs)),
      also?.value ?? '',
      also?.ttlMs ?? 0,
    );
    return r === 1 ? 'committed' : r === -1 ? 'late' : r === -2 ? 'jobless' : 'missing';
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
    const raw = await this.redis.signspoolTransition(this.key(opId), this.backlogKey, Date.now(), this.retentionMs, this.channel, JSON.stringify(updates));
    return parseTransition(raw);
  }

  /**
   * Applies updates to many operations in one round trip: one script call per OPERATIONS_PER_CALL
   * operations, each operation changed atomically as by `transition`.
   */
  async transitionMany(updates: Map<string, DocumentUpdate[]>): Promise<Map<string, TransitionResult>> {
    const entries = [...updates.entries()];
    if (entries.length === 0) return new Map();
    const pipe = this.redis.pipeline() as unknown as ScriptedRedis & { exec(): Promise<[Error | null, unknown][] | null> };
    const now = Date.now();
    const parts: (typeof entries)[] = [];
    for (let i = 0; i < entries.length; i += OPERATIONS_PER_CALL) parts.push(entries.slice(i, i + OPERATIONS_PER_CALL));
    for (const part of parts) {
      const opKeys = part.map(([opId]) => this.key(opId));
      const perOp = part.map(([, ups]) => ups);
      void pipe.signspoolTransitionMany(1 + part.length, this.backlogKey, ...opKeys, now, this.retentionMs, this.channel, JSON.stringify(perOp));
    }
    const res = (await pipe.exec()) ?? [];
    const out = new Map<string, TransitionResult>();
    parts.forEach((part, i) => {
      const [err, raw] = res[i] ?? [new Error('no reply'), null];
      if (err) throw err;
      const results = transitionResultsSchema.parse(JSON.parse(String(raw)));
      for (const [j, [opId]] of part.entries()) {
        const r = results[j];
        if (!r) throw new Error(`transition-many answered ${results.length} results for ${part.length} operations`);
        out.set(opId, toTransitionResult(r));
      }
    });
    return out;
  }

  async cancel(opId: string): Promise<TransitionResult> {
    const raw = await this.redis.signspoolCancel(
      this.key(opId),
      this.backlogKey,
      Date.now(),
      this.retentionMs,
      this.channel,
      'canceled by the caller before it was sent for signing',
    );
    return parseTransition(raw);
  }

  /**
   * Drops index entries whose record is gone (expired after RETENTION), looking only at entries
   * older than `olderThanMs` (for the janitor; listing also drops the ones it meets).
   */
  async pruneIndexes(olderThanMs: number): Promise<number> {
    let removed = 0;
    const upTo = Date.now() - olderThanMs;
    for await (const found of this.redis.scanStream({ match: keys.tenantOperationsPattern(this.prefix), count: 100 }) as AsyncIterable<string[]>) {
      for (const index of found) {
        for (let offset = 0; ; offset += 1000) {
          const ids = await this.redis.zrangebyscore(index, '-inf', upTo, 'LIMIT', offset, 1000);
          if (ids.length === 0) break;
          const alive = await this.existing(ids);
          const gone = ids.filter((id) => !alive.has(id));
          if (gone.length > 0) {
            removed += await this.redis.zrem(index, ...gone);
            offset -= gone.length;
          }
          if (ids.length < 1000) break;
        }
      }
    }
    return removed;
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
