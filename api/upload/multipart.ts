/**
 * A streaming multipart/form-data parser for POST /v1/operations: chunks of the body go in,
 * fields and the bytes of each file part come out as they arrive, with no stream per part and no
 * copy of a file's bytes (its chunks are views of the body's). It answers as busboy did under
 * multer's `.array('file', maxFiles)` (the parts it keeps, the limits and their codes, the
 * header grammar, the file name's decoding), which the unit tests compare part for part.
 */

/** Why a body was refused; the codes are multer's, mapped to the catalog in http/problem.ts. */
export type MultipartErrorCode =
  'LIMIT_PART_COUNT' | 'LIMIT_FILE_SIZE' | 'LIMIT_FILE_COUNT' | 'LIMIT_FIELD_VALUE' | 'LIMIT_FIELD_COUNT' | 'LIMIT_UNEXPECTED_FILE' | 'MISSING_FIELD_NAME';

export class MultipartError extends Error {
  constructor(
    readonly code: MultipartErrorCode,
    readonly field?: string,
  ) {
    super(`multipart: ${code}`);
    this.name = 'MultipartError';
  }
}

/** The limits as multer takes them: each is the most allowed. */
export interface MultipartLimits {
  fileSize: number;
  files: number;
  fields: number;
  fieldSize: number;
  parts: number;
}

export interface FilePart {
  filename: string;
  mimeType: string;
}

/** Where the parts go; a method that throws refuses the body (write() throws it). */
export interface PartSink {
  field(name: string, value: string): void;
  /** A `file` part begins; its bytes follow through fileData, then fileEnd. */
  fileStart(part: FilePart): void;
  /** A piece of the current file: a view of the body's chunk, valid as long as the caller keeps it. */
  fileData(chunk: Buffer): void;
  fileEnd(): void;
}

const table = (chars: string, ...ranges: [number, number][]): Uint8Array => {
  const t = new Uint8Array(256);
  for (const c of chars) t[c.charCodeAt(0)] = 1;
  for (const [a, b] of ranges) t.fill(1, a, b + 1);
  return t;
};
const TOKEN = table("!#$%&'*+-.^_`|~", [48, 57], [65, 90], [97, 122]);
const QDTEXT = table('\t', [32, 33], [35, 91], [93, 126], [128, 255]);
const CHARSET = table('!#$%&+-^_`{}~', [48, 57], [65, 90], [97, 122]);
const EXTENDED = table('!#$&+-.^_`|~', [48, 57], [65, 90], [97, 122]);
const HEADER_VALUE = table('\t', [32, 126], [128, 255]);
const hexOf = (c: number): number => (c >= 48 && c <= 57 ? c - 48 : c >= 65 && c <= 70 ? c - 55 : c >= 97 && c <= 102 ? c - 87 : -1);

const MAX_HEADER_BYTES = 16 * 1024;
const MAX_HEADER_PAIRS = 2000;

/** A string's bytes (one per char, as busboy reads headers) decoded from `charset`; undefined for a charset it does not know. */
const decode = (latin1: string, charset: string, ascii: boolean): string | undefined => {
  const cs = charset.toLowerCase();
  if (cs === 'utf-8' || cs === 'utf8') return ascii ? latin1 : Buffer.from(latin1, 'latin1').toString('utf8');
  if (
    ['latin1', 'ascii', 'us-ascii', 'iso-8859-1', 'iso8859-1', 'iso88591', 'iso_8859-1', 'windows-1252', 'iso_8859-1:1987', 'cp1252', 'x-cp1252'].includes(cs)
  )
    return latin1;
  return decodeBytes(Buffer.from(latin1, 'latin1'), cs);
};

const decodeBytes = (bytes: Buffer, charset: string): string | undefined => {
  if (bytes.length === 0) return '';
  switch (charset) {
    case 'utf-8':
    case 'utf8':
      return bytes.toString('utf8');
    case 'utf16le':
    case 'utf-16le':
    case 'ucs2':
    case 'ucs-2':
      return bytes.toString('utf16le');
    case 'base64':
      return bytes.toString('base64');
    default:
      try {
        return new TextDecoder(charset).decode(bytes);
      } catch {
        return undefined;
      }
  }
};

