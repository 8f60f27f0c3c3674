/**
 * The PAdES incremental update as bytes: its /ByteRange covers the whole file but the <...> of
 * /Contents, the placeholder's offsets point at its digits (zeros, as many as asked), the
 * cross-reference table points at each object it writes, and the new field's name is fresh for
 * each update. Checked by reading the updated file back with the reader (pdfsig judges whole
 * signatures in test/local-signer.e2e.test.ts).
 */
import { PDFDocument } from 'pdf-lib';
import { describe, expect, it } from 'vitest';
import { buildPadesUpdate } from '@signspool/worker/signers/local/pades-update';
import { type PdfDict, PdfRaw, PdfReader, type PdfRef, writeValue } from '@signspool/worker/signers/local/pdf-reader';

const onePage = async (useObjectStreams: boolean): Promise<Buffer> => {
  const doc = await PDFDocument.create();
  doc.addPage([200, 300]);
  return Buffer.from(await doc.save({ useObjectStreams }));
};

describe('buildPadesUpdate', () => {
  for (const useObjectStreams of [false, true]) {
    it(`writes a byte range around the placeholder and a table that finds every object (${useObjectStreams ? 'object streams' : 'classic table'})`, async () => {
      const original = await onePage(useObjectStreams);
      const update = buildPadesUpdate(PdfReader.of(original), { placeholderBytes: 1234, now: new Date(0), reason: 'a (test) reason' });
      const file = Buffer.concat([original, update.bytes]);
      const start = original.length + update.contentsStart;

      // The placeholder: its digits are zeros, between < and >.
      expect(update.contentsHexLength).toBe(2468);
      expect(file.toString('latin1', start - 11, start)).toBe('/Contents <');
      expect(file.toString('latin1', start, start + update.contentsHexLength)).toBe('0'.repeat(2468));
      expect(file.toString('latin1', start + update.contentsHexLength, start + update.contentsHexLength + 1)).toBe('>');

      // The new signature dictionary and its /ByteRange, read back through the new xref table.
      const reader = PdfReader.of(file);
      expect(reader.startxref).toBeGreaterThan(original.length);
      const root = reader.get((reader.trailer.get('Root') as PdfRef).num) as PdfDict;
      const form = reader.resolve(root.get('AcroForm')) as PdfDict;
      const fields = reader.resolve(form.get('Fields')) as PdfRef[];
      const field = reader.get(fields.at(-1)!.num) as PdfDict;
      expect(writeValue(field.get('T')!)).toMatch(/^\(signspool-[0-9a-f]{12}\)$/);
      const sig = reader.get((field.get('V') as PdfRef).num) as PdfDict;
      expect(writeValue(sig.get('Reason')!)).toBe('(a \\(test\\) reason)');
      const range = (sig.get('ByteRange') as PdfRaw[]).map((r) => r.number);
      expect(range).toEqual([0, start - 1, start + update.contentsHexLength + 1, file.length - (start + update.contentsHexLength + 1)]);
      expect(sig.get('Contents')).toBeInstanceOf(PdfRaw);
    });
  }

  it('names each new field afresh', async () => {
    const reader = PdfReader.of(await onePage(false));
    const name = (): string =>
      /\/T \((signspool-[0-9a-f]+)\)/.exec(buildPadesUpdate(reader, { placeholderBytes: 100, now: new Date() }).bytes.toString('latin1'))?.[1] ?? '';
    const names = new Set(Array.from({ length: 50 }, name));
    expect(names.size).toBe(50);
  });
});
