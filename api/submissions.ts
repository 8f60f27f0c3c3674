/**
 * Accepting a submission whose files are already in the spool: operation record (in its
 * "accepting" phase) → one job per document → commit (the record stops expiring). Workers leave a
 * document alone while its operation is accepting, so a submission that fails before the commit is
 * undone without a trace: the record is deleted, its jobs are dropped, its files removed
 * (submission-undo.ts; once Redis answers again when it could not be reached). A failure after the commit reached Redis is not a failure: the submission stands.
 */
import type { Queue } from 'bullmq';
import type { Durability } from '@signspool/shared/durability';
import type { FairShare } from '@signspool/shared/scheduling/fair-share';
import type { Logger } from '@signspool/shared/logger';
import { DOCUMENT_FAULTS, isRetryable } from '@signspool/shared/errors';
import type { NewOperation, OperationRecord } from '@signspool/shared/operations/record';
import type { OperationStore } from '@signspool/shared/operations/store';
import { QUEUES, signJobId, type SignDocumentJob } from '@signspool/shared/queue';
import { ATTR, inSpan, SpanKind, SPANS, traceCarrier } from '@signspool/shared/spans';
import type { Spool } from '@signspool/shared/spool/spool';
import type { SubmissionUndo } from './submission-undo.js';

export interface SubmissionDeps {
  store: OperationStore;
  queue: Queue;
  spool: Spool;
  logger: Logger;
  durability: Durability;
  /** The jobs' priorities: tenants are served round-robin (fair-share.ts). */
  fairShare: FairShare;
  undo: SubmissionUndo;
}

/** One job per document; each carries the active trace context (the upload's span), so the worker's batch joins or links it. */
const jobsOf = async (fairShare: FairShare, op: NewOperation, round = 0) => {
  const trace = traceCarrier();
  const priorities = await fairShare.priorities(
    op.tenant,
    op.documents.map((d) => d.size),
  );
  return op.documents.map((d, i) => {
    const data: SignDocumentJob = {
      opId: op.id,
      docId: d.id,
      tenant: op.tenant,
      signatureType: op.signatureType,
      name: d.name,
      contentType: d.contentType,
      size: d.size,
      sha256: d.sha256,
      acceptedAt: op.createdAt,
      signer: op.signer,
      ...(trace === undefined ? {} : { trace }),
    };
    const priority = priorities[i];
    return { name: 'sign-document' as const, data, opts: { jobId: signJobId(d.id, round), ...(priority === undefined ? {} : { priority }) } };
  });
};

const enqueueSpan = (opId: string, jobs: number) => ({
  kind: SpanKind.PRODUCER,
  attributes: {
    'messaging.system': 'bullmq',
    'messaging.operation.type': 'send',
    'messaging.destination.name': QUEUES.sign,
    'messaging.batch.message_count': jobs,
    [ATTR.operationId]: opId,
  },
});

/** Records and enqueues `op`. Throws when it was not accepted; then nothing of it will be processed. */
export const acceptSubmission = async (deps: SubmissionDeps, op: NewOperation): Promise<void> => {
  const { store, queue } = deps;
  try {
    await store.create(op);
    const jobs = await jobsOf(deps.fairShare, op);
    await inSpan(SPANS.enqueue, enqueueSpan(op.id, jobs.length), async () => {
      // One document (the common case) needs no MULTI around its one script: add, not addBulk.
      const [only] = jobs;
      if (jobs.length === 1 && only) await queue.add(only.name, only.data, only.opts);
      else await queue.addBulk(jobs);
    });
    await store.markAccepted(op.id);
  } catch (err) {
    const outcome = await deps.undo.undo(op);
    if (outcome === 'committed') return;
    // Abandoned, or unreachable (undone once Redis answers; workers never sign an accepting operation's documents).
    deps.logger.warn(
      { opId: op.id, outcome, err: { message: (err as Error).message } },
      outcome === 'unknown' ? 'submission not accepted; undone once Redis answers' : 'submission not accepted; undone',
    );
    throw err;
  }
  // DURABILITY=strict: no 202 before the commit is on disk (and on REDIS_MIN_REPLICAS replicas).
  // A timeout here is the one ambiguous answer: the submission stands but was not confirmed (503).
  await deps.durability.sync(store.redis);
};

/**
 * Re-queues failed documents of an ended operation: those failed with a retryable code, or every
 * failed one (`all`) whose upload is still in the spool. Returns the ids re-queued.
 */
export const retryOperation = async (deps: SubmissionDeps, op: OperationRecord, all: boolean): Promise<string[]> => {
  const { store, queue, spool } = deps;
  const candidates = op.documents.filter(
    (d) => d.status === 'failed' && d.error !== undefined && !DOCUMENT_FAULTS.has(d.error.code) && (all || isRetryable(d.error.code)),
  );
  const present = await Promise.all(candidates.map(async (d) => ((await spool.exists(spool.incomingPath(op.id, d.id))) ? d : undefined)));
  const chosen = present.filter((d): d is NonNullable<typeof d> => d !== undefined);
  if (chosen.length === 0) return [];
  const result = await store.retry(
    op.id,
    chosen.map((d) => d.id),
  );
  const applied = new Set(result.applied);
  const jobs = await jobsOf(deps.fairShare, { ...op, createdAt: Date.now(), documents: chosen.filter((d) => applied.has(d.id)) }, result.round);
  await inSpan(SPANS.enqueue, enqueueSpan(op.id, jobs.length), () => queue.addBulk(jobs));
  await deps.durability.sync(store.redis);
  return result.applied;
};
