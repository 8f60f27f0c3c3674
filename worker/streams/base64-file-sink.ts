/**
 * Base64 text, arriving in chunks, decoded on the fly and counted and hashed: how a document
 * carried as a JSON base64 string reaches storage without being held in memory. `Base64Sink`
 * does the decoding; `Base64FileSink` stores the bytes in a file (the adapter's signed results).
 */
import { createHash } from 'node:crypto';
import { closeSync } from 'node:fs';
import { finishOverwrite, fsyncFd, openForWrite, writeAll, type WriteMode } from '@signspool/shared/spool/file-io';
import { Base64Decoder } from './base64-stream.js';

export interface DecodedContent {
  size: number;
  sha256: string;
}

/** Decodes, counts and hashes; subclasses store the decoded bytes. */
export abstract class Base64Sink {
  private readonly decoder = new Base64Decoder();
  private readonly hash = createHash('sha256');
  private readonly accept = (bytes: Buffer): void => {
    this.hash.update(bytes);
    this.size += bytes.length;
    this.store(bytes);
  };
  size = 0;

  /** Decodes a chunk of base64 text and stores the bytes. */
  push(text: Buffer): Promise<void> {
    this.decoder.push(text, this.accept);
    return Promise.resolve();
  }

  /** Decodes the rest; returns size and sha256 of all decoded bytes. */
  protected finishDecoding(): DecodedContent {
    this.decoder.end(this.accept);
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

  /**
   * Stores decoded bytes. They are a view of the decoder's shared buffer (base64-stream.ts): use or
   * copy them before returning (hence no Promise).
   */
  protected abstract store(bytes: Buffer): void;
}

export class Base64FileSink extends Base64Sink {
  private constructor(
    readonly path: string,
    private fd: number | undefined,
    private readonly mode: WriteMode,
  ) {
    super();
  }

  /**
   * Creates a file and fsyncs on the thread pool; opens a spare (`overwrite`, an existing file),
   * writes and closes on the calling thread: shared/spool/file-io.ts.
   */
  static async open(path: string, mode: WriteMode = 'wx'): Promise<Base64FileSink> {
    return new Base64FileSink(path, await openForWrite(path, mode), mode);
  }

  /** Decodes and writes the rest (a reused file is cut to it); returns size and sha256. The file stays open: `close` it. */
  finish(): Promise<DecodedContent> {
    const content = this.finishDecoding();
    finishOverwrite(this.openFd(), this.mode, this.size);
    return Promise.resolve(content);
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

  /** Written at once, on the calling thread (page-cache work): the bytes are the decoder's shared buffer. */
  protected store(bytes: Buffer): void {
    writeAll(this.openFd(), [bytes]);
  }

  private openFd(): number {
    if (this.fd === undefined) throw new Error(`${this.path} is closed`);
    return this.fd;
  }
}
