/**
 * The multer StorageEngine of POST /v1/operations: streams each file part straight into
 * spool/incoming/<shard>/<opId>.<docId> while computing its sha256 and size, enforces the per-request
 * total-bytes limit (multer enforces per-file size and counts), and fsyncs each file. Nothing is
 * held in memory beyond the stream's buffers. Fields that precede the files (the signing identity)
 * are checked as the first file part arrives, before anything of it is written.
 */
import { rm } from 'node:fs/promises';
import type { Request } from 'express';
import type { StorageEngine } from 'multer';
import { SignspoolError } from '@signspool/shared/errors';
import { ATTR, recordError, SPANS, tracer, type Context } from '@signspool/shared/spans';
import { pipeInto, SpoolWriteStream } from '@signspool/shared/spool/file-io';
import { newId, type Spool } from '@signspool/shared/spool/spool';

/** Per-request upload state, created by the route before multer runs. */
export interface UploadContext {
  opId: string;
  totalBytes: number;
  maxTotalBytes: number;
  /** File parts seen so far. */
  partCount: number;
  /** By part index; complete once multer has finished. */
  files: SpooledFile[];
  /** The request's trace context: each file's spool.write span is its child (parts arrive outside it). */
  traceContext: Context;
  /**
   * Called with the fields parsed so far when a file part arrives, before anything of it is
   * written; throwing refuses the upload with that error (nothing is stored).
   */
  checkFields?: (fields: unknown) => void;
}

export interface SpooledFile {
  docId: string;
  path: string;
  size: number;
  sha256: string;
  originalName: string;
  mimeType: string;
}

const contexts = new WeakMap<Request, UploadContext>();

export const setUploadContext = (req: Request, ctx: UploadContext): void => {
  contexts.set(req, ctx);
};

export const getUploadContext = (req: Request): UploadContext | undefined => contexts.get(req);

/** Writes a file part to the spool, hashing it, and enforces the request's total-bytes limit (no stream hop in between). */
class UploadFileStream extends SpoolWriteStream {
  constructor(
    target: string,
    private readonly ctx: UploadContext,
  ) {
    super(target, 'wx', { sha256: true });
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    for (const { chunk } of chunks) this.ctx.totalBytes += chunk.length;
    if (this.ctx.totalBytes > this.ctx.maxTotalBytes) {
      cb(
        new SignspoolError('REQUEST_TOO_LARGE', {
          detail: `the documents of one request may total at most ${this.ctx.maxTotalBytes} bytes`,
          extensions: { limit: this.ctx.maxTotalBytes },
        }),
      );
      return;
    }
    super._writev(chunks, cb);
  }
}

export const createSpoolStorage = (spool: Spool): StorageEngine => ({
  _handleFile(req, file, cb) {
    const ctx = contexts.get(req as Request);
    if (!ctx) {
      cb(new Error('upload context missing'));
      return;
    }
    try {
      ctx.checkFields?.((req as Request).body);
    } catch (err) {
      file.stream.resume();
      cb(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    const docId = newId('doc');
    // Files finish writing in any order; their documents keep the order of the parts.
    const index = ctx.partCount++;
    const target = spool.incomingPath(ctx.opId, docId);
    const span = tracer.startSpan(SPANS.spoolWrite, { attributes: { [ATTR.operationId]: ctx.opId, [ATTR.documentId]: docId } }, ctx.traceContext);
    void (async () => {
      await spool.ensureDir(spool.incomingDir(ctx.opId));
      // The part may have failed (client gone, body cut) while the directory was made: no file then.
      if (file.stream.destroyed && !file.stream.readableEnded) throw file.stream.errored ?? new Error('the upload ended before this file did');
      // Written on the calling thread, fsynced on its own descriptor before it is closed (shared/spool/file-io.ts).
      const out = new UploadFileStream(target, ctx);
      await pipeInto(file.stream, out);
      if (out.bytes === 0)
        throw new SignspoolError('EMPTY_FILE', {
          detail: `file part ${index + 1} carries no bytes: empty documents are not signed`,
          extensions: { part: index + 1 },
        });
      const spooled: SpooledFile = {
        docId,
        path: target,
        size: out.bytes,
        sha256: out.digest(),
        originalName: file.originalname,
        mimeType: file.mimetype,
      };
      ctx.files[index] = spooled;
      return spooled;
    })().then(
      (spooled) => {
        span.setAttribute(ATTR.bytes, spooled.size);
        span.end();
        cb(null, { path: spooled.path, size: spooled.size, filename: spooled.docId });
      },
      (err: unknown) => {
        recordError(span, err);
        span.end();
        void rm(target, { force: true }).finally(() => cb(err instanceof Error ? err : new Error(String(err))));
      },
    );
  },
  _removeFile(_req, file, cb) {
    rm(file.path, { force: true }).then(
      () => cb(null),
      (err: unknown) => cb(err instanceof Error ? err : new Error(String(err))),
    );
  },
});
