/**
 * Operation and document records in Redis, and their state machine.
 *
 * One hash per operation, `<prefix>:op:<opId>`: the operation's fields, per-state counters and one
 * field `doc:<docId>` per document holding its JSON record. Every state change goes through one
 * Lua script, so a transition, the counters and the operation's status change atomically, and a
 * retried batch cannot move a document twice (a signed document stays signed).
 *
 * Document:   queued → signing → signed | failed        queued → canceled | failed
 *             signing → queued (released on shutdown)    signing → signing (re-claimed after a stall)
 * Operation:  queued | processing → succeeded | partially_failed | failed | canceled
 * When an operation becomes terminal its record expires after RETENTION, and an event is published
 * on `<prefix>:events`.
 */
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { ErrorCode } from './errors.js';
import { signatureTypeSchema, type SignatureType } from './queue.js';
import { backlogKey, LUA_BACKLOG } from './tenant-backlog.js';

export const DOCUMENT_STATUSES = ['queued', 'signing', 'signed', 'failed', 'canceled'] as const;
export type DocumentStatus = (typeof DOCUMENT_STATUSES)[number];
export const OPERATION_STATUSES = ['queued', 'processing', 'succeeded', 'partially_failed', 'failed', 'canceled'] as const;
export type OperationStatus = (typeof OPERATION_STATUSES)[number];
export const TERMINAL_OPERATION_STATUSES: readonly OperationStatus[] = ['succeeded', 'partially_failed', 'failed', 'canceled'];
export const isTerminal = (s: OperationStatus): boolean => TERMINAL_OPERATION_STATUSES.includes(s);

const documentRecordSchema = z.object({
  id: z.string(),
  name: z.string(),
  contentType: z.string(),
  size: z.number(),
  sha256: z.string(),
  status: z.enum(DOCUMENT_STATUSES),
  acceptedAt: z.number(),
  updatedAt: z.number(),
  attempts: z.number().default(0),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  signed: z
    .object({ size: z.number(), sha256: z.string(), contentType: z.string(), fileName: z.string(), signedAt: z.number() })
    .optional(),
});
export type DocumentRecord = z.infer<typeof documentRecordSchema>;

export interface OperationRecord {
  id: string;
  tenant: string;
  signatureType: SignatureType;
  externalReference: string | undefined;
  webhookUrl: string | undefined;
  status: OperationStatus;
  createdAt: number;
  updatedAt: number;
  completedAt: number | undefined;
  cancelRequested: boolean;
  counts: Record<DocumentStatus, number>;
  documents: DocumentRecord[];
}

export interface NewDocument {
  id: string;
  name: string;
  contentType: string;
  size: number;
  sha256: string;
}

export interface NewOperation {
  id: string;
  tenant: string;
  signatureType: SignatureType;
  externalReference: string | undefined;
  webhookUrl?: string | undefined;
  createdAt: number;
  documents: NewDocument[];
}

export type DocumentUpdate =
  | { docId: string; to: 'signing' | 'queued' | 'canceled' }
  | { docId: string; to: 'failed'; error: { code: ErrorCode; message: string } }
  | {
      docId: string;
      to: 'signed';
      signed: { size: number; sha256: string; contentType: string; fileName: string };
    };

export interface TransitionResult {
  /** Documents that moved. */
  applied: string[];
  /** Documents that could not move, with the state they are in ('missing' when unknown). */
  rejected: { docId: string; status: DocumentStatus | 'missing' }[];
  /** The operation's status after the change ('missing' when the record does not exist). */
  status: OperationStatus | 'missing';
  /** True when this very call made the operation terminal. */
  becameTerminal: boolean;
  /** True when the operation has a webhook endpoint. */
  webhook: boolean;
}

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

export interface OperationEvent {
  opId: string;
  tenant: string;
  status: OperationStatus;
}

