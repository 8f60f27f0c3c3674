/**
 * What an operation looks like: the records kept in Redis (one hash per operation, one
 * `doc:<docId>` field per document), how a fresh one is built and how a stored one is parsed.
 */
import { z } from 'zod';
import type { ErrorCode } from '../errors.js';
import type { DocumentStatus, OperationStatus } from './states.js';
import { SIGNATURE_TYPES, type SignatureType } from '../queue.js';
import { DEFAULT_SIGNER } from '../signers/identities.js';

/** What the api learns of an uploaded document; every later view starts from these fields. */
export const documentFileSchema = z.object({
  id: z.string(),
  name: z.string(),
  contentType: z.string(),
  size: z.number(),
  sha256: z.string(),
});
export type NewDocument = z.infer<typeof documentFileSchema>;

export const signedResultSchema = z.object({
  size: z.number(),
  sha256: z.string(),
  contentType: z.string(),
  fileName: z.string(),
  /** Name tag of the result file in the spool (one per signing attempt); absent on older records. */
  file: z.string().optional(),
  signedAt: z.number(),
});
export type SignedResult = z.infer<typeof signedResultSchema>;

/** A document as stored (a JSON `doc:<docId>` field, changed by the Lua scripts as it moves). */
export interface DocumentRecord extends NewDocument {
  status: DocumentStatus;
  acceptedAt: number;
  updatedAt: number;
  attempts: number;
  /** The batch that holds the document while it is `signing`. */
  claim?: string | undefined;
  error?: { code: string; message: string } | undefined;
  signed?: SignedResult | undefined;
}

export interface OperationRecord {
  id: string;
  tenant: string;
  /** The signing identity that signs its documents (records from before identities: `default`). */
  signer: string;
  signatureType: SignatureType;
  externalReference: string | undefined;
  webhookUrl: string | undefined;
  status: OperationStatus;
  createdAt: number;
  updatedAt: number;
  completedAt: number | undefined;
  cancelRequested: boolean;
  counts: Record<DocumentStatus, number>;
  documents: DocumentRecord[];
}

export interface NewOperation {
  id: string;
  tenant: string;
  signer: string;
  signatureType: SignatureType;
  externalReference: string | undefined;
  webhookUrl?: string | undefined;
  createdAt: number;
  documents: NewDocument[];
}

/** A document move; `claim` is the batch id of the worker making it (see operation-states.ts). */
export type DocumentUpdate = { docId: string; claim?: string } & (
  | { to: 'signing' | 'queued' | 'canceled' }
  | { to: 'failed'; error: { code: ErrorCode; message: string } }
  | { to: 'signed'; signed: Omit<SignedResult, 'signedAt'> }
);

export interface TransitionResult {
  /** Documents that moved. */
  applied: string[];
  /** Documents that could not move, with the state they are in ('missing' when unknown, 'accepting' while the submission is not committed). */
  rejected: { docId: string; status: DocumentStatus | 'missing' | 'accepting' }[];
  /** The operation's status after the change ('missing' when the record does not exist). */
  status: OperationStatus | 'missing';
  /** True when this very call made the operation terminal. */
  becameTerminal: boolean;
  /** True when the operation has a webhook endpoint. */
  webhook: boolean;
}

const documentOf = (d: NewDocument, at: number): DocumentRecord => ({ ...d, status: 'queued', acceptedAt: at, updatedAt: at, attempts: 0 });

/** The record of an operation as the store writes it (what a fresh submission looks like). */
export const newOperationRecord = (op: NewOperation): OperationRecord => ({
  id: op.id,
  tenant: op.tenant,
  signer: op.signer,
  signatureType: op.signatureType,
  externalReference: op.externalReference,
  webhookUrl: op.webhookUrl,
  status: 'queued',
  createdAt: op.createdAt,
  updatedAt: op.createdAt,
  completedAt: undefined,
  cancelRequested: false,
  counts: { queued: op.documents.length, signing: 0, signed: 0, failed: 0, canceled: 0 },
  documents: op.documents.map((d) => documentOf(d, op.createdAt)),
});

/** The hash fields of a new operation record (`accepting` until its jobs are enqueued). */
export const operationFields = (op: NewOperation): Record<string, string> => {
  const n = String(op.documents.length);
  const fields: Record<string, string> = {
    id: op.id,
    tenant: op.tenant,
    signer: op.signer,
    signatureType: op.signatureType,
    status: 'queued',
    createdAt: String(op.createdAt),
    updatedAt: String(op.createdAt),
    total: n,
    n_queued: n,
    n_signing: '0',
    n_signed: '0',
    n_failed: '0',
    n_canceled: '0',
    cancelRequested: '0',
    accepting: '1',
    order: JSON.stringify(op.documents.map((d) => d.id)),
  };
  if (op.externalReference !== undefined) fields['externalReference'] = op.externalReference;
  if (op.webhookUrl !== undefined) fields['webhookUrl'] = op.webhookUrl;
  for (const d of op.documents) fields[`doc:${d.id}`] = JSON.stringify(documentOf(d, op.createdAt));
  return fields;
};

const isSignatureType = (v: string | undefined): v is SignatureType => (SIGNATURE_TYPES as readonly (string | undefined)[]).includes(v);

const num = (v: string | undefined): number => (v === undefined ? 0 : Number(v));

/**
 * A stored record, as written by operationFields and the Lua scripts (never by a client): its
 * documents are parsed as JSON, not validated again by a schema on every read (each status read
 * parses its record). Records from before `attempts` read as 0 attempts.
 */
export const parseOperation = (h: Record<string, string>): OperationRecord => {
  const order = JSON.parse(h['order'] ?? '[]') as string[];
  const documents: DocumentRecord[] = [];
  for (const id of order) {
    const raw = h[`doc:${id}`];
    if (raw === undefined) continue;
    const d = JSON.parse(raw) as DocumentRecord;
    d.attempts ??= 0;
    documents.push(d);
  }
  const signatureType = h['signatureType'];
  if (!isSignatureType(signatureType))
    throw new Error(`operation ${h['id'] ?? '?'}: stored signatureType ${String(signatureType)} is not one of ${SIGNATURE_TYPES.join(', ')}`);
  return {
    id: h['id'] ?? '',
    tenant: h['tenant'] ?? '',
    signer: h['signer'] ?? DEFAULT_SIGNER,
    signatureType,
    externalReference: h['externalReference'],
    webhookUrl: h['webhookUrl'],
    status: (h['status'] ?? 'queued') as OperationStatus,
    createdAt: num(h['createdAt']),
    updatedAt: num(h['updatedAt']),
    completedAt: h['completedAt'] === undefined ? undefined : num(h['completedAt']),
    cancelRequested: h['cancelRequested'] === '1',
    counts: {
      queued: num(h['n_queued']),
      signing: num(h['n_signing']),
      signed: num(h['n_signed']),
      failed: num(h['n_failed']),
      canceled: num(h['n_canceled']),
    },
    documents,
  };
};