/** A field's bytes as text in the part's charset (busboy's convertToUTF8). */
const fieldText = (bytes: Buffer, charset: string): string => decodeBytes(bytes, charset.toLowerCase()) ?? '';

interface Params {
  [name: string]: string | undefined;
}

const skipSpace = (s: string, i: number): number => {
  while (i < s.length && (s.charCodeAt(i) === 32 || s.charCodeAt(i) === 9)) i++;
  return i;
};

/** A quoted string starting after its opening quote: [value, index after the closing quote], or undefined. */
const quoted = (s: string, i: number): [string, number] | undefined => {
  let value = '';
  let start = i;
  let escaping = false;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 92) {
      if (escaping) {
        start = i;
        escaping = false;
      } else {
        value += s.slice(start, i);
        escaping = true;
      }
      continue;
    }
    if (c === 34) {
      if (escaping) {
        start = i;
        escaping = false;
        continue;
      }
      return [value + s.slice(start, i), i + 1];
    }
    if (escaping) {
      start = i - 1;
      escaping = false;
    }
    if (QDTEXT[c] !== 1) return undefined;
  }
  return undefined;
};

/** `; name=value` parameters from `i` on; `extended` reads RFC 8187 `name*=charset'lang'value` (Content-Disposition). */
const parseParams = (s: string, i: number, extended: boolean): Params | undefined => {
  const params: Params = Object.create(null) as Params;
  while (i < s.length) {
    i = skipSpace(s, i);
    if (i === s.length) break;
    if (s.charCodeAt(i++) !== 59) return undefined;
    i = skipSpace(s, i);
    if (i === s.length) return undefined;
    const nameStart = i;
    while (i < s.length && TOKEN[s.charCodeAt(i)] === 1) i++;
    if (i === s.length || s.charCodeAt(i) !== 61) return undefined;
    let name = s.slice(nameStart, i);
    let value: string | undefined;
    if (extended && name.endsWith('*')) {
      const csStart = ++i;
      while (i < s.length && CHARSET[s.charCodeAt(i)] === 1) i++;
      if (i === s.length || s.charCodeAt(i) !== 39) return undefined;
      const charset = s.slice(csStart, i++);
      while (i < s.length && s.charCodeAt(i) !== 39) i++;
      if (i === s.length) return undefined;
      if (++i === s.length) return undefined;
      let raw = '';
      let start = i;
      let ascii = true;
      for (; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (EXTENDED[c] === 1) continue;
        if (c !== 37) break;
        const hi = i + 2 < s.length ? hexOf(s.charCodeAt(i + 1)) : -1;
        const lo = hi === -1 ? -1 : hexOf(s.charCodeAt(i + 2));
        if (lo === -1) return undefined;
        const byte = (hi << 4) + lo;
        raw += s.slice(start, i) + String.fromCharCode(byte);
        if (byte >= 128) ascii = false;
        i += 2;
        start = i + 1;
      }
      value = decode(raw + s.slice(start, i), charset, ascii);
    } else {
      if (++i === s.length) return undefined;
      if (s.charCodeAt(i) === 34) {
        const q = quoted(s, i + 1);
        if (!q) return undefined;
        [value, i] = q;
      } else {
        const start = i;
        while (i < s.length && TOKEN[s.charCodeAt(i)] === 1) i++;
        if (i === start) return undefined;
        value = s.slice(start, i);
      }
      // Parameter values are UTF-8 (multer's defParamCharset).
      if (extended) value = decode(value, 'utf8', false);
    }
    if (value === undefined) return undefined;
    name = name.toLowerCase();
    if (params[name] === undefined) params[name] = value;
  }
  return params;
};

/** `type/subtype; params` (busboy's parseContentType), lower-cased type and subtype; undefined when malformed. */
export const parseContentType = (s: string): { type: string; subtype: string; params: Params } | undefined => {
  let i = 0;
  while (i < s.length && TOKEN[s.charCodeAt(i)] === 1) i++;
  if (i === 0 || i === s.length || s.charCodeAt(i) !== 47) return undefined;
  const type = s.slice(0, i).toLowerCase();
  const subStart = ++i;
  while (i < s.length && TOKEN[s.charCodeAt(i)] === 1) i++;
  if (i === subStart) return undefined;
  const params = i === s.length ? (Object.create(null) as Params) : parseParams(s, i, false);
  if (!params) return undefined;
  return { type, subtype: s.slice(subStart, i).toLowerCase(), params };
};

