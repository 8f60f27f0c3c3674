/**
 * Just enough of a PDF reader to append an incremental update: it finds the last cross-reference
 * section (a table or a stream, following /Prev and /XRefStm), and reads single objects by number
 * (directly or out of object streams), by random access: to a document already in memory, or to
 * its file (read on the calling thread; the file is never read whole). Values keep their original
 * bytes (strings, numbers, names) so they are written back as they were.
 */
import { readSync } from 'node:fs';
import { inflateSync } from 'node:zlib';

export type PdfValue = PdfName | PdfRef | PdfRaw | PdfValue[] | PdfDict;
/** A name, as written (without the slash). */
export class PdfName {
  constructor(readonly name: string) {}
}
export class PdfRef {
  constructor(
    readonly num: number,
    readonly gen: number,
  ) {}
}
/** A number, string, boolean or null: kept as its original bytes. */
export class PdfRaw {
  constructor(readonly raw: Buffer) {}
  get number(): number {
    return Number(this.raw.toString('latin1'));
  }
}
export class PdfDict extends Map<string, PdfValue> {}

export class PdfSyntaxError extends Error {}

/** Byte classes: 1 whitespace, 2 delimiter, 0 regular (a table: a Set lookup per byte costs more). */
const CLASS = new Uint8Array(256);
for (const c of [0x00, 0x09, 0x0a, 0x0c, 0x0d, 0x20]) CLASS[c] = 1;
for (const c of [0x28, 0x29, 0x3c, 0x3e, 0x5b, 0x5d, 0x7b, 0x7d, 0x2f, 0x25]) CLASS[c] = 2;
/** True for a regular character (neither whitespace nor a delimiter); false past the end. */
const regular = (b: Buffer, i: number): boolean => i < b.length && CLASS[b[i] ?? 0] === 0;

/** Parses PDF values out of a buffer. */
export class PdfLexer {
  /** `truncated`: the buffer is a window that stops before the data does. */
  constructor(
    readonly buf: Buffer,
    public pos = 0,
    private readonly truncated = false,
  ) {}

  skipSpace(): void {
    const b = this.buf;
    while (this.pos < b.length) {
      const c = b[this.pos] ?? 0;
      if (CLASS[c] === 1) this.pos++;
      else if (c === 0x25) while (this.pos < b.length && b[this.pos] !== 0x0a && b[this.pos] !== 0x0d) this.pos++;
      else break;
    }
  }

  private need(): number {
    const c = this.buf[this.pos];
    if (c === undefined) throw new PdfSyntaxError('unexpected end of data');
    return c;
  }

  /** A run of regular characters (a keyword or a number). */
  token(): string {
    this.skipSpace();
    const start = this.pos;
    this.run();
    return this.buf.toString('latin1', start, this.pos);
  }

  /** Moves past a run of regular characters; true when it is one or more digits only. */
  private run(): boolean {
    const b = this.buf;
    let digits = true;
    const start = this.pos;
    for (let c = b[this.pos]; c !== undefined && CLASS[c] === 0; c = b[++this.pos]) if (c < 0x30 || c > 0x39) digits = false;
    if (this.truncated && this.pos >= b.length) throw new PdfSyntaxError('unexpected end of data');
    return digits && this.pos > start;
  }

  expect(keyword: string): void {
    const t = this.token();
    if (t !== keyword) throw new PdfSyntaxError(`expected ${keyword}, found ${t.slice(0, 20) || 'a delimiter'}`);
  }

