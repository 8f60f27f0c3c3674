/**
 * Runs one flushed batch to the end: claims its documents (queued → signing), calls the signer
 * once per attempt, retries retryable failures with capped exponential backoff and jitter
 * (honouring Retry-After), bisects a batch the upstream rejects because of one document, records
 * every document's outcome and settles its job.
 */
import { randomUUID } from 'node:crypto';
import type { Job } from 'bullmq';
import type { Config } from '@signspool/shared/config';
import { SignspoolError, toSignspoolError } from '@signspool/shared/errors';
import type { Logger } from '@signspool/shared/logger';
import type { Metrics } from '@signspool/shared/metrics';
import type { DocumentUpdate, TransitionResult } from '@signspool/shared/operation-record';
import { isTerminal } from '@signspool/shared/operation-states';
import type { OperationStore } from '@signspool/shared/operation-store';
import type { SignDocumentJob } from '@signspool/shared/queue';
import type { Spool } from '@signspool/shared/spool';
import type { Batchable } from './batcher.js';
import type { JobSource } from './job-source.js';
import type { DocumentResult, SignBatch, Signer } from './signer.js';

export interface HeldDocument extends Batchable {
  job: Job;
  data: SignDocumentJob;
  enteredAt: number;
}

export interface BatchRunnerDeps {
  signer: Signer;
  store: OperationStore;
  /** Uploaded files of signed documents are retired (kept for reuse) through it. */
  spool: Spool;
  source: JobSource;
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

export class BatchRunner {
  constructor(private readonly deps: BatchRunnerDeps) {}

  /** Runs a flushed batch. Never throws: every document ends settled or released. */
  async run(items: HeldDocument[]): Promise<void> {
    const batchId = `b_${randomUUID().replaceAll('-', '')}`;
    const log = this.deps.logger.child({ batchId });
    let claimed: HeldDocument[] = [];
    try {
      claimed = await this.claim(items, log);
      if (claimed.length > 0) await this.execute(claimed, batchId, log);
    } catch (err) {
      if (this.deps.signal.aborted) {
        await this.release(claimed.length ? claimed : items, claimed.length > 0);
        log.warn({ documents: items.length }, 'batch released at shutdown');
        return;
      }
      log.error({ err }, 'batch failed unexpectedly');
      await this.finish(claimed, new Map(), toSignspoolError(err), log);
    }
  }

  /** queued → signing for every document; drops the ones already terminal (a re-run of a finished batch). */
  private async claim(items: HeldDocument[], log: Logger): Promise<HeldDocument[]> {
    const results = await this.deps.store.transitionMany(groupByOp(items, (d) => ({ docId: d.data.docId, to: 'signing' })));
    const claimed: HeldDocument[] = [];
    for (const d of items) {
      const r = results.get(d.data.opId);
      if (r?.applied.includes(d.data.docId)) {
        claimed.push(d);
        continue;
      }
      const status = r?.rejected.find((x) => x.docId === d.data.docId)?.status ?? r?.status ?? 'missing';
      log.info({ opId: d.data.opId, docId: d.data.docId, status }, 'document not claimable, dropping its job');
      // A re-run of a batch that ended its operation: make sure the end was announced.
      if (r && isTerminal(r.status) && r.webhook) await this.deps.onOperationTerminal?.(d.data.opId, d.data.tenant, r);
      await this.deps.source.complete(d.job, { dropped: status });
    }
    return claimed;
  }

