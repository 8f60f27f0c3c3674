/**
 * Reading and writing spool files on the calling thread, except fsync and file creation, which
 * stay on libuv's pool: page-cache work costs a few microseconds, a pool round trip several times
 * that (figures in docs/performance.md and docs/design.md, `npm run bench:fs`). Each call moves at most
 * MAX_IO_BYTES, so the event loop is held for tens of microseconds at a time.
 */
import { closeSync, constants, fsync, ftruncateSync, open, openSync, writevSync } from 'node:fs';
import { createHash, type Hash } from 'node:crypto';
import { Writable, type Readable } from 'node:stream';

/** The largest read or write done in one call. */
export const MAX_IO_BYTES = 1024 * 1024;

/** fsyncs a descriptor on the thread pool. */
export const fsyncFd = (fd: number): Promise<void> =>
  new Promise((resolve, reject) => {
    fsync(fd, (err) => (err ? reject(err) : resolve()));
  });

/**
 * How a file is opened for writing: `wx` creates it (and fails if it exists); `overwrite` writes
 * over an existing file from its start without truncating it first, and the writer cuts it to the
 * length it wrote when it finishes (`finishOverwrite`). Overwriting keeps the file's blocks and its
 * cached pages: writing 200 KB over them cost 27 µs of CPU here, against 104–125 µs into a new or
 * truncated file (new page-cache pages and block allocation; `npm run bench:fs`).
 */
export type WriteMode = 'wx' | 'overwrite';

/**
 * Opens on the thread pool: creating a file is the one call here whose cost is not small and not
 * predictable (on a journal-less ext4 the allocator walks past every inode deleted in the last
 * minutes: 60 µs to over 1 ms per file, bench section 1's row), so it must not hold the event loop.
 */
export const openFile = (file: string, flags: 'r' | WriteMode): Promise<number> =>
  new Promise((resolve, reject) => {
    open(file, flags === 'overwrite' ? constants.O_WRONLY : flags, (err, fd) => (err ? reject(err) : resolve(fd)));
  });

/** Opens a file to write: a spare (`overwrite`, an existing file, no creation) on the calling thread, a new one on the thread pool (openFile). */
export const openForWrite = async (file: string, mode: WriteMode): Promise<number> =>
  mode === 'overwrite' ? openSync(file, constants.O_WRONLY) : openFile(file, mode);

/** Cuts an overwritten file to the `length` bytes just written (a no-op for a file created new). */
export const finishOverwrite = (fd: number, mode: WriteMode, length: number): void => {
  if (mode === 'overwrite') ftruncateSync(fd, length);
};

/** Writes all of `buffers` at the descriptor's position (writev may write less than asked). */
export const writeAll = (fd: number, buffers: Buffer[]): void => {
  let left = buffers.filter((b) => b.length > 0);
  while (left.length > 0) {
    let n = writevSync(fd, left);
    const rest: Buffer[] = [];
    for (const b of left) {
      if (n >= b.length) n -= b.length;
      else {
        rest.push(n > 0 ? b.subarray(n) : b);
        n = 0;
      }
    }
    left = rest;
  }
};

/**
 * A writable stream to a new or reused file: writes on the calling thread, and at the end an
 * fsync on the thread pool before the descriptor is closed (what `createWriteStream` with
 * `flush: true` does, with one pool round trip instead of one per call). It counts what it
 * writes and, with `sha256`, hashes it on the way (no Transform in front of it).
 */
export class SpoolWriteStream extends Writable {
  private fd: number | undefined;
  private written = 0;
  private readonly hash: Hash | undefined;

  constructor(
    readonly path: string,
    private readonly flags: WriteMode,
    opts: { sha256?: boolean } = {},
  ) {
    super({ highWaterMark: MAX_IO_BYTES });
    this.hash = opts.sha256 ? createHash('sha256') : undefined;
  }

  /** Bytes written so far. */
  get bytes(): number {
    return this.written;
  }

  /** sha256 (hex) of everything written; only with `sha256`, once, after the stream finished. */
  digest(): string {
    if (!this.hash) throw new Error('SpoolWriteStream: constructed without sha256');
    return this.hash.digest('hex');
  }