  value(): PdfValue {
    this.skipSpace();
    const b = this.buf;
    const c = this.need();
    if (c === 0x2f) {
      const start = ++this.pos;
      while (regular(b, this.pos)) this.pos++;
      return new PdfName(b.toString('latin1', start, this.pos));
    }
    if (c === 0x3c && b[this.pos + 1] === 0x3c) {
      this.pos += 2;
      const dict = new PdfDict();
      for (;;) {
        this.skipSpace();
        if (this.need() === 0x3e && b[this.pos + 1] === 0x3e) {
          this.pos += 2;
          return dict;
        }
        const key = this.value();
        if (!(key instanceof PdfName)) throw new PdfSyntaxError('a dictionary key is not a name');
        dict.set(key.name, this.value());
      }
    }
    if (c === 0x3c) {
      const end = b.indexOf(0x3e, this.pos);
      if (end < 0) throw new PdfSyntaxError(this.truncated ? 'unexpected end of data' : 'unterminated hex string');
      const raw = b.subarray(this.pos, end + 1);
      this.pos = end + 1;
      return new PdfRaw(raw);
    }
    if (c === 0x28) {
      const start = this.pos++;
      for (let depth = 1; depth > 0;) {
        const ch = this.need();
        this.pos++;
        if (ch === 0x5c) this.pos++;
        else if (ch === 0x28) depth++;
        else if (ch === 0x29) depth--;
      }
      return new PdfRaw(b.subarray(start, this.pos));
    }
    if (c === 0x5b) {
      this.pos++;
      const arr: PdfValue[] = [];
      for (;;) {
        this.skipSpace();
        if (this.need() === 0x5d) {
          this.pos++;
          return arr;
        }
        arr.push(this.value());
      }
    }
    const start = this.pos;
    const number = this.run();
    if (this.pos === start) throw new PdfSyntaxError(`unexpected character ${String.fromCharCode(c)}`);
    if (number) {
      // "n g R" is a reference (tokens scanned as bytes: no string per number).
      const end = this.pos;
      this.skipSpace();
      const genStart = this.pos;
      if (this.run()) {
        const genEnd = this.pos;
        this.skipSpace();
        const r = this.pos;
        this.run();
        if (this.pos === r + 1 && b[r] === 0x52) return new PdfRef(Number(b.toString('latin1', start, end)), Number(b.toString('latin1', genStart, genEnd)));
      }
      this.pos = end;
    }
    return new PdfRaw(b.subarray(start, this.pos));
  }
}

/** Serialises a value back to PDF syntax. */
export const writeValue = (v: PdfValue): string => {
  if (v instanceof PdfName) return `/${v.name}`;
  if (v instanceof PdfRef) return `${v.num} ${v.gen} R`;
  if (v instanceof PdfRaw) return v.raw.toString('latin1');
  if (v instanceof PdfDict) return `<<${[...v].map(([k, x]) => `/${k} ${writeValue(x)}`).join(' ')}>>`;
  return `[${v.map(writeValue).join(' ')}]`;
};

type XrefEntry = { type: 1; offset: number; gen: number } | { type: 2; stream: number; index: number };

const pngUnpredict = (data: Buffer, columns: number): Buffer => {
  const row = columns + 1;
  const out = Buffer.alloc((data.length / row) * columns);
  const prev = Buffer.alloc(columns);
  for (let r = 0; r * row < data.length; r++) {
    const filter = data[r * row] ?? 0;
    const cur = out.subarray(r * columns, (r + 1) * columns);
    for (let i = 0; i < columns; i++) {
      const x = data[r * row + 1 + i] ?? 0;
      const left = i > 0 ? (cur[i - 1] ?? 0) : 0;
      const up = prev[i] ?? 0;
      const upLeft = i > 0 ? (prev[i - 1] ?? 0) : 0;
      let pred = 0;
      if (filter === 1) pred = left;
      else if (filter === 2) pred = up;
      else if (filter === 3) pred = (left + up) >> 1;
      else if (filter === 4) {
        const p = left + up - upLeft;
        const pa = Math.abs(p - left);
        const pb = Math.abs(p - up);
        const pc = Math.abs(p - upLeft);
        pred = pa <= pb && pa <= pc ? left : pb <= pc ? up : upLeft;
      }
      cur[i] = (x + pred) & 0xff;
    }
    cur.copy(prev);
  }
  return out;
};

const READ_STEP = 64 * 1024;
const MAX_OBJECT_BYTES = 16 * 1024 * 1024;

export class PdfReader {
  readonly xref = new Map<number, XrefEntry>();
  /** The newest trailer (or cross-reference stream dictionary). */
  trailer = new PdfDict();
  /** Offset of the newest cross-reference section (the update's /Prev). */
  startxref = 0;
  private readonly objStms = new Map<number, { first: number; data: Buffer; offsets: Map<number, number> }>();

  private constructor(
    /** The whole document, or its open file (descriptor). */
    private readonly source: Buffer | number,
    readonly size: number,
  ) {}

  /** Reads the PDF of `size` bytes open as `fd` (it stays open while the reader is used). */
  static open(fd: number, size: number): PdfReader {
    const r = new PdfReader(fd, size);
    r.readXref();
    return r;
  }

  /** Reads a PDF held whole in memory (views of `bytes` are kept: it must not change while the reader is used). */
  static of(bytes: Buffer): PdfReader {
    const r = new PdfReader(bytes, bytes.length);
    r.readXref();
    return r;
  }

