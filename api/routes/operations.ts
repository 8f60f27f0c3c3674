/**
 * /v1/operations: submit (the upload path, upload/submit.ts), status, download, cancel.
 */
import { pipeline } from 'node:stream/promises';
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import type { Queue } from 'bullmq';
import type { Config } from '@signspool/shared/config';
import { SignspoolError } from '@signspool/shared/errors';
import type { Durability } from '@signspool/shared/durability';
import type { Logger } from '@signspool/shared/logger';
import type { Metrics } from '@signspool/shared/metrics';
import { documentView, operationPath, operationView, type OperationPage } from '@signspool/shared/operations/view';
import { DisabledEndpoints } from '@signspool/shared/webhooks/endpoints';
import type { OperationRecord } from '@signspool/shared/operations/record';
import { cancelOperation, redeliverWebhook, retryOperation, type LifecycleDeps } from '@signspool/shared/operations/lifecycle';
import { OPERATION_STATUSES } from '@signspool/shared/operations/states';
import { InvalidCursorError, type OperationStore } from '@signspool/shared/operations/store';
import { FairShare } from '@signspool/shared/scheduling/fair-share';
import type { SignerRegistry } from '@signspool/shared/signers/registry';
import type { Spool } from '@signspool/shared/spool/spool';
import type { SubmissionUndo } from '@signspool/shared/operations/undo';
import { sendJson } from '../http/json.js';
import type { LongPolls } from '../read/long-poll.js';
import { OPERATION_ID, ownedBy, retryAfterOf, statusView } from '../read/status.js';
import type { TenantRateLimits } from '../rate-limits.js';
import type { RedisHealth } from '../redis-health.js';
import { pipelinedSignQueue } from '../upload/enqueue.js';
import { Submissions } from '../upload/submit.js';

export interface OperationsRouteDeps {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  store: OperationStore;
  queue: Queue;
  webhookQueue: Queue;
  spool: Spool;
  durability: Durability;
  /** `Prefer: wait` status reads and their slots per tenant, shared with the fast path (read/long-poll.ts). */
  longPolls: LongPolls;
  /** Per-tenant limits (rate-limits.ts). */
  limits: TenantRateLimits;
  /** Undoes failed submissions, later when Redis cannot be reached (shared/operations/undo.ts). */
  undo: SubmissionUndo;
  /** The signing identities; each submission reads the current snapshot (SIGHUP reloads it). */
  signers: SignerRegistry;
  /** Whether Redis answers (uploads are refused at once while it does not). */
  redisHealth?: RedisHealth;
}

export const listQuerySchema = z
  .object({
    limit: z.coerce.number().int().min(1).max(100).default(20),
    starting_after: z.string().max(200).optional(),
    status: z.enum(OPERATION_STATUSES).optional(),
    externalReference: z.string().max(255).optional(),
    signer: z.string().max(255).describe('Only operations signed by this identity').optional(),
    created_after: z.iso.datetime({ offset: true }).optional(),
    created_before: z.iso.datetime({ offset: true }).optional(),
  })
  .strict();

export const documentsQuerySchema = z
  .object({ limit: z.coerce.number().int().min(1).max(100).default(50), starting_after: z.string().max(64).optional() })
  .strict();

export const operationParamsSchema = z.object({ id: z.string().regex(OPERATION_ID) });
export const docParamsSchema = operationParamsSchema.extend({ docId: z.string().regex(/^doc_[0-9a-f]{32}$/) });

export const operationLocation = operationPath;

