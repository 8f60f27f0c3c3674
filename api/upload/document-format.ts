/**
 * Checks at submit that a document can be what its signature type needs: a PDF for PAdES (a
 * `%PDF-` header in the first 1024 bytes and `%%EOF` in the last 1024), well-formed XML for XAdES
 * (a streaming parse with saxes). Files are read as streams from the spool, never whole.
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { SaxesParser } from 'saxes';
import { SignspoolError, type ErrorCode } from '@signspool/shared/errors';
import type { SignatureType } from '@signspool/shared/queue';

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

const isWellFormedXml = async (file: string): Promise<boolean> => {
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
