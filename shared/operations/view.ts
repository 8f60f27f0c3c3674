/**
 * The public view of an operation, defined once: zod schemas of the document, the operation (status
 * response and listing items) and the `operation.completed` webhook event, the functions that build
 * each from a record (typed by those schemas, so a field added to one and not the other does not
 * compile), and the types the CLI and the test client import. api/openapi.ts turns the same
 * schemas into the OpenAPI document (z.toJSONSchema); the tests check real answers against them.
 */
import { z } from 'zod';
import { SIGNATURE_TYPES } from '../queue.js';
import type { WebhookAttempt } from '../webhooks/deliveries.js';
import type { DocumentRecord, OperationRecord } from './record.js';
import { DOCUMENT_STATUSES, OPERATION_STATUSES, TERMINAL_OPERATION_STATUSES } from './states.js';

export const operationPath = (opId: string): string => `/v1/operations/${opId}`;
export const documentPath = (opId: string, docId: string): string => `${operationPath(opId)}/documents/${docId}`;

export const isoDate = z.string().describe('RFC 3339 timestamp');

export const documentViewSchema = z.object({
  id: z.string(),
  name: z.string(),
  contentType: z.string(),
  size: z.number().int(),
  sha256: z.string(),
  status: z.enum(DOCUMENT_STATUSES),
  error: z
    .object({ code: z.string(), message: z.string() })
    .describe(
      'Why the document failed: a code of the catalog, e.g. DOCUMENT_NOT_SIGNABLE (the local signer cannot add this signature, e.g. an encrypted PDF), TSA_UNAVAILABLE / TSA_REJECTED / TSA_BAD_RESPONSE (time-stamp authority), SPOOL_FILE_CORRUPT, UPSTREAM_*',
    )
    .optional(),
  signed: z
    .object({
      size: z.number().int(),
      sha256: z.string(),
      contentType: z
        .string()
        .describe(
          'application/pdf (PAdES), application/xml (XAdES), application/pkcs7-signature (CAdES detached, .p7s) or application/pkcs7-mime (CAdES attached, .p7m)',
        ),
      fileName: z.string(),
      signedAt: isoDate,
      href: z.string(),
    })
    .optional(),
});
export type DocumentView = z.output<typeof documentViewSchema>;

const signerName = z
  .string()
  .describe("The signing identity (issuer) that signs its documents: the `signer` field of the submission, else the tenant's default");

export const operationViewSchema = z.object({
  id: z.string(),
  status: z.enum(OPERATION_STATUSES),
  signer: signerName,
  signatureType: z.enum(SIGNATURE_TYPES),
  externalReference: z.string().nullable(),
  createdAt: isoDate,
  updatedAt: isoDate,
  completedAt: isoDate.nullable(),
  counts: z.record(z.string(), z.number().int()),
  documents: z.array(documentViewSchema),
  webhook: z
    .object({
      url: z.string(),
      deliveries: z.array(
        z.object({
          deliveryId: z.string(),
          attempt: z.number().int(),
          at: isoDate,
          url: z.string(),
          status: z.number().int().nullable(),
          latencyMs: z.number(),
          outcome: z.enum(['delivered', 'failed', 'refused', 'disabled']),
          error: z.string().optional(),
        }),
      ),
    })
    .nullable(),
  links: z.object({ self: z.string() }),
});
export type OperationView = z.output<typeof operationViewSchema>;

/** The body of an `operation.completed` delivery. */
export const completedEventSchema = z.object({
  type: z.literal('operation.completed'),
  timestamp: isoDate,
  data: z.object({
    id: z.string(),
    status: z.enum(TERMINAL_OPERATION_STATUSES),
    externalReference: z.string().nullable(),
    signer: signerName,
    signatureType: z.enum(SIGNATURE_TYPES),
    counts: z.record(z.string(), z.number().int()),
    documents: z.array(documentViewSchema).describe('The same document view as GET /v1/operations/{id}, with absolute links (PUBLIC_URL)'),
    links: z.object({ self: z.string() }),
  }),
});
export type CompletedEvent = z.output<typeof completedEventSchema>;

/** A page of the listing (GET /v1/operations). */
export interface OperationPage {
  data: OperationView[];
  has_more: boolean;
  next_cursor: string | null;
}

/** `baseUrl` is '' for API answers (relative links) and PUBLIC_URL in webhook events. */
export const documentView = (opId: string, d: DocumentRecord, baseUrl = ''): DocumentView => ({
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
          href: `${baseUrl}${documentPath(opId, d.id)}`,
        },
      }
    : {}),
});

/** The status response and each listing item; `deliveries` are the webhook's attempts (status only). */
export const operationView = (op: OperationRecord, deliveries: WebhookAttempt[] = []): OperationView => ({
  id: op.id,
  status: op.status,
  signer: op.signer,
  signatureType: op.signatureType,
  externalReference: op.externalReference ?? null,
  createdAt: new Date(op.createdAt).toISOString(),
  updatedAt: new Date(op.updatedAt).toISOString(),
  completedAt: op.completedAt === undefined ? null : new Date(op.completedAt).toISOString(),
  counts: op.counts,
  documents: op.documents.map((d) => documentView(op.id, d)),
  webhook: op.webhookUrl
    ? {
        url: op.webhookUrl,
        deliveries: deliveries.map((d) => ({ ...d, at: new Date(d.at).toISOString() })),
      }
    : null,
  links: { self: operationPath(op.id) },
});

/** The `operation.completed` event of an ended operation: the same document view as the status response, links absolute under `publicUrl`; never document bytes. */
export const completedEvent = (op: OperationRecord, publicUrl: string): CompletedEvent => ({
  type: 'operation.completed',
  timestamp: new Date(op.completedAt ?? Date.now()).toISOString(),
  data: {
    id: op.id,
    // Announced once the operation ended (a retry racing a redelivery may have reopened it: the event says so).
    status: op.status as CompletedEvent['data']['status'],
    externalReference: op.externalReference ?? null,
    signer: op.signer,
    signatureType: op.signatureType,
    counts: op.counts,
    documents: op.documents.map((d) => documentView(op.id, d, publicUrl)),
    links: { self: `${publicUrl}${operationPath(op.id)}` },
  },
});
