/** Sign'Stash's answer decoded into result files (unit, real file system): when their directories are fsynced. */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '@signspool/shared/logger';
import { shardOf, Spool } from '@signspool/shared/spool/spool';
import { SignedListDecoder } from '@signspool/worker/signers/signstash/response';
import type { BatchDocument, SignBatch } from '@signspool/worker/signer';

let root: string;
let spool: Spool;
beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'signresp-'));
  spool = new Spool(root);
  await spool.init();
});
afterEach(async () => {
  vi.restoreAllMocks();
  await spool.close();
  await rm(root, { recursive: true, force: true });
});

/** Operation ids, `perShard` in each of `shards` shard directories. */
const opIdsIn = (shards: number, perShard: number): string[] => {
  const byShard = new Map<string, string[]>();
  for (let i = 0; i < 2000; i++) byShard.set(shardOf(`op_${i}`), [...(byShard.get(shardOf(`op_${i}`)) ?? []), `op_${i}`]);
  return [...byShard.values()].slice(0, shards).flatMap((ids) => ids.slice(0, perShard));
};

const batchOf = (opIds: string[]): { batch: SignBatch; contents: Buffer[] } => {
  const documents: BatchDocument[] = opIds.map((opId, i) => ({
    opId,
    docId: `doc_${i}`,
    name: `d${i}.pdf`,
    contentType: 'application/pdf',
    size: 10,
    sha256: '0'.repeat(64),
    path: spool.incomingPath(opId, `doc_${i}`),
    resultPath: spool.signedPath(opId, `doc_${i}`, 'b_1'),
  }));
  return { batch: { batchId: 'b_1', tenant: 't', signatureType: 'CAdES', documents }, contents: documents.map(() => randomBytes(3000)) };
};

const answerOf = (batch: SignBatch, contents: Buffer[]): Readable =>
  Readable.from([
    Buffer.from(
      JSON.stringify({
        documentList: batch.documents.map((d, i) => ({ externalReference: d.docId, name: d.name, signedContent: contents[i]?.toString('base64') })),
      }),
    ),
  ]);

describe('SignedListDecoder', () => {
  it('fsyncs each result directory once, after every result is in place and before any result is returned', async () => {
    const { batch, contents } = batchOf(opIdsIn(3, 4));
    const dirs = new Set(batch.documents.map((d) => path.dirname(d.resultPath)));
    expect(dirs.size).toBe(3);
    let release = (): void => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const synced: string[] = [];
    const inPlace: boolean[] = [];
    let allCalled = (): void => undefined;
    const called = new Promise<void>((resolve) => (allCalled = resolve));
    const sync = spool.syncDir.bind(spool);
    vi.spyOn(spool, 'syncDir').mockImplementation(async (dir) => {
      inPlace.push(...(await Promise.all(batch.documents.filter((d) => path.dirname(d.resultPath) === dir).map((d) => spool.exists(d.resultPath)))));
      if (inPlace.length >= batch.documents.length) allCalled();
      await held;
      await sync(dir);
      synced.push(dir);
    });
    let returned = false;
    const reading = new SignedListDecoder(batch, batch.documents, spool, silentLogger())
      .read(answerOf(batch, contents), new AbortController().signal)
      .finally(() => (returned = true));
    // Every directory's fsync has started (or the results came back without them).
    await Promise.race([called, reading]);
    expect(spool.syncDir).toHaveBeenCalledTimes(dirs.size);
    expect(returned).toBe(false);
    release();
    const results = await reading;
    expect(synced.sort()).toEqual([...dirs].sort());
    expect(inPlace).toEqual(batch.documents.map(() => true));
    expect(results.map((r) => r.ok)).toEqual(batch.documents.map(() => true));
    for (const [i, d] of batch.documents.entries()) expect(await readFile(d.resultPath)).toEqual(contents[i]);
  });

  it('fails the results of a directory whose fsync fails (INTERNAL), and only those', async () => {
    const { batch, contents } = batchOf(opIdsIn(2, 2));
    const bad = path.dirname(batch.documents[0]?.resultPath ?? '');
    const sync = spool.syncDir.bind(spool);
    vi.spyOn(spool, 'syncDir').mockImplementation(async (dir) => {
      if (dir === bad) throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
      await sync(dir);
    });
    const results = await new SignedListDecoder(batch, batch.documents, spool, silentLogger()).read(answerOf(batch, contents), new AbortController().signal);
    expect(results.map((r) => (r.ok ? 'ok' : r.error.code))).toEqual(batch.documents.map((d) => (path.dirname(d.resultPath) === bad ? 'INTERNAL' : 'ok')));
  });
});