const parseDisposition = (s: string): { type: string; params: Params } | undefined => {
  if (s.length === 0) return undefined;
  let i = 0;
  while (i < s.length && TOKEN[s.charCodeAt(i)] === 1) i++;
  const params = i === s.length ? (Object.create(null) as Params) : parseParams(s, i, true);
  return params && { type: s.slice(0, i).toLowerCase(), params };
};

/** The last path segment, as busboy keeps it ('' for '.' and '..'). */
const basename = (p: string): string => {
  const cut = Math.max(p.lastIndexOf('/'), p.lastIndexOf('\\'));
  const b = cut === -1 ? p : p.slice(cut + 1);
  return b === '.' || b === '..' ? '' : b;
};

/** The WHATWG form escapes of LF, CR and '"' in names, reversed (as multer does). */
const unescapeName = (s: string): string =>
  s.includes('%') ? s.replace(/%0A|%0D|%22/gi, (m) => (m.toUpperCase() === '%0A' ? '\n' : m.toUpperCase() === '%0D' ? '\r' : '"')) : s;

/** The boundary of a request's Content-Type, or the error busboy gave (http/problem.ts maps both to 415). */
export const boundaryOf = (contentType: string | undefined): string => {
  const ct = parseContentType(contentType ?? '');
  if (!ct || ct.type !== 'multipart' || ct.subtype !== 'form-data') throw new Error(`Unsupported content type: ${contentType ?? ''}`);
  const boundary = ct.params['boundary'];
  if (boundary === undefined) throw new Error('Multipart: Boundary not found');
  return boundary;
};

const enum State {
  /** Before the first boundary, or in a part being skipped. */
  Skip,
  /** Right after a boundary: `--` ends the body, CRLF starts headers. */
  AfterBoundary,
  AfterBoundaryDash,
  AfterBoundaryCr,
  Headers,
  File,
  Field,
  Done,
}

/** Part-header parsing states (busboy's HeaderParser). */
const enum H {
  Name,
  PreSpace,
  Value,
}

export class MultipartParser {
  private readonly needle: Buffer;
  /** Bytes at the end of the last chunk that may begin the boundary. */
  private held: Buffer | undefined;
  private fresh = true;
  private state = State.Skip;
  /** Boundaries seen, less the first. */
  private parts = -1;
  private files = 0;
  private keptFiles = 0;
  private fields = 0;
  private fileBytes = 0;
  private field: Buffer[] = [];
  private fieldBytes = 0;
  private partName: string | undefined;
  private partCharset = 'utf8';
  // The current part's headers.
  private h = H.Name;
  private hCrlf = 0;
  private hBytes = 0;
  private hPairs = 0;
  private hName = '';
  private hValue = '';
  private headers = new Map<string, string>();

  constructor(
    boundary: string,
    private readonly limits: MultipartLimits,
    private readonly sink: PartSink,
  ) {
    this.needle = Buffer.from(`\r\n--${boundary}`, 'latin1');
  }

  /** True once the closing boundary was read (what follows it is ignored). */
  get complete(): boolean {
    return this.state === State.Done;
  }

