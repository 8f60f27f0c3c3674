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
    for (let at = 0; at < usable; at += ENCODE_PIECE) {
      yield Buffer.from(data.toString('base64', at, Math.min(usable, at + ENCODE_PIECE)), 'latin1');
    }
    carry = Buffer.from(data.subarray(usable));
  }
  if (carry.length) yield Buffer.from(carry.toString('base64'), 'latin1');
}

/** Decodes base64 text arriving in arbitrary chunks. Whitespace is ignored. */
export class Base64Decoder {
  private carry = Buffer.alloc(0);

  /** Decodes what can be decoded now. */
  push(chunk: Buffer | string): Buffer {
    let text = typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk;
    if (this.carry.length) text = Buffer.concat([this.carry, text]);
    if (text.includes(0x20) || text.includes(0x0a) || text.includes(0x0d) || text.includes(0x09)) {
      text = Buffer.from(text.toString('latin1').replace(/\s+/g, ''), 'latin1');
    }
    const usable = text.length - (text.length % 4);
    this.carry = Buffer.from(text.subarray(usable));
    if (usable <= DECODE_PIECE) return usable > 0 ? Buffer.from(text.toString('latin1', 0, usable), 'base64') : Buffer.alloc(0);
    const out = Buffer.allocUnsafe((usable / 4) * 3);
    let n = 0;
    for (let at = 0; at < usable; at += DECODE_PIECE) n += out.write(text.toString('latin1', at, Math.min(usable, at + DECODE_PIECE)), n, 'base64');
    return out.subarray(0, n);
  }

  /** Decodes the rest; throws if the text was not valid base64 length. */
  end(): Buffer {
    const rest = this.carry;
    this.carry = Buffer.alloc(0);
    if (rest.length === 0) return Buffer.alloc(0);
    if (rest.length === 1) throw new Error('truncated base64');
    return Buffer.from(rest.toString('latin1'), 'base64');
  }
}

/** Length of the base64 encoding of `n` bytes. */
export const base64Length = (n: number): number => 4 * Math.ceil(n / 3);
