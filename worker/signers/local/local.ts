/**
 * The `local` signer (the default of `npm start`): real signatures made in-process with a
 * configured (PEM or PKCS#12) or generated identity: CAdES (detached, or attached with
 * LOCAL_SIGNER_CADES_ATTACHED), PAdES and XAdES, baseline B-B, or B-T when TSA_URL is set.
 * Documents are signed one after another, or up to TSA_CONCURRENCY at once while waiting for
 * time-stamps. A document that cannot be signed fails alone; a time-stamp authority that fails
 * fails the batch (retried by the batch runner like an upstream call).
 */
import { SignspoolError, isSignspoolError } from '@signspool/shared/errors';
import type { Logger } from '@signspool/shared/logger';
import type { Spool } from '@signspool/shared/spool/spool';
import type { BatchDocument, DocumentResult, SignBatch, Signer, SignerStatus } from '../../signer.js';
import { DocumentSigner } from './document-signer.js';
import { loadOrCreateSigningIdentity, type SigningIdentity } from './cert.js';
import type { TsaClient } from './tsa-client.js';

export interface LocalSignerDeps {
  dataDir: string;
  keyFile: string | undefined;
  certFile: string | undefined;
  p12File?: string | undefined;
  p12Password?: string | undefined;
  cadesAttached?: boolean;
  reason?: string | undefined;
  tsa?: { url: string; timeoutMs: number; concurrency: number } | undefined;
  spool: Spool;
  logger: Logger;
  /** The time the certificate's validity is checked against at start (tests). */
  now?: Date;
}

export class LocalSigner implements Signer {
  readonly name = 'local';
  private identity: SigningIdentity | undefined;
  private signer: DocumentSigner | undefined;
  private tsa: TsaClient | undefined;

  constructor(private readonly deps: LocalSignerDeps) {}

  async start(): Promise<void> {
    this.identity = await loadOrCreateSigningIdentity({ ...this.deps });
    // Loaded only with TSA_URL (the TSP schemas cost start time).
    this.tsa = this.deps.tsa ? new (await import('./tsa-client.js')).TsaClient(this.deps.tsa) : undefined;
    this.signer = new DocumentSigner(this.identity, { cadesAttached: this.deps.cadesAttached ?? false, tsa: this.tsa, reason: this.deps.reason });
  }

  status(): SignerStatus {
    const id = this.identity;
    return id ? { certificate: { subject: id.subject, notAfter: id.notAfter.getTime() } } : {};
  }

  /** Path of the certificate to verify signatures with (PEM identities). */
  get certificatePath(): string | undefined {
    return this.identity?.certPath;
  }

  async signBatch(batch: SignBatch, signal: AbortSignal): Promise<DocumentResult[]> {
    if (!this.signer) throw new Error('local signer not started');
    const signer = this.signer;
    // A time-stamp failure stops the other documents of the batch at once.
    const failed = new AbortController();
    const both = AbortSignal.any([signal, failed.signal]);
    const results: DocumentResult[] = [];
    const queue = [...batch.documents];
    const lanes = Math.min(queue.length, this.tsa ? (this.deps.tsa?.concurrency ?? 1) : 1);
    let batchError: unknown;
    await Promise.all(
      Array.from({ length: lanes }, async () => {
        for (let doc = queue.shift(); doc && batchError === undefined; doc = queue.shift()) {
          if (signal.aborted) throw signal.reason;
          try {
            results.push(await this.signOne(signer, batch, doc, both));
          } catch (err) {
            batchError ??= err;
            failed.abort(err);
          }
        }
      }),
    );
    if (signal.aborted) throw signal.reason;
    if (batchError !== undefined) throw batchError;
    return results;
  }

  private async signOne(signer: DocumentSigner, batch: SignBatch, doc: BatchDocument, signal: AbortSignal): Promise<DocumentResult> {
    const { spool, logger } = this.deps;
    try {
      const out = await signer.sign(batch.signatureType, { path: doc.path, name: doc.name, sha256: doc.sha256 }, signal);
      const written = await spool.writeAtomic(doc.resultPath, out.body);
      return {
        ok: true,
        docId: doc.docId,
        path: written.path,
        size: written.size,
        sha256: written.sha256,
        contentType: out.contentType,
        fileName: out.fileName,
      };
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      if (isSignspoolError(err) && err.code.startsWith('TSA_')) throw err;
      if (isSignspoolError(err)) return { ok: false, docId: doc.docId, error: err };
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return { ok: false, docId: doc.docId, error: new SignspoolError('SPOOL_FILE_MISSING') };
      // No room for the result: the batch goes back to the queue (batch-runner.ts), nothing is failed.
      if (code === 'ENOSPC' || code === 'EDQUOT') return { ok: false, docId: doc.docId, error: new SignspoolError('SPOOL_FULL') };
      logger.error({ err: { message: (err as Error).message }, docId: doc.docId, signatureType: batch.signatureType }, 'local signing failed');
      return { ok: false, docId: doc.docId, error: new SignspoolError('SIGNER_FAILED') };
    }
  }

  async stop(): Promise<void> {
    await this.tsa?.close();
    this.tsa = undefined;
    this.signer = undefined;
    this.identity = undefined;
  }
}
