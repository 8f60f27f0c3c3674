/** Sign'Stash's sign request as the encoder streams it (unit): exact bytes, Content-Length, hashes, files closed. */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SignRequestEncoder } from '@signspool/worker/signers/signstash/request';
import type { BatchDocument, SignBatch } from '@signspool/worker/signer';

const openFds = async (): Promise<number> => (await readdir('/proc/self/fd')).length;

const collect = async (body: AsyncIterable<Buffer>): Promise<Buffer[]> => {
  const pieces: Buffer[] = [];
  for await (const piece of body) pieces.push(piece);
  return pieces;
};

describe('SignRequestEncoder', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'signreq-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const documents = async (sizes: number[]): Promise<{ docs: BatchDocument[]; data: Buffer[] }> => {
    const data = sizes.map((n) => randomBytes(n));
    const docs = await Promise.all(
      data.map(async (bytes, i) => {
        const file = path.join(dir, `d${i}`);
        await writeFile(file, bytes);
        const sha256 = createHash('sha256').update(bytes).digest('hex');
        return {
          opId: `op_${i}`,
          docId: `doc_${i}`,
          // Quotes, Portuguese and a character beyond Latin-1: the JSON text is UTF-8.
          name: `fatura-ção n"${i} €.pdf`,
          contentType: 'application/pdf',
          size: bytes.length,
          sha256,
          path: file,
          resultPath: `${file}.out`,
        };
      }),
    );
    return { docs, data };
  };
  const batchOf = (docs: BatchDocument[]): SignBatch => ({ batchId: 'b_1', tenant: 't', signatureType: 'CAdES', documents: docs });

  it('streams the request JSON byte for byte, of its announced length, with each document hashed as sent', async () => {
    // Empty, shorter than a base64 quantum, around one read (196608 bytes) and over several reads.
    const { docs, data } = await documents([0, 1, 2, 3, 196_607, 196_608, 196_609, 600_001]);
    const encoder = new SignRequestEncoder(batchOf(docs), docs, { applyTimestamp: true, reason: 'Aprovação', location: undefined });
    const hashes = new Map<string, string>();
    const before = await openFds();
    const body = Buffer.concat(await collect(encoder.body(hashes)));
    expect(body.length).toBe(encoder.contentLength());
    const expected = {
      description: `signspool batch of ${docs.length} documents`,
      externalReference: 'b_1',
      documents: docs.map((d, i) => ({
        documentRequest: { base64Content: data[i]?.toString('base64'), contentType: d.contentType, externalReference: d.docId, name: d.name },
        signatureInfo: { signatureType: 'CAdES', applyTimestamp: true, reason: 'Aprovação' },
      })),
    };
    expect(body.equals(Buffer.from(JSON.stringify(expected)))).toBe(true);
    expect(Object.fromEntries(hashes)).toEqual(Object.fromEntries(docs.map((d) => [d.docId, d.sha256])));
    expect(await openFds()).toBe(before);
  });

  it('closes the file it was reading when the body is destroyed part-way, and fails on a missing file', async () => {
    const { docs } = await documents([1_000_000]);
    const before = await openFds();
    const body = new SignRequestEncoder(batchOf(docs), docs, { applyTimestamp: false }).body(new Map());
    for await (const piece of body) {
      expect(piece.length).toBeGreaterThan(0);
      break;
    }
    expect(body.destroyed).toBe(true);
    expect(await openFds()).toBe(before);
    const missing = [{ ...docs[0], path: path.join(dir, 'missing') } as BatchDocument];
    await expect(collect(new SignRequestEncoder(batchOf(missing), missing, { applyTimestamp: false }).body(new Map()))).rejects.toMatchObject({
      code: 'ENOENT',
    });
  });
});
