/**
 * Runs one flushed batch to the end: claims its documents (queued → signing, under the batch's id),
 * calls the signer once per attempt, retries retryable failures with capped exponential backoff
 * and jitter (honouring Retry-After) — of the whole call, or of the documents an answer failed
 * one by one — gives its documents back to the queue while the identity's circuit is open (to
 * come back when it half-opens), bisects a batch the upstream rejects because of one document,
 * records every document's outcome and settles its job. One runner serves one signing identity
 * (its signer and circuit breaker). Documents go back to the queue, without an outcome, when the
 * identity's circuit is open, this worker cannot store results (spool full), cannot reach Redis,
 * lost their lock, or is shutting down.
 *
 * Tracing: a `batch` span per run, a child of the first sampled document's upload span (so a lone
 * document's upload, batch and upstream call are one trace) and linked to every document's upload;
 * an `upstream.sign` span per signer call. The operation's webhook is enqueued in its own trace.
 */
import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { context, trace, type Link } from '@opentelemetry/api';
import type { Job } from 'bullmq';
import type { Config } from '@signspool/shared/config';
import { DOCUMENT_FAULTS, SignspoolError, toSignspoolError, type ErrorCode } from '@signspool/shared/errors';
import type { Durability } from '@signspool/shared/durability';
import type { Logger } from '@signspool/shared/logger';
import type { Metrics } from '@signspool/shared/metrics';
import type { DocumentUpdate, TransitionResult } from '@signspool/shared/operations/record';
import { isTerminal } from '@signspool/shared/operations/states';
import type { OperationStore } from '@signspool/shared/operations/store';
import type { SignDocumentJob } from '@signspool/shared/queue';
import { ATTR, contextOf, inSpan, isSampled, recordError, SpanKind, SPANS, spanContextOf, tracer, type Context, type Span } from '@signspool/shared/spans';
import { isRedisUnavailable } from '@signspool/shared/redis/unavailable';
import { resultRoom } from '@signspool/shared/spool/room';
import type { Spool } from '@signspool/shared/spool/spool';
import type { Batchable } from './batcher.js';
import type { CircuitBreaker } from './circuit-breaker.js';
import type { SignJobConsumer } from './sign-job-consumer.js';
import type { DocumentResult, SignBatch, Signer } from '../signer.js';

export interface HeldDocument extends Batchable {
  job: Job;
  data: SignDocumentJob;
  enteredAt: number;
}

export interface BatchRunnerDeps {
  /** The signing identity's name (the `signer` label of metrics). */
  identity: string;
  signer: Signer;
  store: OperationStore;
  /** Uploaded files of signed documents are retired (kept for reuse) through it. */
  spool: Spool;
  source: SignJobConsumer;
  breaker: CircuitBreaker;
  /**
   * Reserves spool room for `bytes` of signed results (released by calling the result); undefined
   * when it does not fit above the worker's floor: the batch is halved, a lone document waits for
   * room this worker's batches hold (`wait`), else goes back to the queue unsent.
   */
  reserveRoom: (bytes: number, wait: boolean) => Promise<(() => void) | undefined>;
  /** Outcomes are durable (DURABILITY) before an upload is retired. */
  durability: Durability;
  metrics: Metrics;
  logger: Logger;
  upstream: Config['upstream'];
  batch: Config['batch'];
  /** Aborted on shutdown deadline: in-flight calls stop and their documents are released. */
  signal: AbortSignal;
  /**
   * Called when an operation became terminal, before its last jobs are settled, and again when a
   * re-run finds it terminal (so a crash in between cannot lose it): it must be idempotent.
   */
  onOperationTerminal?: (opId: string, tenant: string, result: TransitionResult) => Promise<void>;
}

/** Capped exponential backoff with full jitter; Retry-After, when given, is a floor. */
export const backoffDelay = (attempt: number, baseMs: number, maxMs: number, retryAfterMs?: number, random = Math.random): number => {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  const jittered = Math.round(ceiling / 2 + random() * (ceiling / 2));
  return Math.max(jittered, Math.min(retryAfterMs ?? 0, maxMs * 5));
};

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });

