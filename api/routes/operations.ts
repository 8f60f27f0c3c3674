/**
 * /v1/operations: submit (the upload path), status, download, cancel.
 *
 * Upload path: auth → content checks (type, declared length, free space) → the body read into the
 * spool (upload/receive.ts: each file part written to disk as it arrives, hashed, fsynced) → fields validated → directory
 * fsynced → operation record → one job per document → 202. Any failure on the way
 * removes the files, the record and the jobs: a failed request leaves nothing behind.
 */
import { pipeline } from 'node:stream/promises';
import path from 'node:path';
import { context, trace } from '@opentelemetry/api';
import { Router, type NextFunction, type Request, type Response } from 'express';
import { z } from 'zod';
import type { Queue } from 'bullmq';
import type { Config } from '@signspool/shared/config';
import { SignspoolError } from '@signspool/shared/errors';
import { isRedisUnavailable } from '@signspool/shared/redis/unavailable';
import type { Durability } from '@signspool/shared/durability';
import type { Logger } from '@signspool/shared/logger';
import type { Metrics } from '@signspool/shared/metrics';
import { documentView, operationPath, operationView, type OperationPage } from '@signspool/shared/operations/view';
import { DisabledEndpoints } from '@signspool/shared/webhooks/endpoints';
import { newOperationRecord, type OperationRecord } from '@signspool/shared/operations/record';
import { acceptOperation, cancelOperation, redeliverWebhook, retryOperation, type LifecycleDeps } from '@signspool/shared/operations/lifecycle';
import { OPERATION_STATUSES } from '@signspool/shared/operations/states';
import { InvalidCursorError, type OperationStore } from '@signspool/shared/operations/store';
import { signatureTypeSchema } from '@signspool/shared/queue';
import { FairShare } from '@signspool/shared/scheduling/fair-share';
import type { SigningIdentity } from '@signspool/shared/signers/identities';
import type { SignerRegistry } from '@signspool/shared/signers/registry';
import { newId, type Spool } from '@signspool/shared/spool/spool';
import type { SubmissionUndo } from '@signspool/shared/operations/undo';
import { ATTR } from '@signspool/shared/spans';
import { refuseWebhookUrl, WebhookAllowList } from '@signspool/shared/webhooks/target';
import { sendJson } from '../http/json.js';
import type { LongPolls } from '../read/long-poll.js';
import { OPERATION_ID, ownedBy, retryAfterOf, statusView } from '../read/status.js';
import { assertDocumentFormats } from '../upload/document-format.js';
import { IdempotencyStore, submissionFingerprint, type Reservation } from '../idempotency.js';
import type { TenantRateLimits } from '../rate-limits.js';
import type { RedisHealth } from '../redis-health.js';
import { UploadGate } from '../upload/gate.js';
import { pipelinedSignQueue } from '../upload/enqueue.js';
import { chooseSigner, signerField } from '../upload/signer-choice.js';
import { receiveUpload, type UploadContext } from '../upload/receive.js';
import type { MultipartLimits } from '../upload/multipart.js';

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

export const submitFieldsSchema = z
  .object({
    signatureType: signatureTypeSchema.optional(),
    /** The signing identity (else the tenant's default); before the file parts (upload/signer-choice.ts). */
    signer: z
      .string()
      .max(255)
      .describe("The signing identity (issuer) to sign with, one the tenant may use (else the tenant's default). Send it before the file parts.")
      .optional(),
    // Refused, not stripped (file names are stripped): a reference changed silently would no longer match the caller's.
    externalReference: z
      .string()
      .min(1)
      .max(255)
      .regex(/^[^\p{Cc}\p{Cf}]*$/u, 'no control or invisible format characters (bidi controls, zero-width)')
      .optional(),
    webhookUrl: z
      .url({ protocol: /^https?$/, error: 'must be an http(s) URL' })
      .max(2048)
      .optional(),
  })
  .strict();

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

