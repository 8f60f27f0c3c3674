/**
 * What a signer is: something that signs one batch of spooled documents with one upstream call
 * and writes each signed result into the spool. The batcher does not know which signer it drives.
 */
import type { SignspoolError } from '@signspool/shared/errors';
import type { SignatureType } from '@signspool/shared/queue';

export interface BatchDocument {
  opId: string;
  docId: string;
  /** Original file name as uploaded (sanitised). */
  name: string;
  contentType: string;
  size: number;
  sha256: string;
  /** Absolute path of the uploaded bytes in the spool (derived from the ids, never from the job). */
  path: string;
  /** Where the signed result must be written: unique per batch, so concurrent attempts never share a file. */
  resultPath: string;
}

export interface SignBatch {
  /** Unique per batch; sent upstream as the request's externalReference. */
  batchId: string;
  tenant: string;
  signatureType: SignatureType;
  documents: BatchDocument[];
}

export interface SignedDocument {
  ok: true;
  docId: string;
  /** Where the signed result was written: the document's resultPath. */
  path: string;
  size: number;
  sha256: string;
  contentType: string;
  /** Suggested download file name. */
  fileName: string;
}

export interface FailedDocument {
  ok: false;
  docId: string;
  error: SignspoolError;
}

export type DocumentResult = SignedDocument | FailedDocument;

/** What a signer can tell of itself, for status views (no secret). */
export interface SignerStatus {
  /** When the current OAuth token expires (ms since the epoch). */
  tokenValidUntil?: number;
  /** The certificate a local signer signs with. */
  certificate?: { subject: string; notAfter: number };
}

export interface Signer {
  readonly name: string;
  start(): Promise<void>;
  /** Optional: token and certificate facts for GET /v1/admin/signers and metrics. */
  status?(): SignerStatus;
  /**
   * Signs a batch. Returns one result per document (any order). Throws a SignspoolError when the
   * whole batch failed (network, auth, 429/5xx, or a rejection caused by one document: code
   * UPSTREAM_DOCUMENT_REJECTED, which the caller resolves by bisecting the batch).
   */
  signBatch(batch: SignBatch, signal: AbortSignal): Promise<DocumentResult[]>;
  /** Idempotent. */
  stop(): Promise<void>;
}
