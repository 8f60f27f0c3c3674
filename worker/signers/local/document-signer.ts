/**
 * Signs one document file in the format asked for, with the local identity: CAdES (detached .p7s,
 * or attached when configured), PAdES (an incremental update appended to the PDF) or XAdES
 * (enveloped), writing the signed bytes into a sink (the local signer's spool file, the fake
 * Sign'Stash's temp file). A PDF is read once: each piece is hashed and written on (a PDF that
 * fits the read buffer is written with its update in one call), and the update follows; its
 * result's SHA-256 continues the document's hash instead of a second pass. An attached CMS reads
 * the document twice (its head depends on the document's hash); detached CAdES only once. Files
 * are read on the calling thread, up to the upload's size when it is known. An XML is held whole while signed, once (the DOM path, for a DOCTYPE, a few times).
 * Used by the local signer and the fake Sign'Stash.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { SignspoolError } from '@signspool/shared/errors';
import type { SignatureType } from '@signspool/shared/queue';
import { MAX_IO_BYTES } from '@signspool/shared/spool/file-io';
import { signedOutput } from '../signed-output.js';
import { CmsBuilder } from './cms.js';
import type { SigningIdentity } from './cert.js';
import { buildPadesUpdate, PdfNotSignableError } from './pades-update.js';
import { PdfReader, PdfSyntaxError } from './pdf-reader.js';
import type { TsaClient } from './tsa-client.js';
import type { XadesSigner, XmlNotSignableError } from './xades.js';
import { XadesEnvelopedSigner, XmlNotWellFormedError } from './xades-enveloped.js';

export interface DocumentSignerOptions {
  /** CAdES with the document inside the CMS (.p7m) instead of detached (.p7s). */
  cadesAttached: boolean;
  /** B-T: a time-stamp over every signature value. */
  tsa?: TsaClient | undefined;
  /** /Reason of PAdES signatures. */
  reason?: string | undefined;
}

/** Where the signed bytes go, in order (several chunks at once: one write call). */
export interface SignedSink {
  write(...chunks: Buffer[]): void;
}

/** What was written to the sink. */
export interface SignedResult {
  size: number;
  /** sha256 (hex) of the signed bytes. */
  sha256: string;
  contentType: string;
  fileName: string;
}

export interface DocumentToSign {
  path: string;
  name: string;
  /** sha256 (hex) the file must still have; checked on the bytes that are signed. */
  sha256?: string | undefined;
  /**
   * The upload's size, when known: reading stops there (no read to find the end); bytes a file
   * may have beyond it are not signed, and a shorter file fails the sha256 check.
   */
  size?: number | undefined;
}

const CMS_BASE_BYTES = 3072;
const TIMESTAMP_BYTES = 12288;

const PIECE_BYTES = 256 * 1024;
/** XMLs are held whole while signed; buffers of up to this size are kept for the next one. */
const HELD_BUFFER_BYTES = 4 * 1024 * 1024;

/**
 * Reads an open file from `from` on the calling thread, in pieces given to `each` (a view of
 * `buffer`, overwritten by the next piece: use it before returning), up to `limit` bytes or its
 * end; returns the bytes read.
 */
const eachPiece = (fd: number, buffer: Buffer, limit: number | undefined, signal: AbortSignal, each: (piece: Buffer) => void, from = 0): number => {
  const end = limit ?? Number.POSITIVE_INFINITY;
  let size = 0;
  while (size < end) {
    signal.throwIfAborted();
    const n = readSync(fd, buffer, 0, Math.min(buffer.length, MAX_IO_BYTES, end - size), from + size);
    if (n === 0) break;
    each(buffer.subarray(0, n));
    size += n;
  }
  return size;
};

const corrupt = (): SignspoolError => new SignspoolError('SPOOL_FILE_CORRUPT', { detail: 'the spooled file no longer matches the sha256 taken at upload' });

/** Writes `bytes` to the sink and to `hash`. */
const emit = (sink: SignedSink, hash: Hash, bytes: Buffer): void => {
  if (bytes.length === 0) return;
  hash.update(bytes);
  sink.write(bytes);
};

export class DocumentSigner {
  private readonly cms: CmsBuilder;
  private readonly enveloped: XadesEnvelopedSigner;
  /** Loaded on the first XML with a DOCTYPE: xadesjs and its DOM take seconds to load, most workers never need them. */
  private xades: Promise<{ signer: XadesSigner; XmlNotSignableError: typeof XmlNotSignableError }> | undefined;
  private readonly placeholderBytes: number;
  /** Read buffers not in use (one per document being read at once: TSA lanes run several). */
  private readonly buffers: Buffer[] = [];
  /** Whole-file buffers not in use (hold). */
  private readonly held: Buffer[] = [];

  constructor(
    private readonly identity: SigningIdentity,
    private readonly opts: DocumentSignerOptions,
  ) {
    this.cms = new CmsBuilder(identity);
    this.enveloped = new XadesEnvelopedSigner(identity);
    const certBytes = [identity.certificateDer, ...identity.chainDer].reduce((n, c) => n + c.length, 0);
    this.placeholderBytes = CMS_BASE_BYTES + certBytes + (opts.tsa ? TIMESTAMP_BYTES : 0);
  }

