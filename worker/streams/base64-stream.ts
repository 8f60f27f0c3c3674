/**
 * Base64 on the fly, for bodies that carry documents as base64 JSON strings: encode a byte stream
 * chunk by chunk (carrying the len % 3 remainder), decode string chunks (carrying len % 4).
 */

/**
 * Input bytes encoded per piece (a multiple of 3). Kept small on purpose: the intermediate base64
 * string of a piece must stay below V8's large-object threshold (~128 KiB), else every piece is a
 * fresh mmap, page-faulted and unmapped again; with 192 KiB pieces encoding cost ~10× more CPU,
 * most of it in the kernel (measured here: 529 → 54 µs of CPU per 192 KiB). Decoding likewise.
 */
const ENCODE_PIECE = 48 * 1024;
/** Base64 characters decoded per piece (a multiple of 4), for the same reason. */
const DECODE_PIECE = 64 * 1024;

/** Encodes a byte stream to base64 text chunks. */
export async function* base64Encode(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let carry = Buffer.alloc(0);
  for await (const chunk of source) {
    const data = carry.length ? Buffer.concat([carry, chunk]) : chunk;
    const usable = data.length - (data.length % 3);
    yield* base64Pieces(data.subarray(0, usable));
    carry = Buffer.from(data.subarray(usable));
  }
  yield* base64Pieces(carry);
}

/**
 * `bytes` as base64 pieces of at most ENCODE_PIECE input bytes each (`bytes` must be a multiple of 3
 * long unless they end the data), with `lead` (text, written as UTF-8) at the start of the first piece.
 */
export function* base64Pieces(bytes: Buffer, lead = ''): Generator<Buffer, void, undefined> {
  for (let at = 0; at < bytes.length; at += ENCODE_PIECE) {
    const text = bytes.toString('base64', at, Math.min(bytes.length, at + ENCODE_PIECE));
    const leadBytes = Buffer.byteLength(lead);
    const piece = Buffer.allocUnsafe(leadBytes + text.length);
    piece.write(lead, 0, 'utf8');
    piece.write(text, leadBytes, 'latin1');
    lead = '';
    yield piece;
  }
}

/**
 * Where every decoder of the process decodes: one piece's bytes at a time, handed to the caller's
 * callback as a view that is valid only during that call. Decoding allocates no buffer per piece
 * (at hundreds of MB/s of signed content, those were a steady churn of external memory for the
 * GC and the allocator to deal with).
 */
const scratch = Buffer.allocUnsafeSlow((DECODE_PIECE / 4) * 3);

/** True when base64 text contains whitespace (which decoders skip). */
export const hasWhitespace = (b: Buffer): boolean => b.includes(0x20) || b.includes(0x0a) || b.includes(0x0d) || b.includes(0x09);

/** The text without its whitespace (a copy when there is any). */
export const withoutWhitespace = (b: Buffer): Buffer => (hasWhitespace(b) ? Buffer.from(b.toString('latin1').replace(/\s+/g, ''), 'latin1') : b);

/** Decodes base64 text arriving in arbitrary chunks. Whitespace is ignored. */
export class Base64Decoder {
  /** Up to 3 characters of an incomplete quantum. */
  private carry = '';

  /**
   * Decodes what can be decoded now. `onBytes` receives the decoded bytes in pieces, each a view
   * of a buffer shared by all decoders: it must use (or copy) them before it returns.
   */
  push(chunk: Buffer | string, onBytes: (bytes: Buffer) => void): void {
    const text = withoutWhitespace(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk);
    let at = 0;
    if (this.carry.length > 0) {
      // Complete the carried quantum from the start of this chunk.
      const need = 4 - this.carry.length;
      this.carry += text.toString('latin1', 0, need);
      at = Math.min(need, text.length);
      if (this.carry.length < 4) return;
      this.decode(this.carry, onBytes);
      this.carry = '';
    }
    const usable = text.length - ((text.length - at) % 4);
    for (let p = at; p < usable; p += DECODE_PIECE) this.decode(text.toString('latin1', p, Math.min(usable, p + DECODE_PIECE)), onBytes);
    if (usable < text.length) this.carry = text.toString('latin1', usable);
  }

  /** Decodes the rest (into `onBytes`, as `push`); throws if the text was not a valid base64 length. */
  end(onBytes: (bytes: Buffer) => void): void {
    const rest = this.carry;
    this.carry = '';
    if (rest.length === 0) return;
    if (rest.length === 1) throw new Error('truncated base64');
    this.decode(rest, onBytes);
  }

  private decode(text: string, onBytes: (bytes: Buffer) => void): void {
    const n = scratch.write(text, 0, 'base64');
    if (n > 0) onBytes(scratch.subarray(0, n));
  }
}

/** Length of the base64 encoding of `n` bytes. */
export const base64Length = (n: number): number => 4 * Math.ceil(n / 3);
