/**
 * The signing worker: pulls document jobs, batches them by signing identity and signature type
 * (batcher.ts: documents of different tenants sharing an identity coalesce), runs up to
 * UPSTREAM_CONCURRENCY batches at once — each identity up to its own upstreamConcurrency, on its
 * own lane (identity-lanes.ts: signer, token, circuit breaker) — and keeps the spool clean
 * (janitor.ts). Documents of an identity whose circuit is open go back to the queue until it
 * half-opens, so they never hold the bound on documents held that the other identities need.
 * stop() stops pulling, flushes what the buckets hold, waits for in-flight batches until the
 * shutdown deadline, then aborts them and gives their documents back to the queue.
 */
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '@signspool/shared/config';
import type { Logger } from '@signspool/shared/logger';
import type { Metrics } from '@signspool/shared/metrics';
import { SignerRegistry } from '@signspool/shared/signers/registry';
import { Durability } from '@signspool/shared/durability';
import type { TransitionResult } from '@signspool/shared/operations/record';
import { OperationStore } from '@signspool/shared/operations/store';
import { assertHandlers, parseJobData, QUEUES, type JobName } from '@signspool/shared/queue';
import { redisTargetOptions } from '@signspool/shared/redis/target';
import { closeRedis, createWorkerRedis } from '@signspool/shared/redis/clients';
import { Spool } from '@signspool/shared/spool/spool';
import { CHECK_OK, redisCheck, type Readiness } from '@signspool/shared/service-http';
import { Batcher } from './batch/batcher.js';
import type { HeldDocument } from './batch/runner.js';
import { IdentityLanes } from './batch/identity-lanes.js';
import { Janitor } from './janitor.js';
import { SignJobConsumer } from './batch/sign-job-consumer.js';
import { WebhookDispatcher } from './webhooks/dispatcher.js';

export interface WorkerDeps {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  /** The process's signing identities (shared with an api in the same process; reloaded on SIGHUP); else the worker loads its own. */
  signers?: SignerRegistry;
}

/** Buckets are per (identity, signature type): tenants sharing an identity share its batches. */
const bucketKeyOf = (signer: string, signatureType: string): string => `${signer}\u0000${signatureType}`;
const signerOfKey = (key: string): string => key.slice(0, key.indexOf('\u0000'));
const oldestOf = (items: readonly HeldDocument[]): number => items.reduce((t, d) => Math.min(t, d.enteredAt), Infinity);

/** A flushed batch waiting for a slot: its identity's and a global one. */
interface PendingBatch {
  signer: string;
  items: HeldDocument[];
}

