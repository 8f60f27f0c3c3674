/**
 * Signs one document file in the format asked for, with the local identity: CAdES (detached .p7s,
 * or attached when configured), PAdES (an incremental update appended to the PDF) or XAdES
 * (enveloped). Returns the signed bytes as a stream to write; PDFs and attached CMS are streamed
 * from the original file (read twice: once to hash, once to copy), never held whole. XML is held
 * in memory while signed (DOM). Used by the local signer and by the fake Sign'Stash.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { SignspoolError } from '@signspool/shared/errors';
import type { SignatureType } from '@signspool/shared/queue';
import { signedOutput } from '../signed-output.js';
import { CmsBuilder } from './cms.js';
import type { SigningIdentity } from './cert.js';
import { buildPadesUpdate, PdfNotSignableError } from './pades-update.js';
import { PdfReader, PdfSyntaxError } from './pdf-reader.js';
import type { TsaClient } from './tsa-client.js';
import type { XadesSigner, XmlNotSignableError } from './xades.js';

export interface DocumentSignerOptions {
  /** CAdES with the document inside the CMS (.p7m) instead of detached (.p7s). */
  cadesAttached: boolean;
  /** B-T: a time-stamp over every signature value. */
  tsa?: TsaClient | undefined;
  /** /Reason of PAdES signatures. */
  reason?: string | undefined;
}

export interface SignedOutput {
  body: Readable;
  contentType: string;
  fileName: string;
}

export interface DocumentToSign {
  path: string;
  name: string;
  /** sha256 (hex) the file must still have; checked on the bytes that are signed. */
  sha256?: string | undefined;
}

const CMS_BASE_BYTES = 3072;
const TIMESTAMP_BYTES = 12288;

