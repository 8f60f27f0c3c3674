/**
 * Checks at submit that a document can be what its signature type needs: a PDF for PAdES (a
 * `%PDF-` header in the first 1024 bytes and `%%EOF` in the last 1024), well-formed XML for XAdES.
 * An XML of up to XML_SCAN_MAX_BYTES is read on the calling thread into a reused buffer and
 * checked by the byte scanner of shared/xml/c14n.ts (more than ten times cheaper than the
 * streaming parse with saxes; figures in docs/performance.md); a larger one, or one with a DOCTYPE,
 * is streamed through saxes (never held whole).
 */
import { closeSync, createReadStream, fstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { SaxesParser } from 'saxes';
import { SignspoolError, type ErrorCode } from '@signspool/shared/errors';
import type { SignatureType } from '@signspool/shared/queue';
import { scanXml } from '@signspool/shared/xml/c14n';

const PDF_WINDOW = 1024;

const isPdf = async (file: string): Promise<boolean> => {
  const fh = await open(file, 'r');
  try {
    const { size } = await fh.stat();
    const head = Buffer.alloc(Math.min(size, PDF_WINDOW));
    await fh.read(head, 0, head.length, 0);
    if (!head.includes('%PDF-', 0, 'latin1')) return false;
    const tail = Buffer.alloc(Math.min(size, PDF_WINDOW));
    await fh.read(tail, 0, tail.length, size - tail.length);
    return tail.includes('%%EOF', 0, 'latin1');
  } finally {
    await fh.close();
  }
};

/** XMLs up to this size are read whole and scanned; larger ones are streamed through saxes. */
const XML_SCAN_MAX_BYTES = 4 * 1024 * 1024;
/** The read buffer of `scannedXml`, grown as needed up to XML_SCAN_MAX_BYTES (used synchronously only). */
let scanBuffer = Buffer.alloc(0);

/** Scans a small XML file; undefined when it is too large or holds what the scanner leaves to a parser. */
const scannedXml = (file: string): boolean | undefined => {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size > XML_SCAN_MAX_BYTES) return undefined;
    if (scanBuffer.length < size) scanBuffer = Buffer.allocUnsafeSlow(Math.min(XML_SCAN_MAX_BYTES, Math.max(size, 2 * scanBuffer.length, 256 * 1024)));
    let n = 0;
    while (n < size) {
      const got = readSync(fd, scanBuffer, n, size - n, n);
      if (got === 0) break;
      n += got;
    }
    const scan = scanXml(scanBuffer.subarray(0, n));
    return scan.kind === 'unsupported' ? undefined : scan.kind === 'ok';
  } finally {
    closeSync(fd);
  }
};

const isWellFormedXml = async (file: string): Promise<boolean> => scannedXml(file) ?? parsedXml(file);

/** The streaming parse (saxes): for large documents and DOCTYPEs. */
const parsedXml = async (file: string): Promise<boolean> => {
  const parser = new SaxesParser({ xmlns: true });
  let failed = false;
  parser.on('error', () => {
    failed = true;
  });
  const decoder = new TextDecoder('utf-8', { fatal: true });
  try {
    for await (const chunk of createReadStream(file, { highWaterMark: 256 * 1024 })) {
      parser.write(decoder.decode(chunk as Buffer, { stream: true }));
      if (failed) return false;
    }
    parser.write(decoder.decode());
    parser.close();
  } catch {
    // Bytes that are not UTF-8, or the parser giving up.
    return false;
  }
  return !failed;
};

/** The catalog code for a document that cannot take `signatureType`, or null when it can. */
export const documentFormatError = async (signatureType: SignatureType, file: string): Promise<ErrorCode | null> => {
  if (signatureType === 'PAdES') return (await isPdf(file)) ? null : 'DOCUMENT_NOT_PDF';
  if (signatureType === 'XAdES') return (await isWellFormedXml(file)) ? null : 'DOCUMENT_NOT_XML';
  return null;
};

/** Throws the first document's format error (422), naming the document. */
export const assertDocumentFormats = async (signatureType: SignatureType, files: readonly { path: string; originalName: string }[]): Promise<void> => {
  for (const [i, f] of files.entries()) {
    const code = await documentFormatError(signatureType, f.path);
    if (code) {
      throw new SignspoolError(code, {
        detail: `document ${i + 1} (${JSON.stringify(f.originalName)}) cannot take a ${signatureType} signature: ${code === 'DOCUMENT_NOT_PDF' ? 'it is not a PDF' : 'it is not well-formed XML (UTF-8)'}`,
        extensions: { document: i + 1 },
      });
    }
  }
};
