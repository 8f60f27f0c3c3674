/**
 * Per-tenant limits, counted in Redis so that every api process shares them
 * (rate-limiter-flexible's RateLimiterRedis on the api's ioredis connection):
 *   requests       requests per second that change something (POST, DELETE)  RATE_LIMIT_REQUESTS
 *   reads          reads per second (status, long-poll, listing, downloads)   RATE_LIMIT_READS
 *   upload_bytes   uploaded bytes per second, averaged over 10 s               RATE_LIMIT_UPLOAD_BYTES
 *   backlog        documents accepted and not ended yet (shared/tenant-backlog)  BACKLOG_MAX_DOCUMENTS
 *   redeliveries   webhook redeliveries per operation and hour                 REDELIVERY_LIMIT
 * with per-tenant overrides (TENANT_LIMITS); 0 turns a limit off. Reads are counted apart so that
 * a client polling its own documents never spends the quota its uploads need, and the defaults
 * are above what one api process serves (a single tenant, what `npm start` makes, is not capped). Over a limit the answer is 429
 * problem+json with Retry-After and the IETF RateLimit-Policy / RateLimit fields
 * (draft-ietf-httpapi-ratelimit-headers). Every response of a limited route carries the requests
 * policy and what is left of it.
 *
 * Redis unreachable: the check fails closed with 503 SERVICE_UNAVAILABLE (Retry-After), as every
 * other route does then, and is counted as outcome "error". Failing open would only move the
 * failure to the next Redis call of the same request (the record, the jobs), after the body has
 * been read.
 */
