/**
 * The incremental update that adds a PAdES signature to a PDF: a signature dictionary with a
 * /Contents placeholder and a /ByteRange, an invisible signature field (merged with its widget) on
 * the first page, the AcroForm (/SigFlags 3) listing it, and a cross-reference table and trailer
 * pointing back at the previous one. Appended after the original bytes, which stay as they are,
 * so earlier signatures keep verifying.
 */
import { randomUUID } from 'node:crypto';
import { PdfDict, PdfName, PdfRaw, PdfRef, type PdfReader, type PdfValue, writeValue } from './pdf-reader.js';

export class PdfNotSignableError extends Error {}

export interface PadesUpdate {
  /** The bytes to append, with the /Contents placeholder still zeros. */
  bytes: Buffer;
  /** Where the placeholder's hex digits start and how many there are (offsets within `bytes`). */
  contentsStart: number;
  contentsHexLength: number;
}

const raw = (s: string): PdfRaw => new PdfRaw(Buffer.from(s, 'latin1'));
const pdfDate = (d: Date): string => {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `D:${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}+00'00'`;
};
const BYTE_RANGE_PLACEHOLDER = `/ByteRange [0 ${'0'.repeat(10)} ${'0'.repeat(10)} ${'0'.repeat(10)}]`;
/** The signature dictionary's text before its /ByteRange, and from there to the placeholder's digits. */
const SIG_HEAD = '<</Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached ';
const CONTENTS_HEAD = `${BYTE_RANGE_PLACEHOLDER} /Contents <`;
/** 12 random hex digits (randomUUID draws from a cached pool: randomBytes costs a system call each). */
const fieldId = (): string => {
  const u = randomUUID();
  return u.slice(0, 8) + u.slice(9, 13);
};

const firstPage = (reader: PdfReader, pages: PdfValue | undefined): PdfRef => {
  let node = pages;
  for (let depth = 0; depth < 64; depth++) {
    if (!(node instanceof PdfRef)) break;
    const dict = reader.get(node.num);
    if (!(dict instanceof PdfDict)) break;
    const type = dict.get('Type');
    if (type instanceof PdfName && type.name === 'Page') return node;
    const kids = reader.resolve(dict.get('Kids'));
    if (!Array.isArray(kids) || kids.length === 0) break;
    node = kids[0];
  }
  throw new PdfNotSignableError('the PDF has no page to put the signature field on');
};