  override _construct(cb: (err?: Error | null) => void): void {
    openFile(this.path, this.flags).then(
      (fd) => {
        this.fd = fd;
        cb();
      },
      (err: unknown) => cb(err as Error),
    );
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this._writev([{ chunk }], cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    try {
      if (this.fd === undefined) throw new Error('file not open');
      const buffers = chunks.map((c) => c.chunk);
      writeAll(this.fd, buffers);
      for (const b of buffers) {
        this.written += b.length;
        this.hash?.update(b);
      }
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    const fd = this.fd;
    if (fd === undefined) return cb(new Error('file not open'));
    try {
      finishOverwrite(fd, this.flags, this.written);
    } catch (err) {
      return cb(err as Error);
    }
    fsyncFd(fd).then(
      () => cb(),
      (err: unknown) => cb(err as Error),
    );
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const fd = this.fd;
    this.fd = undefined;
    try {
      if (fd !== undefined) closeSync(fd);
      cb(err);
    } catch (closeErr) {
      cb(err ?? (closeErr as Error));
    }
  }
}

/**
 * Pipes `source` into `dest` and resolves once `dest` has finished and closed (for a
 * SpoolWriteStream: written, fsynced and its descriptor closed); rejects, with `dest` destroyed,
 * when either side fails or the source closes before its end. What `stream.pipeline` does for two
 * streams, without its per-call AbortController (whose abort at the end builds a DOMException with
 * a stack trace: measurable at hundreds of uploads per second).
 */
export const pipeInto = (source: Readable, dest: Writable): Promise<void> =>
  new Promise((resolve, reject) => {
    let settled = false;
    const onSourceError = (err: Error): void => void dest.destroy(err);
    const onSourceClose = (): void => {
      if (!source.readableEnded) dest.destroy(new Error('the source closed before its end'));
    };
    const settle = (err: Error | undefined): void => {
      if (settled) return;
      settled = true;
      source.off('error', onSourceError);
      source.off('close', onSourceClose);
      if (err) reject(err);
      else resolve();
    };
    source.once('error', onSourceError);
    source.once('close', onSourceClose);
    dest.once('error', settle);
    dest.once('close', () => settle(dest.writableFinished ? undefined : new Error('the destination closed before it finished')));
    // A source that failed or closed before this call emits nothing more: fail now, not never.
    if (source.destroyed && !source.readableEnded) {
      dest.destroy(source.errored ?? new Error('the source closed before its end'));
      return;
    }
    source.pipe(dest);
  });

/**
 * A file written piece by piece on the calling thread, without a stream: opened on the pool,
 * written with `writeAll`, cut to its length when it overwrote a spare, fsynced on the pool and
 * closed by `finish`. For writers that produce their bytes themselves (the local signer's results).
 */
export class FileWriter {
  private written = 0;

  private constructor(
    readonly path: string,
    private fd: number | undefined,
    private readonly mode: WriteMode,
  ) {}

  /** A spare (`overwrite`) is opened on the calling thread, a new file on the thread pool (openForWrite). */
  static async open(file: string, mode: WriteMode = 'wx'): Promise<FileWriter> {
    return new FileWriter(file, await openForWrite(file, mode), mode);
  }

  /** Bytes written so far. */
  get bytes(): number {
    return this.written;
  }

  /** Writes the chunks in order, in one writev when it takes them all. */
  write(...chunks: Buffer[]): void {
    if (this.fd === undefined) throw new Error(`${this.path} is closed`);
    writeAll(this.fd, chunks);
    for (const c of chunks) this.written += c.length;
  }

  /** Cuts a reused file to what was written, fsyncs it (on the pool) and closes it. */
  async finish(): Promise<void> {
    const fd = this.fd;
    if (fd === undefined) throw new Error(`${this.path} is closed`);
    try {
      finishOverwrite(fd, this.mode, this.written);
      await fsyncFd(fd);
    } finally {
      this.fd = undefined;
      closeSync(fd);
    }
  }

  /** Closes the file without finishing it (error paths). Idempotent. */
  abort(): void {
    const fd = this.fd;
    this.fd = undefined;
    try {
      if (fd !== undefined) closeSync(fd);
    } catch {
      // already gone: nothing to release
    }
  }
}
