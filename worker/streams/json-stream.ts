/**
 * A streaming JSON reader for large request/response bodies: it walks the document byte by byte
 * (long strings are sliced with Buffer.indexOf, not char by char), tracks the path of every value,
 * and lets the caller stream chosen string values (e.g. base64 document content) in chunks while
 * small values are collected. Memory stays bounded by the chunk size and `maxValueBytes`.
 */

export type JsonPath = readonly (string | number)[];

export interface JsonHandlers {
  /** Return true to receive this string in chunks (onStringChunk/onStringEnd) instead of onValue. */
  streamString?(path: JsonPath): boolean;
  onStringChunk?(path: JsonPath, chunk: Buffer): void | Promise<void>;
  onStringEnd?(path: JsonPath): void | Promise<void>;
  onValue?(path: JsonPath, value: string | number | boolean | null): void | Promise<void>;
  onObjectStart?(path: JsonPath): void | Promise<void>;
  onObjectEnd?(path: JsonPath): void | Promise<void>;
}

export class JsonStreamError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JsonStreamError';
  }
}

interface Frame {
  kind: 'obj' | 'arr';
  key: string | undefined;
  index: number;
  /** What comes next inside this container. */
  expect: 'keyOrEnd' | 'key' | 'colon' | 'value' | 'valueOrEnd' | 'commaOrEnd';
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
const isWs = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

export class JsonStreamReader {
  private readonly stack: Frame[] = [];
  private mode: 'value' | 'string' | 'scalar' | 'done' = 'value';
  /** The string being read: streamed, or collected (value or key). */
  private str: { path: JsonPath; stream: boolean; isKey: boolean; parts: Buffer[]; bytes: number; escape: string | undefined } | undefined;
  private scalar = '';
  private scalarPath: JsonPath = [];
  private started = false;

  constructor(
    private readonly handlers: JsonHandlers,
    private readonly maxValueBytes = 64 * 1024,
  ) {}

  private path(): (string | number)[] {
    return this.stack.map((f) => (f.kind === 'obj' ? (f.key ?? '') : f.index));
  }

  /** Path of the value about to start in the current container. */
  private enterValue(): (string | number)[] {
    const top = this.stack.at(-1);
    if (top?.kind === 'arr') top.index += 1;
    return this.path();
  }

  private afterValue(): void {
    const top = this.stack.at(-1);
    if (!top) {
      this.mode = 'done';
      return;
    }
    top.expect = 'commaOrEnd';
    this.mode = 'value';
  }

  async write(chunk: Buffer): Promise<void> {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (this.mode === 'string') {
        i = await this.readString(chunk, i);
        continue;
      }
      if (this.mode === 'scalar') {
        const start = i;
        while (i < n && /[0-9a-zA-Z+\-.]/.test(String.fromCharCode(chunk[i] ?? 0))) i++;
        this.scalar += chunk.toString('latin1', start, i);
        if (this.scalar.length > 64) throw new JsonStreamError('number or literal too long');
        if (i < n) await this.finishScalar();
        continue;
      }
      const c = chunk[i] ?? 0;
      if (isWs(c)) {
        i++;
        continue;
      }
      if (this.mode === 'done') throw new JsonStreamError('unexpected data after the JSON value');
      const top = this.stack.at(-1);
      const ch = String.fromCharCode(c);
      if (top && top.expect === 'commaOrEnd') {
        if (ch === ',') top.expect = top.kind === 'obj' ? 'key' : 'value';
        else if ((ch === '}' && top.kind === 'obj') || (ch === ']' && top.kind === 'arr')) await this.close();
        else throw new JsonStreamError(`expected , or end of container, got ${ch}`);
        i++;
        continue;
      }
      if (top && top.expect === 'colon') {
        if (ch !== ':') throw new JsonStreamError(`expected :, got ${ch}`);
        top.expect = 'value';
        i++;
        continue;
      }
      if (top && (top.expect === 'keyOrEnd' || top.expect === 'key')) {
        if (ch === '}' && top.expect === 'keyOrEnd') {
          await this.close();
        } else if (ch === '"') {
          this.str = { path: this.path(), stream: false, isKey: true, parts: [], bytes: 0, escape: undefined };
          this.mode = 'string';
        } else throw new JsonStreamError(`expected a key, got ${ch}`);
        i++;
        continue;
      }
      if (top && top.expect === 'valueOrEnd' && ch === ']') {
        await this.close();
        i++;
        continue;
      }
      // A value starts.
      if (!top && this.started) throw new JsonStreamError('unexpected data after the JSON value');
      this.started = true;
      if (ch === '{' || ch === '[') {
        const p = this.enterValue();
        this.stack.push({ kind: ch === '{' ? 'obj' : 'arr', key: undefined, index: -1, expect: ch === '{' ? 'keyOrEnd' : 'valueOrEnd' });
        if (ch === '{') await this.handlers.onObjectStart?.(p);
        i++;
      } else if (ch === '"') {
        const p = this.enterValue();
        this.str = { path: p, stream: this.handlers.streamString?.(p) ?? false, isKey: false, parts: [], bytes: 0, escape: undefined };
        this.mode = 'string';
        i++;
      } else if (/[-0-9tfn]/.test(ch)) {
        this.scalarPath = this.enterValue();
        this.scalar = '';
        this.mode = 'scalar';
      } else throw new JsonStreamError(`unexpected character ${ch}`);
    }
  }

