/**
 * Room in the spool for work already accepted. Acknowledged documents must always be able to end:
 * the worker needs room to write their signed results, so the api stops admitting uploads while
 * that room is still there. The api's floor is SPOOL_MIN_FREE_BYTES plus the room of one full batch
 * of results (`batchResultRoom`); the worker's floor is SPOOL_MIN_FREE_BYTES, and it sends a batch
 * only when the batch's results fit above it (smaller batches when they do not). A signed batch
 * retires its uploads, so one batch's room lets the worker work through any backlog.
 */
import type { Config } from '../config.js';

/** What a signature may add to a document (PAdES/XAdES/CAdES with certificates and a timestamp), per document. */
export const RESULT_OVERHEAD_BYTES = 32 * 1024;

/** Room the signed results of `bytes` of documents in `docs` documents need. */
export const resultRoom = (bytes: number, docs: number): number => bytes + docs * RESULT_OVERHEAD_BYTES;

/** Room the results of the largest batch the worker may send need. */
export const batchResultRoom = (c: Pick<Config, 'batch' | 'upload'>): number =>
  resultRoom(Math.min(c.batch.maxBytes, c.batch.maxDocs * c.upload.maxFileBytes), c.batch.maxDocs);

/** The api's free-space floor: below it (counting uploads being read) new uploads get 507. */
export const apiSpoolFloor = (c: Pick<Config, 'batch' | 'upload' | 'spoolMinFreeBytes'>): number => c.spoolMinFreeBytes + batchResultRoom(c);
