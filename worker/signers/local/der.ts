/**
 * Minimal DER: writing the few structures the signers assemble by hand (attribute values, the
 * attached-content wrapper) and reading the few they take apart (PKCS#12, PBES2 parameters).
 */

export const derLength = (n: number): Buffer => {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
};

/** The header (tag and length) of an element whose content is `length` bytes. */
export const derHeader = (tag: number, length: number): Buffer => Buffer.concat([Buffer.from([tag]), derLength(length)]);

export const tlv = (tag: number, body: Buffer): Buffer => Buffer.concat([derHeader(tag, body.length), body]);

/** Base-128 with the continuation bit, as OID subidentifiers are written. */
const base128 = (n: number): number[] => {
  const chunk: number[] = [n % 128];
  for (let v = Math.floor(n / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v % 128) | 0x80);
  return chunk;
};

export const derOid = (oid: string): Buffer => {
  const parts = oid.split('.').map(Number);
  // The first two arcs share one subidentifier (40 × first + second), which may itself exceed 127 (2.999 …).
  const subids = [40 * (parts[0] ?? 0) + (parts[1] ?? 0), ...parts.slice(2)];
  return tlv(0x06, Buffer.from(subids.flatMap(base128)));
};

export const utcTime = (d: Date): Buffer => {
  const p = (n: number): string => String(n).padStart(2, '0');
  const s = `${p(d.getUTCFullYear() % 100)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  return tlv(0x17, Buffer.from(s, 'ascii'));
};

export const toArrayBuffer = (b: Uint8Array): ArrayBuffer => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;

export interface DerElement {
  tag: number;
  /** The content octets. */
  body: Buffer;
  /** The whole element, header included. */
  raw: Buffer;
}

/** Reads the element at `offset` (definite lengths only, as DER requires). */
export const readElement = (buf: Buffer, offset = 0): DerElement => {
  const tag = buf[offset];
  let len = buf[offset + 1];
  if (tag === undefined || len === undefined) throw new Error('DER: truncated');
  let pos = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new Error('DER: unsupported length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[pos + i] ?? 0);
    pos += n;
  }
  if (pos + len > buf.length) throw new Error('DER: truncated');
  return { tag, body: buf.subarray(pos, pos + len), raw: buf.subarray(offset, pos + len) };
};

/** The elements inside a constructed element's content. */
export const children = (body: Buffer): DerElement[] => {
  const out: DerElement[] = [];
  for (let off = 0; off < body.length;) {
    const el = readElement(body, off);
    out.push(el);
    off += el.raw.length;
  }
  return out;
};

export const oidOf = (el: DerElement | undefined): string => {
  if (!el || el.tag !== 0x06) throw new Error('DER: expected an OBJECT IDENTIFIER');
  const subids: number[] = [];
  let v = 0;
  for (const byte of el.body) {
    v = v * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      subids.push(v);
      v = 0;
    }
  }
  const [first = 0, ...rest] = subids;
  const arc0 = first < 80 ? Math.floor(first / 40) : 2;
  return [arc0, first - 40 * arc0, ...rest].join('.');
};

export const intOf = (el: DerElement | undefined): number => {
  if (!el || el.tag !== 0x02) throw new Error('DER: expected an INTEGER');
  return el.body.reduce((n, b) => n * 256 + b, 0);
};