export const buildPadesUpdate = (reader: PdfReader, opts: { placeholderBytes: number; now: Date; reason?: string | undefined }): PadesUpdate => {
  const trailer = reader.trailer;
  if (trailer.has('Encrypt')) throw new PdfNotSignableError('the PDF is encrypted');
  const rootRef = trailer.get('Root');
  const size = trailer.get('Size');
  if (!(rootRef instanceof PdfRef) || !(size instanceof PdfRaw)) throw new PdfNotSignableError('the PDF trailer has no /Root or /Size');
  const catalog = reader.get(rootRef.num);
  if (!(catalog instanceof PdfDict)) throw new PdfNotSignableError('the PDF catalog is not a dictionary');
  const pageRef = firstPage(reader, catalog.get('Pages'));
  const page = reader.get(pageRef.num);
  if (!(page instanceof PdfDict)) throw new PdfNotSignableError('the first page is not a dictionary');

  let next = size.number;
  const sigRef = new PdfRef(next++, 0);
  const fieldRef = new PdfRef(next++, 0);
  /** Objects written in the update: new ones and new versions of existing ones. */
  const objects = new Map<number, { gen: number; body: string }>();
  const put = (ref: PdfRef, value: PdfValue | string): void => {
    objects.set(ref.num, { gen: ref.gen, body: typeof value === 'string' ? value : writeValue(value) });
  };
  const refOf = (num: number): PdfRef => new PdfRef(num, reader.generationOf(num));

  // The field (merged with its invisible widget) on the first page.
  const field = new PdfDict([
    ['Type', new PdfName('Annot')],
    ['Subtype', new PdfName('Widget')],
    ['FT', new PdfName('Sig')],
    ['T', raw(`(signspool-${fieldId()})`)],
    ['V', sigRef],
    ['F', raw('132')],
    ['Rect', [raw('0'), raw('0'), raw('0'), raw('0')]],
    ['P', pageRef],
  ]);
  put(fieldRef, field);
  const annots = page.get('Annots');
  if (annots instanceof PdfRef) {
    const arr = reader.get(annots.num);
    put(refOf(annots.num), [...(Array.isArray(arr) ? arr : []), fieldRef]);
  } else {
    const newPage = new PdfDict(page);
    newPage.set('Annots', [...(Array.isArray(annots) ? annots : []), fieldRef]);
    put(refOf(pageRef.num), newPage);
  }

  // The AcroForm lists the field; /SigFlags 3: signatures exist, append only.
  const acroRef = catalog.get('AcroForm');
  const acro = new PdfDict((reader.resolve(acroRef) as PdfDict | undefined) ?? []);
  const fields = acro.get('Fields');
  if (fields instanceof PdfRef) {
    const arr = reader.get(fields.num);
    put(refOf(fields.num), [...(Array.isArray(arr) ? arr : []), fieldRef]);
  } else {
    acro.set('Fields', [...(Array.isArray(fields) ? fields : []), fieldRef]);
  }
  acro.set('SigFlags', raw('3'));
  if (acroRef instanceof PdfRef) {
    put(refOf(acroRef.num), acro);
  } else {
    const newAcroRef = new PdfRef(next++, 0);
    put(newAcroRef, acro);
    const newCatalog = new PdfDict(catalog);
    newCatalog.set('AcroForm', newAcroRef);
    put(refOf(rootRef.num), newCatalog);
  }

  // The signature dictionary; its /ByteRange and /Contents are filled in once offsets are known.
  const hexLength = 2 * opts.placeholderBytes;
  const reason = opts.reason ? ` /Reason (${opts.reason.replace(/[\\()]/g, '\\$&')})` : '';
  // The placeholder's digits are not in the text: they are filled into the bytes below.
  put(sigRef, `${SIG_HEAD}${CONTENTS_HEAD}> /M (${pdfDate(opts.now)})${reason}>>`);

  // Objects, then the cross-reference table (object 0 and one subsection per run of numbers).
  const parts: string[] = ['\n'];
  let length = reader.size + 1;
  const offsets = new Map<number, number>();
  /** Where the signature dictionary's /ByteRange starts in the file. */
  let byteRangeAt = 0;
  for (const [num, o] of [...objects].sort((a, b) => a[0] - b[0])) {
    const head = `${num} ${o.gen} obj\n`;
    const text = `${head}${o.body}\nendobj\n`;
    const at = length;
    offsets.set(num, at);
    parts.push(text);
    length += text.length;
    if (num === sigRef.num) {
      byteRangeAt = at + head.length + SIG_HEAD.length;
      length += hexLength;
    }
  }
  const xrefOffset = length;
  const nums = [...offsets.keys()];
  const lines = ['xref\n0 1\n0000000000 65535 f \n'];
  for (let i = 0; i < nums.length;) {
    let j = i;
    while (j + 1 < nums.length && nums[j + 1] === (nums[j] ?? 0) + 1) j++;
    lines.push(`${nums[i]} ${j - i + 1}\n`);
    for (let k = i; k <= j; k++) {
      const num = nums[k] ?? 0;
      lines.push(`${String(offsets.get(num)).padStart(10, '0')} ${String(objects.get(num)?.gen ?? 0).padStart(5, '0')} n \n`);
    }
    i = j + 1;
  }
  const newTrailer = new PdfDict([
    ['Size', raw(String(next))],
    ['Root', rootRef],
    ['Prev', raw(String(reader.startxref))],
  ]);
  for (const key of ['Info', 'ID']) {
    const v = trailer.get(key);
    if (v !== undefined) newTrailer.set(key, v);
  }
  parts.push(...lines, `trailer\n${writeValue(newTrailer)}\nstartxref\n${xrefOffset}\n%%EOF\n`);
  const text = parts.join('');
  // Now every offset is known: the byte range is everything but the <...> of /Contents.
  const gapStart = byteRangeAt + CONTENTS_HEAD.length - 1;
  const digitsAt = gapStart - reader.size + 1;
  const bytes = Buffer.allocUnsafe(text.length + hexLength);
  bytes.write(text, 0, digitsAt, 'latin1');
  bytes.fill(0x30, digitsAt, digitsAt + hexLength);
  bytes.write(text.slice(digitsAt), digitsAt + hexLength, 'latin1');
  const gapEnd = gapStart + hexLength + 2;
  const total = reader.size + bytes.length;
  const byteRange = `/ByteRange [0 ${gapStart} ${gapEnd} ${total - gapEnd}`.padEnd(BYTE_RANGE_PLACEHOLDER.length - 1, ' ') + ']';
  bytes.write(byteRange, byteRangeAt - reader.size, 'latin1');
  return { bytes, contentsStart: digitsAt, contentsHexLength: hexLength };
};
