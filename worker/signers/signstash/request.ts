/**
 * Encodes one batch as Sign'Stash's sign request, streamed: the JSON around each document is
 * written as text, each document's bytes are read from the spool and base64-encoded on the fly,
 * and the exact Content-Length is known before the first byte is sent.
 */
import { createHash } from 'node:crypto';
import { readPieces } from '@signspool/shared/spool/file-io';
import { base64Encode, base64Length } from '../../streams/base64-stream.js';
import type { BatchDocument, SignBatch } from '../../signer.js';

const READ_CHUNK = 3 * 64 * 1024; // a multiple of 3: base64 pieces concatenate cleanly

export interface SignatureInfo {
  applyTimestamp: boolean;
  reason?: string | undefined;
  location?: string | undefined;
}

export class SignRequestEncoder {
  private readonly head: string;
  private readonly info: string;

  constructor(
    batch: SignBatch,
    private readonly docs: readonly BatchDocument[],
    signature: SignatureInfo,
  ) {
    this.head = `{"description":${JSON.stringify(`signspool batch of ${docs.length} documents`)},"externalReference":${JSON.stringify(batch.batchId)},"documents":[`;
    this.info = JSON.stringify({
      signatureType: batch.signatureType,
      applyTimestamp: signature.applyTimestamp,
      ...(signature.reason === undefined ? {} : { reason: signature.reason }),
      ...(signature.location === undefined ? {} : { location: signature.location }),
    });
  }

  private before(i: number): string {
    return `${i === 0 ? '' : ','}{"documentRequest":{"base64Content":"`;
  }

  private after(d: BatchDocument): string {
    return `","contentType":${JSON.stringify(d.contentType)},"externalReference":${JSON.stringify(d.docId)},"name":${JSON.stringify(d.name)}},"signatureInfo":${this.info}}`;
  }

  contentLength(): number {
    let n = Buffer.byteLength(this.head) + 2;
    this.docs.forEach((d, i) => (n += Buffer.byteLength(this.before(i)) + base64Length(d.size) + Buffer.byteLength(this.after(d))));
    return n;
  }

  /** The body; `hashes` receives each document's sha256 as sent. */
  async *body(hashes: Map<string, string>): AsyncGenerator<Buffer> {
    yield Buffer.from(this.head);
    for (const [i, d] of this.docs.entries()) {
      yield Buffer.from(this.before(i));
      const hash = createHash('sha256');
      async function* hashed(): AsyncGenerator<Buffer> {
        for await (const chunk of readPieces(d.path, READ_CHUNK)) {
          hash.update(chunk);
          yield chunk;
        }
      }
      yield* base64Encode(hashed());
      hashes.set(d.docId, hash.digest('hex'));
      yield Buffer.from(this.after(d));
    }
    yield Buffer.from(']}');
  }
}