/** The router, and the submissions it runs (shared with the upload's fast path, upload/fast-upload.ts). */
export const operationsRoutes = (deps: OperationsRouteDeps): { router: Router; submissions: Submissions } => {
  const { config, store, queue, spool, logger } = deps;
  const router = Router();
  const fairShare = new FairShare(store.redis, {
    prefix: config.queuePrefix,
    prioritizedKey: queue.toKey('prioritized'),
    scheduling: config.scheduling.mode,
    quantum: config.scheduling.quantum,
    ...config.batch,
  });
  const lifecycle: LifecycleDeps = {
    store,
    // Its adds share the submission's commit round trip (upload/enqueue.ts).
    signQueue: pipelinedSignQueue(queue),
    webhookQueue: deps.webhookQueue,
    webhookAttempts: config.webhooks.scheduleMs.length,
    spool,
    logger,
    durability: deps.durability,
    fairShare,
    undo: deps.undo,
    disabledEndpoints: new DisabledEndpoints(store.redis, config.queuePrefix),
  };
  // The upload (upload/submit.ts); the status read's and the upload's fast paths share their pieces with these routes.
  const submissions = new Submissions({ ...deps, lifecycle });
  const owned = <T extends { tenant: string }>(req: Request, op: T | undefined): T => ownedBy(req.tenant, op);
  const loadOwned = async (req: Request, id: string): Promise<OperationRecord> => owned(req, await store.get(id));

  router.post('/', async (req: Request, res: Response) => {
    const answer = await submissions.submit(req, res, req.tenant ?? '');
    // The client went away: nothing to answer.
    if (!answer) return;
    res.status(202).location(answer.location);
    if (answer.replayed) res.setHeader('Idempotent-Replayed', 'true');
    res.json(answer.body);
  });

  router.get('/', async (req: Request, res: Response) => {
    const q = listQuerySchema.safeParse(req.query);
    if (!q.success) throw new SignspoolError('VALIDATION_FAILED', { detail: q.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') });
    let page;
    try {
      page = await store.list(req.tenant ?? '', {
        limit: q.data.limit,
        after: q.data.starting_after,
        status: q.data.status,
        externalReference: q.data.externalReference,
        signer: q.data.signer,
        createdAfter: q.data.created_after === undefined ? undefined : Date.parse(q.data.created_after),
        createdBefore: q.data.created_before === undefined ? undefined : Date.parse(q.data.created_before),
      });
    } catch (err) {
      if (err instanceof InvalidCursorError) throw new SignspoolError('VALIDATION_FAILED', { detail: 'starting_after: not a cursor this api returned' });
      throw err;
    }
    res.setHeader('Cache-Control', 'no-store');
    res.json({
      data: page.operations.map((op) => operationView(op)),
      has_more: page.nextCursor !== null,
      next_cursor: page.nextCursor,
    } satisfies OperationPage);
  });

  router.get('/:id/documents', async (req: Request, res: Response) => {
    const id = operationIdOf(req);
    const q = documentsQuerySchema.safeParse(req.query);
    if (!q.success) throw new SignspoolError('VALIDATION_FAILED', { detail: q.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') });
    const op = await loadOwned(req, id);
    const from = q.data.starting_after === undefined ? 0 : op.documents.findIndex((d) => d.id === q.data.starting_after) + 1;
    if (from === 0 && q.data.starting_after !== undefined)
      throw new SignspoolError('VALIDATION_FAILED', { detail: 'starting_after: no such document in this operation' });
    const slice = op.documents.slice(from, from + q.data.limit);
    const more = from + slice.length < op.documents.length;
    res.json({ data: slice.map((d) => documentView(op.id, d)), has_more: more, next_cursor: more ? (slice.at(-1)?.id ?? null) : null });
  });

  router.post('/:id/retry', async (req: Request, res: Response) => {
    const id = operationIdOf(req);
    const all = req.query['all'] === 'true';
    const op = await loadOwned(req, id);
    await retryOperation(lifecycle, op, all);
    res
      .status(202)
      .location(operationLocation(id))
      .json(operationView((await loadOwned(req, id)) ?? op));
  });

  router.get('/:id', async (req: Request, res: Response) => {
    const id = operationIdOf(req);
    const tenant = req.tenant ?? '';
    // A tenant at its cap of long polls is answered at once with the current state (the
    // preference is not applied: no Preference-Applied), as a poll without `Prefer: wait` would be.
    const wait = deps.longPolls.begin(tenant, req.get('prefer'));
    try {
      // The tenant's reads window is taken with the first read of the record, in one round trip.
      const op = await deps.longPolls.read(deps, tenant, id, wait, res, res);
      if (!op) return;
      const retryAfter = retryAfterOf(op);
      if (retryAfter !== undefined) res.setHeader('Retry-After', retryAfter);
      sendJson(req, res, await statusView(store, op));
    } finally {
      wait.release();
    }
  });

  router.get('/:id/documents/:docId', async (req: Request, res: Response) => {
    const { id, docId } = parseParams(docParamsSchema, req.params);
    const op = await loadOwned(req, id);
    const doc = op.documents.find((d) => d.id === docId);
    if (!doc) throw new SignspoolError('NOT_FOUND', { detail: 'no such document in this operation' });
    if (doc.status !== 'signed' || !doc.signed) {
      throw new SignspoolError('DOCUMENT_NOT_SIGNED', { detail: `the document is ${doc.status}`, extensions: { documentStatus: doc.status } });
    }
    const file = spool.signedPath(op.id, doc.id, doc.signed.file);
    // Opened before the headers: a result removed meanwhile is a 404, not a broken 200.
    const stream = await spool.openResult(file);
    if (!stream) throw new SignspoolError('NOT_FOUND', { detail: 'the signed document is no longer kept' });
    // attachment() sets Content-Disposition (and a type guessed from the name, replaced just below).
    res.attachment(doc.signed.fileName);
    res.setHeader('Content-Type', doc.signed.contentType);
    res.setHeader('Content-Length', String(doc.signed.size));
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Cache-Control', 'private, no-store');
    res.setHeader('ETag', `"${doc.signed.sha256}"`);
    res.setHeader('Repr-Digest', `sha-256=:${Buffer.from(doc.signed.sha256, 'hex').toString('base64')}:`);
    // pipeline destroys the file stream when the client goes away: no descriptor is left open.
    await pipeline(stream, res).catch((err: unknown) => {
      if (!res.destroyed) throw err;
    });
  });

  router.delete('/:id', async (req: Request, res: Response) => {
    const id = operationIdOf(req);
    await loadOwned(req, id);
    await cancelOperation(lifecycle, id, req.tenant ?? '');
    const op = await loadOwned(req, id);
    res.json(operationView(op));
  });

  router.post('/:id/webhook/redeliver', async (req: Request, res: Response) => {
    const id = operationIdOf(req);
    const op = await loadOwned(req, id);
    const deliveryId = await redeliverWebhook(lifecycle, op, () => deps.limits.redelivery(op.tenant, id, res));
    res.status(202).json({ deliveryId, links: { operation: operationLocation(id) } });
  });

  return { router, submissions };
};

/** The `:id` of an operation route (operationParamsSchema's rule, without a schema parse per request). */
const operationIdOf = (req: Request): string => {
  const id: unknown = req.params['id'];
  if (typeof id !== 'string' || !OPERATION_ID.test(id)) throw new SignspoolError('NOT_FOUND', { detail: 'no such operation or document' });
  return id;
};

const parseParams = <T extends z.ZodType>(schema: T, params: unknown): z.infer<T> => {
  const r = schema.safeParse(params);
  if (!r.success) throw new SignspoolError('NOT_FOUND', { detail: 'no such operation or document' });
  return r.data;
};
