/**
 * Reads the body of POST /v1/operations: the request's chunks go through the multipart parser
 * (multipart.ts), and each file part is written straight into spool/incoming/<shard>/<opId>.<docId>
 * on the calling thread while its sha256 and size are computed, then fsynced on the pool and
 * closed. The request's total-bytes limit and the fields that precede the files are checked as the
 * bytes arrive. Nothing is held in memory beyond the chunk being written (a file still being opened
 * holds the body's reading until it is). On a refusal, a parse error or a client gone, reading
 * stops, the body is drained, the files are closed and removed, and the promise rejects once
 * nothing is in flight.
 */
import type { IncomingMessage } from 'node:http';
import { closeSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createHash, type Hash } from 'node:crypto';
import { SignspoolError } from '@signspool/shared/errors';
import { ATTR, recordError, SPANS, tracer, type Context, type Span } from '@signspool/shared/spans';
import { fsyncFd, openFile, writeAll } from '@signspool/shared/spool/file-io';
import { newId, type Spool } from '@signspool/shared/spool/spool';
import { boundaryOf, MultipartParser, type FilePart, type MultipartLimits, type PartSink } from './multipart.js';

/** Per-request upload state, created by the route before the body is read. */
export interface UploadContext {
  opId: string;
  totalBytes: number;
  maxTotalBytes: number;
  /** By part index; complete once the body was read. */
  files: SpooledFile[];
  /** The form's fields (a repeated name holds a list), complete once the body was read. */
  fields: Record<string, unknown>;
  /** The request's trace context: each file's spool.write span is its child. */
  traceContext: Context;
  /**
   * Called with the fields read so far when a file part arrives, before anything of it is
   * written; throwing refuses the upload with that error (nothing is stored).
   */
  checkFields?: (fields: Record<string, unknown>) => void;
}

export interface SpooledFile {
  docId: string;
  path: string;
  size: number;
  sha256: string;
  originalName: string;
  mimeType: string;
}

/** One file part on its way to the spool. */
class PartFile {
  readonly docId = newId('doc');
  readonly path: string;
  readonly span: Span;
  private readonly hash: Hash = createHash('sha256');
  private fd: number | undefined;
  bytes = 0;
  /** Bytes that arrived while the file was being opened. */
  private queued: Buffer[] | undefined = [];
  /** Settles once the file is open (or failed to open). */
  readonly opened: Promise<void>;
  /** Settles once the file is fsynced and closed, after its last byte. */
  finished: Promise<void> | undefined;

  constructor(
    readonly index: number,
    readonly part: FilePart,
    private readonly receiver: UploadReceiver,
    spool: Spool,
    ctx: UploadContext,
  ) {
    this.path = spool.incomingPath(ctx.opId, this.docId);
    this.span = tracer.startSpan(SPANS.spoolWrite, { attributes: { [ATTR.operationId]: ctx.opId, [ATTR.documentId]: this.docId } }, ctx.traceContext);
    this.opened = receiver.dir().then(async () => {
      // Opened on the pool (creating a file may take long: shared/spool/file-io.ts); not once the upload failed.
      if (receiver.failed) return;
      this.fd = await openFile(this.path, 'wx');
      const queued = this.queued ?? [];
      this.queued = undefined;
      if (queued.length > 0) writeAll(this.fd, queued);
    });
  }

  write(chunk: Buffer): void {
    this.bytes += chunk.length;
    this.hash.update(chunk);
    if (this.fd !== undefined) writeAll(this.fd, [chunk]);
    else this.queued?.push(chunk);
  }

  /** After the last byte: fsync and close; the file is then recorded in ctx.files. */
  end(ctx: UploadContext): void {
    this.finished = this.opened.then(async () => {
      if (this.receiver.failed) return;
      if (this.bytes === 0) {
        throw new SignspoolError('EMPTY_FILE', {
          detail: `file part ${this.index + 1} carries no bytes: empty documents are not signed`,
          extensions: { part: this.index + 1 },
        });
      }
      const fd = this.fd;
      if (fd === undefined) throw new Error('file not open');
      await fsyncFd(fd);
      this.close();
      ctx.files[this.index] = {
        docId: this.docId,
        path: this.path,
        size: this.bytes,
        sha256: this.hash.digest('hex'),
        originalName: this.part.filename,
        mimeType: this.part.mimeType,
      };
      this.span.setAttribute(ATTR.bytes, this.bytes);
      this.span.end();
    });
    this.finished.catch((err: unknown) => this.receiver.fail(err));
  }

  close(): void {
    const fd = this.fd;
    this.fd = undefined;
    if (fd !== undefined) closeSync(fd);
  }

