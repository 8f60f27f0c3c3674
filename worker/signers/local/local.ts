/**
 * The `local` signer (the default of `npm start`): real signatures made in-process with a
 * configured (PEM or PKCS#12) or generated identity: CAdES (detached, or attached with
 * LOCAL_SIGNER_CADES_ATTACHED), PAdES and XAdES, baseline B-B, or B-T when TSA_URL is set.
 * Documents are signed one after another, or up to TSA_CONCURRENCY at once while waiting for
 * time-stamps. A document that cannot be signed fails alone; a time-stamp authority that fails
 * fails the batch (retried by the batch runner like an upstream call).
 */
import { rm } from 'node:fs/promises';
import { SignspoolError, isSignspoolError } from '@signspool/shared/errors';
import type { FileWriter } from '@signspool/shared/spool/file-io';
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
    const commits: Promise<void>[] = [];
    const dirs = new Set<string>();
    const queue = [...batch.documents];
    const lanes = Math.min(queue.length, this.tsa ? (this.deps.tsa?.concurrency ?? 1) : 1);
    let batchError: unknown;
    await Promise.all(
      Array.from({ length: lanes }, async () => {
        for (let doc = queue.shift(); doc && batchError === undefined; doc = queue.shift()) {
          if (signal.aborted) throw signal.reason;
          try {
            const { result, commit } = await this.signOne(signer, batch, doc, both, dirs);
            const i = results.push(result) - 1;
            // A result whose file could not be stored fails alone.
            if (commit) commits.push(commit.catch((err: unknown) => void (results[i] = this.failure(batch, doc, err))));
          } catch (err) {
            batchError ??= err;
            failed.abort(err);
          }
        }
      }),
    );
    // Each result's fsync and rename ran while the next document was signed; the directories
    // they were renamed into are fsynced once for the batch, before any result is handed back.
    await Promise.all(commits);
    await this.deps.spool.syncDirs(dirs);
    if (signal.aborted) throw signal.reason;
    if (batchError !== undefined) throw batchError;
    return results;
  }

  /**
   * Signs one document into a tmp file of the spool; `commit` fsyncs it and renames it into its
   * result path (the directory is added to `dirs`, fsynced by the caller).
   */
  private async signOne(
    signer: DocumentSigner,
    batch: SignBatch,
    doc: BatchDocument,
    signal: AbortSignal,
    dirs: Set<string>,
  ): Promise<{ result: DocumentResult; commit?: Promise<void> }> {
    const { spool } = this.deps;
    let file: FileWriter | undefined;
    try {
      file = await spool.openTmpWriter('signed');
      const out = await signer.sign(batch.signatureType, { path: doc.path, name: doc.name, sha256: doc.sha256, size: doc.size }, file, signal);
      const written = file;
      const commit = (async (): Promise<void> => {
        try {
          await written.finish();
          await spool.commit(written.path, doc.resultPath, { synced: true, dirs });
        } catch (err) {
          written.abort();
          await rm(written.path, { force: true });
          throw err;
        }
      })();
      const result: DocumentResult = {
        ok: true,
        docId: doc.docId,
        path: doc.resultPath,
        size: out.size,
        sha256: out.sha256,
        contentType: out.contentType,
        fileName: out.fileName,
      };
      return { result, commit };
    } catch (err) {
      if (file) {
        file.abort();
        await rm(file.path, { force: true });
      }
      if (signal.aborted) throw signal.reason;
      if (isSignspoolError(err) && err.code.startsWith('TSA_')) throw err;
      return { result: this.failure(batch, doc, err) };
    }
  }

  private failure(batch: SignBatch, doc: BatchDocument, err: unknown): DocumentResult {
    if (isSignspoolError(err)) return { ok: false, docId: doc.docId, error: err };
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { ok: false, docId: doc.docId, error: new SignspoolError('SPOOL_FILE_MISSING') };
    // No room for the result: the batch goes back to the queue (batch-runner.ts), nothing is failed.
    if (code === 'ENOSPC' || code === 'EDQUOT') return { ok: false, docId: doc.docId, error: new SignspoolError('SPOOL_FULL') };
    this.deps.logger.error({ err: { message: (err as Error).message }, docId: doc.docId, signatureType: batch.signatureType }, 'local signing failed');
    return { ok: false, docId: doc.docId, error: new SignspoolError('SIGNER_FAILED') };
  }

  async stop(): Promise<void> {
    await this.tsa?.close();
    this.tsa = undefined;
    this.signer = undefined;
    this.identity = undefined;
  }
}
