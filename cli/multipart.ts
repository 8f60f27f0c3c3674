/**
 * A multipart/form-data body streamed from files (never read whole into memory), with its exact
 * length computed up front, and a callback per chunk sent (progress bars).
 */
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';

export interface MultipartFile {
  /** File name sent to the server. */
  name: string;
  path: string;
  size: number;
  contentType?: string;
}

const quote = (s: string): string => s.replace(/[\r\n"]/g, (c) => encodeURIComponent(c));

export const multipartBody = (files: MultipartFile[], fields: Record<string, string> = {}, onChunk?: (bytes: number) => void) => {
  const boundary = `----signspool${randomBytes(12).toString('hex')}`;
  const fieldParts = Object.entries(fields).map(([k, v]) => Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="${quote(k)}"\r\n\r\n${v}\r\n`));
  const heads = files.map((f) =>
    Buffer.from(
      `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="${quote(f.name)}"\r\ncontent-type: ${f.contentType ?? 'application/octet-stream'}\r\n\r\n`,
    ),
  );
  const tail = Buffer.from(`--${boundary}--\r\n`);
  const length = fieldParts.reduce((n, p) => n + p.length, 0) + heads.reduce((n, h, i) => n + h.length + (files[i]?.size ?? 0) + 2, 0) + tail.length;
  async function* generate(): AsyncGenerator<Buffer> {
    const emit = (b: Buffer): Buffer => {
      onChunk?.(b.length);
      return b;
    };
    for (const p of fieldParts) yield emit(p);
    for (const [i, f] of files.entries()) {
      yield emit(heads[i] ?? Buffer.alloc(0));
      const fh = await open(f.path, 'r');
      try {
        for await (const chunk of fh.createReadStream({ highWaterMark: 256 * 1024, autoClose: false })) yield emit(chunk as Buffer);
      } finally {
        await fh.close();
      }
      yield emit(Buffer.from('\r\n'));
    }
    yield emit(tail);
  }
  return { contentType: `multipart/form-data; boundary=${boundary}`, length, body: () => Readable.from(generate()) };
};
