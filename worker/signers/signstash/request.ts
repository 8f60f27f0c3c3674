/**
 * Encodes one batch as Sign'Stash's sign request, streamed: the JSON around each document is
 * written as text, each document's bytes are read from the spool and base64-encoded on the fly,
 * and the exact Content-Length is known before the first byte is sent.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { base64Length, base64Pieces } from '../../streams/base64-stream.js';
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

  /**
   * The body as a stream whose pieces are made when it is read (no promise per piece); `hashes`
   * receives each document's sha256 as sent. Destroying it closes the file being read.
   */
  body(hashes: Map<string, string>): Readable {
    const pieces = this.pieces(hashes);
    return new Readable({
      read() {
        try {
          const next = pieces.next();
          this.push(next.done ? null : next.value);
        } catch (err) {
          this.destroy(err as Error);
        }
      },
      destroy(err, cb) {
        pieces.return(undefined);
        cb(err);
      },
    });
  }

  /**
   * The body's pieces: each document read into one buffer (each read is encoded, i.e. copied,
   * before the next) and sent as base64 pieces, the JSON text between documents carried at the
   * start of the next piece (fewer, fuller socket writes).
   */
  private *pieces(hashes: Map<string, string>): Generator<Buffer, void, undefined> {
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    let lead = this.head;
    for (const [i, d] of this.docs.entries()) {
      lead += this.before(i);
      const hash = createHash('sha256');
      const fd = openSync(d.path, 'r');
      try {
        // `have`: bytes of the last read not encoded yet (a short read not a multiple of 3).
        for (let have = 0; ;) {
          const n = readSync(fd, buf, have, READ_CHUNK - have, null);
          hash.update(buf.subarray(have, have + n));
          const end = have + n;
          const usable = n === 0 ? end : end - (end % 3);
          if (usable > 0) {
            yield* base64Pieces(buf.subarray(0, usable), lead);
            lead = '';
          }
          if (n === 0) break;
          have = buf.copy(buf, 0, usable, end);
        }
      } finally {
        closeSync(fd);
      }
      hashes.set(d.docId, hash.digest('hex'));
      lead += this.after(d);
    }
    yield Buffer.from(`${lead}]}`);
  }
}