export class SigningWorker {
  private readonly deps: WorkerDeps;
  private readonly log: Logger;
  private redis: Redis | undefined;
  private source: SignJobConsumer | undefined;
  private registry: SignerRegistry | undefined;
  private ownRegistry = false;
  private lanes: IdentityLanes | undefined;
  /** Last reading of the spool's free-space floor (the worker stops pulling below it). */
  private spoolFull = false;
  private batcher: Batcher<HeldDocument> | undefined;
  private janitor: Janitor | undefined;
  private spool: Spool | undefined;
  private webhooks: WebhookDispatcher | undefined;
  private readonly abort = new AbortController();
  private readonly pending: PendingBatch[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private pulling: Promise<void> | undefined;
  private wakePuller: (() => void) | undefined;
  private state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  private stopPromise: Promise<void> | undefined;

  /** The job names this worker handles; checked against the queue contract at start. */
  static readonly handlers: readonly JobName[] = ['sign-document'];

  constructor(deps: WorkerDeps) {
    this.deps = deps;
    this.log = deps.logger.child({ component: 'worker' });
  }

  private get maxHeld(): number {
    const { batch, upstream } = this.deps.config;
    const largest = Math.max(batch.maxDocs, ...(this.registry?.identities.all().map((i) => i.limits.batchMaxDocs) ?? []));
    return largest * (upstream.concurrency + 1);
  }

  private get heldDocuments(): number {
    return this.source?.heldCount ?? 0;
  }

  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error('worker already started');
    assertHandlers(QUEUES.sign, SigningWorker.handlers);
    assertHandlers(QUEUES.webhook, WebhookDispatcher.handlers);
    const { config, metrics } = this.deps;
    if (!config.redisUrl) throw new Error('worker: REDIS_URL is not set');
    const spool = new Spool(config.spoolDir);
    await spool.init();
    this.spool = spool;
    if (metrics.spoolSources.length === 0) metrics.spoolSources.push(spool);
    this.redis = createWorkerRedis(config.redisUrl, redisTargetOptions(config));
    const durability = await Durability.check(this.redis, config.durability, this.log);
    const store = new OperationStore(this.redis, { prefix: config.queuePrefix, retentionMs: config.retentionMs });
    this.webhooks = new WebhookDispatcher({ config, redis: this.redis, store, metrics, logger: this.log });
    await this.webhooks.start();
    this.registry = this.deps.signers ?? new SignerRegistry({ config, logger: this.deps.logger, metrics });
    this.ownRegistry = this.deps.signers === undefined;
    if (this.ownRegistry) await this.registry.start();
    this.source = new SignJobConsumer({
      connection: this.redis,
      prefix: config.queuePrefix,
      lockDurationMs: config.jobs.lockDurationMs,
      maxStalled: config.jobs.maxStalled,
      logger: this.log,
      onStalledOut: (job, reason) => void this.failAbandoned(store, job, reason),
      // What the pull loop checks before it fetches a job.
      wantsMore: () => this.state === 'running' && this.heldDocuments < this.maxHeld && !this.spoolFull && !(this.lanes?.allBlocked() ?? false),
    });
    await this.source.start();
    metrics.workerPaused.set({ reason: 'spool_full' }, 0);
    const registry = this.registry;
    this.lanes = new IdentityLanes({
      registry,
      runner: {
        store,
        spool,
        source: this.source,
        reserveRoom: (bytes, wait) => this.reserveRoom(bytes, wait),
        durability,
        metrics,
        logger: this.log,
        upstream: config.upstream,
        batch: config.batch,
        signal: this.abort.signal,
        onOperationTerminal: (opId, tenant, result) => this.operationEnded(opId, tenant, result),
      },
      signerContext: { dataDir: config.dataDir, spool, logger: this.deps.logger, metrics },
      upstream: config.upstream,
      redis: this.redis,
      prefix: config.queuePrefix,
      metrics,
      logger: this.log,
      onCircuitChange: () => {
        this.wakePuller?.();
        this.dispatch();
      },
    });
    this.lanes.start();
    this.batcher = new Batcher<HeldDocument>({
      maxDocs: config.batch.maxDocs,
      maxBytes: config.batch.maxBytes,
      lingerMs: config.batch.lingerMs,
      limitsOf: (key) => {
        const limits = registry.identities.get(signerOfKey(key))?.limits;
        return limits ? { maxDocs: limits.batchMaxDocs, maxBytes: limits.batchMaxBytes } : config.batch;
      },
      hasCapacity: (key) => this.hasSlot(signerOfKey(key)),
      onFlush: (items, reason, key) => {
        metrics.batchFlushes.inc({ reason });
        // Oldest first: a small tenant's lingered batch goes before a busy tenant's newer full one.
        const at = this.pending.findIndex((p) => oldestOf(p.items) > oldestOf(items));
        this.pending.splice(at < 0 ? this.pending.length : at, 0, { signer: signerOfKey(key), items });
        this.dispatch();
      },
    });
    this.janitor = new Janitor({ spool, store, logger: this.log, intervalMs: config.janitorIntervalMs, orphanGraceMs: config.orphanGraceMs });
    this.janitor.start();
    this.state = 'running';
    this.pulling = this.pullLoop();
    this.log.info({ signers: registry.identities.names(), batch: config.batch, concurrency: config.upstream.concurrency }, 'worker started');
  }

  /** Whether the spool has room for signed results (free space above SPOOL_MIN_FREE_BYTES). */
  private async hasRoom(): Promise<boolean> {
    const spool = this.spool;
    if (!spool) return false;
    const free = await spool.freeBytes(1000).catch(() => 0);
    const full = free < this.deps.config.spoolMinFreeBytes;
    if (full !== this.spoolFull) {
      this.spoolFull = full;
      this.deps.metrics.workerPaused.set({ reason: 'spool_full' }, full ? 1 : 0);
      if (full)
        this.log.warn(
          { freeBytes: free, floor: this.deps.config.spoolMinFreeBytes },
          'spool below its free-space floor: not pulling documents until space is freed',
        );
      else this.log.info({ freeBytes: free }, 'spool has room again: pulling documents');
    }
    return !full;
  }

  /** Room reserved in the spool for the results of batches in flight, and who waits for some to be released. */
  private roomHeld = 0;
  private roomWaiters: (() => void)[] = [];

