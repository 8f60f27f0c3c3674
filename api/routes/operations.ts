/**
 * /v1/operations: submit (the upload path), status, download, cancel.
 *
 * Upload path: auth → content checks (type, declared length, free space) → multer with the spool
 * storage engine (each file streamed to disk, hashed, fsynced) → fields validated → directory
 * fsynced → operation record → one job per document → 202. Any failure on the way
 * removes the files, the record and the jobs: a failed request leaves nothing behind.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { Router, type NextFunction, type Request, type Response } from 'express';
import multer from 'multer';
import { z } from 'zod';
import type { Queue } from 'bullmq';
import type { Config } from '@signspool/shared/config';
import { SignspoolError } from '@signspool/shared/errors';
import type { Logger } from '@signspool/shared/logger';
import type { Metrics } from '@signspool/shared/metrics';
import { isTerminal, newOperationRecord, type OperationRecord, type OperationStore, type WebhookAttempt } from '@signspool/shared/operations';
import { enqueueWebhook, firstDeliveryId, signatureTypeSchema, signJobId, type SignDocumentJob } from '@signspool/shared/queue';
import { newId, type Spool } from '@signspool/shared/spool';
import { assertDocumentFormats } from '../document-format.js';
import { IdempotencyStore, submissionFingerprint, type Reservation } from '../idempotency.js';
import { preferredWait, type OperationEvents } from '../operation-events.js';
import { UploadAdmission } from '../upload-admission.js';
import { createSpoolStorage, getUploadContext, setUploadContext, type UploadContext } from '../upload-storage.js';

export interface OperationsRouteDeps {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  store: OperationStore;
  queue: Queue;
  webhookQueue: Queue;
  spool: Spool;
  /** Wakes `Prefer: wait` requests; without it, GET answers at once. */
  events?: OperationEvents;
}

export const submitFieldsSchema = z
  .object({
    signatureType: signatureTypeSchema.optional(),
    externalReference: z.string().min(1).max(255).regex(/^[^\p{Cc}]*$/u, 'no control characters').optional(),
    webhookUrl: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).max(2048).optional(),
  })
  .strict();

export const operationParamsSchema = z.object({ id: z.string().regex(/^op_[0-9a-f]{32}$/) });
export const docParamsSchema = operationParamsSchema.extend({ docId: z.string().regex(/^doc_[0-9a-f]{32}$/) });