  /** Parses one chunk of the body; throws what refuses it (MultipartError, a sink's error, 'Malformed part header'). */
  write(chunk: Buffer): void {
    if (this.state === State.Done) return;
    const needle = this.needle;
    let data = chunk;
    let pos = 0;
    if (this.fresh) {
      this.fresh = false;
      // The body read as if it began with a line break: a boundary on its first line counts.
      if (chunk.length >= needle.length - 2 && chunk.compare(needle, 2, needle.length, 0, needle.length - 2) === 0) {
        this.boundary();
        pos = needle.length - 2;
      } else this.held = Buffer.from('\r\n');
    }
    if (this.held) {
      data = Buffer.concat([this.held, chunk]);
      this.held = undefined;
    }
    while (pos < data.length && !this.complete) {
      // The boundary is found wherever it is (busboy searched the whole body for it, headers included).
      const at = data.indexOf(needle, pos);
      let end = at;
      if (at === -1) {
        // Keep what may be the boundary's beginning for the next chunk.
        end = data.length;
        for (let i = data.indexOf(13, Math.max(pos, data.length - needle.length + 1)); i !== -1; i = data.indexOf(13, i + 1)) {
          if (data.compare(needle, 0, data.length - i, i) === 0) {
            end = i;
            break;
          }
        }
      }
      while (pos < end && !this.complete) {
        if (this.state === State.Skip || this.state === State.File || this.state === State.Field) {
          this.content(data, pos, end);
          pos = end;
        } else if (this.state === State.Headers) pos = this.headerBytes(data, pos, end);
        else pos = this.afterBoundary(data, pos);
      }
      if (this.complete) return;
      if (at === -1) {
        if (end < data.length) this.held = Buffer.from(data.subarray(end));
        return;
      }
      // A boundary inside a part's headers leaves them unfinished.
      if (this.state === State.Headers) throw new Error('Malformed part header');
      this.boundary();
      pos = at + needle.length;
    }
  }

  /** Checks the body's end: it must have closed its last part. */
  end(): void {
    if (this.state !== State.Done) throw new Error('Unexpected end of form');
  }

  /** Bytes of the current part (or of nothing). */
  private content(data: Buffer, from: number, to: number): void {
    if (to <= from) return;
    if (this.state === State.File) {
      const room = this.limits.fileSize - this.fileBytes;
      if (to - from > room) throw new MultipartError('LIMIT_FILE_SIZE', 'file');
      this.fileBytes += to - from;
      this.sink.fileData(from === 0 && to === data.length ? data : data.subarray(from, to));
    } else if (this.state === State.Field) {
      if (this.fieldBytes + (to - from) > this.limits.fieldSize) throw new MultipartError('LIMIT_FIELD_VALUE', this.partName);
      this.fieldBytes += to - from;
      this.field.push(data.subarray(from, to));
    }
  }

  /** A boundary: the current part ends. */
  private boundary(): void {
    if (this.state === State.File) this.sink.fileEnd();
    else if (this.state === State.Field) {
      const value = fieldText(this.field.length === 1 ? (this.field[0] ?? Buffer.alloc(0)) : Buffer.concat(this.field, this.fieldBytes), this.partCharset);
      this.field = [];
      this.sink.field(this.partName ?? '', value);
    }
    this.state = State.AfterBoundary;
    if (++this.parts === this.limits.parts + 1) throw new MultipartError('LIMIT_PART_COUNT');
  }

  /** The bytes after a boundary, and the part's headers; returns where the part's content begins. */
  private afterBoundary(data: Buffer, pos: number): number {
    switch (this.state) {
      case State.AfterBoundary: {
        const c = data[pos];
        if (c === 45) this.state = State.AfterBoundaryDash;
        else if (c === 13) this.state = State.AfterBoundaryCr;
        else {
          this.state = State.Skip;
          return pos;
        }
        return pos + 1;
      }
      case State.AfterBoundaryDash:
        if (data[pos] === 45) {
          this.state = State.Done;
          return data.length;
        }
        this.state = State.Skip;
        return pos;
      case State.AfterBoundaryCr:
        if (data[pos] === 10) {
          this.state = this.parts >= this.limits.parts + 1 ? State.Skip : State.Headers;
          this.headers = new Map();
          this.h = H.Name;
          this.hCrlf = this.hBytes = this.hPairs = 0;
          this.hName = this.hValue = '';
          return pos + 1;
        }
        this.state = State.Skip;
        return pos;
      default:
        return pos;
    }
  }