  /**
   * Reserves room for `bytes` of signed results above SPOOL_MIN_FREE_BYTES (the worker's floor; the
   * api stops admitting a batch's room above it: shared/spool/room.ts). Spares, retired uploads
   * kept for reuse, give their room back first. When it does not fit: undefined, or with `wait`,
   * while this worker's own batches hold room, it waits for them to end (their uploads are retired).
   */
  private async reserveRoom(bytes: number, wait: boolean): Promise<(() => void) | undefined> {
    const spool = this.spool;
    if (!spool) return undefined;
    const fits = async (): Promise<boolean> => (await spool.freeBytes(0).catch(() => 0)) - this.roomHeld - bytes >= this.deps.config.spoolMinFreeBytes;
    for (;;) {
      if (!(await fits())) await spool.spares.drop();
      if (await fits()) break;
      if (!wait || this.roomHeld === 0 || this.abort.signal.aborted) return undefined;
      // Woken by a release, or by the shutdown's abort.
      await new Promise<void>((resolve) => {
        this.roomWaiters.push(resolve);
        this.abort.signal.addEventListener('abort', () => resolve(), { once: true });
      });
    }
    this.roomHeld += bytes;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.roomHeld -= bytes;
      for (const wake of this.roomWaiters.splice(0)) wake();
    };
  }

  /** Why the worker is not pulling documents now (empty when it is). */
  pauseReasons(): string[] {
    const reasons: string[] = [];
    if (this.spoolFull) reasons.push('spool_full');
    if (this.lanes?.allBlocked()) reasons.push('circuit_open');
    return reasons;
  }

  /** Whether a batch of `signer` may start now: a global slot, a slot of its identity, and none of its batches waiting before it. */
  private hasSlot(signer: string): boolean {
    const lane = this.lanes?.peek(signer);
    return this.inFlight.size < this.deps.config.upstream.concurrency && (lane === undefined || lane.hasRoom) && !this.pending.some((p) => p.signer === signer);
  }

  /** Sleeps until woken (capacity, circuit closed) or `ms` passed. */
  private async pause(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wakePuller = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.wakePuller = undefined;
  }

  private async pullLoop(): Promise<void> {
    const source = this.source;
    const batcher = this.batcher;
    if (!source || !batcher) return;
    while (this.state === 'running') {
      // Jobs a completion fetched along are held already (they took the completed jobs' places): handed on regardless.
      const along = source.fetchedCount > 0;
      if (!along && this.heldDocuments >= this.maxHeld) {
        await this.pause(60_000);
        continue;
      }
      // Documents wait in the queue (where other workers can take them) while this one cannot sign,
      // or while every identity's circuit is open (nothing could be sent).
      if (!along && (!(await this.hasRoom()) || this.lanes?.allBlocked())) {
        await this.pause(1000);
        continue;
      }
      let job: Job | undefined;
      try {
        job = await source.next();
      } catch (err) {
        if (this.state !== 'running') break;
        this.log.error({ err }, 'could not fetch a job; retrying in 1 s');
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      if (!job) continue;
      if (this.state !== 'running') {
        await source.release(job);
        break;
      }
      let data;
      try {
        if (job.name !== 'sign-document') throw new Error(`unknown job name ${job.name}`);
        data = parseJobData('sign-document', job.data);
      } catch (err) {
        this.log.error({ err, jobId: job.id, name: job.name }, 'invalid job payload');
        await source.fail(job, new Error('invalid job payload'));
        continue;
      }
      // A name this worker does not know: reload once (the api may have heard the SIGHUP first); still
      // unknown, its lane fails the document with SIGNER_REMOVED.
      if (!(await this.lanes?.known(data.signer))) this.log.warn({ signer: data.signer, docId: data.docId }, 'document of an unknown signing identity');
      const lane = this.lanes?.peek(data.signer);
      if (lane?.breaker.blocked) {
        // Its identity's circuit is open (or probing): back to the queue until it can go, so it holds no place here.
        await source.release(job, lane.breaker.deferMs + 100);
        continue;
      }
      batcher.add({ job, data, enteredAt: Date.now(), size: data.size, bucketKey: bucketKeyOf(data.signer, data.signatureType) });
    }
  }

  private dispatch(): void {
    const { config, metrics } = this.deps;
    const lanes = this.lanes;
    if (!lanes) return;
    // Oldest batch first whose identity has a free slot: a busy identity does not hold up the others.
    for (let i = 0; i < this.pending.length && this.inFlight.size < config.upstream.concurrency;) {
      const batch = this.pending[i];
      if (!batch) break;
      const lane = lanes.lane(batch.signer);
      if (!lane.hasRoom) {
        i++;
        continue;
      }
      this.pending.splice(i, 1);
      const items = batch.items;
      const now = Date.now();
      const bytes = items.reduce((n, d) => n + d.size, 0);
      const limits = lane.identity?.limits;
      metrics.batchDocuments.observe(items.length);
      metrics.batchBytes.observe(bytes);
      metrics.batchFillRatio.observe(
        Math.min(1, Math.max(items.length / (limits?.batchMaxDocs ?? config.batch.maxDocs), bytes / (limits?.batchMaxBytes ?? config.batch.maxBytes))),
      );
      for (const d of items) metrics.bucketWait.observe((now - d.enteredAt) / 1000);
      const p = lanes
        .run(lane, items)
        .catch((err: unknown) => this.log.error({ err }, 'batch runner failed'))
        .finally(() => {
          this.inFlight.delete(p);
          // A bucket past its linger that is older than every pending batch takes the free slot.
          this.batcher?.onCapacity(this.pending[0] ? oldestOf(this.pending[0].items) : Infinity, (key) => lanes.peek(signerOfKey(key))?.hasRoom ?? true);
          this.dispatch();
          this.wakePuller?.();
        });
      this.inFlight.add(p);
    }
  }

  /** Announces the operation's end (its webhook); idempotent. A failure is logged: the operation has ended regardless. */
  private async operationEnded(opId: string, tenant: string, result: TransitionResult): Promise<void> {
    await this.webhooks?.announceEnd(opId, tenant, result).catch((err: unknown) => this.log.error({ err, opId }, 'could not enqueue the webhook'));
  }

  private async failAbandoned(store: OperationStore, job: Job, reason: string): Promise<void> {
    try {
      const data = parseJobData('sign-document', job.data);
      const result = await store.transition(data.opId, [
        { docId: data.docId, to: 'failed', error: { code: 'DOCUMENT_STALLED', message: `abandoned by workers too many times (${reason})` } },
      ]);
      await this.operationEnded(data.opId, data.tenant, result);
    } catch (err) {
      this.log.error({ err, jobId: job.id }, 'could not fail an abandoned document');
    }
  }

  /** Ready when running, Redis answers within `timeoutMs` and the spool has room; `checks` details each (and each identity's circuit). */
  async readiness(timeoutMs = 1000): Promise<Readiness> {
    const checks: Record<string, string> = { state: this.state };
    const redis = this.redis;
    let redisOk = false;
    if (redis) {
      checks['redis'] = await redisCheck(redis, timeoutMs);
      redisOk = checks['redis'] === CHECK_OK;
    }
    checks['circuit'] = this.lanes?.worst() ?? 'closed';
    // Each identity's state: detail only, one broken identity does not make the worker unready.
    for (const [name, s] of Object.entries(this.lanes?.states() ?? {})) {
      checks[`signer.${name}`] = `circuit ${s.circuit}${s.lastError ? `, last error ${s.lastError.code} at ${new Date(s.lastError.at).toISOString()}` : ''}`;
    }
    checks['spool'] = this.spoolFull ? 'below its free-space floor' : 'ok';
    const ready = this.state === 'running' && redisOk && !this.spoolFull;
    if (ready) return { ready, checks };
    // Circuits are detail only: the detail names what makes the worker unready.
    const failing = [
      this.state === 'running' ? '' : `state: ${this.state}`,
      redisOk ? '' : `redis: ${checks['redis'] ?? 'not connected'}`,
      this.spoolFull ? `spool: ${checks['spool'] ?? ''}` : '',
    ];
    return { ready, checks, detail: failing.filter((f) => f !== '').join('; ') };
  }

  /** Number of batches currently being signed. */
  get batchesInFlight(): number {
    return this.inFlight.size;
  }

  /** Idempotent; finishes within config.shutdownTimeoutMs. */
  stop(): Promise<void> {
    this.stopPromise ??= this.doStop();
    return this.stopPromise;
  }

  private async doStop(): Promise<void> {
    if (this.state === 'new') {
      this.state = 'stopped';
      return;
    }
    this.state = 'stopping';
    const deadline = Date.now() + this.deps.config.shutdownTimeoutMs;
    this.wakePuller?.();
    // Stop pulling: the blocking fetch returns within about a second (drainDelay).
    await this.pulling?.catch(() => undefined);
    this.batcher?.flushAll('shutdown');
    this.dispatch();
    const drained = async (): Promise<void> => {
      while (this.inFlight.size > 0 || this.pending.length > 0) {
        await Promise.race([...this.inFlight]);
      }
    };
    const timeLeft = Math.max(0, deadline - Date.now());
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([drained().then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeLeft)))]);
    clearTimeout(timer);
    if (timedOut) {
      this.log.warn({ inFlight: this.inFlight.size, pending: this.pending.length }, 'shutdown deadline reached; aborting in-flight batches');
      this.abort.abort(new Error('worker shutdown deadline'));
      const stuck = this.pending.splice(0).flatMap((p) => p.items);
      await Promise.all(stuck.map((d) => this.source?.release(d.job)));
      await Promise.allSettled([...this.inFlight]);
    }
    for (const d of this.batcher?.stop() ?? []) await this.source?.release(d.job);
    await this.lanes?.stop();
    if (this.ownRegistry) await this.registry?.stop();
    await this.source?.close();
    await this.janitor?.stop();
    await this.webhooks?.stop();
    await this.spool?.close();
    if (this.redis) await closeRedis(this.redis);
    this.state = 'stopped';
    this.log.info('worker stopped');
  }
}
