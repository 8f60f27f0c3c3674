/**
 * The operation lifecycle: every change a caller or a worker makes to an operation as a whole,
 * each one function over the store and the queues. Accept (record in its accepting phase → one
 * job per document → commit; undone on failure, undo.ts), retry, cancel, webhook redelivery, and
 * the end-of-operation announcement (the `operation.completed` webhook), which the cancel, the
 * batch runner and the worker's abandoned-job path all go through. A document's own moves are the
 * store's (store.ts, through the state table in states.ts); the routes and the worker only choose
 * when to call these.
 */
import { rm } from 'node:fs/promises';
import type { Redis } from 'ioredis';
import type { Durability } from '../durability.js';
import { DOCUMENT_FAULTS, isRetryable, SignspoolError } from '../errors.js';
import type { Logger } from '../logger.js';
import { isRedisUnavailable, redisUnavailableError } from '../redis/unavailable.js';
import { completedDeliveryId, enqueueWebhook, QUEUES, signJobId, type SignDocumentJob } from '../queue.js';
import type { FairShare } from '../scheduling/fair-share.js';
import { ATTR, inSpan, SpanKind, SPANS, traceCarrier } from '../spans.js';
import { newId, type Spool } from '../spool/spool.js';
import type { DisabledEndpoints } from '../webhooks/endpoints.js';
import type { NewOperation, OperationRecord, TransitionResult } from './record.js';
import { isTerminal } from './states.js';
import type { AcceptedOptions, OperationStore } from './store.js';
import type { RemovableJobs, SubmissionUndo } from './undo.js';

export interface SignJobSpec {
  name: 'sign-document';
  data: SignDocumentJob;
  opts: { jobId: string; priority?: number };
}

/** What the lifecycle needs of the sign queue (structural: shared does not depend on bullmq). */
export interface SignQueue extends RemovableJobs {
  add(name: SignJobSpec['name'], data: SignJobSpec['data'], opts: SignJobSpec['opts']): Promise<unknown>;
  addBulk(jobs: SignJobSpec[]): Promise<unknown>;
  /**
   * Sends each job's add on `redis` (the store's connection) at once, and returns the keys of the
   * jobs' hashes and the adds' replies; or undefined, having sent nothing, when it cannot (the
   * jobs are then added on their own). The commit follows the adds without waiting for them: one
   * round trip for both (acceptOperation).
   */
  sendAdds?(redis: Redis, jobs: SignJobSpec[]): { keys: string[]; replies: Promise<unknown>[] } | undefined;
}

/** What the announcement needs of the webhook queue. */
export type WebhookQueue = Parameters<typeof enqueueWebhook>[0];

export interface LifecycleDeps {
  store: OperationStore;
  signQueue: SignQueue;
  webhookQueue: WebhookQueue;
  /** Attempts of one webhook delivery (the length of its retry schedule). */
  webhookAttempts: number;
  spool: Spool;
  logger: Logger;
  durability: Durability;
  /** The jobs' priorities: tenants are served round-robin (fair-share.ts). */
  fairShare: FairShare;
  undo: SubmissionUndo;
  /** Endpoints disabled by a 410 Gone; a redelivery enables its endpoint again. */
  disabledEndpoints: DisabledEndpoints;
}

export type AnnounceDeps = Pick<LifecycleDeps, 'store' | 'webhookQueue' | 'webhookAttempts'>;