  /** busboy's header grammar: `name: value` lines (folding allowed) up to an empty line, at most 16 KB. */
  private headerBytes(data: Buffer, pos: number, end: number): number {
    const malformed = (): Error => new Error('Malformed part header');
    let start = pos;
    while (pos < end) {
      if (this.h === H.Name) {
        for (; pos < end; pos++) {
          if (++this.hBytes > MAX_HEADER_BYTES) throw malformed();
          const c = data[pos] ?? 0;
          if (TOKEN[c] !== 1) {
            if (c !== 58) throw malformed();
            this.hName += data.toString('latin1', start, pos);
            if (this.hName.length === 0) throw malformed();
            pos++;
            this.h = H.PreSpace;
            break;
          }
        }
        if (this.h === H.Name) {
          this.hName += data.toString('latin1', start, pos);
          return pos;
        }
      }
      if (this.h === H.PreSpace) {
        for (; pos < end; pos++) {
          if (++this.hBytes > MAX_HEADER_BYTES) throw malformed();
          const c = data[pos];
          if (c !== 32 && c !== 9) {
            start = pos;
            this.h = H.Value;
            break;
          }
        }
        if (this.h === H.PreSpace) return pos;
      }
      // H.Value
      if (this.hCrlf === 0) {
        for (; pos < end; pos++) {
          if (++this.hBytes > MAX_HEADER_BYTES) throw malformed();
          const c = data[pos] ?? 0;
          if (HEADER_VALUE[c] !== 1) {
            if (c !== 13) throw malformed();
            this.hCrlf = 1;
            break;
          }
        }
        this.hValue += data.toString('latin1', start, pos);
        if (this.hCrlf === 0) return pos;
        pos++;
        continue;
      }
      if (++this.hBytes > MAX_HEADER_BYTES) throw malformed();
      const c = data[pos];
      if (this.hCrlf === 1 || this.hCrlf === 3) {
        if (c !== 10) throw malformed();
        pos++;
        if (this.hCrlf === 3) {
          this.partBegins();
          return pos;
        }
        this.hCrlf = 2;
        continue;
      }
      // After CR LF: a folded line, the next header, or the empty line.
      if (c === 32 || c === 9) {
        start = pos;
        this.hCrlf = 0;
        continue;
      }
      if (++this.hPairs < MAX_HEADER_PAIRS) {
        const name = this.hName.toLowerCase();
        if (!this.headers.has(name)) this.headers.set(name, this.hValue);
      }
      if (c === 13) {
        this.hCrlf = 3;
        pos++;
      } else {
        start = pos;
        this.hCrlf = 0;
        this.h = H.Name;
        this.hName = this.hValue = '';
      }
    }
    return pos;
  }

  /** The part's headers are read: a field, a file, or a part skipped (as busboy and multer do). */
  private partBegins(): void {
    this.state = State.Skip;
    const disposition = this.headers.get('content-disposition');
    const disp = disposition === undefined ? undefined : parseDisposition(disposition);
    if (!disp || disp.type !== 'form-data') return;
    const name = disp.params['name'];
    // An empty file name counts as none (busboy's test of it).
    const rawFilename = disp.params['filename*'] || disp.params['filename'] || undefined;
    let mimeType = 'text/plain';
    this.partCharset = 'utf8';
    const typeHeader = this.headers.get('content-type');
    const ct = typeHeader === undefined ? undefined : parseContentType(typeHeader);
    if (ct) {
      mimeType = `${ct.type}/${ct.subtype}`;
      const charset = ct.params['charset'];
      if (charset !== undefined) this.partCharset = charset.toLowerCase();
    }
    if (mimeType === 'application/octet-stream' || rawFilename !== undefined) {
      if (this.files === this.limits.files) throw new MultipartError('LIMIT_FILE_COUNT');
      this.files++;
      if (name === undefined) throw new MultipartError('MISSING_FIELD_NAME');
      const filename = rawFilename === undefined ? '' : unescapeName(basename(rawFilename));
      // A file part without a file name is read and dropped.
      if (filename === '') return;
      const field = unescapeName(name);
      if (field !== 'file' || this.keptFiles === this.limits.files) throw new MultipartError('LIMIT_UNEXPECTED_FILE', field);
      this.keptFiles++;
      this.fileBytes = 0;
      this.sink.fileStart({ filename, mimeType });
      this.state = State.File;
      return;
    }
    if (this.fields === this.limits.fields) throw new MultipartError('LIMIT_FIELD_COUNT');
    this.fields++;
    if (name === undefined) throw new MultipartError('MISSING_FIELD_NAME');
    this.partName = unescapeName(name);
    this.field = [];
    this.fieldBytes = 0;
    this.state = State.Field;
  }
}