/** Streams a file through `hashes`; returns its size. */
const hashFile = async (file: string, hashes: Hash[], signal: AbortSignal): Promise<number> => {
  let size = 0;
  for await (const chunk of createReadStream(file, { signal, highWaterMark: 256 * 1024 })) {
    for (const h of hashes) h.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return size;
};

const corrupt = (): SignspoolError => new SignspoolError('SPOOL_FILE_CORRUPT', { detail: 'the spooled file no longer matches the sha256 taken at upload' });

async function* concat(...parts: (Buffer | (() => Readable))[]): AsyncGenerator<Buffer> {
  for (const p of parts) {
    if (Buffer.isBuffer(p)) {
      if (p.length > 0) yield p;
    } else for await (const chunk of p()) yield chunk as Buffer;
  }
}

export class DocumentSigner {
  private readonly cms: CmsBuilder;
  /** Loaded on the first XML: xadesjs and its DOM take seconds to load, most workers never need them. */
  private xades: Promise<{ signer: XadesSigner; XmlNotSignableError: typeof XmlNotSignableError }> | undefined;
  private readonly placeholderBytes: number;

  constructor(
    private readonly identity: SigningIdentity,
    private readonly opts: DocumentSignerOptions,
  ) {
    this.cms = new CmsBuilder(identity);
    const certBytes = [identity.certificateDer, ...identity.chainDer].reduce((n, c) => n + c.length, 0);
    this.placeholderBytes = CMS_BASE_BYTES + certBytes + (opts.tsa ? TIMESTAMP_BYTES : 0);
  }

  sign(type: SignatureType, doc: DocumentToSign, signal: AbortSignal): Promise<SignedOutput> {
    if (type === 'PAdES') return this.pades(doc, signal);
    if (type === 'XAdES') return this.xadesSign(doc, signal);
    return this.cades(doc, signal);
  }

  private async timestamp(value: Buffer, signal: AbortSignal): Promise<Buffer | undefined> {
    return this.opts.tsa ? this.opts.tsa.timestamp(value, signal) : undefined;
  }

  private async cades(doc: DocumentToSign, signal: AbortSignal): Promise<SignedOutput> {
    const hash = createHash('sha256');
    const size = await hashFile(doc.path, [hash], signal);
    const digest = hash.digest();
    if (doc.sha256 !== undefined && digest.toString('hex') !== doc.sha256) throw corrupt();
    const signature = this.cms.sign(digest, { signingTime: true });
    const token = await this.timestamp(signature.value, signal);
    if (!this.opts.cadesAttached) {
      const { head } = this.cms.encode(signature, token);
      return { body: Readable.from([head]), ...signedOutput('CAdES', doc.name) };
    }
    const { head, tail } = this.cms.encode(signature, token, size);
    return {
      body: Readable.from(concat(head, () => createReadStream(doc.path, { signal, highWaterMark: 256 * 1024 }), tail)),
      ...signedOutput('CAdES', doc.name, { cadesAttached: true }),
    };
  }

  private async pades(doc: DocumentToSign, signal: AbortSignal): Promise<SignedOutput> {
    const original = createHash('sha256');
    const fh = await open(doc.path, 'r');
    let update;
    let digest: Buffer;
    try {
      const size = (await fh.stat()).size;
      // One pass: the upload's hash and, continued over the update, the signed byte ranges.
      await hashFile(doc.path, [original], signal);
      const ranges = original.copy();
      if (doc.sha256 !== undefined && original.digest('hex') !== doc.sha256) throw corrupt();
      try {
        update = await buildPadesUpdate(await PdfReader.open(fh, size), { placeholderBytes: this.placeholderBytes, now: new Date(), reason: this.opts.reason });
      } catch (err) {
        if (err instanceof PdfSyntaxError || err instanceof PdfNotSignableError) {
          throw new SignspoolError('DOCUMENT_NOT_SIGNABLE', { detail: `cannot add a PAdES signature: ${err.message}` });
        }
        throw err;
      }
      ranges.update(update.bytes.subarray(0, update.contentsStart - 1));
      ranges.update(update.bytes.subarray(update.contentsStart + update.contentsHexLength + 1));
      digest = ranges.digest();
    } finally {
      await fh.close();
    }
    const signature = this.cms.sign(digest, { signingTime: false });
    const { head } = this.cms.encode(signature, await this.timestamp(signature.value, signal));
    const hex = head.toString('hex');
    if (hex.length > update.contentsHexLength) throw new Error(`the CMS signature (${head.length} bytes) does not fit its placeholder`);
    update.bytes.write(hex, update.contentsStart, 'latin1');
    return {
      body: Readable.from(concat(() => createReadStream(doc.path, { signal, highWaterMark: 256 * 1024 }), update.bytes)),
      ...signedOutput('PAdES', doc.name),
    };
  }

  private async xadesSign(doc: DocumentToSign, signal: AbortSignal): Promise<SignedOutput> {
    const bytes = await readFile(doc.path, { signal });
    if (doc.sha256 !== undefined && createHash('sha256').update(bytes).digest('hex') !== doc.sha256) throw corrupt();
    const declared = /^(?:\uFEFF)?<\?xml[^>]*encoding\s*=\s*["']([^"']+)["']/.exec(bytes.subarray(0, 200).toString('latin1'))?.[1];
    if (declared && !/^(utf-?8|us-ascii)$/i.test(declared)) {
      throw new SignspoolError('DOCUMENT_NOT_SIGNABLE', { detail: `cannot add a XAdES signature: the XML is encoded as ${declared}; submit UTF-8` });
    }
    const tsa = this.opts.tsa;
    const loading = (this.xades ??= import('./xades.js').then((m) => ({
      signer: new m.XadesSigner(this.identity),
      XmlNotSignableError: m.XmlNotSignableError,
    })));
    const xades = await loading;
    let xml: string;
    try {
      xml = await xades.signer.sign(
        new TextDecoder('utf-8', { fatal: true }).decode(bytes),
        tsa ? (data) => tsa.timestamp(data, signal) : undefined,
        new Date(),
      );
    } catch (err) {
      if (err instanceof xades.XmlNotSignableError || err instanceof TypeError) {
        throw new SignspoolError('DOCUMENT_NOT_SIGNABLE', { detail: `cannot add a XAdES signature: ${err.message}` });
      }
      throw err;
    }
    return { body: Readable.from([Buffer.from(xml, 'utf8')]), ...signedOutput('XAdES', doc.name) };
  }
}
