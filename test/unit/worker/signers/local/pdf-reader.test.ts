/**
 * The PAdES signer's PDF reader against files written by an independent library (pdf-lib): a
 * classic cross-reference table, object streams with a cross-reference stream, and an incremental
 * update whose /Prev chain must give the newest version of an object. Damaged files are refused.
 * Every case is read both ways the signer reads: from the open file and from the bytes in memory.
 */
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PDFDocument } from 'pdf-lib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PdfDict, PdfLexer, PdfName, PdfRaw, PdfReader, PdfRef, PdfSyntaxError, writeValue } from '@signspool/worker/signers/local/pdf-reader';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'pdf-reader-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * Runs `fn` on a reader of `bytes` opened as the signer does a large file (a descriptor and its
 * size) and on one over the bytes in memory (a file that fits its read buffer): both must agree.
 */
const withReader = async <T>(bytes: Uint8Array, fn: (r: PdfReader) => T | Promise<T>): Promise<T> => {
  const file = path.join(dir, `${Math.random().toString(36).slice(2)}.pdf`);
  await writeFile(file, bytes);
  const fd = openSync(file, 'r');
  let fromFile: PromiseSettledResult<T>;
  try {
    [fromFile] = await Promise.allSettled([Promise.resolve().then(() => fn(PdfReader.open(fd, bytes.length)))]);
  } finally {
    closeSync(fd);
  }
  const [inMemory] = await Promise.allSettled([Promise.resolve().then(() => fn(PdfReader.of(Buffer.from(bytes))))]);
  if (fromFile?.status === 'rejected') {
    expect(inMemory?.status).toBe('rejected');
    expect((inMemory as PromiseRejectedResult).reason).toBeInstanceOf((fromFile.reason as Error).constructor);
    throw fromFile.reason;
  }
  expect(inMemory).toEqual(fromFile);
  return (fromFile as PromiseFulfilledResult<T>).value;
};

const twoPages = async (useObjectStreams: boolean): Promise<Uint8Array> => {
  const doc = await PDFDocument.create();
  doc.addPage([200, 300]);
  doc.addPage([400, 500]);
  doc.setTitle('reader test');
  return doc.save({ useObjectStreams });
};

/** The catalog's page tree: the number of pages and the first page's MediaBox. */
const pageTree = async (r: PdfReader): Promise<{ count: number; mediaBox: string }> => {
  const root = r.trailer.get('Root');
  expect(root).toBeInstanceOf(PdfRef);
  const catalog = (await r.get((root as PdfRef).num)) as PdfDict;
  expect((catalog.get('Type') as PdfName).name).toBe('Catalog');
  const pages = (await r.resolve(catalog.get('Pages'))) as PdfDict;
  const kids = (await r.resolve(pages.get('Kids'))) as PdfRef[];
  const first = (await r.get(kids[0]!.num)) as PdfDict;
  return { count: (pages.get('Count') as PdfRaw).number, mediaBox: writeValue((await r.resolve(first.get('MediaBox')))!) };
};

