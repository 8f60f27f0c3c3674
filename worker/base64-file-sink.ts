/**
 * Base64 text, arriving in chunks, decoded on the fly and counted and hashed: how a document
 * carried as a JSON base64 string reaches storage without being held in memory. `Base64Sink`
 * does the decoding; `Base64FileSink` stores the bytes in a file (the adapter's signed results).
 */
import { createHash } from 'node:crypto';
import { closeSync } from 'node:fs';
import { finishOverwrite, fsyncFd, openFile, writeAll, type WriteMode } from '@signspool/shared/page-cache-io';
import { Base64Decoder } from './base64-stream.js';

export interface DecodedContent {
  size: number;
  sha256: string;
}

/** Decodes, counts and hashes; subclasses store the decoded bytes. */
export abstract class Base64Sink {
  private readonly decoder = new Base64Decoder();
  private readonly hash = createHash('sha256');
  size = 0;

  /** Decodes a chunk of base64 text and stores the bytes. */
  push(text: Buffer): Promise<void> {
    return this.accept(this.decoder.push(text));
  }

  /** Decodes the rest; returns size and sha256 of all decoded bytes. */
  protected async finishDecoding(): Promise<DecodedContent> {
    await this.accept(this.decoder.end());
    // A copy is digested: the running hash can still be continued (`digestWithSuffix`).
    return { size: this.size, sha256: this.hash.copy().digest('hex') };
  }

  /**
   * sha256 of the decoded bytes followed by `suffix`, without reading the bytes again (once, after
   * decoding has finished).
   */
  protected digestWithSuffix(suffix: Buffer): string {
    return this.hash.update(suffix).digest('hex');
  }

  protected abstract store(bytes: Buffer): Promise<void>;

  private async accept(bytes: Buffer): Promise<void> {
    if (bytes.length === 0) return;
    this.hash.update(bytes);
    this.size += bytes.length;
    await this.store(bytes);
  }
}

/** Decoded bytes gathered before one write (a response chunk decodes to at most 48 KiB). */
const WRITE_CHUNK = 1024 * 1024;

export class Base64FileSink extends Base64Sink {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  private constructor(
    readonly path: string,
    private fd: number | undefined,
    private readonly mode: WriteMode,
  ) {
    super();
  }

  /** Opens and fsyncs on the thread pool, writes and closes on the calling thread: shared/page-cache-io.ts. */
  static async open(path: string, mode: WriteMode = 'wx'): Promise<Base64FileSink> {
    return new Base64FileSink(path, await openFile(path, mode), mode);
  }

  /** Decodes and writes the rest (a reused file is cut to it); returns size and sha256. The file stays open: `close` it. */
  async finish(): Promise<DecodedContent> {
    const content = await this.finishDecoding();
    this.flush();
    finishOverwrite(this.openFd(), this.mode, this.size);
    return content;
  }

  /** Closes the file, fsyncing it first when `sync` (a commit then needs no second open). */
  async close(opts: { sync?: boolean } = {}): Promise<void> {
    const fd = this.openFd();
    try {
      if (opts.sync) await fsyncFd(fd);
    } finally {
      this.fd = undefined;
      closeSync(fd);
    }
  }

  /** Closes the file without finishing (error paths). Idempotent. */
  abort(): Promise<void> {
    const fd = this.fd;
    this.fd = undefined;
    try {
      if (fd !== undefined) closeSync(fd);
    } catch {
      // already gone: nothing to release
    }
    return Promise.resolve();
  }

  protected store(bytes: Buffer): Promise<void> {
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
    if (this.pendingBytes >= WRITE_CHUNK) this.flush();
    return Promise.resolve();
  }

  private flush(): void {
    const buffers = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    if (buffers.length > 0) writeAll(this.openFd(), buffers);
  }

  private openFd(): number {
    if (this.fd === undefined) throw new Error(`${this.path} is closed`);
    return this.fd;
  }
}