const groupByOp = (items: HeldDocument[], update: (d: HeldDocument) => DocumentUpdate): Map<string, DocumentUpdate[]> => {
  const m = new Map<string, DocumentUpdate[]>();
  for (const d of items) {
    const list = m.get(d.data.opId) ?? [];
    list.push(update(d));
    m.set(d.data.opId, list);
  }
  return m;
};

const upstreamSpan = (signer: string, attempt: number, sendId: string, documents: number) => ({
  kind: signer === 'local' ? SpanKind.INTERNAL : SpanKind.CLIENT,
  attributes: { [ATTR.signer]: signer, [ATTR.attempt]: attempt, [ATTR.batchId]: sendId, [ATTR.documents]: documents },
});

/** Failures that say the upstream is unavailable: they feed the circuit breaker. */
const UNAVAILABLE: ReadonlySet<ErrorCode> = new Set(['UPSTREAM_UNAVAILABLE', 'UPSTREAM_NETWORK', 'UPSTREAM_TIMEOUT']);
/** How long documents wait in the queue when this worker cannot store results or reach Redis. */
const REQUEUE_DELAY_MS = 5000;
const ACCEPTING_RETRY_MS = 1000;

/** Recording an outcome failed (Redis): the batch goes back to the queue, nothing is charged to the upstream. */
class StoreFailure extends Error {
  constructor(override readonly cause: unknown) {
    super('could not record outcomes');
  }
}

class Requeue extends Error {
  constructor(
    readonly reason: 'spool_full' | 'redis' | 'circuit_open',
    readonly delayMs = REQUEUE_DELAY_MS,
  ) {
    super(reason);
  }
}

/** How long documents of an identity whose circuit is blocked wait in the queue: until it half-opens, or its probe has answered. */
const openCircuitDelay = (breaker: CircuitBreaker): number => breaker.deferMs + 100;

/** Documents signed and failed by one run, for its span. */
interface Tally {
  signed: number;
  failed: number;
}

/** The batch span: its parent is the first sampled document's upload (else the first one's), and it links every upload. */
const startBatchSpan = (items: HeldDocument[], batchId: string): { span: Span; parent: Context } => {
  const links: Link[] = [];
  let parent: Context | undefined;
  let parentSampled = false;
  for (const { data } of items) {
    const sc = spanContextOf(data.trace);
    if (!sc) continue;
    links.push({ context: sc, attributes: { [ATTR.operationId]: data.opId, [ATTR.documentId]: data.docId } });
    if (parent === undefined || (!parentSampled && isSampled(sc))) {
      parent = contextOf(data.trace);
      parentSampled = isSampled(sc);
    }
  }
  const root = parent ?? context.active();
  const attributes = {
    [ATTR.batchId]: batchId,
    [ATTR.documents]: items.length,
    [ATTR.bytes]: items.reduce((n, d) => n + d.data.size, 0),
    [ATTR.tenant]: items[0]?.data.tenant ?? '',
    [ATTR.signatureType]: items[0]?.data.signatureType ?? '',
  };
  return { span: tracer.startSpan(SPANS.batch, { kind: SpanKind.CONSUMER, links, attributes }, root), parent: root };
};

export class BatchRunner {
  constructor(private readonly deps: BatchRunnerDeps) {}

  /** Outcomes recorded per running batch (by claim), for the batch span. */
  private readonly tallies = new Map<string, Tally>();

  /** Runs a flushed batch. Never throws: every document ends settled or given back to the queue. */
  async run(items: HeldDocument[]): Promise<void> {
    const batchId = `b_${randomUUID().replaceAll('-', '')}`;
    const { span, parent } = startBatchSpan(items, batchId);
    const tally: Tally = { signed: 0, failed: 0 };
    this.tallies.set(batchId, tally);
    try {
      // The batch's log lines carry its trace_id.
      const outcome = await context.with(trace.setSpan(parent, span), () => this.runIn(items, batchId, span));
      const ended = tally.signed + tally.failed === 0 ? 'none' : tally.failed === 0 ? 'signed' : tally.signed === 0 ? 'failed' : 'partial';
      span.setAttributes({ [ATTR.outcome]: outcome ?? ended, [ATTR.signed]: tally.signed, [ATTR.failed]: tally.failed });
      this.deps.metrics.signerBatches.inc({ signer: this.deps.identity, outcome: outcome ?? ended });
    } finally {
      this.tallies.delete(batchId);
      span.end();
    }
  }