// Lua shared by the scripts: apply one update to one document of the hash KEYS[1]; KEYS[2] is the
// tenants' backlog (shared/tenant-backlog.ts), which loses a document when one ends.
const LUA_PRELUDE = `${LUA_BACKLOG}
local allowed = {
  queued = { signing = true, canceled = true, failed = true },
  signing = { signing = true, queued = true, signed = true, failed = true },
}
local function apply(key, u, now)
  local raw = redis.call('HGET', key, 'doc:' .. u.docId)
  if not raw then return false, 'missing' end
  local d = cjson.decode(raw)
  local from = d.status
  local ok = allowed[from] and allowed[from][u.to]
  if not ok then return false, from end
  d.status = u.to
  d.updatedAt = now
  if u.to == 'signing' then d.attempts = (d.attempts or 0) + 1 end
  if u.error then d.error = u.error end
  if u.signed then u.signed.signedAt = now; d.signed = u.signed end
  redis.call('HSET', key, 'doc:' .. u.docId, cjson.encode(d))
  redis.call('HINCRBY', key, 'n_' .. from, -1)
  redis.call('HINCRBY', key, 'n_' .. u.to, 1)
  if u.to == 'signed' or u.to == 'failed' or u.to == 'canceled' then backlog_add(key, KEYS[2], -1) end
  return true, u.to
end
local function settle(key, now, retention, channel)
  local f = redis.call('HMGET', key, 'status', 'total', 'n_queued', 'n_signed', 'n_failed', 'n_canceled', 'cancelRequested', 'tenant')
  local status = f[1]
  local total, queued, signed, failed, canceled = tonumber(f[2]), tonumber(f[3]), tonumber(f[4]), tonumber(f[5]), tonumber(f[6])
  if status == 'succeeded' or status == 'partially_failed' or status == 'failed' or status == 'canceled' then
    return status, false
  end
  local new
  if signed + failed + canceled == total then
    if f[7] == '1' or (canceled > 0 and canceled == total) then new = 'canceled'
    elseif signed == total then new = 'succeeded'
    elseif signed == 0 then new = 'failed'
    else new = 'partially_failed' end
  elseif queued == total then new = 'queued'
  else new = 'processing' end
  redis.call('HSET', key, 'status', new, 'updatedAt', now)
  if new == 'succeeded' or new == 'partially_failed' or new == 'failed' or new == 'canceled' then
    redis.call('HSET', key, 'completedAt', now)
    if redis.call('HGET', key, 'accepting') ~= '1' then redis.call('PEXPIRE', key, retention) end
    redis.call('PUBLISH', channel, cjson.encode({ opId = redis.call('HGET', key, 'id'), tenant = f[8], status = new }))
    return new, true
  end
  return new, false
end
`;

// KEYS[1] op hash, KEYS[2] backlog hash; ARGV: now, retentionMs, channel, updates JSON
const LUA_TRANSITION = `${LUA_PRELUDE}
if redis.call('EXISTS', KEYS[1]) == 0 then return cjson.encode({ status = 'missing', applied = {}, rejected = {}, becameTerminal = false }) end
local now, retention, channel = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local updates = cjson.decode(ARGV[4])
local applied, rejected = {}, {}
for _, u in ipairs(updates) do
  local ok, st = apply(KEYS[1], u, now)
  if ok then table.insert(applied, u.docId) else table.insert(rejected, { docId = u.docId, status = st }) end
end
local status, became = settle(KEYS[1], now, retention, channel)
return cjson.encode({ status = status, applied = applied, rejected = rejected, becameTerminal = became, webhook = redis.call('HEXISTS', KEYS[1], 'webhookUrl') == 1 })
`;

// KEYS[1] op hash, KEYS[2] backlog hash; ARGV: now, retentionMs, channel, error message. Cancels every queued document.
const LUA_CANCEL = `${LUA_PRELUDE}
if redis.call('EXISTS', KEYS[1]) == 0 then return cjson.encode({ status = 'missing', applied = {}, rejected = {}, becameTerminal = false }) end
local now, retention, channel = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'succeeded' or status == 'partially_failed' or status == 'failed' or status == 'canceled' then
  return cjson.encode({ status = status, applied = {}, rejected = {}, becameTerminal = false })
end
local applied = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local field = all[i]
  if string.sub(field, 1, 4) == 'doc:' then
    local d = cjson.decode(all[i + 1])
    if d.status == 'queued' then
      local ok = apply(KEYS[1], { docId = d.id, to = 'canceled', error = { code = 'CANCELED', message = ARGV[4] } }, now)
      if ok then table.insert(applied, d.id) end
    end
  end
end
if #applied > 0 then redis.call('HSET', KEYS[1], 'cancelRequested', '1') end
local st, became = settle(KEYS[1], now, retention, channel)
return cjson.encode({ status = st, applied = applied, rejected = {}, becameTerminal = became, webhook = redis.call('HEXISTS', KEYS[1], 'webhookUrl') == 1 })
`;