  /** Reads `doc` through `each` (eachPiece) with a read buffer of the pool. */
  private read(doc: DocumentToSign, signal: AbortSignal, each: (piece: Buffer) => void): number {
    const buffer = this.buffers.pop() ?? Buffer.allocUnsafeSlow(PIECE_BYTES);
    const fd = openSync(doc.path, 'r');
    try {
      return eachPiece(fd, buffer, doc.size, signal, each);
    } finally {
      closeSync(fd);
      this.buffers.push(buffer);
    }
  }

  /** Signs the document into `sink`; on a throw, what the sink got is to be discarded. */
  sign(type: SignatureType, doc: DocumentToSign, sink: SignedSink, signal: AbortSignal): Promise<SignedResult> {
    if (type === 'PAdES') return this.pades(doc, sink, signal);
    if (type === 'XAdES') return this.xadesSign(doc, sink, signal);
    return this.cades(doc, sink, signal);
  }

  private async timestamp(value: Buffer, signal: AbortSignal): Promise<Buffer | undefined> {
    return this.opts.tsa ? this.opts.tsa.timestamp(value, signal) : undefined;
  }

  private async cades(doc: DocumentToSign, sink: SignedSink, signal: AbortSignal): Promise<SignedResult> {
    const hash = createHash('sha256');
    const size = this.read(doc, signal, (piece) => hash.update(piece));
    const digest = hash.digest();
    if (doc.sha256 !== undefined && digest.toString('hex') !== doc.sha256) throw corrupt();
    const signature = this.cms.sign(digest, { signingTime: true });
    const token = await this.timestamp(signature.value, signal);
    const out = createHash('sha256');
    if (!this.opts.cadesAttached) {
      const { head } = this.cms.encode(signature, token);
      emit(sink, out, head);
      return { size: head.length, sha256: out.digest('hex'), ...signedOutput('CAdES', doc.name) };
    }
    // Attached: the document's bytes go between head and tail (read a second time, not held).
    const { head, tail } = this.cms.encode(signature, token, size);
    emit(sink, out, head);
    const again = this.read({ ...doc, size }, signal, (piece) => emit(sink, out, piece));
    if (again !== size) throw corrupt();
    emit(sink, out, tail);
    return { size: head.length + size + tail.length, sha256: out.digest('hex'), ...signedOutput('CAdES', doc.name, { cadesAttached: true }) };
  }

  private async pades(doc: DocumentToSign, sink: SignedSink, signal: AbortSignal): Promise<SignedResult> {
    const original = createHash('sha256');
    const buffer = this.buffers.pop() ?? Buffer.allocUnsafeSlow(PIECE_BYTES);
    // One descriptor, read on the calling thread and hashed (the result starts with the original
    // bytes). A PDF that fits the read buffer is parsed from it and written later with its update
    // in one call; a larger one is written on piece by piece and parsed through the descriptor.
    const fd = openSync(doc.path, 'r');
    let update;
    let size = 0;
    let whole: Buffer | undefined;
    try {
      const end = doc.size ?? Number.POSITIVE_INFINITY;
      while (size < buffer.length && size < end) {
        signal.throwIfAborted();
        const n = readSync(fd, buffer, size, Math.min(buffer.length - size, MAX_IO_BYTES, end - size), size);
        if (n === 0) break;
        size += n;
      }
      original.update(buffer.subarray(0, size));
      if (size < buffer.length || size === end) whole = buffer.subarray(0, size);
      else {
        sink.write(buffer);
        size += eachPiece(
          fd,
          buffer,
          end - size,
          signal,
          (piece) => {
            original.update(piece);
            sink.write(piece);
          },
          size,
        );
      }
      if (doc.sha256 !== undefined && original.copy().digest('hex') !== doc.sha256) throw corrupt();
      update = buildPadesUpdate(whole ? PdfReader.of(whole) : PdfReader.open(fd, size), {
        placeholderBytes: this.placeholderBytes,
        now: new Date(),
        reason: this.opts.reason,
      });
    } catch (err) {
      this.buffers.push(buffer);
      if (err instanceof PdfSyntaxError || err instanceof PdfNotSignableError) {
        throw new SignspoolError('DOCUMENT_NOT_SIGNABLE', { detail: `cannot add a PAdES signature: ${err.message}` });
      }
      throw err;
    } finally {
      closeSync(fd);
    }
    try {
      // The upload's hash continues as the signed byte ranges' and as the result's.
      const ranges = original.copy();
      const result = original;
      ranges.update(update.bytes.subarray(0, update.contentsStart - 1));
      ranges.update(update.bytes.subarray(update.contentsStart + update.contentsHexLength + 1));
      const signature = this.cms.sign(ranges.digest(), { signingTime: false });
      const { head } = this.cms.encode(signature, await this.timestamp(signature.value, signal));
      const hex = head.toString('hex');
      if (hex.length > update.contentsHexLength) throw new Error(`the CMS signature (${head.length} bytes) does not fit its placeholder`);
      update.bytes.write(hex, update.contentsStart, 'latin1');
      result.update(update.bytes);
      if (whole) sink.write(whole, update.bytes);
      else sink.write(update.bytes);
      return { size: size + update.bytes.length, sha256: result.digest('hex'), ...signedOutput('PAdES', doc.name) };
    } finally {
      this.buffers.push(buffer);
    }
  }