describe('PdfReader', () => {
  it('reads a classic cross-reference table', async () => {
    const tree = await withReader(await twoPages(false), pageTree);
    expect(tree.count).toBe(2);
    expect(tree.mediaBox.replace(/\s+/g, ' ')).toMatch(/\[ ?0 0 200 300 ?\]/);
  });

  it('reads objects out of object streams through a cross-reference stream', async () => {
    const tree = await withReader(await twoPages(true), pageTree);
    expect(tree.count).toBe(2);
    expect(tree.mediaBox.replace(/\s+/g, ' ')).toMatch(/\[ ?0 0 200 300 ?\]/);
  });

  it('follows /Prev to the newest version of an object after an incremental update', async () => {
    const base = Buffer.from(await twoPages(false));
    const { infoNum, rootNum, size, prev } = await withReader(base, async (r) => ({
      infoNum: (r.trailer.get('Info') as PdfRef).num,
      rootNum: (r.trailer.get('Root') as PdfRef).num,
      size: (r.trailer.get('Size') as PdfRaw).number,
      prev: r.startxref,
    }));
    // An incremental update written by hand, as the PDF specification lays it out (7.5.6).
    const objAt = base.length + 1;
    const obj = `\n${infoNum} 0 obj\n<< /Title (updated) >>\nendobj\n`;
    const xrefAt = base.length + obj.length;
    const entry = (n: number, gen: number, kind: string): string => `${String(n).padStart(10, '0')} ${String(gen).padStart(5, '0')} ${kind} \n`;
    const xref = `xref\n0 1\n${entry(0, 65535, 'f')}${infoNum} 1\n${entry(objAt, 0, 'n')}`;
    const trailer = `trailer\n<< /Size ${size} /Root ${rootNum} 0 R /Info ${infoNum} 0 R /Prev ${prev} >>\nstartxref\n${xrefAt}\n%%EOF\n`;
    const updated = Buffer.concat([base, Buffer.from(obj + xref + trailer, 'latin1')]);
    const title = (bytes: Buffer): Promise<string> =>
      withReader(bytes, async (r) => {
        const info = (await r.resolve(r.trailer.get('Info'))) as PdfDict;
        return writeValue((await r.resolve(info.get('Title')))!);
      });
    expect(await title(updated)).toBe('(updated)');
    // Objects the update did not touch still come from the original section.
    expect((await withReader(updated, pageTree)).count).toBe(2);
    expect(await title(base)).not.toBe('(updated)');
  });

  it('refuses a file with no startxref, or one that points nowhere', async () => {
    await expect(withReader(Buffer.from('%PDF-1.7\nnot really a pdf\n'), async () => 0)).rejects.toBeInstanceOf(PdfSyntaxError);
    const bytes = Buffer.from(await twoPages(false));
    const broken = Buffer.from(bytes.toString('latin1').replace(/startxref\s+\d+/, `startxref\n${bytes.length + 100}`), 'latin1');
    await expect(withReader(broken, async () => 0)).rejects.toBeInstanceOf(PdfSyntaxError);
  });

  it('finds the cross-reference section however the file ends after startxref', async () => {
    const bytes = Buffer.from(await twoPages(false));
    const text = bytes.toString('latin1');
    const offset = Number(/startxref\s+(\d+)\s+%%EOF\s*$/.exec(text)?.[1]);
    const head = text.slice(0, text.lastIndexOf('startxref'));
    const ends = [
      `startxref\n${offset}\n%%EOF\n`,
      `startxref\r\n${offset}\r\n%%EOF\r\n`,
      `startxref ${offset} %%EOF`,
      `startxref\n${offset}\n%%EOF\n\xa0\x0b \n`,
      // Bytes after %%EOF, or a later startxref that is not one: the first that ends in %%EOF.
      `startxref\n${offset}\n%%EOF\ngarbage\n`,
      `startxref\n${offset}\n%%EOF\nstartxref\nnone\n%%EOF\n`,
      `startxref\n${offset}\n%%EOF\nstartxref\n12\n%%EO`,
      `startxref\n${offset}\n%%EOF\nstartxref\n${offset + 100000}\n%%EOF\ngarbage`,
      `startxref\n${offset}\n%%EOF\nstartxref\n${offset + 100000}\n%%XYZ`,
    ];
    for (const end of ends) {
      const found = await withReader(Buffer.from(head + end, 'latin1'), (r) => r.startxref);
      expect(found, JSON.stringify(end)).toBe(offset);
    }
    // The last one wins when both end the file as a PDF ends.
    const prior = Buffer.from(`${head}startxref\n${offset + 100000}\n%%EOF\n%comment\nstartxref\n${offset}\n%%EOF\n`, 'latin1');
    expect(await withReader(prior, (r) => r.startxref)).toBe(offset);
    for (const end of [`startxref\n\n%%EOF\n`, `startxref\n${offset}%%EOF\n`, `startxref${offset}\n%%EOF\n`, `${offset}\n%%EOF\n`]) {
      await expect(
        withReader(Buffer.from(head + end, 'latin1'), (r) => r.startxref),
        JSON.stringify(end),
      ).rejects.toBeInstanceOf(PdfSyntaxError);
    }
  });

  it('answers undefined for an object that does not exist', async () => {
    expect(await withReader(await twoPages(false), (r) => r.get(9_999))).toBeUndefined();
  });
});

describe('PdfLexer', () => {
  const lex = (text: string, truncated = false): PdfLexer => new PdfLexer(Buffer.from(text, 'latin1'), 0, truncated);

  it('reads "n g R" as a reference and any other number as its bytes, across spaces and comments', () => {
    const arr = lex('[12 0 R 7 3 %c\n R 5 6 /N 8 0 Rx 9 1.5 0 R -3 0 R 4 0 obj 10 0]').value() as unknown[];
    expect(arr).toEqual([
      new PdfRef(12, 0),
      new PdfRef(7, 3),
      new PdfRaw(Buffer.from('5')),
      new PdfRaw(Buffer.from('6')),
      new PdfName('N'),
      new PdfRaw(Buffer.from('8')),
      new PdfRaw(Buffer.from('0')),
      new PdfRaw(Buffer.from('Rx')),
      new PdfRaw(Buffer.from('9')),
      new PdfRaw(Buffer.from('1.5')),
      new PdfRaw(Buffer.from('0')),
      new PdfRaw(Buffer.from('R')),
      new PdfRaw(Buffer.from('-3')),
      new PdfRaw(Buffer.from('0')),
      new PdfRaw(Buffer.from('R')),
      new PdfRaw(Buffer.from('4')),
      new PdfRaw(Buffer.from('0')),
      new PdfRaw(Buffer.from('obj')),
      new PdfRaw(Buffer.from('10')),
      new PdfRaw(Buffer.from('0')),
    ]);
    const dict = lex('<</Length 42 /Root 3 0 R>>').value() as PdfDict;
    expect(dict).toEqual(
      new PdfDict([
        ['Length', new PdfRaw(Buffer.from('42'))],
        ['Root', new PdfRef(3, 0)],
      ]),
    );
  });

  it('stops at the end of a window that is cut short, wherever in "n g R" it falls', () => {
    for (const text of ['12', '12 ', '12 0', '12 0 ', '12 0 R']) {
      expect(() => lex(text, true).value()).toThrow('unexpected end of data');
      // The whole data: a number, or the reference once it is complete.
      expect(lex(text).value()).toEqual(text === '12 0 R' ? new PdfRef(12, 0) : new PdfRaw(Buffer.from('12')));
    }
    expect(() => lex('12 x', true).value()).toThrow('unexpected end of data');
    expect(lex('12 0 R ', true).value()).toEqual(new PdfRef(12, 0));
  });
});