  private async execute(items: HeldDocument[], batchId: string, log: Logger): Promise<void> {
    const { signer, upstream, metrics, signal } = this.deps;
    const batch: SignBatch = {
      batchId,
      tenant: items[0]?.data.tenant ?? '',
      signatureType: items[0]?.data.signatureType ?? 'CAdES',
      documents: items.map(({ data }) => ({
        opId: data.opId,
        docId: data.docId,
        name: data.name,
        contentType: data.contentType,
        size: data.size,
        sha256: data.sha256,
        path: data.path,
      })),
    };
    for (let attempt = 1; ; attempt++) {
      const started = performance.now();
      metrics.batchesInFlight.inc();
      try {
        const results = await signer.signBatch(batch, signal);
        metrics.upstreamDuration.observe({ signer: signer.name, outcome: 'ok' }, (performance.now() - started) / 1000);
        await this.finish(items, new Map(results.map((r) => [r.docId, r])), undefined, log);
        return;
      } catch (raw) {
        if (signal.aborted) throw raw;
        const err = toSignspoolError(raw, 'UPSTREAM_NETWORK');
        metrics.upstreamDuration.observe({ signer: signer.name, outcome: err.code }, (performance.now() - started) / 1000);
        metrics.upstreamErrors.inc({ code: err.code });
        if (err.code === 'UPSTREAM_DOCUMENT_REJECTED') {
          await this.bisect(items, batchId, err, log);
          return;
        }
        if (err.retryable && attempt < upstream.maxAttempts) {
          const delay = backoffDelay(attempt, upstream.backoffBaseMs, upstream.backoffMaxMs, err.retryAfterMs);
          log.warn({ code: err.code, attempt, delayMs: delay, documents: items.length }, 'batch failed, retrying');
          await sleep(delay, signal);
          continue;
        }
        log.error({ code: err.code, attempt, documents: items.length, detail: err.detail }, 'batch failed');
        const final =
          err.retryable && attempt > 1
            ? new SignspoolError(err.code, { detail: `${err.detail} (gave up after ${attempt} attempts)` })
            : err;
        await this.finish(items, new Map(), final, log);
        return;
      } finally {
        metrics.batchesInFlight.dec();
      }
    }
  }

  /** One document made the upstream reject the whole request: find it by halving. */
  private async bisect(items: HeldDocument[], batchId: string, err: SignspoolError, log: Logger): Promise<void> {
    const culpritRef = err.extensions['externalReference'];
    const named = items.find((d) => d.data.docId === culpritRef);
    if (items.length === 1 || named) {
      const bad = named ?? items[0];
      if (!bad) return;
      await this.finish([bad], new Map(), err, log);
      const rest = items.filter((d) => d !== bad);
      if (rest.length > 0) await this.execute(rest, `${batchId}r`.slice(0, 64), log);
      return;
    }
    const mid = Math.ceil(items.length / 2);
    log.info({ documents: items.length }, 'upstream rejected a document; bisecting');
    await this.execute(items.slice(0, mid), `${batchId}l`.slice(0, 64), log);
    await this.execute(items.slice(mid), `${batchId}r`.slice(0, 64), log);
  }

  /** Records outcomes (results by docId; `error` for every document without one) and settles jobs. */
  private async finish(items: HeldDocument[], results: Map<string, DocumentResult>, error: SignspoolError | undefined, log: Logger): Promise<void> {
    if (items.length === 0) return;
    const { store, source, metrics, spool } = this.deps;
    const outcome = (d: HeldDocument): DocumentResult =>
      results.get(d.data.docId) ??
      ({ ok: false, docId: d.data.docId, error: error ?? new SignspoolError('UPSTREAM_BAD_RESPONSE', { detail: 'the signer returned no result for this document' }) } as const);
    const updates = groupByOp(items, (d): DocumentUpdate => {
      const r = outcome(d);
      return r.ok
        ? { docId: d.data.docId, to: 'signed', signed: { size: r.size, sha256: r.sha256, contentType: r.contentType, fileName: r.fileName } }
        : { docId: d.data.docId, to: 'failed', error: { code: r.error.code, message: r.error.detail } };
    });
    const transitions = await store.transitionMany(updates);
    // Before the jobs are settled: if this process dies now, the jobs come back, the re-run finds
    // the operation terminal (claim) and calls this again.
    for (const [opId, t] of transitions) {
      if (t.becameTerminal) {
        log.info({ opId, status: t.status }, 'operation completed');
        await this.deps.onOperationTerminal?.(opId, items.find((d) => d.data.opId === opId)?.data.tenant ?? '', t);
      }
    }
    const now = Date.now();
    await Promise.all(
      items.map(async (d) => {
        const r = outcome(d);
        if (r.ok) {
          metrics.documentsCompleted.inc({ outcome: 'signed' });
          metrics.documentLatency.observe((now - d.data.acceptedAt) / 1000);
          await spool.retire(d.data.path, d.data.size);
          await source.complete(d.job, { signed: true });
        } else {
          metrics.documentsCompleted.inc({ outcome: 'failed' });
          await source.fail(d.job, new Error(`${r.error.code}: ${r.error.detail}`));
        }
      }),
    );
  }

  /** Shutdown: documents go back to the queue (and to `queued` when they were claimed). */
  private async release(items: HeldDocument[], claimed: boolean): Promise<void> {
    if (claimed) {
      await this.deps.store.transitionMany(groupByOp(items, (d) => ({ docId: d.data.docId, to: 'queued' })));
    }
    await Promise.all(items.map((d) => this.deps.source.release(d.job)));
  }
}