  /**
   * Reads a whole file (up to the upload's size) on the calling thread into a buffer of the pool
   * (kept for files of up to HELD_BUFFER_BYTES: no fresh pages to fault in per document);
   * `release` gives it back.
   */
  private hold(doc: DocumentToSign): { bytes: Buffer; release: () => void } {
    const fd = openSync(doc.path, 'r');
    try {
      const size = doc.size ?? fstatSync(fd).size;
      const i = this.held.findIndex((b) => b.length >= size);
      const buffer =
        i >= 0
          ? (this.held.splice(i, 1)[0] ?? Buffer.allocUnsafeSlow(size))
          : Buffer.allocUnsafeSlow(size <= HELD_BUFFER_BYTES ? Math.max(size, PIECE_BYTES) : size);
      let n = 0;
      while (n < size) {
        const got = readSync(fd, buffer, n, size - n, n);
        if (got === 0) break;
        n += got;
      }
      const release = (): void => {
        if (buffer.length <= HELD_BUFFER_BYTES && this.held.length < 4) this.held.push(buffer);
      };
      return { bytes: buffer.subarray(0, n), release };
    } finally {
      closeSync(fd);
    }
  }

  private async xadesSign(doc: DocumentToSign, sink: SignedSink, signal: AbortSignal): Promise<SignedResult> {
    signal.throwIfAborted();
    const held = this.hold(doc);
    try {
      return await this.xadesOf(held.bytes, doc, sink, signal);
    } finally {
      held.release();
    }
  }

  private async xadesOf(bytes: Buffer, doc: DocumentToSign, sink: SignedSink, signal: AbortSignal): Promise<SignedResult> {
    const declared = /^(?:\uFEFF)?<\?xml[^>]*encoding\s*=\s*["']([^"']+)["']/.exec(bytes.subarray(0, 200).toString('latin1'))?.[1];
    if (declared && !/^(utf-?8|us-ascii)$/i.test(declared)) {
      throw new SignspoolError('DOCUMENT_NOT_SIGNABLE', { detail: `cannot add a XAdES signature: the XML is encoded as ${declared}; submit UTF-8` });
    }
    const tsa = this.opts.tsa;
    const stamp = tsa ? (data: Buffer): Promise<Buffer> => tsa.timestamp(data, signal) : undefined;
    // Without a DOM: the canonical document hashed as it is scanned, the Signature built as text.
    let enveloped;
    try {
      enveloped = await this.enveloped.sign(bytes, stamp, new Date());
    } catch (err) {
      if (err instanceof XmlNotWellFormedError) throw new SignspoolError('DOCUMENT_NOT_SIGNABLE', { detail: `cannot add a XAdES signature: ${err.message}` });
      throw err;
    }
    if (enveloped) {
      // The result starts with the document's bytes up to the Signature: one hash over them serves
      // the upload's check and the result's digest. The parts are written in one call.
      const [head = Buffer.alloc(0), ...rest] = enveloped.parts;
      const out = createHash('sha256').update(head);
      if (doc.sha256 !== undefined && out.copy().update(bytes.subarray(head.length)).digest('hex') !== doc.sha256) throw corrupt();
      for (const part of rest) out.update(part);
      sink.write(...enveloped.parts);
      return { size: enveloped.parts.reduce((n, p) => n + p.length, 0), sha256: out.digest('hex'), ...signedOutput('XAdES', doc.name) };
    }
    if (doc.sha256 !== undefined && createHash('sha256').update(bytes).digest('hex') !== doc.sha256) throw corrupt();
    // A DOCTYPE: the DOM signer (xadesjs), which applies it.
    const loading = (this.xades ??= import('./xades.js').then((m) => ({
      signer: new m.XadesSigner(this.identity),
      XmlNotSignableError: m.XmlNotSignableError,
    })));
    const xades = await loading;
    let xml: string;
    try {
      xml = await xades.signer.sign(new TextDecoder('utf-8', { fatal: true }).decode(bytes), stamp, new Date());
    } catch (err) {
      if (err instanceof xades.XmlNotSignableError || err instanceof TypeError) {
        throw new SignspoolError('DOCUMENT_NOT_SIGNABLE', { detail: `cannot add a XAdES signature: ${err.message}` });
      }
      throw err;
    }
    const signed = Buffer.from(xml, 'utf8');
    sink.write(signed);
    return { size: signed.length, sha256: createHash('sha256').update(signed).digest('hex'), ...signedOutput('XAdES', doc.name) };
  }
}