// KEYS[1] op hash; ARGV: ttlMs, then field, value pairs. Writes a new record and its expiry at once
// (one script instead of MULTI + HSET + PEXPIRE + EXEC); HSET in slices of 500 pairs (Lua's unpack limit).
const LUA_CREATE = `
local n = #ARGV
local i = 2
while i <= n do
  local j = math.min(i + 999, n)
  redis.call('HSET', KEYS[1], unpack(ARGV, i, j))
  i = j + 1
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
`;

// KEYS[1] op hash, KEYS[2] backlog hash; ARGV: retentionMs. Ends the "accepting" phase of a new
// operation; its documents not ended yet join the tenant's backlog.
const LUA_ACCEPTED = `${LUA_BACKLOG}
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[1], 'accepting')
local open = redis.call('HMGET', KEYS[1], 'n_queued', 'n_signing')
backlog_add(KEYS[1], KEYS[2], (tonumber(open[1]) or 0) + (tonumber(open[2]) or 0))
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'succeeded' or status == 'partially_failed' or status == 'failed' or status == 'canceled' then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
else
  redis.call('PERSIST', KEYS[1])
end
return 1
`;

interface ScriptedRedis extends Redis {
  signspoolTransition(key: string, backlog: string, now: number, retention: number, channel: string, updates: string): Promise<string>;
  signspoolCancel(key: string, backlog: string, now: number, retention: number, channel: string, message: string): Promise<string>;
  signspoolAccepted(key: string, backlog: string, retention: number): Promise<number>;
  signspoolCreate(key: string, ttl: number, ...fieldsAndValues: string[]): Promise<number>;
}

const withScripts = (redis: Redis): ScriptedRedis => {
  const r = redis as ScriptedRedis;
  if (typeof r.signspoolTransition !== 'function') {
    redis.defineCommand('signspoolTransition', { numberOfKeys: 2, lua: LUA_TRANSITION });
    redis.defineCommand('signspoolCancel', { numberOfKeys: 2, lua: LUA_CANCEL });
    redis.defineCommand('signspoolAccepted', { numberOfKeys: 2, lua: LUA_ACCEPTED });
    redis.defineCommand('signspoolCreate', { numberOfKeys: 1, lua: LUA_CREATE });
  }
  return r;
};

const transitionResultSchema = z.object({
  status: z.string(),
  applied: z.union([z.array(z.string()), z.object({}).transform(() => [] as string[])]),
  rejected: z.union([
    z.array(z.object({ docId: z.string(), status: z.string() })),
    z.object({}).transform(() => [] as { docId: string; status: string }[]),
  ]),
  becameTerminal: z.boolean(),
  webhook: z.boolean().default(false),
});

const parseTransition = (raw: string): TransitionResult => {
  // cjson encodes an empty Lua table as {}; the schema accepts both forms.
  const r = transitionResultSchema.parse(JSON.parse(raw));
  return {
    status: r.status as OperationStatus | 'missing',
    applied: r.applied,
    rejected: r.rejected.map((x) => ({ docId: x.docId, status: x.status as DocumentStatus | 'missing' })),
    becameTerminal: r.becameTerminal,
    webhook: r.webhook,
  };
};

/** TTL of a record whose upload never finished being accepted (api died between record and jobs). */
const ACCEPTING_TTL_MS = 60 * 60 * 1000;

export class OperationStore {
  readonly redis: ScriptedRedis;
  readonly prefix: string;
  readonly retentionMs: number;
  readonly channel: string;

  constructor(redis: Redis, opts: { prefix: string; retentionMs: number }) {
    this.redis = withScripts(redis);
    this.prefix = opts.prefix;
    this.retentionMs = opts.retentionMs;
    this.channel = `${opts.prefix}:events`;
    this.backlogKey = backlogKey(opts.prefix);
  }

  /** The tenants' backlog hash (shared/tenant-backlog.ts). */
  readonly backlogKey: string;

  key(opId: string): string {
    return `${this.prefix}:op:${opId}`;
  }