  /** The body of run(); returns how the batch ended when its documents got no outcome here. */
  private async runIn(items: HeldDocument[], batchId: string, span: Span): Promise<'released' | 'requeued' | 'error' | undefined> {
    const log = this.deps.logger.child({ batchId });
    if (this.deps.breaker.blocked) {
      // Not claimed yet: the documents go back as they are, to return when the circuit half-opens.
      const delayMs = openCircuitDelay(this.deps.breaker);
      await Promise.all(items.map((d) => this.deps.source.release(d.job, delayMs)));
      log.info({ documents: items.length, delayMs }, 'circuit open: batch given back to the queue');
      return 'requeued';
    }
    try {
      const claimed = await this.claim(items, batchId, log);
      if (claimed.length > 0) await this.execute(claimed, batchId, batchId, log);
      return undefined;
    } catch (err) {
      if (this.deps.signal.aborted) {
        await this.requeue(items, batchId, 0, log);
        log.warn({ documents: items.length }, 'batch released at shutdown');
        return 'released';
      }
      if (err instanceof Requeue || isRedisUnavailable(err)) {
        log.warn({ reason: err instanceof Requeue ? err.reason : 'redis', documents: items.length }, 'batch given back to the queue');
        await this.requeue(items, batchId, err instanceof Requeue ? err.delayMs : REQUEUE_DELAY_MS, log);
        return 'requeued';
      }
      log.error({ err }, 'batch failed unexpectedly');
      recordError(span, err);
      await this.finish(
        items.filter((d) => this.deps.source.owns(d.job)),
        batchId,
        new Map(),
        toSignspoolError(err),
        log,
      ).catch(async (again: unknown) => {
        log.error({ err: again }, 'could not record the failure; giving the batch back to the queue');
        await this.requeue(items, batchId, REQUEUE_DELAY_MS, log);
      });
      return 'error';
    }
  }

  /** Announces an operation's end in the operation's own trace (its upload's), else in the batch's. */
  private announceEnd(opId: string, items: HeldDocument[], result: TransitionResult): Promise<void> {
    const doc = items.find((d) => d.data.opId === opId);
    const ctx = doc?.data.trace ? contextOf(doc.data.trace) : context.active();
    return context.with(ctx, async () => this.deps.onOperationTerminal?.(opId, doc?.data.tenant ?? '', result));
  }

  /** queued → signing for every document, under claim `batchId`; drops the ones already terminal (a re-run of a finished batch). */
  private async claim(items: HeldDocument[], batchId: string, log: Logger): Promise<HeldDocument[]> {
    const results = await this.deps.store.transitionMany(groupByOp(items, (d) => ({ docId: d.data.docId, to: 'signing', claim: batchId })));
    const claimed: HeldDocument[] = [];
    for (const d of items) {
      const r = results.get(d.data.opId);
      if (r?.applied.includes(d.data.docId)) {
        claimed.push(d);
        continue;
      }
      const status = r?.rejected.find((x) => x.docId === d.data.docId)?.status ?? r?.status ?? 'missing';
      if (status === 'accepting') {
        // Its submission is not committed yet (or failed and will expire): ask again shortly.
        await this.deps.source.release(d.job, ACCEPTING_RETRY_MS);
        continue;
      }
      log.info({ opId: d.data.opId, docId: d.data.docId, status }, 'document not claimable, dropping its job');
      // A re-run of a batch that ended its operation: make sure the end was announced.
      if (r && isTerminal(r.status) && r.webhook) await this.announceEnd(d.data.opId, [d], r);
      await this.deps.source.complete(d.job, { dropped: status });
    }
    return claimed;
  }

  /** Drops documents whose job lock was lost: another worker holds them now. */
  private owned(items: HeldDocument[], log: Logger): HeldDocument[] {
    const kept = items.filter((d) => this.deps.source.owns(d.job));
    for (const d of items) {
      if (kept.includes(d)) continue;
      log.warn({ opId: d.data.opId, docId: d.data.docId }, 'job lock lost; leaving the document to its new owner');
      this.deps.source.forget(d.job);
    }
    return kept;
  }

