/**
 * The upload, POST /v1/operations, once its credential is known: cheap checks and a turn
 * (gate.ts), the body read into the spool (receive.ts), the fields validated, the directory
 * fsynced, the documents' formats checked, then the operation record and one job per document
 * (shared/operations/lifecycle.ts). Any failure on the way removes the files, the record and the
 * jobs: a failed request leaves nothing behind. Express's route and the fast path below it
 * (fast-upload.ts) both run it and write the answer it returns.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { context, trace } from '@opentelemetry/api';
import { z } from 'zod';
import type { Config } from '@signspool/shared/config';
import { SignspoolError } from '@signspool/shared/errors';
import { isRedisUnavailable } from '@signspool/shared/redis/unavailable';
import type { Durability } from '@signspool/shared/durability';
import type { Logger } from '@signspool/shared/logger';
import type { Metrics } from '@signspool/shared/metrics';
import { operationPath, operationView } from '@signspool/shared/operations/view';
import { newOperationRecord } from '@signspool/shared/operations/record';
import { acceptOperation, type LifecycleDeps } from '@signspool/shared/operations/lifecycle';
import type { OperationStore } from '@signspool/shared/operations/store';
import { signatureTypeSchema } from '@signspool/shared/queue';
import type { SigningIdentity } from '@signspool/shared/signers/identities';
import type { SignerRegistry } from '@signspool/shared/signers/registry';
import { newId, type Spool } from '@signspool/shared/spool/spool';
import { ATTR } from '@signspool/shared/spans';
import { refuseWebhookUrl, WebhookAllowList } from '@signspool/shared/webhooks/target';
import { IdempotencyStore, submissionFingerprint, type Reservation } from '../idempotency.js';
import type { TenantRateLimits } from '../rate-limits.js';
import type { RedisHealth } from '../redis-health.js';
import { assertDocumentFormats } from './document-format.js';
import { UploadGate } from './gate.js';
import type { MultipartLimits } from './multipart.js';
import { receiveUpload, type UploadContext } from './receive.js';
import { chooseSigner, signerField } from './signer-choice.js';

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

/** Keeps only the last path component and printable characters of a client-supplied file name. */
const sanitizeFileName = (raw: string | undefined, index: number): string => {
  const base = path.posix.basename(path.win32.basename(raw ?? ''));
  const clean = base
    .replace(/[\p{Cc}\p{Cf}"\\/]/gu, '')
    .trim()
    .slice(0, 200);
  return clean === '' || clean === '.' || clean === '..' ? `document-${index + 1}` : clean;
};

const MIME = /^[\w.+-]+\/[\w.+-]+$/;

const operationLocation = operationPath;

/** A header's value (a repeated one joined by Node, or its first), as express's req.get gives it. */
const header = (req: IncomingMessage, name: string): string | undefined => {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

export interface SubmissionDeps {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  store: OperationStore;
  spool: Spool;
  durability: Durability;
  limits: TenantRateLimits;
  signers: SignerRegistry;
  redisHealth?: RedisHealth | undefined;
  /** The lifecycle the routes share (the submission's commit, its undo). */
  lifecycle: LifecycleDeps;
}

/** What a submission answers: 202 with Location and the operation's JSON (a replay marked Idempotent-Replayed). */
export interface Submitted {
  location: string;
  body: unknown;
  replayed: boolean;
}

export class Submissions {
  /** Checks before a slot, per-tenant admission, upload timeouts (gate.ts). */
  readonly gate: UploadGate;
  private readonly config: Config;
  private readonly spool: Spool;
  private readonly lifecycle: LifecycleDeps;
  private readonly idempotency: IdempotencyStore;
  private readonly bodyLimits: MultipartLimits;
  private readonly webhookRules: { allow: WebhookAllowList; allowHttp: boolean };

  constructor(private readonly deps: SubmissionDeps) {
    const { config, store, spool, metrics } = deps;
    this.config = config;
    this.spool = spool;
    this.lifecycle = deps.lifecycle;
    this.idempotency = new IdempotencyStore(store.redis, config.queuePrefix, config.idempotencyTtlMs, config.orphanGraceMs);
    this.gate = new UploadGate({ config, spool, metrics, limits: deps.limits, redisHealth: deps.redisHealth });
    this.bodyLimits = {
      fileSize: config.upload.maxFileBytes,
      files: config.upload.maxFiles,
      fields: config.upload.maxFields,
      fieldSize: config.upload.maxFieldBytes,
      parts: config.upload.maxFiles + config.upload.maxFields,
    };
    this.webhookRules = { allow: new WebhookAllowList(config.webhooks.allow), allowHttp: config.webhooks.allowHttp };
  }

  /** A webhook for a tenant without a signing secret could never be delivered: refused, naming the variable to set. */
  private missingWebhookSecret(tenant: string): SignspoolError | undefined {
    return this.config.webhooks.secrets.some((s) => s.tenant === tenant)
      ? undefined
      : new SignspoolError('WEBHOOK_SECRET_MISSING', {
          detail: `tenant "${tenant}" has no webhook signing secret: the operator sets WEBHOOK_SECRETS=${tenant}:whsec_<base64> (or WEBHOOK_SECRETS_FILE); nothing was kept`,
        });
  }

  private checkWebhookTarget(url: string, tenant: string): void {
    // What can be judged before DNS (scheme, credentials, literal addresses, ports); the worker checks again at connect.
    const refused = refuseWebhookUrl(url, this.webhookRules);
    if (refused !== undefined) throw new SignspoolError('WEBHOOK_URL_REFUSED', { detail: `webhookUrl refused: ${refused}` });
    const missing = this.missingWebhookSecret(tenant);
    if (missing) throw missing;
  }

  /**
   * Runs the upload of `tenant`: resolves what to answer, or undefined when the client went away
   * (nothing to answer, nothing kept); throws the refusal (the caller answers it as problem+json).
   */
  async submit(req: IncomingMessage, res: ServerResponse, tenant: string): Promise<Submitted | undefined> {
    // A tenant's default endpoint without a secret: refused before anything is read.
    if (this.config.webhooks.endpoints[tenant] !== undefined) {
      const missing = this.missingWebhookSecret(tenant);
      if (missing) throw missing;
    }
    // Cheap checks first (413, 415, 429, 507 never wait), then a turn among the tenant's uploads.
    const pass = await this.gate.enter(req, res, tenant);
    if (!pass) return undefined;
    const idempotencyKey = IdempotencyStore.parseKey(header(req, 'idempotency-key'));
    const opId = newId('op');
    // The request's span (upload-span.ts): the spool writes are its children.
    const traceContext = context.active();
    trace.getSpan(traceContext)?.setAttributes({ [ATTR.operationId]: opId, [ATTR.tenant]: tenant });
    // The identity is chosen from one snapshot of the registry, when the first file part arrives
    // (nothing stored yet), or after the fields when there is no file.
    const identities = this.deps.signers.identities;
    let chosenAtFirstFile: { identity: SigningIdentity; requested: string | undefined } | undefined;
    const checkFields = (fields: Record<string, unknown>): void => {
      if (chosenAtFirstFile) return;
      try {
        // A webhook that could never be signed: refused before any file is read.
        const webhookUrl = fields['webhookUrl'];
        const missing = typeof webhookUrl === 'string' && webhookUrl !== '' ? this.missingWebhookSecret(tenant) : undefined;
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
      maxTotalBytes: this.config.upload.maxTotalBytes,
      files: [],
      fields: Object.create(null) as Record<string, unknown>,
      traceContext,
      checkFields,
    };
    let submitted = false;
    // Built when something is logged: a pino child with redaction costs ~5 % of an upload's CPU.
    const log = (): Logger => this.deps.logger.child({ opId, tenant });
    const reservation: Reservation | undefined = idempotencyKey === undefined ? undefined : await this.idempotency.reserve(tenant, idempotencyKey, opId);
    try {
      await pass.read(receiveUpload(req, ctx, this.spool, this.bodyLimits, (reading) => this.gate.track(req, reading)));
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
      // Room for one was checked before the body (this.gate.enter): more documents are checked again.
      if (reservation?.kind !== 'completed' && files.length > 1) await this.deps.limits.checkBacklog(tenant, files.length, res);
      if (reservation?.kind === 'completed') {
        // A replay: nothing new is kept or enqueued.
        await this.spool.removeOperation(opId, ['incoming']);
        if (reservation.record.fingerprint !== fingerprint) {
          throw new SignspoolError('IDEMPOTENCY_KEY_MISMATCH', {
            detail: 'this Idempotency-Key was already used for a request with other documents or fields',
          });
        }
        return { location: reservation.record.location, body: reservation.record.body, replayed: true };
      }
      await this.spool.syncDir(this.spool.incomingDir(opId));

      const signatureType = fields.data.signatureType ?? identity.signature.type;
      await assertDocumentFormats(signatureType, files);
      const webhookUrl = fields.data.webhookUrl ?? this.config.webhooks.endpoints[tenant];
      if (webhookUrl !== undefined) this.checkWebhookTarget(webhookUrl, tenant);
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
        tenant: tenant,
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
      await acceptOperation(this.lifecycle, newOp, {
        // Half the command deadline: a commit Redis runs later than that (hung) is refused, as its client got a 503.
        windowMs: this.config.redisCommandTimeoutMs / 2,
        ...(reservation?.kind === 'reserved' ? { also: reservation.completion(fingerprint, operationLocation(opId), body) } : {}),
      });
      this.deps.metrics.documentsAccepted.inc({ signer: identity.name }, documents.length);
      this.deps.metrics.uploadedBytes.inc(ctx.totalBytes);
      trace.getSpan(traceContext)?.setAttributes({ [ATTR.documents]: documents.length, [ATTR.bytes]: ctx.totalBytes });
      if (this.deps.logger.isLevelEnabled('info'))
        log().info({ documents: documents.length, bytes: ctx.totalBytes, signer: identity.name }, 'operation accepted');
      return { location: operationLocation(opId), body, replayed: false };
    } catch (err) {
      if (reservation?.kind === 'reserved') {
        const released = reservation.release().catch(() => undefined);
        // A Redis that does not answer is not waited for: the release runs when it does (a completed record it leaves alone).
        if (!isRedisUnavailable(err)) await released;
      }
      // acceptSubmission undoes its own part; before it, only the spooled files exist.
      if (!submitted) await this.spool.removeOperation(opId, ['incoming']);
      if (req.socket.destroyed || res.destroyed) {
        log().info({ bytes: ctx.totalBytes }, 'upload aborted by the client; nothing kept');
        return undefined;
      }
      throw err;
    }
  }
}