  private read(offset: number, length: number): Buffer {
    const start = Math.max(0, offset);
    const len = Math.max(0, Math.min(length, this.size - start));
    if (typeof this.source !== 'number') return this.source.subarray(start, start + len);
    const buf = Buffer.allocUnsafe(len);
    let n = 0;
    while (n < len) {
      const got = readSync(this.source, buf, n, len - n, start + n);
      if (got === 0) break;
      n += got;
    }
    return buf.subarray(0, n);
  }

  private readXref(): void {
    const tailLen = Math.min(this.size, 2048);
    const tail = this.read(this.size - tailLen, tailLen).toString('latin1');
    const m = /startxref\s+(\d+)\s+%%EOF\s*$/.exec(tail) ?? /startxref\s+(\d+)\s+%%EOF/.exec(tail);
    if (!m?.[1]) throw new PdfSyntaxError('no startxref at the end of the file');
    this.startxref = Number(m[1]);
    const seen = new Set<number>();
    let first = true;
    for (let at: number | undefined = this.startxref; at !== undefined;) {
      if (seen.has(at) || at >= this.size) throw new PdfSyntaxError('a broken cross-reference chain');
      seen.add(at);
      const trailer = this.readSection(at);
      if (first) this.trailer = trailer;
      first = false;
      const xrefStm = trailer.get('XRefStm');
      if (xrefStm instanceof PdfRaw) this.readSection(xrefStm.number);
      const prev = trailer.get('Prev');
      at = prev instanceof PdfRaw ? prev.number : undefined;
    }
  }

  /** Reads one cross-reference section at `offset`; entries already known (newer) are kept. */
  private readSection(offset: number): PdfDict {
    const head = this.read(offset, 16);
    if (head.toString('latin1').startsWith('xref')) return this.readTable(offset);
    const { value, streamData } = this.readObjectAt(offset, true);
    if (!(value instanceof PdfDict) || !streamData) throw new PdfSyntaxError('startxref does not point at a cross-reference section');
    const data = this.decode(value, streamData);
    const w = (value.get('W') as PdfValue[] | undefined)?.map((x) => (x as PdfRaw).number) ?? [];
    const size = (value.get('Size') as PdfRaw).number;
    const index = (value.get('Index') as PdfValue[] | undefined)?.map((x) => (x as PdfRaw).number) ?? [0, size];
    const [w0 = 0, w1 = 0, w2 = 0] = w;
    const rowLen = w0 + w1 + w2;
    const field = (p: number, n: number): number => {
      let v = 0;
      for (let i = 0; i < n; i++) v = v * 256 + (data[p + i] ?? 0);
      return v;
    };
    let p = 0;
    for (let i = 0; i + 1 < index.length; i += 2) {
      const start = index[i] ?? 0;
      for (let n = 0; n < (index[i + 1] ?? 0); n++, p += rowLen) {
        const type = w0 === 0 ? 1 : field(p, w0);
        const a = field(p + w0, w1);
        const b = field(p + w0 + w1, w2);
        if (this.xref.has(start + n)) continue;
        if (type === 1) this.xref.set(start + n, { type: 1, offset: a, gen: b });
        else if (type === 2) this.xref.set(start + n, { type: 2, stream: a, index: b });
      }
    }
    return value;
  }

  private readTable(offset: number): PdfDict {
    for (let len = READ_STEP; ; len *= 4) {
      const buf = this.read(offset, len);
      const lex = new PdfLexer(buf, 0, offset + buf.length < this.size);
      try {
        lex.expect('xref');
        const entries: [number, XrefEntry | undefined][] = [];
        for (;;) {
          const t = lex.token();
          if (t === 'trailer') break;
          const start = Number(t);
          const count = Number(lex.token());
          if (!Number.isInteger(start) || !Number.isInteger(count)) throw new PdfSyntaxError('a malformed cross-reference table');
          for (let n = 0; n < count; n++) {
            const off = Number(lex.token());
            const gen = Number(lex.token());
            const kind = lex.token();
            if (kind !== 'n' && kind !== 'f') throw new PdfSyntaxError('a malformed cross-reference entry');
            entries.push([start + n, kind === 'n' ? { type: 1, offset: off, gen } : undefined]);
          }
        }
        const trailer = lex.value();
        if (!(trailer instanceof PdfDict)) throw new PdfSyntaxError('the trailer is not a dictionary');
        for (const [num, e] of entries) if (e && !this.xref.has(num)) this.xref.set(num, e);
        return trailer;
      } catch (err) {
        if (!(err instanceof PdfSyntaxError) || !/end of data/.test(err.message) || buf.length < len || len >= MAX_OBJECT_BYTES * 4) throw err;
      }
    }
  }

