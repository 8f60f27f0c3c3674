/**
 * Where the fake keeps a decoded document between request and answer: in memory while the
 * request's memory budget lasts, in a temp file after that (so 1 GB requests still work). Small
 * documents then cost the fake no file creation, write, read and unlink each; file creation is
 * slow on this machine's journal-less ext4 and the churn slowed it down for every process.
 */
import { createReadStream } from 'node:fs';
import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Base64Sink, type DecodedContent } from '@signspool/worker/base64-file-sink';

export class SpillSink extends Base64Sink {
  private memory: Buffer[] = [];
  private fh: FileHandle | undefined;
  private file: string | undefined;

  /** `budget.left`: bytes the request's documents may still keep in memory (shared by its sinks). */
  constructor(
    private readonly spillPath: string,
    private readonly budget: { left: number },
  ) {
    super();
  }

  /** Decodes the rest; returns size and sha256 of the decoded bytes. */
  async end(): Promise<DecodedContent> {
    const content = await this.finishDecoding();
    await this.fh?.close();
    this.fh = undefined;
    return content;
  }

  /** sha256 of the decoded bytes followed by `suffix` (the signed output: content + trailer), with no second pass. */
  signedSha256(suffix: Buffer): string {
    return this.digestWithSuffix(suffix);
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

  protected async store(bytes: Buffer): Promise<void> {
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
