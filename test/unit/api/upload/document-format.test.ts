/** The check at submit: PAdES wants a PDF, XAdES well-formed XML (scanned, or streamed through saxes when large). */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { documentFormatError } from '@signspool/api/upload/document-format';

describe('documentFormatError', () => {
  let dir: string;
  let n = 0;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'doc-format-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const file = async (content: Buffer | string): Promise<string> => {
    const p = path.join(dir, `f${++n}`);
    await writeFile(p, content);
    return p;
  };

  it('PAdES: a %PDF- header in the first 1024 bytes and %%EOF in the last 1024', async () => {
    const body = Buffer.alloc(300_000, 'x');
    expect(await documentFormatError('PAdES', await file(Buffer.concat([Buffer.from('%PDF-1.7\n'), body, Buffer.from('\n%%EOF\n')])))).toBeNull();
    expect(await documentFormatError('PAdES', await file(Buffer.concat([Buffer.alloc(500, ' '), Buffer.from('%PDF-1.4\n%%EOF')])))).toBeNull();
    expect(
      await documentFormatError('PAdES', await file(Buffer.concat([Buffer.alloc(1100, ' '), Buffer.from('%PDF-1.4\n'), body, Buffer.from('%%EOF')]))),
    ).toBe('DOCUMENT_NOT_PDF');
    expect(await documentFormatError('PAdES', await file(Buffer.concat([Buffer.from('%PDF-1.7\n%%EOF\n'), body])))).toBe('DOCUMENT_NOT_PDF');
    expect(await documentFormatError('PAdES', await file('<invoice/>'))).toBe('DOCUMENT_NOT_PDF');
    expect(await documentFormatError('PAdES', await file(''))).toBe('DOCUMENT_NOT_PDF');
  });

  it('XAdES: well-formed, namespace-correct UTF-8 XML, parsed across chunk boundaries', async () => {
    const big = `<?xml version="1.0" encoding="UTF-8"?>\n<a xmlns:x="urn:x">${'<x:b attr="é">Grüße &amp; €</x:b>'.repeat(40_000)}</a>\n`;
    expect(await documentFormatError('XAdES', await file(big))).toBeNull();
    expect(await documentFormatError('XAdES', await file(big.replace('</a>', '</c>')))).toBe('DOCUMENT_NOT_XML');
    expect(await documentFormatError('XAdES', await file('<a><y:b/></a>'))).toBe('DOCUMENT_NOT_XML');
    expect(await documentFormatError('XAdES', await file('<a/><b/>'))).toBe('DOCUMENT_NOT_XML');
    expect(await documentFormatError('XAdES', await file(''))).toBe('DOCUMENT_NOT_XML');
    expect(await documentFormatError('XAdES', await file('just text'))).toBe('DOCUMENT_NOT_XML');
    expect(await documentFormatError('XAdES', await file(Buffer.from([0x3c, 0x61, 0x3e, 0xff, 0xfe, 0x3c, 0x2f, 0x61, 0x3e])))).toBe('DOCUMENT_NOT_XML');
  });

  it('XAdES: an XML over 4 MiB, or with a DOCTYPE, is left to the streaming parse', async () => {
    const huge = `<a>${'<b>x</b>'.repeat(600_000)}</a>`;
    expect(await documentFormatError('XAdES', await file(huge))).toBeNull();
    expect(await documentFormatError('XAdES', await file(huge.replace('</a>', '</c>')))).toBe('DOCUMENT_NOT_XML');
    expect(await documentFormatError('XAdES', await file('<!DOCTYPE a><a>x</a>'))).toBeNull();
  });

  it('CAdES takes any bytes', async () => {
    expect(await documentFormatError('CAdES', await file('anything'))).toBeNull();
  });
});
