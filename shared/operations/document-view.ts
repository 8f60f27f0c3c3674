/**
 * The public representation of a document, built in one place for the status response and the
 * webhook event (the event adds nothing and leaves out nothing but the signed result's details).
 */
import type { DocumentRecord } from './record.js';

export const operationPath = (opId: string): string => `/v1/operations/${opId}`;
export const documentPath = (opId: string, docId: string): string => `${operationPath(opId)}/documents/${docId}`;

/** `baseUrl` is '' for API answers (relative links) and PUBLIC_URL in webhook events. */
export const documentView = (opId: string, d: DocumentRecord, baseUrl = '') => ({
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
export type DocumentView = ReturnType<typeof documentView>;