import type { RequestHandler, Response } from 'express';
import type { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { Config, TenantLimits } from '@signspool/shared/config';
import { SignspoolError } from '@signspool/shared/errors';
import type { Logger } from '@signspool/shared/logger';
import type { Metrics } from '@signspool/shared/metrics';
import { defineScripts } from '@signspool/shared/redis/scripts';
import { backlogKey, readBacklog } from '@signspool/shared/scheduling/tenant-backlog';
import { keys } from '@signspool/shared/redis/keys';

export type LimitName = 'requests' | 'reads' | 'upload_bytes' | 'backlog' | 'redeliveries';
const LIMIT_NAMES: readonly LimitName[] = ['requests', 'reads', 'upload_bytes', 'backlog', 'redeliveries'];

/** The status route's path under /v1/operations (GET /:id): its reads are counted by `readOperation`. */
const STATUS_PATH = /^\/[^/]+\/?$/;

/** Window of the uploaded-bytes limit: a rate averaged over 10 s lets a burst of one large upload through. */
export const UPLOAD_BYTES_WINDOW_S = 10;
const REDELIVERY_WINDOW_S = 3600;
/** Retry-After of a full backlog: documents end at the worker's pace, not on a clock. */
const BACKLOG_RETRY_AFTER_MS = 30_000;

interface Window {
  name: LimitName;
  /** Policy name in the RateLimit fields. */
  policy: string;
  seconds: number;
  unit?: 'content-bytes';
}

const WINDOWS = {
  requests: { name: 'requests', policy: 'requests', seconds: 1 },
  reads: { name: 'reads', policy: 'reads', seconds: 1 },
  upload_bytes: { name: 'upload_bytes', policy: 'upload-bytes', seconds: UPLOAD_BYTES_WINDOW_S, unit: 'content-bytes' },
  redeliveries: { name: 'redeliveries', policy: 'redeliveries', seconds: REDELIVERY_WINDOW_S },
} as const satisfies Record<string, Window>;

const SCRIPTS = {
  signspoolUploadLimits: { file: 'upload-limits', numberOfKeys: 3 },
  signspoolReadOperation: { file: 'read-operation', numberOfKeys: 2 },
} as const;

/** What a status read reads with its reads window (lua/read-operation.lua): the whole record, or its head. */
export type ReadMode = 'all' | 'head';

/** A status read against a record the caller holds (`readOperationView`): unchanged, or the record's fields and its revision (none: not changed since created, or missing). */
export type ViewRead = { same: true } | { same: false; fields: (string | null)[]; revision: string | undefined };

/** read-operation.lua's answer: outcome, reads consumed, window ms left, then the record's fields and (mode 'view') its revision. */
type ReadAnswer = [string, number, number, (string | null)[] | undefined, string | null | undefined];

interface ScriptedRedis extends Redis {
  signspoolUploadLimits(
    requestsKey: string,
    bytesKey: string,
    backlogKey: string,
    tenant: string,
    requestsQuota: number,
    requestsSeconds: number,
    bytesQuota: number,
    bytesSeconds: number,
    announced: number,
    backlogQuota: number,
  ): Promise<[string, number, number]>;
  signspoolReadOperation(readsKey: string, opKey: string, quota: number, seconds: number, mode: ReadMode | 'view', known: string): Promise<ReadAnswer>;
}

/** Where a status read's RateLimit fields are set: a response, or what the fast path collects for its writeHead (read/fast-status.ts). */
export interface HeaderTarget {
  setHeader(name: string, value: string): unknown;
}

/** `"name";q=100;w=1` (RateLimit-Policy item). */
const policyItem = (w: Window, quota: number): string => `"${w.policy}";q=${quota};w=${w.seconds}${w.unit ? `;qu="${w.unit}"` : ''}`;
/** `"name";r=42;t=1` (RateLimit item). */
const limitItem = (w: Window, remaining: number, resetMs: number): string =>
  `"${w.policy}";r=${Math.max(0, remaining)};t=${Math.max(0, Math.ceil(resetMs / 1000))}`;

export class TenantRateLimits {
  private readonly limiters = new Map<string, RateLimiterRedis>();
  private lastErrorLog = 0;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly config: Config['limits'],
    private readonly metrics: Metrics,
    private readonly logger: Logger,
  ) {
    defineScripts(redis, SCRIPTS);
    for (const limit of LIMIT_NAMES) for (const outcome of ['allowed', 'limited', 'error']) metrics.rateLimitDecisions.inc({ limit, outcome }, 0);
  }

  /** The limits of a tenant: its overrides over the defaults. */
  limitsOf(tenant: string): TenantLimits {
    const o = this.config.tenants[tenant] ?? {};
    const d = this.config.defaults;
    return {
      requestsPerSecond: o.requestsPerSecond ?? d.requestsPerSecond,
      readsPerSecond: o.readsPerSecond ?? d.readsPerSecond,
      uploadBytesPerSecond: o.uploadBytesPerSecond ?? d.uploadBytesPerSecond,
      backlogDocuments: o.backlogDocuments ?? d.backlogDocuments,
      redeliveriesPerHour: o.redeliveriesPerHour ?? d.redeliveriesPerHour,
    };
  }

  /**
   * Middleware: the tenant's requests per second (after authentication); GET and HEAD count as
   * reads. An upload (POST /) is counted by `checkUpload`, with its other limits in one round trip,
   * and a status read (GET /:id) by `readOperation`, with the record.
   */
  requests(): RequestHandler {
    return (req, res, next) => {
      if (req.method === 'POST' && req.path === '/') return next();
      if (req.method === 'GET' && STATUS_PATH.test(req.path)) return next();
      const limits = this.limitsOf(req.tenant ?? '');
      const read = req.method === 'GET' || req.method === 'HEAD';
      const quota = read ? limits.readsPerSecond : limits.requestsPerSecond;
      if (quota === 0) return next();
      this.take(read ? WINDOWS.reads : WINDOWS.requests, quota, req.tenant ?? '', 1, res).then(
        () => next(),
        (err: unknown) => next(err),
      );
    };
  }

  /**
   * Before an upload takes a slot, in one Redis round trip (lua/upload-limits.lua): the tenant's
   * backlog is under its quota, the upload fits its requests per second, and its uploaded bytes
   * per second leave room. `announced` (Content-Length) is counted now; an upload that announced
   * nothing (chunked) is counted when read (`chargeUploaded`). One upload larger than the window's
   * quota is let through when the window was not exhausted before it.
   */
  async checkUpload(tenant: string, announced: number, res: HeaderTarget): Promise<void> {
    const limits = this.limitsOf(tenant);
    const bytesQuota = limits.uploadBytesPerSecond * UPLOAD_BYTES_WINDOW_S;
    const enabled = LIMIT_NAMES.filter(
      (l) => (l === 'requests' && limits.requestsPerSecond > 0) || (l === 'upload_bytes' && bytesQuota > 0) || (l === 'backlog' && limits.backlogDocuments > 0),
    );
    if (enabled.length === 0) return;
    let outcome: string, a: number, b: number;
    try {
      [outcome, a, b] = await (this.redis as ScriptedRedis).signspoolUploadLimits(
        this.windowKey(WINDOWS.requests, tenant),
        this.windowKey(WINDOWS.upload_bytes, tenant),
        backlogKey(this.prefix),
        tenant,
        limits.requestsPerSecond,
        WINDOWS.requests.seconds,
        bytesQuota,
        WINDOWS.upload_bytes.seconds,
        Math.max(1, announced),
        limits.backlogDocuments,
      );
    } catch (err) {
      throw this.storeError(enabled[0] ?? 'requests', err);
    }
    if (outcome === 'backlog') throw this.backlogFull(limits.backlogDocuments, a, res);
    if (outcome === 'requests') throw this.limited(WINDOWS.requests, limits.requestsPerSecond, b, res);
    if (outcome === 'upload_bytes') throw this.limited(WINDOWS.upload_bytes, bytesQuota, b, res);
    for (const limit of enabled) this.metrics.rateLimitDecisions.inc({ limit, outcome: 'allowed' });
    if (limits.requestsPerSecond > 0) {
      res.setHeader('RateLimit-Policy', policyItem(WINDOWS.requests, limits.requestsPerSecond));
      res.setHeader('RateLimit', limitItem(WINDOWS.requests, limits.requestsPerSecond - a, b));
    }
  }

  /**
   * A status read (GET /:id) in one round trip: the tenant's reads window, then the operation's
   * record (`mode` 'all': its hash fields, empty when missing; 'head': id, tenant and status).
   * 429 when over the window (the record is not read).
   */
  async readOperation(tenant: string, opKey: string, mode: ReadMode, res: HeaderTarget): Promise<(string | null)[]> {
    return (await this.readWithWindow(tenant, opKey, mode, '', res))[3] ?? [];
  }

  /**
   * `readOperation` of the whole record for a caller that holds the record's revision `known` ('' for
   * none): `same` when the record is still at that revision, else its fields (empty when missing)
   * and its revision (lua/read-operation.lua).
   */
  async readOperationView(tenant: string, opKey: string, known: string, res: HeaderTarget): Promise<ViewRead> {
    const [outcome, , , fields, revision] = await this.readWithWindow(tenant, opKey, 'view', known, res);
    return outcome === 'same' ? { same: true } : { same: false, fields: fields ?? [], revision: revision ?? undefined };
  }

  private async readWithWindow(tenant: string, opKey: string, mode: ReadMode | 'view', known: string, res: HeaderTarget): Promise<ReadAnswer> {
    const quota = this.limitsOf(tenant).readsPerSecond;
    let answer: ReadAnswer;
    try {
      answer = await (this.redis as ScriptedRedis).signspoolReadOperation(
        this.windowKey(WINDOWS.reads, tenant),
        opKey,
        quota,
        WINDOWS.reads.seconds,
        mode,
        known,
      );
    } catch (err) {
      throw quota > 0 ? this.storeError('reads', err) : err;
    }
    const [outcome, consumed, ms] = answer;
    if (outcome === 'limited') throw this.limited(WINDOWS.reads, quota, ms, res);
    if (quota > 0) {
      this.metrics.rateLimitDecisions.inc({ limit: 'reads', outcome: 'allowed' });
      res.setHeader('RateLimit-Policy', policyItem(WINDOWS.reads, quota));
      res.setHeader('RateLimit', limitItem(WINDOWS.reads, quota - consumed, ms));
    }
    return answer;
  }

  /** Counts bytes of an upload that announced no length, once read (never refuses). */
  async chargeUploaded(tenant: string, bytes: number): Promise<void> {
    const perSecond = this.limitsOf(tenant).uploadBytesPerSecond;
    if (perSecond === 0 || bytes <= 0) return;
    await this.limiter(WINDOWS.upload_bytes, perSecond * UPLOAD_BYTES_WINDOW_S)
      .penalty(tenant, bytes)
      .catch(() => undefined);
  }

  /** Refuses `documents` more when the tenant's backlog would pass its quota (429 BACKLOG_FULL). */
  async checkBacklog(tenant: string, documents: number, res: HeaderTarget): Promise<void> {
    const quota = this.limitsOf(tenant).backlogDocuments;
    if (quota === 0) return;
    let backlog: number;
    try {
      backlog = await readBacklog(this.redis, this.prefix, tenant);
    } catch (err) {
      throw this.storeError('backlog', err);
    }
    // Before the body is read (documents 0) the backlog must have room for one more.
    if (backlog + Math.max(1, documents) <= quota) {
      this.metrics.rateLimitDecisions.inc({ limit: 'backlog', outcome: 'allowed' });
      return;
    }
    throw this.backlogFull(quota, backlog, res);
  }

  /** 429 BACKLOG_FULL (counted, with its RateLimit fields). */
  private backlogFull(quota: number, backlog: number, res: HeaderTarget): SignspoolError {
    this.metrics.rateLimitDecisions.inc({ limit: 'backlog', outcome: 'limited' });
    res.setHeader('RateLimit-Policy', `"backlog";q=${quota}`);
    res.setHeader('RateLimit', `"backlog";r=${Math.max(0, quota - backlog)};t=${BACKLOG_RETRY_AFTER_MS / 1000}`);
    return new SignspoolError('BACKLOG_FULL', {
      detail: `this tenant has ${backlog} documents waiting to be signed and may have at most ${quota}; retry when some have ended`,
      retryAfterMs: BACKLOG_RETRY_AFTER_MS,
      extensions: { limit: quota, backlog },
    });
  }

  /** 429 RATE_LIMITED over window `w` (counted, with its RateLimit fields); `msBeforeNext` until the window resets. */
  private limited(w: Window, quota: number, msBeforeNext: number, res: HeaderTarget): SignspoolError {
    this.metrics.rateLimitDecisions.inc({ limit: w.name, outcome: 'limited' });
    res.setHeader('RateLimit-Policy', policyItem(w, quota));
    res.setHeader('RateLimit', limitItem(w, 0, msBeforeNext));
    return new SignspoolError('RATE_LIMITED', {
      detail: `over this tenant's limit of ${quota} ${w.unit === 'content-bytes' ? 'uploaded bytes' : w.name} per ${w.seconds} s; retry after the time in Retry-After`,
      retryAfterMs: Math.max(1000, msBeforeNext),
      extensions: { policy: w.policy, limit: quota, windowSeconds: w.seconds },
    });
  }

  /** The Redis key of `key`'s counter in window `w` (rate-limiter-flexible's `<keyPrefix>:<key>`). */
  private windowKey(w: Window, key: string): string {
    return keys.rateLimit(this.prefix, w.name, key);
  }

  /** A webhook redelivery of `opId` (per operation and hour). */
  async redelivery(tenant: string, opId: string, res: Response): Promise<void> {
    const quota = this.limitsOf(tenant).redeliveriesPerHour;
    if (quota === 0) return;
    await this.take(WINDOWS.redeliveries, quota, opId, 1, res);
  }

  private limiter(w: Window, points: number): RateLimiterRedis {
    const id = `${w.name}:${points}`;
    let l = this.limiters.get(id);
    if (!l) {
      l = new RateLimiterRedis({
        storeClient: this.redis,
        keyPrefix: this.windowKey(w, '').slice(0, -1),
        points,
        duration: w.seconds,
        rejectIfRedisNotReady: true,
      });
      this.limiters.set(id, l);
    }
    return l;
  }

  /** Consumes `cost` of `key`'s window; 429 when over. */
  private async take(w: Window, quota: number, key: string, cost: number, res: HeaderTarget): Promise<void> {
    let r: RateLimiterRes;
    try {
      r = await this.limiter(w, quota).consume(key, cost);
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) throw this.storeError(w.name, err);
      throw this.limited(w, quota, err.msBeforeNext, res);
    }
    this.metrics.rateLimitDecisions.inc({ limit: w.name, outcome: 'allowed' });
    if (w.name === 'requests' || w.name === 'reads') {
      res.setHeader('RateLimit-Policy', policyItem(w, quota));
      res.setHeader('RateLimit', limitItem(w, r.remainingPoints, r.msBeforeNext));
    }
  }

  private storeError(limit: LimitName, err: unknown): SignspoolError {
    this.metrics.rateLimitDecisions.inc({ limit, outcome: 'error' });
    const now = Date.now();
    if (now - this.lastErrorLog > 10_000) {
      this.lastErrorLog = now;
      this.logger.warn({ limit, err: { message: err instanceof Error ? err.message : String(err) } }, 'rate limit store unreachable: answering 503');
    }
    return new SignspoolError('SERVICE_UNAVAILABLE', { detail: 'the limits store is unavailable; nothing was kept, retry later', retryAfterMs: 5000 });
  }
}