/** One job per document, with its priority; each carries the active trace context (the upload's span), so the worker's batch joins or links it. */
const jobSpecs = (op: NewOperation, priorities: readonly (number | undefined)[], round: number): SignJobSpec[] => {
  const trace = traceCarrier();
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

const jobsOf = async (fairShare: FairShare, op: NewOperation, round = 0): Promise<SignJobSpec[]> =>
  jobSpecs(
    op,
    await fairShare.priorities(
      op.tenant,
      op.documents.map((d) => d.size),
    ),
    round,
  );

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

/** How the commit of an accepted operation is bounded, and what it writes besides (store.markAccepted). */
export interface CommitOptions {
  /**
   * The longest a commit may take to reach Redis and still stand: shorter than the api's command
   * deadline, so a commit the api gave up on (Redis hung: it answered 503) is refused when Redis
   * runs it later, instead of accepting a submission whose client was told it was not.
   */
  windowMs?: number;
  /** The upload's Idempotency-Key record, written by the commit itself. */
  also?: { key: string; value: string; ttlMs: number };
}

/**
 * Runs `send`, whose commands leave on `redis`'s socket in one write (it is corked meanwhile): each
 * write to Redis's socket costs more CPU than building the command.
 */
const inOneWrite = <T>(redis: Redis, send: () => T): T => {
  const socket = redis.stream as Redis['stream'] | undefined;
  socket?.cork();
  try {
    return send();
  } finally {
    socket?.uncork();
  }
};

/**
 * Adds the jobs and commits: the commit sent right behind the adds when the queue can send them
 * on the store's connection (the commit, accepted.lua, then checks that every job exists), else
 * the adds and, once they are done, the commit. Throws when the commit was refused because an add
 * failed (nothing committed).
 */
const enqueueAndCommit = async (
  store: OperationStore,
  signQueue: SignQueue,
  opId: string,
  jobs: SignJobSpec[],
  accepted: () => AcceptedOptions,
): Promise<'committed' | 'late' | 'missing'> => {
  const sending = inOneWrite(store.redis, () => {
    const sent = signQueue.sendAdds?.(store.redis, jobs);
    return sent && { commit: store.markAcceptedAfter(opId, accepted(), sent.keys), adds: Promise.allSettled(sent.replies) };
  });
  if (sending) {
    const [outcome, adds] = await Promise.all([sending.commit, sending.adds]);
    if (outcome !== 'jobless') return outcome;
    // An add failed (its error says why): the commit changed nothing, the caller undoes the rest.
    const failed = adds.find((a): a is PromiseRejectedResult => a.status === 'rejected');
    throw failed ? failed.reason : new Error('a job of the submission was not added: not committed');
  }
  // One document (the common case) needs no MULTI around its one script: add, not addBulk.
  const [only] = jobs;
  if (jobs.length === 1 && only) await signQueue.add(only.name, only.data, only.opts);
  else await signQueue.addBulk(jobs);
  return store.markAccepted(opId, accepted());
};

/**
 * Accepts `op`, whose files are already in the spool: record (accepting) → jobs → commit. Workers
 * leave a document alone while its operation is accepting, so a failure before the commit is undone
 * without a trace (undo.ts) and rethrown. When Redis does not answer (down, or hung: a command timed
 * out) nothing more waits for it: the undo runs once it answers, and a commit it runs late is
 * refused (`windowMs`). A failure after the commit reached Redis is not a failure: the submission stands.
 */
export const acceptOperation = async (
  deps: Pick<LifecycleDeps, 'store' | 'signQueue' | 'fairShare' | 'undo' | 'logger' | 'durability'>,
  op: NewOperation,
  commit: CommitOptions = {},
): Promise<void> => {
  const { store, signQueue } = deps;
  try {
    // The record and the jobs' priorities in one round trip and one write (a priority is a hint: fair-share.ts).
    const [, priorities] = await Promise.all(
      inOneWrite(store.redis, () => [
        store.create(op),
        deps.fairShare.priorities(
          op.tenant,
          op.documents.map((d) => d.size),
        ),
      ]),
    );
    // The commit window is measured from here: Redis measures it from the create, which ran before.
    const created = performance.now();
    const jobs = jobSpecs(op, priorities, 0);
    const accepted = (): AcceptedOptions => ({
      ...(commit.windowMs === undefined ? {} : { withinMs: performance.now() - created + commit.windowMs }),
      ...(commit.also ? { also: commit.also } : {}),
    });
    const outcome = await inSpan(SPANS.enqueue, enqueueSpan(op.id, jobs.length), () => enqueueAndCommit(store, signQueue, op.id, jobs, accepted));
    if (outcome === 'late') throw redisUnavailableError();
  } catch (err) {
    if (isRedisUnavailable(err)) {
      // A command timed out or the connection is gone: the answer (503) goes now, the undo once Redis answers.
      deps.undo.later(op);
      deps.logger.warn({ opId: op.id, outcome: 'unknown', err: { message: (err as Error).message } }, 'submission not accepted; undone once Redis answers');
      throw err;
    }
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
 * failed one (`all`) whose upload is still in the spool. Returns the ids re-queued; throws
 * OPERATION_NOT_TERMINAL before the end, NOTHING_TO_RETRY when none qualifies.
 */
export const retryOperation = async (
  deps: Pick<LifecycleDeps, 'store' | 'signQueue' | 'spool' | 'fairShare' | 'durability' | 'logger'>,
  op: OperationRecord,
  all: boolean,
): Promise<string[]> => {
  const { store, signQueue, spool } = deps;
  if (!isTerminal(op.status)) throw new SignspoolError('OPERATION_NOT_TERMINAL', { detail: 'the operation has not ended yet; retry it once it has' });
  if (op.status === 'canceled') throw new SignspoolError('NOTHING_TO_RETRY', { detail: 'a canceled operation is not retried' });
  const candidates = op.documents.filter(
    (d) => d.status === 'failed' && d.error !== undefined && !DOCUMENT_FAULTS.has(d.error.code) && (all || isRetryable(d.error.code)),
  );
  const present = await Promise.all(candidates.map(async (d) => ((await spool.exists(spool.incomingPath(op.id, d.id))) ? d : undefined)));
  const chosen = present.filter((d): d is NonNullable<typeof d> => d !== undefined);
  let applied: string[] = [];
  if (chosen.length > 0) {
    const result = await store.retry(
      op.id,
      chosen.map((d) => d.id),
    );
    const moved = new Set(result.applied);
    const jobs = await jobsOf(deps.fairShare, { ...op, createdAt: Date.now(), documents: chosen.filter((d) => moved.has(d.id)) }, result.round);
    await inSpan(SPANS.enqueue, enqueueSpan(op.id, jobs.length), () => signQueue.addBulk(jobs));
    await deps.durability.sync(store.redis);
    applied = result.applied;
  }
  if (applied.length === 0) {
    throw new SignspoolError('NOTHING_TO_RETRY', {
      detail: all
        ? 'no failed document can be retried (documents the upstream rejected, or whose upload is gone, cannot)'
        : 'no document failed with a retryable code; use ?all=true once the cause is fixed',
    });
  }
  deps.logger.info({ opId: op.id, retried: applied.length, all }, 'operation retried');
  return applied;
};

/**
 * Announces an operation's end: enqueues the first delivery of `operation.completed` when `result`
 * made it terminal and it has a webhook. Idempotent (the delivery's job id is the operation's and
 * its retry round), so several processes seeing the same end enqueue it once. The job carries the
 * active trace context (the operation's). `knownRound`: the round when the caller has already read it.
 */
export const announceEnd = async (
  deps: AnnounceDeps,
  opId: string,
  tenant: string,
  result: Pick<TransitionResult, 'becameTerminal' | 'webhook'>,
  knownRound?: number,
): Promise<void> => {
  if (!result.becameTerminal || !result.webhook) return;
  const round = knownRound ?? (await deps.store.round(opId));
  const trace = traceCarrier();
  await enqueueWebhook(
    deps.webhookQueue,
    { opId, tenant, deliveryId: completedDeliveryId(opId, round), reason: 'completed', ...(trace === undefined ? {} : { trace }) },
    deps.webhookAttempts,
  );
};

/**
 * Cancels the operation's documents not yet sent for signing: their jobs are dropped and uploads
 * removed; an operation that ends by it is announced. Throws OPERATION_TERMINAL when it had already ended.
 */
export const cancelOperation = async (
  deps: Pick<LifecycleDeps, 'store' | 'signQueue' | 'webhookQueue' | 'webhookAttempts' | 'spool' | 'logger'>,
  opId: string,
  tenant: string,
): Promise<TransitionResult> => {
  const { store, signQueue, spool } = deps;
  const result = await store.cancel(opId);
  if (result.applied.length === 0 && result.status !== 'queued' && result.status !== 'processing') {
    throw new SignspoolError('OPERATION_TERMINAL', { detail: `the operation has already ended (${result.status})` });
  }
  const round = await store.round(opId);
  await announceEnd(deps, opId, tenant, result, round);
  await Promise.allSettled(result.applied.map((docId) => signQueue.remove(signJobId(docId, round))));
  await Promise.allSettled(result.applied.map((docId) => rm(spool.incomingPath(opId, docId), { force: true })));
  deps.logger.info({ opId, canceled: result.applied.length }, 'operation canceled');
  return result;
};

/**
 * Enqueues a new delivery of an ended operation's `operation.completed` (a new delivery id) and
 * enables its endpoint again if a 410 Gone had disabled it: asking says the endpoint is back.
 * `admit` runs after the checks, before anything changes (the api's rate limit). Returns the delivery id.
 */
export const redeliverWebhook = async (
  deps: Pick<LifecycleDeps, 'webhookQueue' | 'webhookAttempts' | 'disabledEndpoints'>,
  op: OperationRecord,
  admit: () => Promise<void> = async () => undefined,
): Promise<string> => {
  if (!op.webhookUrl) throw new SignspoolError('VALIDATION_FAILED', { detail: 'this operation has no webhook endpoint' });
  if (!isTerminal(op.status))
    throw new SignspoolError('OPERATION_NOT_TERMINAL', { detail: 'the operation has not ended yet; its webhook is sent when it does' });
  await admit();
  const deliveryId = newId('msg');
  await deps.disabledEndpoints.enable(op.tenant, op.webhookUrl);
  await enqueueWebhook(deps.webhookQueue, { opId: op.id, tenant: op.tenant, deliveryId, reason: 'redeliver' }, deps.webhookAttempts);
  return deliveryId;
};