  /** Writes a new operation in the "accepting" phase (expires unless `markAccepted` follows). */
  async create(op: NewOperation): Promise<void> {
    const fields: Record<string, string> = {
      id: op.id,
      tenant: op.tenant,
      signatureType: op.signatureType,
      status: 'queued',
      createdAt: String(op.createdAt),
      updatedAt: String(op.createdAt),
      total: String(op.documents.length),
      n_queued: String(op.documents.length),
      n_signing: '0',
      n_signed: '0',
      n_failed: '0',
      n_canceled: '0',
      cancelRequested: '0',
      accepting: '1',
      order: JSON.stringify(op.documents.map((d) => d.id)),
    };
    if (op.externalReference !== undefined) fields['externalReference'] = op.externalReference;
    if (op.webhookUrl !== undefined) fields['webhookUrl'] = op.webhookUrl;
    for (const d of op.documents) {
      const rec: DocumentRecord = { ...d, status: 'queued', acceptedAt: op.createdAt, updatedAt: op.createdAt, attempts: 0 };
      fields[`doc:${d.id}`] = JSON.stringify(rec);
    }
    await this.redis.signspoolCreate(this.key(op.id), ACCEPTING_TTL_MS, ...Object.entries(fields).flat());
  }

  /** The operation's jobs are enqueued: the record no longer expires (until it is terminal). */
  async markAccepted(opId: string): Promise<void> {
    await this.redis.signspoolAccepted(this.key(opId), this.backlogKey, this.retentionMs);
  }

  async remove(opId: string): Promise<void> {
    await this.redis.del(this.key(opId));
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

  /** Applies updates to many operations in one round trip. */
  async transitionMany(updates: Map<string, DocumentUpdate[]>): Promise<Map<string, TransitionResult>> {
    const entries = [...updates.entries()];
    if (entries.length === 0) return new Map();
    const pipe = this.redis.pipeline();
    const now = Date.now();
    for (const [opId, ups] of entries) {
      (pipe as unknown as ScriptedRedis).signspoolTransition(this.key(opId), this.backlogKey, now, this.retentionMs, this.channel, JSON.stringify(ups));
    }
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
    const raw = await this.redis.signspoolCancel(this.key(opId), this.backlogKey, Date.now(), this.retentionMs, this.channel, 'canceled by the caller before it was sent for signing');
    return parseTransition(raw);
  }

  deliveriesKey(opId: string): string {
    return `${this.prefix}:op:${opId}:webhooks`;
  }

  /** Appends a webhook delivery attempt (the last 50 are kept, as long as the operation). */
  async recordDelivery(opId: string, attempt: WebhookAttempt): Promise<void> {
    const key = this.deliveriesKey(opId);
    await this.redis.multi().rpush(key, JSON.stringify(attempt)).ltrim(key, -50, -1).pexpire(key, this.retentionMs).exec();
  }

  async deliveries(opId: string): Promise<WebhookAttempt[]> {
    return (await this.redis.lrange(this.deliveriesKey(opId), 0, -1)).map((raw) => JSON.parse(raw) as WebhookAttempt);
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

/** The record of an operation as `create` writes it (what a fresh submission looks like). */
export const newOperationRecord = (op: NewOperation): OperationRecord => ({
  id: op.id,
  tenant: op.tenant,
  signatureType: op.signatureType,
  externalReference: op.externalReference,
  webhookUrl: op.webhookUrl,
  status: 'queued',
  createdAt: op.createdAt,
  updatedAt: op.createdAt,
  completedAt: undefined,
  cancelRequested: false,
  counts: { queued: op.documents.length, signing: 0, signed: 0, failed: 0, canceled: 0 },
  documents: op.documents.map((d) => ({ ...d, status: 'queued', acceptedAt: op.createdAt, updatedAt: op.createdAt, attempts: 0 })),
});

const num = (v: string | undefined): number => (v === undefined ? 0 : Number(v));

export const parseOperation = (h: Record<string, string>): OperationRecord => {
  const order = JSON.parse(h['order'] ?? '[]') as string[];
  const documents: DocumentRecord[] = [];
  for (const id of order) {
    const raw = h[`doc:${id}`];
    if (raw !== undefined) documents.push(documentRecordSchema.parse(JSON.parse(raw)));
  }
  return {
    id: h['id'] ?? '',
    tenant: h['tenant'] ?? '',
    signatureType: signatureTypeSchema.parse(h['signatureType']),
    externalReference: h['externalReference'],
    webhookUrl: h['webhookUrl'],
    status: (h['status'] ?? 'queued') as OperationStatus,
    createdAt: num(h['createdAt']),
    updatedAt: num(h['updatedAt']),
    completedAt: h['completedAt'] === undefined ? undefined : num(h['completedAt']),
    cancelRequested: h['cancelRequested'] === '1',
    counts: {
      queued: num(h['n_queued']),
      signing: num(h['n_signing']),
      signed: num(h['n_signed']),
      failed: num(h['n_failed']),
      canceled: num(h['n_canceled']),
    },
    documents,
  };
};
