/**
 * The signing worker: pulls document jobs, batches them (batcher.ts), runs up to
 * UPSTREAM_CONCURRENCY batches at once (batch-runner.ts) and keeps the spool clean (janitor.ts).
 * stop() stops pulling, flushes what the buckets hold, waits for in-flight batches until the
 * shutdown deadline, then aborts them and gives their documents back to the queue.
 */
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '@signspool/shared/config';
import type { Logger } from '@signspool/shared/logger';
import type { Metrics } from '@signspool/shared/metrics';
import type { SignerRegistry } from '@signspool/shared/signers/registry';
import { publishCircuitState } from '@signspool/shared/circuit-state';
import { Durability } from '@signspool/shared/durability';
import { OperationStore } from '@signspool/shared/operations/store';
import { assertHandlers, parseJobData, QUEUES, type JobName } from '@signspool/shared/queue';
import { redisTargetOptions } from '@signspool/shared/redis/target';
import { closeRedis, createWorkerRedis } from '@signspool/shared/redis/clients';
import { Spool } from '@signspool/shared/spool/spool';
import { Batcher } from './batch/batcher.js';
import { BatchRunner, type HeldDocument } from './batch/runner.js';
import { Janitor } from './janitor.js';
import { CircuitBreaker, type CircuitState } from './batch/circuit-breaker.js';
import { SignJobConsumer } from './batch/sign-job-consumer.js';
import type { Signer } from './signer.js';
import { WebhookDispatcher } from './webhooks/dispatcher.js';
import { createSigner } from './signers/index.js';

export interface WorkerDeps {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  /** Defaults to the signer named by config.signer. */
  signer?: Signer;
  /** The process's signing identities (shared with an api in the same process; reloaded on SIGHUP). */
  signers?: SignerRegistry;
}

const bucketKeyOf = (tenant: string, signatureType: string): string => `${tenant}\u0000${signatureType}`;
const oldestOf = (items: readonly HeldDocument[]): number => items.reduce((t, d) => Math.min(t, d.enteredAt), Infinity);