/** Keeps only the last path component and printable characters of a client-supplied file name. */
export const sanitizeFileName = (raw: string | undefined, index: number): string => {
  const base = path.posix.basename(path.win32.basename(raw ?? ''));
  const clean = base
    .replace(/[\p{Cc}\p{Cf}"\\/]/gu, '')
    .trim()
    .slice(0, 200);
  return clean === '' || clean === '.' || clean === '..' ? `document-${index + 1}` : clean;
};

const MIME = /^[\w.+-]+\/[\w.+-]+$/;

export const operationLocation = operationPath;

export const operationsRouter = (deps: OperationsRouteDeps): Router => {
  const { config, store, queue, spool, metrics, logger } = deps;
  const router = Router();
  const idempotency = new IdempotencyStore(store.redis, config.queuePrefix, config.idempotencyTtlMs, config.orphanGraceMs);
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
  // Checks before a slot, per-tenant admission, upload timeouts (upload-gate.ts).
  const gate = new UploadGate({ config, spool, metrics, limits: deps.limits, redisHealth: deps.redisHealth });
  const bodyLimits: MultipartLimits = {
    fileSize: config.upload.maxFileBytes,
    files: config.upload.maxFiles,
    fields: config.upload.maxFields,
    fieldSize: config.upload.maxFieldBytes,
    parts: config.upload.maxFiles + config.upload.maxFields,
  };

  /** A webhook for a tenant without a signing secret could never be delivered: refused, naming the variable to set. */
  const missingWebhookSecret = (tenant: string): SignspoolError | undefined =>
    config.webhooks.secrets.some((s) => s.tenant === tenant)
      ? undefined
      : new SignspoolError('WEBHOOK_SECRET_MISSING', {
          detail: `tenant "${tenant}" has no webhook signing secret: the operator sets WEBHOOK_SECRETS=${tenant}:whsec_<base64> (or WEBHOOK_SECRETS_FILE); nothing was kept`,
        });
  const webhookRules = { allow: new WebhookAllowList(config.webhooks.allow), allowHttp: config.webhooks.allowHttp };
  const checkWebhookTarget = (url: string, tenant: string): void => {
    // What can be judged before DNS (scheme, credentials, literal addresses, ports); the worker checks again at connect.
    const refused = refuseWebhookUrl(url, webhookRules);
    if (refused !== undefined) throw new SignspoolError('WEBHOOK_URL_REFUSED', { detail: `webhookUrl refused: ${refused}` });
    const missing = missingWebhookSecret(tenant);
    if (missing) throw missing;
  };

  const owned = <T extends { tenant: string }>(req: Request, op: T | undefined): T => ownedBy(req.tenant, op);
  const loadOwned = async (req: Request, id: string): Promise<OperationRecord> => owned(req, await store.get(id));

  router.post('/', async (req: Request, res: Response, next: NextFunction) => {
    // A tenant's default endpoint without a secret: refused before anything is read.
    if (config.webhooks.endpoints[req.tenant ?? ''] !== undefined) {
      const missing = missingWebhookSecret(req.tenant ?? '');
      if (missing) throw missing;
    }
    // Cheap checks first (413, 415, 429, 507 never wait), then a turn among the tenant's uploads.
    const pass = await gate.enter(req, res);
    if (!pass) return;
    const idempotencyKey = IdempotencyStore.parseKey(req.get('idempotency-key'));
    const opId = newId('op');
    // The request's span (upload-span.ts): the spool writes are its children.
    const traceContext = context.active();
    trace.getSpan(traceContext)?.setAttributes({ [ATTR.operationId]: opId, [ATTR.tenant]: req.tenant ?? '' });
    // The identity is chosen from one snapshot of the registry, when the first file part arrives
    // (nothing stored yet), or after the fields when there is no file.
    const identities = deps.signers.identities;
    const tenant = req.tenant ?? '';
    let chosenAtFirstFile: { identity: SigningIdentity; requested: string | undefined } | undefined;
    const checkFields = (fields: Record<string, unknown>): void => {
      if (chosenAtFirstFile) return;
      try {
        // A webhook that could never be signed: refused before any file is read.
        const webhookUrl = fields['webhookUrl'];
        const missing = typeof webhookUrl === 'string' && webhookUrl !== '' ? missingWebhookSecret(tenant) : undefined;
        if (missing) throw missing;
        const requested = signerField(fields);
        chosenAtFirstFile = { identity: chooseSigner(identities, tenant, requested), requested };
      } catch (err) {
        // Answered now, without reading (or storing) the rest of the upload.
        pass.refuse(err instanceof Error ? err : new Error(String(err)));
        throw err;
      }
    };
    const ctx: UploadContext = {
      opId,
      totalBytes: 0,
      maxTotalBytes: config.upload.maxTotalBytes,
      files: [],
      fields: Object.create(null) as Record<string, unknown>,
      traceContext,
      checkFields,
    };
    let submitted = false;
    // Built when something is logged: a pino child with redaction costs ~5 % of an upload's CPU.
    const log = (): Logger => logger.child({ opId, tenant: req.tenant });
    const reservation: Reservation | undefined = idempotencyKey === undefined ? undefined : await idempotency.reserve(req.tenant ?? '', idempotencyKey, opId);
    try {
      await pass.read(receiveUpload(req, ctx, spool, bodyLimits, (reading) => gate.track(req, reading)));
      const fields = submitFieldsSchema.safeParse({ ...ctx.fields });
      if (!fields.success) {
        throw new SignspoolError('VALIDATION_FAILED', {
          detail: fields.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '),
        });
      }
      const files = ctx.files.filter((f): f is NonNullable<typeof f> => f !== undefined);
      if (files.length === 0) throw new SignspoolError('NO_FILES', { detail: 'attach at least one document as a "file" part' });
      if (chosenAtFirstFile?.requested !== fields.data.signer) {
        throw new SignspoolError('VALIDATION_FAILED', { detail: 'signer: send this field before the file parts (it decides who signs them)' });
      }
      const identity = chosenAtFirstFile?.identity ?? chooseSigner(identities, tenant, fields.data.signer);
      // Only an Idempotency-Key's record needs it (a hash over the fields and the files' digests).
      const fingerprint = reservation === undefined ? '' : submissionFingerprint({ ...fields.data }, files);
      // Room for one was checked before the body (gate.enter): more documents are checked again.
      if (reservation?.kind !== 'completed' && files.length > 1) await deps.limits.checkBacklog(req.tenant ?? '', files.length, res);
      if (reservation?.kind === 'completed') {
        // A replay: nothing new is kept or enqueued.
        await spool.removeOperation(opId, ['incoming']);
        if (reservation.record.fingerprint !== fingerprint) {
          throw new SignspoolError('IDEMPOTENCY_KEY_MISMATCH', {
            detail: 'this Idempotency-Key was already used for a request with other documents or fields',
          });
        }
        res.status(202).location(reservation.record.location).setHeader('Idempotent-Replayed', 'true');
        res.json(reservation.record.body);
        return;
      }
      await spool.syncDir(spool.incomingDir(opId));

      const signatureType = fields.data.signatureType ?? identity.signature.type;
      await assertDocumentFormats(signatureType, files);
      const webhookUrl = fields.data.webhookUrl ?? config.webhooks.endpoints[req.tenant ?? ''];
      if (webhookUrl !== undefined) checkWebhookTarget(webhookUrl, req.tenant ?? '');
      const acceptedAt = Date.now();
      const documents = files.map((f, i) => ({
        id: f.docId,
        name: sanitizeFileName(f.originalName, i),
        contentType: MIME.test(f.mimeType) ? f.mimeType.toLowerCase() : 'application/octet-stream',
        size: f.size,
        sha256: f.sha256,
      }));
      const newOp = {
        id: opId,
        tenant: req.tenant ?? '',
        signer: identity.name,
        signatureType,
        externalReference: fields.data.externalReference,
        webhookUrl,
        createdAt: acceptedAt,
        documents,
      };
      // The answer describes the operation as accepted (no extra read: a worker may already be at it).
      const body = operationView(newOperationRecord(newOp));
      submitted = true;
      await acceptOperation(lifecycle, newOp, {
        // Half the command deadline: a commit Redis runs later than that (hung) is refused, as its client got a 503.
        windowMs: config.redisCommandTimeoutMs / 2,
        ...(reservation?.kind === 'reserved' ? { also: reservation.completion(fingerprint, operationLocation(opId), body) } : {}),
      });
      metrics.documentsAccepted.inc({ signer: identity.name }, documents.length);
      metrics.uploadedBytes.inc(ctx.totalBytes);
      trace.getSpan(traceContext)?.setAttributes({ [ATTR.documents]: documents.length, [ATTR.bytes]: ctx.totalBytes });
      if (logger.isLevelEnabled('info')) log().info({ documents: documents.length, bytes: ctx.totalBytes, signer: identity.name }, 'operation accepted');
      res.status(202).location(operationLocation(opId)).json(body);
    } catch (err) {
      if (reservation?.kind === 'reserved') {
        const released = reservation.release().catch(() => undefined);
        // A Redis that does not answer is not waited for: the release runs when it does (a completed record it leaves alone).
        if (!isRedisUnavailable(err)) await released;
      }
      // acceptSubmission undoes its own part; before it, only the spooled files exist.
      if (!submitted) await spool.removeOperation(opId, ['incoming']);
      if (req.socket.destroyed || res.destroyed) {
        log().info({ bytes: ctx.totalBytes }, 'upload aborted by the client; nothing kept');
        return;
      }
      next(err);
    }
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

  return router;
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
