/**
 * A one-pass scanner of a UTF-8 XML document held as bytes, without a DOM: it checks that the
 * document is well-formed (XML 1.0 with namespaces) and, when given a sink, writes the document's
 * canonical form (Canonical XML 1.0, without comments: http://www.w3.org/TR/2001/REC-xml-c14n-20010315)
 * into it, as runs of the original bytes with the few places that differ rewritten. The api uses it
 * to check an XML at submit, the local signer to digest the document of an enveloped XAdES
 * signature. A document with a DOCTYPE is left to a full parser (`unsupported`): its entities and
 * default attributes change the canonical form.
 */
import { isUtf8 } from 'node:buffer';

/** Where canonical bytes go (a Hash in the signer). */
export interface CanonicalSink {
  update(data: Buffer | string): unknown;
}

export type XmlScan =
  /**
   * `rootEndTag`: offset of the `</` of the root's end tag, or with `emptyRoot` (`<root/>`) of
   * the `/>` that ends it; `rootName`: the root's name as written.
   */
  { kind: 'ok'; rootEndTag: number; emptyRoot: boolean; rootName: string } | { kind: 'malformed'; reason: string } | { kind: 'unsupported'; reason: string };

const XML_NS = 'http://www.w3.org/XML/1998/namespace';
const XMLNS_NS = 'http://www.w3.org/2000/xmlns/';

// ASCII name characters: 1 may start a name, 2 may continue one (bytes ≥ 0x80 are checked as text).
const NAME = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  if (/[A-Za-z_:]/.test(ch)) NAME[c] = 1;
  else if (/[-.0-9]/.test(ch)) NAME[c] = 2;
}
const NAME_START_RANGES =
  ':A-Z_a-z\\u00C0-\\u00D6\\u00D8-\\u00F6\\u00F8-\\u02FF\\u0370-\\u037D\\u037F-\\u1FFF\\u200C-\\u200D\\u2070-\\u218F\\u2C00-\\u2FEF\\u3001-\\uD7FF\\uF900-\\uFDCF\\uFDF0-\\uFFFD\\u{10000}-\\u{EFFFF}';
// eslint-disable-next-line no-misleading-character-class -- the XML NameChar production lists combining marks as ranges, not combined characters
const XML_NAME = new RegExp(`^[${NAME_START_RANGES}][${NAME_START_RANGES}\\-.0-9\\u00B7\\u0300-\\u036F\\u203F-\\u2040]*$`, 'u');
/** ASCII name characters but the colon (1 may start a name, 2 may continue one), as a table of all bytes. */
const PLAIN_NAME = new Uint8Array(256);
for (let c = 0; c < 128; c++) if (c !== 0x3a) PLAIN_NAME[c] = NAME[c] ?? 0;
/** Each byte's part in a name: 1 may start one, 2 may continue one, 5 the colon, 8 a byte of a non-ASCII character (checked against XML_NAME), 0 none. */
const NAME_CLASS = new Uint8Array(256);
for (let c = 0; c < 256; c++) NAME_CLASS[c] = c >= 0x80 ? 8 : c === 0x3a ? 5 : (NAME[c] ?? 0);
/** Bytes that end or change a run of text: < & > CR and the control characters XML refuses. */
const TEXT = new Uint8Array(256);
for (const c of [0x3c, 0x26, 0x3e, 0x0d]) TEXT[c] = 1;
for (let c = 0; c < 0x20; c++) if (c !== 0x09 && c !== 0x0a && c !== 0x0d) TEXT[c] = 1;
/** The first two bytes of U+FFC0…U+FFFF in UTF-8 (U+FFFE and U+FFFF are not XML characters). */
const EF_BF = Buffer.from([0xef, 0xbf]);
const isWs = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d;
/** A character XML 1.0 allows (surrogates and non-characters of UTF-8 are refused before). */
const isXmlChar = (cp: number): boolean =>
  cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);