  /** Call after the last chunk. */
  async end(): Promise<void> {
    if (this.mode === 'scalar') await this.finishScalar();
    if (this.mode !== 'done' || this.stack.length > 0) throw new JsonStreamError('unexpected end of JSON');
  }

  private async close(): Promise<void> {
    const frame = this.stack.pop();
    // After the pop, the parent's key/index still name the closed object: path() is its path.
    if (frame?.kind === 'obj') await this.handlers.onObjectEnd?.(this.path());
    this.afterValue();
  }

  private async finishScalar(): Promise<void> {
    const s = this.scalar;
    let v: number | boolean | null;
    if (s === 'true') v = true;
    else if (s === 'false') v = false;
    else if (s === 'null') v = null;
    else if (/^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/.test(s)) v = Number(s);
    else throw new JsonStreamError(`invalid literal ${s.slice(0, 20)}`);
    await this.handlers.onValue?.(this.scalarPath, v);
    this.afterValue();
  }

  private async emit(part: Buffer): Promise<void> {
    const s = this.str;
    if (!s || part.length === 0) return;
    if (s.stream) {
      await this.handlers.onStringChunk?.(s.path, part);
      return;
    }
    s.bytes += part.length;
    if (s.bytes > this.maxValueBytes) throw new JsonStreamError(`a JSON string at ${s.path.join('.')} exceeds ${this.maxValueBytes} bytes`);
    s.parts.push(part);
  }

  /** Reads string content from `chunk` at `i`; returns the next index. */
  private async readString(chunk: Buffer, i: number): Promise<number> {
    const s = this.str;
    if (!s) throw new JsonStreamError('internal: no string');
    if (s.escape !== undefined) {
      // Complete an escape split across chunks.
      while (i < chunk.length) {
        s.escape += String.fromCharCode(chunk[i] ?? 0);
        i++;
        const e = s.escape;
        if (e.length === 1 && e !== 'u') {
          const out = ESCAPES[e];
          if (out === undefined) throw new JsonStreamError(`invalid escape \\${e}`);
          await this.emit(Buffer.from(out));
          s.escape = undefined;
          break;
        }
        if (e.length === 5) {
          if (!/^u[0-9a-fA-F]{4}$/.test(e)) throw new JsonStreamError('invalid \\u escape');
          await this.emit(Buffer.from(String.fromCharCode(parseInt(e.slice(1), 16))));
          s.escape = undefined;
          break;
        }
      }
      return i;
    }
    const q = chunk.indexOf(QUOTE, i);
    const b = chunk.indexOf(BACKSLASH, i);
    const stop = q === -1 ? b : b === -1 ? q : Math.min(q, b);
    if (stop === -1) {
      await this.emit(chunk.subarray(i));
      return chunk.length;
    }
    await this.emit(chunk.subarray(i, stop));
    if (stop === b) {
      s.escape = '';
      return stop + 1;
    }
    // End of string.
    this.str = undefined;
    if (s.isKey) {
      const top = this.stack.at(-1);
      if (top) {
        top.key = Buffer.concat(s.parts).toString('utf8');
        top.expect = 'colon';
      }
      this.mode = 'value';
    } else if (s.stream) {
      await this.handlers.onStringEnd?.(s.path);
      this.afterValue();
    } else {
      await this.handlers.onValue?.(s.path, Buffer.concat(s.parts).toString('utf8'));
      this.afterValue();
    }
    return stop + 1;
  }
}

/** Reads a whole stream through a JsonStreamReader (awaiting handlers: backpressure holds). */
export const readJsonStream = async (source: AsyncIterable<Buffer | string>, handlers: JsonHandlers, maxValueBytes?: number): Promise<void> => {
  const reader = new JsonStreamReader(handlers, maxValueBytes);
  for await (const chunk of source) await reader.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  await reader.end();
};
