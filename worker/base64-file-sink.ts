/**
 * Writes base64 text, arriving in chunks, to a file as decoded bytes, counting and hashing them:
 * how a document carried as a JSON base64 string reaches the disk without being held in memory.
 */
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { Base64Decoder } from './base64-stream.js';

export class Base64FileSink {
  private readonly decoder = new Base64Decoder();
  private readonly hash = createHash('sha256');
  size = 0;

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
  ) {}

  static async open(path: string, flags = 'wx'): Promise<Base64FileSink> {
    return new Base64FileSink(path, await open(path, flags));
  }

  private async write(bytes: Buffer): Promise<void> {
    if (bytes.length === 0) return;
    this.hash.update(bytes);
    this.size += bytes.length;
    await this.fh.write(bytes);
  }

  push(chunk: Buffer): Promise<void> {
    return this.write(this.decoder.push(chunk));
  }

  /** Decodes the rest and closes the file; returns size and sha256 of the decoded bytes. */
  async end(): Promise<{ size: number; sha256: string }> {
    await this.write(this.decoder.end());
    await this.fh.close();
    return { size: this.size, sha256: this.hash.digest('hex') };
  }

  /** Closes the file without finishing (error paths). */
  async abort(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }
}