  private batchOf(items: HeldDocument[], sendId: string, claim: string): SignBatch {
    const { spool } = this.deps;
    return {
      batchId: sendId,
      tenant: items[0]?.data.tenant ?? '',
      signatureType: items[0]?.data.signatureType ?? 'CAdES',
      documents: items.map(({ data }) => ({
        opId: data.opId,
        docId: data.docId,
        name: data.name,
        contentType: data.contentType,
        size: data.size,
        sha256: data.sha256,
        path: spool.incomingPath(data.opId, data.docId),
        resultPath: spool.signedPath(data.opId, data.docId, claim),
      })),
    };
  }

  /** Records outcomes; a failure to do so is the store's (StoreFailure), never taken for the upstream's. */
  private async record(...args: Parameters<BatchRunner['finish']>): Promise<void> {
    try {
      await this.finish(...args);
    } catch (err) {
      throw new StoreFailure(err);
    }
  }

  /** Signs `items` (claimed under `claim`) with up to maxAttempts calls; `probe` when this call already holds the circuit's probe. */
  private async execute(all: HeldDocument[], sendId: string, claim: string, log: Logger, probe = false): Promise<void> {
    const { signer, upstream, metrics, signal, breaker } = this.deps;
    let items = all;
    let counted = 0;
    for (let attempt = 1; ; attempt++) {
      items = this.owned(items, log);
      if (items.length === 0) return;
      const permit = probe ? 'probe' : breaker.tryAcquire(signal);
      if (permit === 'open') throw new Requeue('circuit_open', openCircuitDelay(breaker));
      probe = false;
      // Our own disk, not the upstream: the probe (if this was it) is handed back untold.
      const ours = (): Requeue => {
        if (permit === 'probe') breaker.release();
        return new Requeue('spool_full');
      };
      if (permit === 'probe' && items.length > 1) {
        // The half-open probe is one document; the rest follow once the circuit has its answer.
        log.info({ documents: items.length }, 'upstream circuit half-open: probing with one document');
        await this.execute(items.slice(0, 1), `${sendId}p`.slice(0, 64), claim, log, true);
        await this.execute(items.slice(1), sendId, claim, log);
        return;
      }
      // Room for the results above the worker's floor; a batch that does not fit goes in halves.
      const bytes = items.reduce((n, d) => n + d.data.size, 0);
      const room = await this.deps.reserveRoom(resultRoom(bytes, items.length), items.length === 1);
      if (!room) {
        // (A probe is a lone document: it never comes here.)
        if (items.length === 1) throw ours();
        log.info({ documents: items.length }, "not enough spool room for the batch's results: sending it in halves");
        const mid = Math.ceil(items.length / 2);
        await this.execute(items.slice(0, mid), `${sendId}a`.slice(0, 64), claim, log);
        await this.execute(items.slice(mid), `${sendId}b`.slice(0, 64), claim, log);
        return;
      }
      if (attempt > 1) metrics.documentsResent.inc(items.length);
      const started = performance.now();
      metrics.batchesInFlight.inc();
      try {
        const results = await inSpan(SPANS.upstream, upstreamSpan(signer.name, attempt, sendId, items.length), () =>
          signer.signBatch(this.batchOf(items, sendId, claim), signal),
        );
        breaker.success();
        metrics.upstreamDuration.observe({ signer: this.deps.identity, outcome: 'ok' }, (performance.now() - started) / 1000);
        if (results.some((r) => !r.ok && r.error.code === 'SPOOL_FULL')) {
          await Promise.all(results.map((r) => (r.ok ? rm(r.path, { force: true }) : undefined)));
          throw ours();
        }
        // A document the upstream left out or answered with a retryable error gets another attempt
        // (counted, with backoff); the others end now.
        const again = new Set(results.filter((r) => !r.ok && r.error.retryable).map((r) => r.docId));
        const byDoc = new Map(results.map((r) => [r.docId, r]));
        if (again.size > 0 && counted + 1 < upstream.maxAttempts) {
          await this.record(
            items.filter((d) => !again.has(d.data.docId)),
            claim,
            byDoc,
            undefined,
            log,
          );
          items = items.filter((d) => again.has(d.data.docId));
          counted++;
          const delay = backoffDelay(counted, upstream.backoffBaseMs, upstream.backoffMaxMs);
          const codes = [...new Set(results.flatMap((r) => (!r.ok && again.has(r.docId) ? [r.error.code] : [])))];
          log.warn({ codes, attempt, delayMs: delay, documents: items.length }, 'documents of a signed batch failed, retrying them');
          await sleep(delay, signal);
          continue;
        }
        for (const r of results) {
          if (!r.ok && again.has(r.docId) && attempt > 1)
            byDoc.set(r.docId, { ...r, error: new SignspoolError(r.error.code, { detail: `${r.error.detail} (gave up after ${attempt} attempts)` }) });
        }
        await this.record(items, claim, byDoc, undefined, log);
        return;
      } catch (raw) {
        if (signal.aborted || raw instanceof Requeue) throw raw;
        if (raw instanceof StoreFailure) throw raw.cause;
        const err = toSignspoolError(raw, 'UPSTREAM_NETWORK');
        if (err.code === 'SPOOL_FULL') throw ours();
        metrics.upstreamDuration.observe({ signer: this.deps.identity, outcome: err.code }, (performance.now() - started) / 1000);
        metrics.upstreamErrors.inc({ code: err.code });
        if (UNAVAILABLE.has(err.code)) breaker.failure();
        else breaker.release();
        if (err.code === 'UPSTREAM_DOCUMENT_REJECTED') {
          // Its halves reserve their own room: this call's must not be held while they wait for some.
          room();
          await this.bisect(items, sendId, claim, err, log);
          return;
        }
        // Attempts made while the circuit is open (or that opened it) do not count: an outage costs time, not attempts.
        if (!(UNAVAILABLE.has(err.code) && breaker.state !== 'closed')) counted++;
        if (err.retryable && counted < upstream.maxAttempts) {
          const delay = breaker.state === 'closed' ? backoffDelay(counted || 1, upstream.backoffBaseMs, upstream.backoffMaxMs, err.retryAfterMs) : 0;
          log.warn({ code: err.code, attempt, delayMs: delay, circuit: breaker.state, documents: items.length }, 'batch failed, retrying');
          if (delay > 0) await sleep(delay, signal);
          continue;
        }
        log.error({ code: err.code, attempt, documents: items.length, detail: err.detail }, 'batch failed');
        const final = err.retryable && attempt > 1 ? new SignspoolError(err.code, { detail: `${err.detail} (gave up after ${attempt} attempts)` }) : err;
        await this.record(items, claim, new Map(), final, log);
        return;
      } finally {
        metrics.batchesInFlight.dec();
        room();
      }
    }
  }