  /** Parses "n g obj <value> [stream...]" at `offset`; with `withStream`, also reads the stream's bytes. */
  private readObjectAt(offset: number, withStream = false): { value: PdfValue; streamData?: Buffer } {
    for (let len = READ_STEP; ; len *= 4) {
      const buf = this.read(offset, len);
      const lex = new PdfLexer(buf, 0, offset + buf.length < this.size);
      try {
        lex.token();
        lex.token();
        lex.expect('obj');
        const value = lex.value();
        if (!withStream) return { value };
        const save = lex.pos;
        if (lex.token() !== 'stream' || !(value instanceof PdfDict)) {
          lex.pos = save;
          return { value };
        }
        if (buf[lex.pos] === 0x0d) lex.pos++;
        if (buf[lex.pos] === 0x0a) lex.pos++;
        const length = this.resolveNumber(value.get('Length'));
        return { value, streamData: this.read(offset + lex.pos, length) };
      } catch (err) {
        if (!(err instanceof PdfSyntaxError) || !/end of data/.test(err.message) || buf.length < len || len >= MAX_OBJECT_BYTES) throw err;
      }
    }
  }

  private resolveNumber(v: PdfValue | undefined): number {
    const r = v instanceof PdfRef ? this.get(v.num) : v;
    if (!(r instanceof PdfRaw) || !Number.isFinite(r.number)) throw new PdfSyntaxError('a stream without a usable /Length');
    return r.number;
  }

  private decode(dict: PdfDict, data: Buffer): Buffer {
    const filter = dict.get('Filter');
    const filters = filter === undefined ? [] : Array.isArray(filter) ? filter : [filter];
    if (filters.length === 0) return data;
    if (filters.length > 1 || !(filters[0] instanceof PdfName) || filters[0].name !== 'FlateDecode')
      throw new PdfSyntaxError('an object or xref stream with a filter other than FlateDecode');
    // Output pieces of 4 KB: these streams are small, and a 16 KB piece is allocated per call.
    let out: Buffer = inflateSync(data, { chunkSize: 4096 });
    const parms = dict.get('DecodeParms');
    if (parms instanceof PdfDict) {
      const predictor = (parms.get('Predictor') as PdfRaw | undefined)?.number ?? 1;
      const columns = (parms.get('Columns') as PdfRaw | undefined)?.number ?? 1;
      if (predictor >= 10) out = pngUnpredict(out, columns);
      else if (predictor !== 1) throw new PdfSyntaxError('a TIFF predictor');
    }
    return out;
  }

  /** The object numbered `num` (its newest version), or undefined when it does not exist. */
  get(num: number): PdfValue | undefined {
    const e = this.xref.get(num);
    if (!e) return undefined;
    if (e.type === 1) return this.readObjectAt(e.offset).value;
    let stm = this.objStms.get(e.stream);
    if (!stm) {
      const entry = this.xref.get(e.stream);
      if (entry?.type !== 1) throw new PdfSyntaxError('an object stream that is not in the file');
      const { value, streamData } = this.readObjectAt(entry.offset, true);
      if (!(value instanceof PdfDict) || !streamData) throw new PdfSyntaxError('an object stream that is not a stream');
      const data = this.decode(value, streamData);
      const n = (value.get('N') as PdfRaw).number;
      const lex = new PdfLexer(data);
      const offsets = new Map<number, number>();
      for (let i = 0; i < n; i++) offsets.set(Number(lex.token()), Number(lex.token()));
      stm = { first: (value.get('First') as PdfRaw).number, data, offsets };
      this.objStms.set(e.stream, stm);
    }
    const off = stm.offsets.get(num);
    if (off === undefined) throw new PdfSyntaxError(`object ${num} is not in its object stream`);
    return new PdfLexer(stm.data, stm.first + off).value();
  }

  /** Follows a reference (or returns a direct value). */
  resolve(v: PdfValue | undefined): PdfValue | undefined {
    return v instanceof PdfRef ? this.get(v.num) : v;
  }

  generationOf(num: number): number {
    const e = this.xref.get(num);
    return e?.type === 1 ? e.gen : 0;
  }
}