  /** After a failure, once nothing of this file is in flight: closed and removed. */
  async discard(err: Error): Promise<void> {
    await Promise.allSettled([this.opened, this.finished]);
    this.close();
    recordError(this.span, err);
    this.span.end();
    await rm(this.path, { force: true });
  }
}

class UploadReceiver implements PartSink {
  failed: Error | undefined;
  private readonly parser: MultipartParser;
  private readonly files: PartFile[] = [];
  private current: PartFile | undefined;
  /** Files being opened: the body is not read meanwhile. */
  private opening = 0;
  private madeDir: Promise<void> | undefined;
  private settle: (err?: Error) => void = () => undefined;
  readonly done: Promise<void>;

  constructor(
    private readonly req: IncomingMessage,
    private readonly ctx: UploadContext,
    private readonly spool: Spool,
    limits: MultipartLimits,
  ) {
    this.done = new Promise((resolve, reject) => (this.settle = (err) => (err ? reject(err) : resolve())));
    this.parser = new MultipartParser(boundaryOf(req.headers['content-type']), limits, this);
  }

  start(): void {
    const { req } = this;
    req.on('data', this.onData);
    req.once('end', this.onEnd);
    req.once('aborted', () => this.fail(new Error('Request aborted')));
    req.once('error', (err) => this.fail(err));
    req.once('close', () => {
      if (!req.readableEnded) this.fail(new Error('Request closed'));
    });
  }

  /** The operation's directory, made once. */
  dir(): Promise<void> {
    this.madeDir ??= this.spool.ensureDir(this.spool.incomingDir(this.ctx.opId));
    return this.madeDir;
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.failed) return;
    try {
      this.parser.write(chunk);
    } catch (err) {
      this.fail(err);
    }
  };

  private readonly onEnd = (): void => {
    if (this.failed) return;
    try {
      this.parser.end();
    } catch (err) {
      this.fail(err);
      return;
    }
    void Promise.all(this.files.map((f) => f.finished)).then(() => {
      if (!this.failed) this.settle();
    }, this.fail);
  };

  field(name: string, value: string): void {
    const fields = this.ctx.fields;
    const had = fields[name];
    fields[name] = had === undefined ? value : Array.isArray(had) ? [...(had as unknown[]), value] : [had, value];
  }

  fileStart(part: FilePart): void {
    this.ctx.checkFields?.(this.ctx.fields);
    const file = new PartFile(this.files.length, part, this, this.spool, this.ctx);
    this.files.push(file);
    this.current = file;
    // The body waits while the file is opened (what arrives meanwhile is held, at most a chunk).
    this.opening++;
    this.req.pause();
    file.opened.then(() => {
      if (--this.opening === 0 && !this.failed) this.req.resume();
    }, this.fail);
  }

  fileData(chunk: Buffer): void {
    const ctx = this.ctx;
    ctx.totalBytes += chunk.length;
    if (ctx.totalBytes > ctx.maxTotalBytes) {
      throw new SignspoolError('REQUEST_TOO_LARGE', {
        detail: `the documents of one request may total at most ${ctx.maxTotalBytes} bytes`,
        extensions: { limit: ctx.maxTotalBytes },
      });
    }
    this.current?.write(chunk);
  }

  fileEnd(): void {
    this.current?.end(this.ctx);
    this.current = undefined;
  }

  /** Stops reading: the body is drained, the files closed and removed; rejects with `err` once the request is over. */
  readonly fail = (cause: unknown): void => {
    if (this.failed) return;
    const err = cause instanceof Error ? cause : new Error(String(cause));
    this.failed = err;
    const { req } = this;
    req.off('data', this.onData);
    req.resume();
    const requestOver = new Promise<void>((resolve) => {
      // As multer: a refusal is answered once the client has sent its body (no EPIPE on its side).
      if (!req.readable || req.destroyed) return resolve();
      req.once('end', resolve);
      req.once('error', () => resolve());
      req.once('close', resolve);
    });
    void Promise.allSettled(this.files.map((f) => f.discard(err)))
      .then(() => requestOver)
      .then(() => this.settle(err));
  };
}

/** A handle on a body being read: stop() refuses it now (upload/gate.ts, on a timeout or a refusal). */
export interface BodyReading {
  stop(err: Error): void;
}

/**
 * Reads the multipart body of `req` into the spool (files) and ctx.fields; resolves once every
 * file is fsynced and closed. `track` receives the handle that stops it.
 */
export const receiveUpload = (
  req: IncomingMessage,
  ctx: UploadContext,
  spool: Spool,
  limits: MultipartLimits,
  track?: (reading: BodyReading) => void,
): Promise<void> => {
  let receiver: UploadReceiver;
  try {
    receiver = new UploadReceiver(req, ctx, spool, limits);
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
  track?.({ stop: receiver.fail });
  receiver.start();
  return receiver.done;
};
