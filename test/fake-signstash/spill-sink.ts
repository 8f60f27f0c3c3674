/**
 * Where the fake keeps a document between request and answer. The fake's signed output is the
 * document's bytes followed by a trailer, so it keeps the document as the base64 text it received
 * (decoding it only to check, count and hash it) and answers with that text, re-encoding only the
 * last, partial quantum together with the trailer: no decoded copy and no second encoding per
 * document (at hundreds of documents a second, those allocations made most of the fake's GC).
 * The text is kept in memory while the request's memory budget lasts, in a temp file after that
 * (so 1 GB requests still work); small documents cost the fake no file creation, write, read and
 * unlink each.
 */
import { createReadStream } from 'node:fs';
import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Base64Sink, type DecodedContent } from '@signspool/worker/streams/base64-file-sink';
import { withoutWhitespace } from '@signspool/worker/streams/base64-stream';

export class SpillSink extends Base64Sink {
  private memory: Buffer[] = [];
  private fh: FileHandle | undefined;
  private file: string | undefined;
  /** Base64 characters kept (whitespace left out). */
  private textLength = 0;
  /** The last (up to two) decoded bytes: what the final, partial quantum encodes. */
  private tail = Buffer.alloc(0);

  /** `budget.left`: bytes the request's documents may still keep in memory (shared by its sinks). */
  constructor(
    private readonly spillPath: string,
    private readonly budget: { left: number },
  ) {
    super();
  }

  /** Checks and hashes a chunk of base64 text, and keeps the text. */
  override async push(text: Buffer): Promise<void> {
    // Stripped once: the decoder then finds no whitespace to strip again.
    const clean = withoutWhitespace(text);
    await super.push(clean);
    this.textLength += clean.length;
    await this.keep(clean);
  }

  /**
   * True when the text was plain base64 (padded or not) of what it decoded to: decoders skip
   * characters outside the alphabet, and the answer reuses the text, so anything else is refused.
   */
  get wellFormed(): boolean {
    const whole = 4 * Math.floor(this.size / 3);
    const rest = this.size % 3;
    return this.textLength === whole + (rest === 0 ? 0 : 4) || (rest > 0 && this.textLength === whole + rest + 1);
  }

  /** Decodes the rest; returns size and sha256 of the decoded bytes. */
  async end(): Promise<DecodedContent> {
    const content = this.finishDecoding();
    await this.fh?.close();
    this.fh = undefined;
    return content;
  }

  /** sha256 of the decoded bytes followed by `suffix` (the signed output: content + trailer), with no second pass. */
  signedSha256(suffix: Buffer): string {
    return this.digestWithSuffix(suffix);
  }

  /**
   * base64 of the document followed by `suffix`: the received text up to its last whole quantum of
   * three bytes, then the encoding of the remaining (up to two) bytes and the suffix.
   */
  async *signedBase64(suffix: Buffer): AsyncGenerator<Buffer> {
    let left = 4 * Math.floor(this.size / 3);
    for await (const piece of this.text()) {
      if (left <= 0) break;
      const part = piece.length <= left ? piece : piece.subarray(0, left);
      left -= part.length;
      yield part;
    }
    yield Buffer.from(Buffer.concat([this.tail.subarray(this.tail.length - (this.size % 3)), suffix]).toString('base64'), 'latin1');
  }

  /** Frees memory and removes the file, if any. */
  async dispose(): Promise<void> {
    this.release();
    await this.fh?.close().catch(() => undefined);
    this.fh = undefined;
    if (this.file) await rm(this.file, { force: true });
  }

  /** Keeps the last two decoded bytes (they are a view of the decoder's shared buffer: copied). */
  protected store(bytes: Buffer): void {
    this.tail = Buffer.concat([this.tail, bytes.subarray(Math.max(0, bytes.length - 2))]).subarray(-2);
  }

  private async *text(readChunk = 256 * 1024): AsyncGenerator<Buffer> {
    if (this.file) {
      for await (const c of createReadStream(this.file, { highWaterMark: readChunk })) yield c as Buffer;
    } else {
      yield* this.memory;
    }
  }

  private async keep(text: Buffer): Promise<void> {
    if (!this.fh && this.budget.left >= text.length) {
      this.budget.left -= text.length;
      this.memory.push(text);
      return;
    }
    if (!this.fh) {
      await mkdir(path.dirname(this.spillPath), { recursive: true });
      this.fh = await open(this.spillPath, 'w');
      this.file = this.spillPath;
      for (const m of this.memory) await this.fh.write(m);
      this.release();
    }
    await this.fh.write(text);
  }

  private release(): void {
    for (const m of this.memory) this.budget.left += m.length;
    this.memory = [];
  }
}