/** Keeps only the last path component and printable characters of a client-supplied file name. */
export const sanitizeFileName = (raw: string | undefined, index: number): string => {
  const base = path.posix.basename(path.win32.basename(raw ?? ''));
  const clean = base.replace(/[\p{Cc}\p{Cf}"\\/]/gu, '').trim().slice(0, 200);
  return clean === '' || clean === '.' || clean === '..' ? `document-${index + 1}` : clean;
};

const MIME = /^[\w.+-]+\/[\w.+-]+$/;

export const operationLocation = (opId: string): string => `/v1/operations/${opId}`;

/** The public view of an operation. */
export const presentOperation = (op: OperationRecord, deliveries: WebhookAttempt[] = []) => ({
  id: op.id,
  status: op.status,
  signatureType: op.signatureType,
  externalReference: op.externalReference ?? null,
  createdAt: new Date(op.createdAt).toISOString(),
  updatedAt: new Date(op.updatedAt).toISOString(),
  completedAt: op.completedAt === undefined ? null : new Date(op.completedAt).toISOString(),
  counts: op.counts,
  documents: op.documents.map((d) => ({
    id: d.id,
    name: d.name,
    contentType: d.contentType,
    size: d.size,
    sha256: d.sha256,
    status: d.status,
    ...(d.error ? { error: d.error } : {}),
    ...(d.signed
      ? {
          signed: {
            size: d.signed.size,
            sha256: d.signed.sha256,
            contentType: d.signed.contentType,
            fileName: d.signed.fileName,
            signedAt: new Date(d.signed.signedAt).toISOString(),
            href: `${operationLocation(op.id)}/documents/${d.id}`,
          },
        }
      : {}),
  })),
  webhook: op.webhookUrl
    ? {
        url: op.webhookUrl,
        deliveries: deliveries.map((d) => ({ ...d, at: new Date(d.at).toISOString() })),
      }
    : null,
  links: { self: operationLocation(op.id) },
});

export const operationsRouter = (deps: OperationsRouteDeps): Router => {
  const { config, store, queue, spool, metrics, logger } = deps;
  const router = Router();
  const idempotency = new IdempotencyStore(store.redis, config.queuePrefix, config.idempotencyTtlMs);
  const upload = multer({
    storage: createSpoolStorage(spool),
    defParamCharset: 'utf8',
    limits: {
      fileSize: config.upload.maxFileBytes,
      files: config.upload.maxFiles,
      fields: config.upload.maxFields,
      fieldSize: config.upload.maxFieldBytes,
      parts: config.upload.maxFiles + config.upload.maxFields,
    },
  }).array('file', config.upload.maxFiles);

  const checkWebhookTarget = (url: string, tenant: string): void => {
    if (new URL(url).protocol !== 'https:' && !config.webhooks.allowHttp) {
      throw new SignspoolError('VALIDATION_FAILED', { detail: 'webhookUrl must use https' });
    }
    if (!config.webhooks.secrets.some((s) => s.tenant === tenant)) {
      throw new SignspoolError('VALIDATION_FAILED', { detail: 'webhooks need a signing secret for this tenant: ask the operator to set WEBHOOK_SECRETS' });
    }
  };

  const enqueueCompleted = async (opId: string, tenant: string, deliveryId: string, reason: 'completed' | 'redeliver'): Promise<void> => {
    await enqueueWebhook(deps.webhookQueue, { opId, tenant, deliveryId, reason }, config.webhooks.scheduleMs.length);
  };

  /** Another tenant's operation is indistinguishable from a missing one. */
  const owned = <T extends { tenant: string }>(req: Request, op: T | undefined): T => {
    if (!op || op.tenant !== req.tenant) throw new SignspoolError('NOT_FOUND', { detail: 'no such operation' });
    return op;
  };
  const loadOwned = async (req: Request, id: string): Promise<OperationRecord> => owned(req, await store.get(id));

  /** Bytes announced (Content-Length) by uploads in progress: the spool must have room for all of them. */
  let uploadsInFlight = 0;

  /** Checks what can be checked before reading the body; returns the bytes the upload announced. */
  const preflight = async (req: Request): Promise<number> => {
    if (!req.is('multipart/form-data')) {
      throw new SignspoolError('UNSUPPORTED_MEDIA_TYPE', { detail: 'send documents as multipart/form-data with one "file" part per document' });
    }
    const declared = Number(req.headers['content-length'] ?? NaN);
    // Multipart framing adds a little per part; a declared length far over the limit is refused before reading.
    const framing = 4096 * (config.upload.maxFiles + config.upload.maxFields + 1);
    if (Number.isFinite(declared) && declared > config.upload.maxTotalBytes + framing) {
      throw new SignspoolError('REQUEST_TOO_LARGE', { detail: `the documents of one request may total at most ${config.upload.maxTotalBytes} bytes`, extensions: { limit: config.upload.maxTotalBytes } });
    }
    // Read at most every 250 ms (a statfs per upload is measurable at hundreds of uploads per
    // second); the bytes of uploads in progress are counted against it.
    const free = (await spool.freeBytes(250)) - uploadsInFlight;
    const announced = Number.isFinite(declared) ? declared : 0;
    if (free < announced + config.spoolMinFreeBytes) {
      throw new SignspoolError('INSUFFICIENT_STORAGE', { detail: 'the spool is too full to accept this upload now; retry later', retryAfterMs: 60_000 });
    }
    return announced;
  };

  const runMulter = (req: Request, res: Response): Promise<void> =>
    new Promise((resolve, reject) => {
      upload(req, res, (err?: unknown) => (err ? reject(err) : resolve()));
    });

  const admission = new UploadAdmission(config.upload.concurrency, ({ active, waiting }) => {
    metrics.uploads.set({ state: 'reading' }, active);
    metrics.uploads.set({ state: 'waiting' }, waiting);
  });

  router.post('/', async (req: Request, res: Response, next: NextFunction) => {
    // Wait for a turn before reading the body; a client that leaves while waiting leaves the queue.
    const release = await admission.admit((cancel) => res.once('close', cancel));
    if (!release) return;
    res.once('close', release);
    const idempotencyKey = IdempotencyStore.parseKey(req.get('idempotency-key'));
    const announced = await preflight(req);
    uploadsInFlight += announced;
    res.once('close', () => (uploadsInFlight -= announced));
    const opId = newId('op');
    const ctx: UploadContext = { opId, totalBytes: 0, maxTotalBytes: config.upload.maxTotalBytes, partCount: 0, files: [] };
    setUploadContext(req, ctx);
    let recorded = false;
    // Built when something is logged: a pino child with redaction costs ~5 % of an upload's CPU.
    const log = (): Logger => logger.child({ opId, tenant: req.tenant });
    const reservation: Reservation | undefined = idempotencyKey === undefined ? undefined : await idempotency.reserve(req.tenant ?? '', idempotencyKey, opId);
    try {
      await runMulter(req, res);
      const fields = submitFieldsSchema.safeParse({ ...(req.body as Record<string, unknown>) });
      if (!fields.success) {
        throw new SignspoolError('VALIDATION_FAILED', {
          detail: fields.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '),
        });
      }
      const files = (getUploadContext(req)?.files ?? []).filter((f): f is NonNullable<typeof f> => f !== undefined);
      if (files.length === 0) throw new SignspoolError('NO_FILES', { detail: 'attach at least one document as a "file" part' });
      const fingerprint = submissionFingerprint({ ...fields.data }, files);
      if (reservation?.kind === 'completed') {
        // A replay: nothing new is kept or enqueued.
        await spool.removeOperation(opId, ['incoming']);
        if (reservation.record.fingerprint !== fingerprint) {
          throw new SignspoolError('IDEMPOTENCY_KEY_MISMATCH', { detail: 'this Idempotency-Key was already used for a request with other documents or fields' });
        }
        res.status(202).location(reservation.record.location).setHeader('Idempotent-Replayed', 'true');
        res.json(reservation.record.body);
        return;
      }
      await spool.syncDir(spool.incomingDir(opId));

      const signatureType = fields.data.signatureType ?? config.defaultSignatureType;
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
      const newOp = { id: opId, tenant: req.tenant ?? '', signatureType, externalReference: fields.data.externalReference, webhookUrl, createdAt: acceptedAt, documents };
      await store.create(newOp);
      recorded = true;
      const jobs = documents.map((d, i) => {
        const data: SignDocumentJob = {
          opId,
          docId: d.id,
          tenant: req.tenant ?? '',
          signatureType,
          name: d.name,
          contentType: d.contentType,
          size: d.size,
          sha256: d.sha256,
          path: files[i]?.path ?? '',
          acceptedAt,
        };
        return { name: 'sign-document' as const, data, opts: { jobId: signJobId(d.id) } };
      });
      // One document (the common case) needs no MULTI around its one script: add, not addBulk.
      const [only] = jobs;
      if (jobs.length === 1 && only) await queue.add(only.name, only.data, only.opts);
      else await queue.addBulk(jobs);
      await store.markAccepted(opId);
      metrics.documentsAccepted.inc(documents.length);
      metrics.uploadedBytes.inc(ctx.totalBytes);
      if (logger.isLevelEnabled('info')) log().info({ documents: documents.length, bytes: ctx.totalBytes }, 'operation accepted');
      // The answer describes the operation as accepted (no extra read: a worker may already be at it).
      const body = presentOperation(newOperationRecord(newOp));
      if (reservation?.kind === 'reserved') await reservation.commit(fingerprint, operationLocation(opId), body);
      res.status(202).location(operationLocation(opId)).json(body);
    } catch (err) {
      if (reservation?.kind === 'reserved') await reservation.release().catch(() => undefined);
      await spool.removeOperation(opId, ['incoming']);
      if (recorded) {
        await Promise.allSettled([store.remove(opId), ...ctx.files.map((f) => queue.remove(signJobId(f.docId)))]);
      }
      if (req.socket.destroyed || res.destroyed) {
        log().info({ bytes: ctx.totalBytes }, 'upload aborted by the client; nothing kept');
        return;
      }
      if (err instanceof Error && /Connection is closed|Stream isn't writeable|enableOfflineQueue|ECONNREFUSED/.test(err.message)) {
        next(new SignspoolError('SERVICE_UNAVAILABLE', { detail: 'the queue is unavailable; nothing was kept, retry later', retryAfterMs: 5000 }));
        return;
      }
      next(err);
    }
  });

  router.get('/:id', async (req: Request, res: Response) => {
    const { id } = parseParams(operationParamsSchema, req.params);
    const wait = preferredWait(req.get('prefer'));
    const events = wait === undefined ? undefined : deps.events;
    if (events) res.setHeader('Preference-Applied', `wait=${wait}`);
    if (events && wait) {
      // Register first, then check: an end between the check and the wait is not missed. The
      // check reads owner and status only; the record is read once, when the answer is due.
      const waiter = events.waitFor(id, wait * 1000);
      let head;
      try {
        head = owned(req, await store.peek(id));
      } finally {
        if (!head || isTerminal(head.status)) waiter.cancel();
      }
      if (!isTerminal(head.status)) {
        // The client going away ends the wait.
        res.once('close', waiter.cancel);
        await waiter.done;
        res.off('close', waiter.cancel);
        if (res.destroyed) return;
      }
    }
    const op = await loadOwned(req, id);
    if (!isTerminal(op.status)) res.setHeader('Retry-After', op.status === 'queued' ? '2' : '1');
    res.json(presentOperation(op, op.webhookUrl ? await store.deliveries(op.id) : []));
  });

  router.get('/:id/documents/:docId', async (req: Request, res: Response) => {
    const { id, docId } = parseParams(docParamsSchema, req.params);
    const op = await loadOwned(req, id);
    const doc = op.documents.find((d) => d.id === docId);
    if (!doc) throw new SignspoolError('NOT_FOUND', { detail: 'no such document in this operation' });
    if (doc.status !== 'signed' || !doc.signed) {
      throw new SignspoolError('DOCUMENT_NOT_SIGNED', { detail: `the document is ${doc.status}`, extensions: { documentStatus: doc.status } });
    }
    const file = spool.signedPath(op.id, doc.id);
    if (!(await spool.exists(file))) throw new SignspoolError('NOT_FOUND', { detail: 'the signed document is no longer kept' });
    // attachment() sets Content-Disposition (and a type guessed from the name, replaced just below).
    res.attachment(doc.signed.fileName);
    res.setHeader('Content-Type', doc.signed.contentType);
    res.setHeader('Content-Length', String(doc.signed.size));
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Cache-Control', 'private, no-store');
    res.setHeader('ETag', `"${doc.signed.sha256}"`);
    res.setHeader('Repr-Digest', `sha-256=:${Buffer.from(doc.signed.sha256, 'hex').toString('base64')}:`);
    await new Promise<void>((resolve, reject) => {
      const stream = spool.openRead(file);
      stream.on('error', reject);
      res.on('close', () => resolve());
      stream.pipe(res);
    });
  });

  router.delete('/:id', async (req: Request, res: Response) => {
    const { id } = parseParams(operationParamsSchema, req.params);
    await loadOwned(req, id);
    const result = await store.cancel(id);
    if (result.applied.length === 0 && result.status !== 'queued' && result.status !== 'processing') {
      throw new SignspoolError('OPERATION_TERMINAL', { detail: `the operation has already ended (${result.status})` });
    }
    if (result.becameTerminal && result.webhook) await enqueueCompleted(id, req.tenant ?? '', firstDeliveryId(id), 'completed');
    await Promise.allSettled(result.applied.map((docId) => queue.remove(signJobId(docId))));
    await Promise.allSettled(result.applied.map((docId) => rm(spool.incomingPath(id, docId), { force: true })));
    logger.info({ opId: id, canceled: result.applied.length }, 'operation canceled');
    const op = await loadOwned(req, id);
    res.json(presentOperation(op));
  });

  router.post('/:id/webhook/redeliver', async (req: Request, res: Response) => {
    const { id } = parseParams(operationParamsSchema, req.params);
    const op = await loadOwned(req, id);
    if (!op.webhookUrl) throw new SignspoolError('VALIDATION_FAILED', { detail: 'this operation has no webhook endpoint' });
    if (!isTerminal(op.status)) throw new SignspoolError('OPERATION_NOT_TERMINAL', { detail: 'the operation has not ended yet; its webhook is sent when it does' });
    const deliveryId = newId('msg');
    await enqueueCompleted(id, op.tenant, deliveryId, 'redeliver');
    res.status(202).json({ deliveryId, links: { operation: operationLocation(id) } });
  });

  return router;
};

const parseParams = <T extends z.ZodType>(schema: T, params: unknown): z.infer<T> => {
  const r = schema.safeParse(params);
  if (!r.success) throw new SignspoolError('NOT_FOUND', { detail: 'no such operation or document' });
  return r.data;
};