const escapeText = (s: string): string => s.replace(/[&<>\r]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : '&#xD;'));
const escapeAttr = (s: string): string =>
  s.replace(/[&<"\t\n\r]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '"' ? '&quot;' : c === '\t' ? '&#x9;' : c === '\n' ? '&#xA;' : '&#xD;'));
const normalizeNewlines = (s: string): string => s.replace(/\r\n?/g, '\n');

class Malformed extends Error {}
class Unsupported extends Error {}

interface Attr {
  name: string;
  value: string;
  prefix: string;
  local: string;
}

/** Scans `buf`; with `out`, writes its canonical form there. */
export const scanXml = (buf: Buffer, out?: CanonicalSink): XmlScan => {
  try {
    const scanner = new Scanner(buf, out);
    const rootEndTag = scanner.document();
    return { kind: 'ok', rootEndTag, emptyRoot: scanner.emptyRoot, rootName: scanner.rootName };
  } catch (err) {
    if (err instanceof Malformed) return { kind: 'malformed', reason: err.message };
    if (err instanceof Unsupported) return { kind: 'unsupported', reason: err.message };
    throw err;
  }
};

class Scanner {
  private i = 0;
  private readonly n: number;
  /** Start of the run of original bytes not yet written to `out`. */
  private run = 0;
  /** The root element's name, and whether it is an empty-element tag. */
  rootName = '';
  emptyRoot = false;
  /** Namespaces declared by each open element (undefined: none). */
  private readonly scopes: Map<string, string>[] = [];
  /** The depth (index among the open elements) of the element that declared each of `scopes`. */
  private readonly scopeDepths: number[] = [];

  /** The depth of the innermost element that declared namespaces (-1: none). */
  private scopeTop = -1;

  /** Drops the namespaces of the element at `depth` (it closed). */
  private closeScope(depth: number): void {
    if (this.scopeTop === depth) {
      this.scopeDepths.pop();
      this.scopes.pop();
      this.scopeTop = this.scopeDepths[this.scopeDepths.length - 1] ?? -1;
    }
  }

  constructor(
    private readonly b: Buffer,
    private readonly out: CanonicalSink | undefined,
  ) {
    this.n = b.length;
  }

  private fail(what: string): never {
    throw new Malformed(`${what} (byte ${this.i})`);
  }

  /** Writes the pending run up to `from`, then `text` in place of the bytes up to `to`. */
  private replace(from: number, to: number, text: string): void {
    const out = this.out;
    if (!out) return;
    if (from > this.run) out.update(this.b.subarray(this.run, from));
    if (text.length > 0) out.update(text);
    this.run = to;
  }

  document(): number {
    const b = this.b;
    if (!isUtf8(b)) this.fail('not UTF-8');
    // U+FFFE and U+FFFF are not XML characters.
    for (let at = b.indexOf(EF_BF); at >= 0; at = b.indexOf(EF_BF, at + 2)) if ((b[at + 2] ?? 0) >= 0xbe) this.fail('a non-character');
    if (b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) this.i = 3;
    this.run = this.i;
    this.xmlDecl();
    // Prolog: whitespace, comments and PIs (a PI is written followed by a newline).
    let prolog = '';
    for (;;) {
      this.skipWs();
      if (this.i >= this.n) this.fail('no root element');
      if (b[this.i] !== 0x3c) this.fail('text before the root element');
      const c = b[this.i + 1];
      if (c === 0x3f) prolog += `${this.pi()}\n`;
      else if (c === 0x21) {
        if (this.startsWith('<!--')) this.comment();
        else if (this.startsWith('<!DOCTYPE')) throw new Unsupported('a DOCTYPE');
        else this.fail('markup before the root element');
      } else break;
    }
    this.replace(this.run, this.i, prolog);
    const rootEndTag = this.content();
    // Epilog: PIs are written after a newline; comments and whitespace are dropped.
    this.replace(this.i, this.i, '');
    let epilog = '';
    for (;;) {
      this.skipWs();
      if (this.i >= this.n) break;
      if (b[this.i] !== 0x3c) this.fail('text after the root element');
      const c = b[this.i + 1];
      if (c === 0x3f) epilog += `\n${this.pi()}`;
      else if (this.startsWith('<!--')) this.comment();
      else this.fail('markup after the root element');
    }
    if (epilog.length > 0) this.out?.update(epilog);
    return rootEndTag;
  }

  private startsWith(s: string): boolean {
    for (let k = 0; k < s.length; k++) if (this.b[this.i + k] !== s.charCodeAt(k)) return false;
    return true;
  }

  private skipWs(): void {
    while (this.i < this.n && isWs(this.b[this.i] ?? 0)) this.i++;
  }

  /** The XML declaration, if the document starts with one (it is not part of the canonical form). */
  private xmlDecl(): void {
    if (!this.startsWith('<?xml') || !isWs(this.b[this.i + 5] ?? 0)) return;
    const end = this.b.indexOf('?>', this.i);
    if (end < 0) this.fail('an unterminated XML declaration');
    const decl = this.b.toString('latin1', this.i, end + 2);
    if (!/^<\?xml\s+version\s*=\s*(["'])1\.\d+\1(\s+encoding\s*=\s*(["'])[A-Za-z][-\w.]*\3)?(\s+standalone\s*=\s*(["'])(yes|no)\5)?\s*\?>$/.test(decl)) {
      this.fail('a malformed XML declaration');
    }
    this.i = end + 2;
  }

  /** Set by `nameEnd`: the name holds a colon / a byte ≥ 0x80. */
  private colon = false;

  /** The end of a name that starts at `start` (checked: ASCII by table, others against the XML Name production); on a failure `i` is where. */
  private nameEnd(start: number): number {
    const b = this.b;
    let flags = NAME_CLASS[b[start] ?? 0] ?? 0;
    if ((flags & 9) === 0) {
      this.i = start;
      this.fail('a name expected');
    }
    let i = start + 1;
    for (let t = NAME_CLASS[b[i] ?? 0] ?? 0; t !== 0; t = NAME_CLASS[b[++i] ?? 0] ?? 0) flags |= t;
    this.colon = (flags & 4) !== 0;
    if ((flags & 8) !== 0 && !XML_NAME.test(b.toString('utf8', start, i))) {
      this.i = i;
      this.fail('an invalid name');
    }
    return i;
  }

  /** A name at `i`, as a string; `i` moves past it. */
  private name(): string {
    const start = this.i;
    this.i = this.nameEnd(start);
    return this.b.toString('utf8', start, this.i);
  }

  /** True when bytes [a, a + len) equal [c, c + len). */
  private same(a: number, c: number, len: number): boolean {
    const b = this.b;
    for (let k = 0; k < len; k++) if (b[a + k] !== b[c + k]) return false;
    return true;
  }

  /** Compares bytes [a, a + la) and [c, c + lc) (negative when the first sorts first). */
  private compare(a: number, la: number, c: number, lc: number): number {
    const b = this.b;
    const len = Math.min(la, lc);
    for (let k = 0; k < len; k++) {
      const d = (b[a + k] ?? 0) - (b[c + k] ?? 0);
      if (d !== 0) return d;
    }
    return la - lc;
  }

  /** "prefix:local" → [prefix, local] ('' prefix when none); a QName has at most one colon, parts non-empty. */
  private split(name: string): [string, string] {
    const colon = name.indexOf(':');
    if (colon < 0) return ['', name];
    if (colon === 0 || colon === name.length - 1 || name.indexOf(':', colon + 1) >= 0) this.fail(`an invalid qualified name ${JSON.stringify(name)}`);
    return [name.slice(0, colon), name.slice(colon + 1)];
  }

  /** The namespace bound to `prefix` by the elements above `depth` (all open ones by default). */
  private lookup(prefix: string, depth = Infinity): string | undefined {
    if (prefix === 'xml') return XML_NS;
    for (let d = this.scopes.length - 1; d >= 0; d--) {
      if ((this.scopeDepths[d] ?? 0) >= depth) continue;
      const v = this.scopes[d]?.get(prefix);
      if (v !== undefined) return v;
    }
    return undefined;
  }

  /** A character or entity reference at `i` (at the `&`): the character, `i` moved past the `;`. */
  private reference(): string {
    const b = this.b;
    const start = this.i;
    const semi = b.indexOf(0x3b, start);
    if (semi < 0 || semi - start > 12) this.fail('a malformed reference');
    const body = b.toString('latin1', start + 1, semi);
    this.i = semi + 1;
    switch (body) {
      case 'amp':
        return '&';
      case 'lt':
        return '<';
      case 'gt':
        return '>';
      case 'quot':
        return '"';
      case 'apos':
        return "'";
    }
    const m = /^#(?:x([0-9A-Fa-f]+)|([0-9]+))$/.exec(body);
    if (!m) this.fail(`an undefined entity &${body};`);
    const cp = m[1] !== undefined ? parseInt(m[1], 16) : parseInt(m[2] ?? '', 10);
    if (!isXmlChar(cp)) this.fail('a reference to a character XML does not allow');
    return String.fromCodePoint(cp);
  }

  /** `<?target data?>` at `i`: its canonical form. */
  private pi(): string {
    this.i += 2;
    const target = this.name();
    if (target.toLowerCase() === 'xml') this.fail('a processing instruction named xml');
    if (target.includes(':')) this.fail('a processing instruction target with a colon');
    const end = this.b.indexOf('?>', this.i);
    if (end < 0) this.fail('an unterminated processing instruction');
    if (end > this.i && !isWs(this.b[this.i] ?? 0)) this.fail('a malformed processing instruction');
    this.chars(this.i, end);
    let dataStart = this.i;
    while (dataStart < end && isWs(this.b[dataStart] ?? 0)) dataStart++;
    const data = normalizeNewlines(this.b.toString('utf8', dataStart, end));
    this.i = end + 2;
    return data.length > 0 ? `<?${target} ${data}?>` : `<?${target}?>`;
  }

  /** `<!-- ... -->` at `i` (dropped from the canonical form). */
  private comment(): void {
    const end = this.b.indexOf('--', this.i + 4);
    if (end < 0) this.fail('an unterminated comment');
    if (this.b[end + 2] !== 0x3e) this.fail('"--" inside a comment');
    this.chars(this.i + 4, end);
    this.i = end + 3;
  }

  /** Checks that bytes [from, to) hold no control character XML refuses. */
  private chars(from: number, to: number): void {
    const b = this.b;
    for (let k = from; k < to; k++) {
      const c = b[k] ?? 0;
      if (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) {
        this.i = k;
        this.fail('a control character');
      }
    }
  }

  /** The root element and everything in it; returns the offset of the root's end tag. */
  private content(): number {
    const b = this.b;
    const n = this.n;
    const text = TEXT;
    let i = this.i;
    for (;;) {
      // Text up to the next '<' (four bytes a step while none of them ends the run).
      for (;;) {
        while (i + 4 <= n && ((text[b[i] ?? 0] ?? 1) | (text[b[i + 1] ?? 0] ?? 1) | (text[b[i + 2] ?? 0] ?? 1) | (text[b[i + 3] ?? 0] ?? 1)) === 0) i += 4;
        while (i < n && text[b[i] ?? 0] === 0) i++;
        if (i >= n) break;
        const c = b[i] ?? 0;
        if (c === 0x3c) break;
        if (c === 0x26) {
          this.i = i;
          const ch = this.reference();
          const canonical = escapeText(ch);
          if (this.out && canonical !== b.toString('latin1', i, this.i)) this.replace(i, this.i, canonical);
          i = this.i;
        } else if (c === 0x3e) {
          if (b[i - 1] === 0x5d && b[i - 2] === 0x5d) {
            this.i = i;
            this.fail('"]]>" in text');
          }
          this.replace(i, i + 1, '&gt;');
          i++;
        } else if (c === 0x0d) {
          this.replace(i, i + 1, b[i + 1] === 0x0a ? '' : '\n');
          i++;
        } else {
          this.i = i;
          this.fail('a control character');
        }
      }
      this.i = i;
      if (i >= n) this.fail('the document ends inside an element');
      // Markup.
      const c = b[i + 1];
      if (c === 0x2f) {
        // An end tag: the open element's name, then a byte that cannot continue a name.
        const depth = this.depth;
        if (depth === 0) this.fail('an end tag without a start tag');
        const nameStart = i + 2;
        const openStart = this.elStart[depth - 1] ?? 0;
        const len = this.elLen[depth - 1] ?? 0;
        let k = 0;
        while (k < len && b[nameStart + k] === b[openStart + k]) k++;
        if (k < len || NAME_CLASS[b[nameStart + len] ?? 0x3c] !== 0) {
          this.i = nameStart;
          const name = this.name();
          this.fail(`an end tag </${name}> for <${b.toString('utf8', openStart, openStart + len)}>`);
        }
        const nameEnd = nameStart + len;
        let j = nameEnd;
        while (j < n && isWs(b[j] ?? 0)) j++;
        if (b[j] !== 0x3e) {
          this.i = j;
          this.fail('a malformed end tag');
        }
        j++;
        if (j !== nameEnd + 1) this.replace(nameEnd, j, '>');
        this.depth = depth - 1;
        if (this.scopeTop === depth - 1) this.closeScope(depth - 1);
        this.i = j;
        if (depth === 1) return i;
        i = j;
      } else if (c === 0x21) {
        if (this.startsWith('<!--')) {
          this.comment();
          this.replace(i, this.i, '');
        } else if (this.startsWith('<![CDATA[')) {
          const end = b.indexOf(']]>', i + 9);
          if (end < 0) this.fail('an unterminated CDATA section');
          this.chars(i + 9, end);
          this.i = end + 3;
          if (this.out) this.replace(i, this.i, escapeText(normalizeNewlines(b.toString('utf8', i + 9, end))));
        } else this.fail('markup not allowed in content');
        i = this.i;
      } else if (c === 0x3f) {
        const canonical = this.pi();
        if (this.out && canonical !== b.toString('utf8', i, this.i)) this.replace(i, this.i, canonical);
        i = this.i;
      } else {
        // `<name>` inside the root, its name ASCII without a colon: canonical as written.
        const depth = this.depth;
        if (depth > 0 && PLAIN_NAME[c ?? 0] === 1) {
          let j = i + 2;
          while (PLAIN_NAME[b[j] ?? 0] !== 0) j++;
          if (b[j] === 0x3e) {
            this.elStart[depth] = i + 1;
            this.elLen[depth] = j - i - 1;
            this.depth = depth + 1;
            i = j + 1;
            continue;
          }
        }
        this.i = i;
        const empty = this.startTag();
        if (empty && this.depth === 0) {
          this.emptyRoot = true;
          return this.i - 2;
        }
        i = this.i;
      }
    }
  }

  /** Open elements (the first `depth` entries): where each one's name starts and its length. */
  private readonly elStart: number[] = [];
  private readonly elLen: number[] = [];
  private depth = 0;
  /** The current start tag's attributes: name start/end, value start/end (inside the quotes), flags. */
  private readonly aName: number[] = [];
  private readonly aNameEnd: number[] = [];
  private readonly aVal: number[] = [];
  private readonly aValEnd: number[] = [];

  /** `<name attrs>` or `<name attrs/>` at `i`; returns true for an empty-element tag. */
  private startTag(): boolean {
    const b = this.b;
    const n = this.n;
    const start = this.i;
    const nameStart = start + 1;
    let i = this.nameEnd(nameStart);
    const nameLen = i - nameStart;
    let namespaced = this.colon;
    // Canonical as written: single spaces before attributes, "-quoted values that need no
    // escaping or decoding, no space before '>', attributes in order; no namespace work.
    let simple = true;
    let k = 0;
    for (;;) {
      const wsStart = i;
      while (i < n && isWs(b[i] ?? 0)) i++;
      const c = b[i];
      if (c === 0x3e || c === 0x2f) {
        if (i !== wsStart) simple = false;
        break;
      }
      if (i === wsStart) {
        this.i = i;
        this.fail(i >= n ? 'the document ends inside a tag' : 'attributes without whitespace between them');
      }
      if (i - wsStart > 1 || b[wsStart] !== 0x20) simple = false;
      const an = i;
      i = this.nameEnd(i);
      const anEnd = i;
      if (this.colon || (anEnd - an === 5 && b[an] === 0x78 && b[an + 1] === 0x6d && b[an + 2] === 0x6c && b[an + 3] === 0x6e && b[an + 4] === 0x73))
        namespaced = true;
      if (b[i] !== 0x3d) {
        simple = false;
        while (i < n && isWs(b[i] ?? 0)) i++;
        if (b[i] !== 0x3d) {
          this.i = i;
          this.fail('an attribute without a value');
        }
      }
      i++;
      if (b[i] !== 0x22) {
        simple = false;
        while (i < n && isWs(b[i] ?? 0)) i++;
      }
      const q = b[i] ?? 0;
      if (q !== 0x22 && q !== 0x27) {
        this.i = i;
        this.fail('an attribute value without quotes');
      }
      if (q !== 0x22) simple = false;
      const vStart = i + 1;
      // The value: plain when its bytes are its canonical form (no reference, no whitespace but spaces, no ").
      let at = i;
      for (i = vStart; i < n; i++) {
        const v = b[i] ?? 0;
        if (v === q) break;
        if (v >= 0x3f) continue;
        if (v === 0x3c) {
          this.i = i;
          this.fail('"<" in an attribute value');
        }
        if (v === 0x26) {
          this.i = i;
          this.reference();
          at = this.i;
          i = at - 1;
          simple = false;
        } else if (v < 0x20 || v === 0x22) {
          if (v < 0x20 && v !== 0x09 && v !== 0x0a && v !== 0x0d) {
            this.i = i;
            this.fail('a control character');
          }
          simple = false;
        }
      }
      if (i >= n) {
        this.i = at;
        this.fail('an unterminated attribute value');
      }
      const vEnd = i;
      i++;
      if (k > 0) {
        this.i = i;
        for (let j = 0; j < k; j++) {
          const len = (this.aNameEnd[j] ?? 0) - (this.aName[j] ?? 0);
          if (len === anEnd - an && this.same(this.aName[j] ?? 0, an, len)) this.fail(`attribute ${b.toString('utf8', an, anEnd)} twice`);
        }
        if (this.compare(this.aName[k - 1] ?? 0, (this.aNameEnd[k - 1] ?? 0) - (this.aName[k - 1] ?? 0), an, anEnd - an) > 0) simple = false;
      }
      this.aName[k] = an;
      this.aNameEnd[k] = anEnd;
      this.aVal[k] = vStart;
      this.aValEnd[k] = vEnd;
      k++;
    }
    const empty = b[i] === 0x2f;
    if (empty) {
      i++;
      if (b[i] !== 0x3e) {
        this.i = i;
        this.fail('a malformed empty-element tag');
      }
    }
    i++;
    this.i = i;
    const depth = this.depth;
    if (depth === 0) this.rootName = b.toString('utf8', nameStart, nameStart + nameLen);
    if (!namespaced) {
      if (this.out && (empty || !simple)) this.replace(start, i, this.canonicalStartTag(start, nameLen, k, depth, empty));
    } else {
      this.namespaces(nameStart, nameLen, k, depth);
      if (this.out) {
        const canonical = this.canonicalStartTag(start, nameLen, k, depth, empty);
        if (empty || canonical !== b.toString('utf8', start, i)) this.replace(start, i, canonical);
      }
    }
    if (empty) {
      if (this.scopeTop === depth) this.closeScope(depth);
    } else {
      this.elStart[depth] = nameStart;
      this.elLen[depth] = nameLen;
      this.depth = depth + 1;
    }
    return empty;
  }

  /** The `k` attributes of the current start tag, as strings (values normalized). */
  private attrs(k: number): Attr[] {
    const list: Attr[] = [];
    for (let j = 0; j < k; j++) {
      const name = this.b.toString('utf8', this.aName[j], this.aNameEnd[j]);
      const [prefix, local] = this.split(name);
      list.push({ name, prefix, local, value: this.valueOf(this.aVal[j] ?? 0, this.aValEnd[j] ?? 0) });
    }
    return list;
  }

  /** Binds the namespaces the current start tag declares (checked), and checks its prefixes. */
  private namespaces(nameStart: number, nameLen: number, k: number, depth: number): void {
    const attrs = this.attrs(k);
    let scope: Map<string, string> | undefined;
    for (const a of attrs) {
      const isDefault = a.prefix === '' && a.local === 'xmlns';
      if (!isDefault && a.prefix !== 'xmlns') continue;
      const p = isDefault ? '' : a.local;
      if (p === 'xmlns' || a.value === XMLNS_NS) this.fail('the xmlns namespace declared');
      if ((p === 'xml') !== (a.value === XML_NS)) this.fail('the xml prefix bound to another namespace, or its namespace to another prefix');
      if (p !== '' && a.value === '') this.fail(`prefix ${p} undeclared with an empty value`);
      (scope ??= new Map()).set(p, a.value);
    }
    if (scope) {
      this.scopes.push(scope);
      this.scopeDepths.push(depth);
      this.scopeTop = depth;
    }
    const elName = this.b.toString('utf8', nameStart, nameStart + nameLen);
    const [elPrefix] = this.split(elName);
    if (elPrefix !== '' && this.lookup(elPrefix) === undefined) this.fail(`an undeclared prefix ${elPrefix}`);
    const expanded = new Set<string>();
    for (const a of attrs) {
      if (a.prefix === 'xmlns' || a.prefix === '') continue;
      const uri = this.lookup(a.prefix);
      if (uri === undefined) this.fail(`an undeclared prefix ${a.prefix}`);
      const key = `${uri} ${a.local}`;
      if (expanded.has(key)) this.fail(`attribute {${uri}}${a.local} twice`);
      expanded.add(key);
    }
  }

  /** The value in bytes [from, to), normalized: references decoded, literal whitespace (a CR LF pair as one) a space. */
  private valueOf(from: number, to: number): string {
    const b = this.b;
    const save = this.i;
    let value = '';
    let run = from;
    for (let k = from; k < to; k++) {
      const c = b[k] ?? 0;
      if (c === 0x26) {
        value += b.toString('utf8', run, k);
        this.i = k;
        value += this.reference();
        k = this.i - 1;
        run = this.i;
      } else if (c === 0x09 || c === 0x0a || c === 0x0d) {
        value += `${b.toString('utf8', run, k)} `;
        if (c === 0x0d && b[k + 1] === 0x0a) k++;
        run = k + 1;
      }
    }
    this.i = save;
    return value + b.toString('utf8', run, to);
  }

  /** The canonical start tag: namespace declarations not already in scope (by prefix), then attributes by (namespace, local name). */
  private canonicalStartTag(start: number, nameLen: number, k: number, depth: number, empty: boolean): string {
    const name = this.b.toString('utf8', start + 1, start + 1 + nameLen);
    const ns: [string, string][] = [];
    const plain: { uri: string; local: string; name: string; value: string }[] = [];
    for (const a of this.attrs(k)) {
      const isDefault = a.prefix === '' && a.local === 'xmlns';
      if (isDefault || a.prefix === 'xmlns') {
        const p = isDefault ? '' : a.local;
        const inherited = this.lookup(p, depth) ?? '';
        if (a.value !== inherited) ns.push([p, a.value]);
      } else plain.push({ uri: a.prefix === '' ? '' : (this.lookup(a.prefix) ?? ''), local: a.local, name: a.name, value: a.value });
    }
    ns.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
    plain.sort((x, y) => (x.uri < y.uri ? -1 : x.uri > y.uri ? 1 : x.local < y.local ? -1 : x.local > y.local ? 1 : 0));
    let s = `<${name}`;
    for (const [p, v] of ns) s += p === '' ? ` xmlns="${escapeAttr(v)}"` : ` xmlns:${p}="${escapeAttr(v)}"`;
    for (const a of plain) s += ` ${a.name}="${escapeAttr(a.value)}"`;
    return empty ? `${s}></${name}>` : `${s}>`;
  }
}
