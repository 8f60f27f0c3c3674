/**
 * Where the fake keeps a decoded document between request and answer: in memory while the
 * request's memory budget lasts, in a temp file after that (so 1 GB requests still work). Small
 * documents then cost the fake no file creation, fsync-free write, read and unlink each: on this
 * machine's journal-less ext4 that churn made every later file creation slower for all processes.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Base64Decoder } from '@signspool/worker/base64-stream';

export class SpillSink {
  private readonly decoder = new Base64Decoder();
  private readonly hash = createHash('sha256');
  private memory: Buffer[] = [];
  private fh: FileHandle | undefined;
  private file: string | undefined;
  size = 0;

  /** `budget.left`: bytes the request's documents may still keep in memory (shared by its sinks). */
  constructor(
    private readonly spillPath: string,
    private readonly budget: { left: number },
  ) {}

  /** Decodes a chunk of base64 text and keeps the bytes. */
  push(text: Buffer): Promise<void> {
    return this.write(this.decoder.push(text));
  }

  /** Decodes the rest; returns size and sha256 of the decoded bytes. */
  async end(): Promise<{ size: number; sha256: string }> {
    await this.write(this.decoder.end());
    await this.fh?.close();
    this.fh = undefined;
    return { size: this.size, sha256: this.hash.digest('hex') };
  }

  /** The decoded bytes, from memory or from the file. */
  async *chunks(readChunk = 3 * 64 * 1024): AsyncGenerator<Buffer> {
    if (this.file) {
      for await (const c of createReadStream(this.file, { highWaterMark: readChunk })) yield c as Buffer;
    } else {
      yield* this.memory;
    }
  }

  /** Frees memory and removes the file, if any. */
  async dispose(): Promise<void> {
    this.release();
    await this.fh?.close().catch(() => undefined);
    this.fh = undefined;
    if (this.file) await rm(this.file, { force: true });
  }

  private async write(bytes: Buffer): Promise<void> {
    if (bytes.length === 0) return;
    this.hash.update(bytes);
    this.size += bytes.length;
    if (!this.fh && this.budget.left >= bytes.length) {
      this.budget.left -= bytes.length;
      this.memory.push(bytes);
      return;
    }
    if (!this.fh) {
      await mkdir(path.dirname(this.spillPath), { recursive: true });
      this.fh = await open(this.spillPath, 'w');
      this.file = this.spillPath;
      for (const m of this.memory) await this.fh.write(m);
      this.release();
    }
    await this.fh.write(bytes);
  }

  private release(): void {
    for (const m of this.memory) this.budget.left += m.length;
    this.memory = [];
  }
}