  /** The upstream rejected the request because of a document: fail the one it names, or find it by halving. */
  private async bisect(items: HeldDocument[], sendId: string, claim: string, err: SignspoolError, log: Logger): Promise<void> {
    const culpritRef = err.extensions['externalReference'];
    const named = items.find((d) => d.data.docId === culpritRef);
    if (items.length === 1 || named) {
      const bad = named ?? items[0];
      if (!bad) return;
      await this.finish([bad], claim, new Map(), err, log);
      const rest = items.filter((d) => d !== bad);
      if (rest.length > 0) await this.execute(rest, `${sendId}r`.slice(0, 64), claim, log);
      return;
    }
    const mid = Math.ceil(items.length / 2);
    log.info({ documents: items.length }, 'upstream rejected a document without naming it; bisecting');
    await this.execute(items.slice(0, mid), `${sendId}l`.slice(0, 64), claim, log);
    await this.execute(items.slice(mid), `${sendId}r`.slice(0, 64), claim, log);
  }

  /**
   * Records outcomes (results by docId; `error` for every document without one) and settles jobs.
   * A result whose transition was refused (the document was re-claimed elsewhere) is removed, and
   * the upload is retired only when the document's end was recorded.
   */
  private async finish(
    items: HeldDocument[],
    claim: string,
    results: Map<string, DocumentResult>,
    error: SignspoolError | undefined,
    log: Logger,
  ): Promise<void> {
    if (items.length === 0) return;
    const { store, source, metrics, spool } = this.deps;
    const outcome = (d: HeldDocument): DocumentResult =>
      results.get(d.data.docId) ??
      ({
        ok: false,
        docId: d.data.docId,
        error: error ?? new SignspoolError('UPSTREAM_BAD_RESPONSE', { detail: 'the signer returned no result for this document' }),
      } as const);
    const updates = groupByOp(items, (d): DocumentUpdate => {
      const r = outcome(d);
      return r.ok
        ? {
            docId: d.data.docId,
            claim,
            to: 'signed',
            signed: { size: r.size, sha256: r.sha256, contentType: r.contentType, fileName: r.fileName, file: claim },
          }
        : { docId: d.data.docId, claim, to: 'failed', error: { code: r.error.code, message: r.error.detail } };
    });
    const transitions = await store.transitionMany(updates);
    if (results.size > 0) await this.deps.durability.sync(store.redis);
    // Before the jobs are settled: if this process dies now, the jobs come back, the re-run finds
    // the operation terminal (claim) and calls this again.
    for (const [opId, t] of transitions) {
      if (t.becameTerminal) {
        log.info({ opId, status: t.status }, 'operation completed');
        await this.announceEnd(opId, items, t);
      } else if (t.applied.length > 0 && isTerminal(t.status)) {
        // Only a replay of this claim's ends applies to an ended operation: the first application
        // (whose answer was lost) may have ended it unannounced. The announcement is idempotent.
        await this.announceEnd(opId, items, { ...t, becameTerminal: true });
      }
    }
    const tally = this.tallies.get(claim);
    if (tally) {
      for (const d of items) {
        if (!transitions.get(d.data.opId)?.applied.includes(d.data.docId)) continue;
        if (outcome(d).ok) tally.signed++;
        else tally.failed++;
      }
    }
    const now = Date.now();
    await Promise.all(
      items.map(async (d) => {
        const r = outcome(d);
        const upload = spool.incomingPath(d.data.opId, d.data.docId);
        if (!transitions.get(d.data.opId)?.applied.includes(d.data.docId)) {
          // Re-claimed by another worker (or already ended): its owner records the outcome.
          log.warn({ opId: d.data.opId, docId: d.data.docId }, 'outcome not recorded: the document was claimed by another batch');
          await this.dropResults([d], claim);
          source.forget(d.job);
          return;
        }
        metrics.signerDocuments.inc({ signer: this.deps.identity, outcome: r.ok ? 'signed' : 'failed' });
        if (r.ok) {
          metrics.documentsCompleted.inc({ outcome: 'signed' });
          metrics.documentLatency.observe((now - d.data.acceptedAt) / 1000);
          await spool.retire(upload, d.data.size);
          await source.complete(d.job, { signed: true });
        } else {
          metrics.documentsCompleted.inc({ outcome: 'failed' });
          // An earlier attempt of this claim may have written a result: the failure is what stands.
          await this.dropResults([d], claim);
          // The upload stays for POST …/retry unless the document itself is at fault.
          if (DOCUMENT_FAULTS.has(r.error.code)) await rm(upload, { force: true });
          // The record holds the failure; the job is done either way (removed at once, nothing left in Redis).
          await source.complete(d.job, { failed: r.error.code });
        }
      }),
    );
  }

  /** Removes the signed results `claim` wrote for `items` (their records do not point at them). */
  private async dropResults(items: HeldDocument[], claim: string): Promise<void> {
    await Promise.all(items.map((d) => rm(this.deps.spool.signedPath(d.data.opId, d.data.docId, claim), { force: true })));
  }

  /** Documents go back to the queue (and to `queued` when this batch holds their claim), after `delayMs`. */
  private async requeue(items: HeldDocument[], claim: string, delayMs: number, log: Logger): Promise<void> {
    const held = items.filter((d) => this.deps.source.owns(d.job));
    try {
      const back = await this.deps.store.transitionMany(groupByOp(held, (d) => ({ docId: d.data.docId, claim, to: 'queued' })));
      // Results this claim wrote are abandoned with it (no record points at them): removed now, not at RETENTION.
      await this.dropResults(
        held.filter((d) => back.get(d.data.opId)?.applied.includes(d.data.docId)),
        claim,
      );
    } catch (err) {
      // Redis unreachable: the locks expire and the stalled-job checker brings the jobs back.
      log.warn({ err: { message: (err as Error).message } }, 'could not put the documents back to queued');
    }
    await Promise.all(held.map((d) => this.deps.source.release(d.job, delayMs)));
  }
}