export class SigningWorker {
  private readonly deps: WorkerDeps;
  private readonly log: Logger;
  private redis: Redis | undefined;
  private source: SignJobConsumer | undefined;
  private breaker: CircuitBreaker | undefined;
  /** Last reading of the spool's free-space floor (the worker stops pulling below it). */
  private spoolFull = false;
  private signer: Signer | undefined;
  private batcher: Batcher<HeldDocument> | undefined;
  private runner: BatchRunner | undefined;
  private janitor: Janitor | undefined;
  private spool: Spool | undefined;
  private webhooks: WebhookDispatcher | undefined;
  private readonly abort = new AbortController();
  private readonly pending: HeldDocument[][] = [];
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
    return batch.maxDocs * (upstream.concurrency + 1);
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
    this.signer = this.deps.signer ?? (await createSigner(config, spool, this.deps.logger, metrics));
    await this.signer.start();
    this.source = new SignJobConsumer({
      connection: this.redis,
      prefix: config.queuePrefix,
      lockDurationMs: config.jobs.lockDurationMs,
      maxStalled: config.jobs.maxStalled,
      logger: this.log,
      onStalledOut: (job, reason) => void this.failAbandoned(store, job, reason),
    });
    await this.source.start();
    const circuitStates: CircuitState[] = ['closed', 'open', 'half_open'];
    const showCircuit = (state: CircuitState): void => {
      for (const s of circuitStates) metrics.upstreamCircuit.set({ state: s }, s === state ? 1 : 0);
      metrics.workerPaused.set({ reason: 'circuit_open' }, state === 'closed' ? 0 : 1);
      if (state === 'closed') this.wakePuller?.();
    };
    showCircuit('closed');
    metrics.workerPaused.set({ reason: 'spool_full' }, 0);
    this.breaker = new CircuitBreaker({
      threshold: config.upstream.breakerThreshold,
      cooldownMs: config.upstream.breakerCooldownMs,
      onStateChange: (state) => {
        this.log.warn({ circuit: state }, state === 'open' ? 'upstream circuit open: no batch is sent until the cool-down ends' : `upstream circuit ${state}`);
        showCircuit(state);
        // For GET /v1/admin/stats: an open circuit is listed until it closes or this worker is gone.
        const ttlMs = config.upstream.breakerCooldownMs + config.signstash.headersTimeoutMs + config.signstash.bodyTimeoutMs;
        if (this.redis) void publishCircuitState(this.redis, config.queuePrefix, state, ttlMs).catch(() => undefined);
      },
    });
    this.runner = new BatchRunner({
      signer: this.signer,
      store,
      spool,
      source: this.source,
      breaker: this.breaker,
      hasRoom: () => this.hasRoom(),
      durability,
      metrics,
      logger: this.log,
      upstream: config.upstream,
      batch: config.batch,
      signal: this.abort.signal,
      onOperationTerminal: (opId, tenant, result) => this.operationEnded(opId, tenant, result.webhook),
    });
    this.batcher = new Batcher<HeldDocument>({
      maxDocs: config.batch.maxDocs,
      maxBytes: config.batch.maxBytes,
      lingerMs: config.batch.lingerMs,
      hasCapacity: () => this.inFlight.size < config.upstream.concurrency && this.pending.length === 0,
      onFlush: (items, reason) => {
        metrics.batchFlushes.inc({ reason });
        // Oldest first: a small tenant's lingered batch goes before a busy tenant's newer full one.
        const at = this.pending.findIndex((p) => oldestOf(p) > oldestOf(items));
        this.pending.splice(at < 0 ? this.pending.length : at, 0, items);
        this.dispatch();
      },
    });
    this.janitor = new Janitor({ spool, store, logger: this.log, intervalMs: config.janitorIntervalMs, orphanGraceMs: config.orphanGraceMs });
    this.janitor.start();
    this.state = 'running';
    this.pulling = this.pullLoop();
    this.log.info({ signer: this.signer.name, batch: config.batch, concurrency: config.upstream.concurrency }, 'worker started');
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
        this.log.error(
          { freeBytes: free, floor: this.deps.config.spoolMinFreeBytes },
          'spool below its free-space floor: not pulling documents until space is freed',
        );
      else this.log.info({ freeBytes: free }, 'spool has room again: pulling documents');
    }
    return !full;
  }

  /** Why the worker is not pulling documents now (empty when it is). */
  pauseReasons(): string[] {
    const reasons: string[] = [];
    if (this.spoolFull) reasons.push('spool_full');
    if (this.breaker && this.breaker.state !== 'closed') reasons.push(`circuit_${this.breaker.state}`);
    return reasons;
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
      if (this.heldDocuments >= this.maxHeld) {
        await this.pause(60_000);
        continue;
      }
      // Documents wait in the queue (where other workers can take them) while this one cannot sign.
      if (!(await this.hasRoom()) || (this.breaker && this.breaker.state !== 'closed')) {
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
      batcher.add({ job, data, enteredAt: Date.now(), size: data.size, bucketKey: bucketKeyOf(data.tenant, data.signatureType) });
    }
  }

  private dispatch(): void {
    const { config, metrics } = this.deps;
    const runner = this.runner;
    if (!runner) return;
    while (this.inFlight.size < config.upstream.concurrency && this.pending.length > 0) {
      const items = this.pending.shift();
      if (!items) break;
      const now = Date.now();
      const bytes = items.reduce((n, d) => n + d.size, 0);
      metrics.batchDocuments.observe(items.length);
      metrics.batchBytes.observe(bytes);
      metrics.batchFillRatio.observe(Math.min(1, Math.max(items.length / config.batch.maxDocs, bytes / config.batch.maxBytes)));
      for (const d of items) metrics.bucketWait.observe((now - d.enteredAt) / 1000);
      const p = runner
        .run(items)
        .catch((err: unknown) => this.log.error({ err }, 'batch runner failed'))
        .finally(() => {
          this.inFlight.delete(p);
          // A bucket past its linger that is older than every pending batch takes the free slot.
          this.batcher?.onCapacity(this.pending[0] ? oldestOf(this.pending[0]) : Infinity);
          this.dispatch();
          this.wakePuller?.();
        });
      this.inFlight.add(p);
    }
  }

  /** Enqueues the operation's webhook; idempotent (the first delivery's job id is the operation's). */
  private async operationEnded(opId: string, tenant: string, hasWebhook: boolean): Promise<void> {
    if (!hasWebhook) return;
    await this.webhooks?.enqueueCompleted(opId, tenant).catch((err: unknown) => this.log.error({ err, opId }, 'could not enqueue the webhook'));
  }

  private async failAbandoned(store: OperationStore, job: Job, reason: string): Promise<void> {
    try {
      const data = parseJobData('sign-document', job.data);
      const result = await store.transition(data.opId, [
        { docId: data.docId, to: 'failed', error: { code: 'DOCUMENT_STALLED', message: `abandoned by workers too many times (${reason})` } },
      ]);
      if (result.becameTerminal) await this.operationEnded(data.opId, data.tenant, result.webhook);
    } catch (err) {
      this.log.error({ err, jobId: job.id }, 'could not fail an abandoned document');
    }
  }

  /** Ready when running, Redis answers within `timeoutMs` and the spool has room; `checks` details each (and the circuit's state). */
  async readiness(timeoutMs = 1000): Promise<{ ready: boolean; checks: Record<string, string> }> {
    const checks: Record<string, string> = { state: this.state };
    const redis = this.redis;
    let redisOk = false;
    if (redis) {
      let timer: NodeJS.Timeout | undefined;
      // ping() would wait in ioredis's offline queue while Redis is down: race it against a deadline.
      const answer = await Promise.race([
        redis.ping().catch((err: unknown) => `error: ${(err as Error).message}`),
        new Promise<string>((r) => (timer = setTimeout(() => r(`no answer within ${timeoutMs} ms`), timeoutMs))),
      ]);
      clearTimeout(timer);
      redisOk = answer === 'PONG';
      checks['redis'] = redisOk ? 'ok' : answer;
    }
    checks['circuit'] = this.breaker?.state ?? 'closed';
    checks['spool'] = this.spoolFull ? 'below its free-space floor' : 'ok';
    const ready = this.state === 'running' && redisOk && !this.spoolFull;
    return { ready, checks };
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
      const stuck = this.pending.splice(0).flat();
      await Promise.all(stuck.map((d) => this.source?.release(d.job)));
      await Promise.allSettled([...this.inFlight]);
    }
    for (const d of this.batcher?.stop() ?? []) await this.source?.release(d.job);
    this.breaker?.stop();
    await this.source?.close();
    await this.janitor?.stop();
    await this.webhooks?.stop();
    await this.signer?.stop();
    await this.spool?.close();
    if (this.redis) await closeRedis(this.redis);
    this.state = 'stopped';
    this.log.info('worker stopped');
  }
}
