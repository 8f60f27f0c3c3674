/**
 * The local signer's result files (unit, real file system): the size and sha256 it reports are
 * those of the file it leaves at the result path (the PDF's and the attached CMS's are computed
 * without reading the result back), the result directories are fsynced once per batch before the
 * results are handed back, and a result that cannot be stored fails alone. A spooled file is read
 * up to the upload's size, a PDF that fits the read buffer is written with its update at once, and
 * an enveloped XAdES result in one call.
 */
import { createHash, randomBytes } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PDFDocument } from 'pdf-lib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '@signspool/shared/logger';
import type { SignatureType } from '@signspool/shared/queue';
import { Spool } from '@signspool/shared/spool/spool';
import type { BatchDocument } from '@signspool/worker/signer';
import { loadOrCreateSigningIdentity } from '@signspool/worker/signers/local/cert';
import { DocumentSigner } from '@signspool/worker/signers/local/document-signer';
import { LocalSigner } from '@signspool/worker/signers/local/local';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Signs `doc` into a sink that keeps each write call's chunks; the calls, the result and every byte written. */
const signRecorded = async (documents: DocumentSigner, type: SignatureType, doc: BatchDocument) => {
  const calls: Buffer[][] = [];
  const out = await documents.sign(type, doc, { write: (...chunks) => void calls.push(chunks.map((c) => Buffer.from(c))) }, new AbortController().signal);
  return { calls, out, written: Buffer.concat(calls.flat()) };
};

describe('LocalSigner result files', () => {
  let dir: string;
  let spool: Spool;
  let n = 0;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'local-unit-'));
    spool = new Spool(path.join(dir, 'spool'));
    await spool.init();
  });
  afterAll(async () => {
    await spool.close();
    await rm(dir, { recursive: true, force: true });
  });

  const put = async (content: Buffer, opId = 'op_unit'): Promise<BatchDocument> => {
    const docId = `doc_${++n}`;
    const p = spool.incomingPath(opId, docId);
    await mkdir(path.dirname(p), { recursive: true });
    await writeFile(p, content);
    return {
      opId,
      docId,
      name: `d${n}`,
      contentType: 'application/octet-stream',
      size: content.length,
      sha256: sha(content),
      path: p,
      resultPath: spool.signedPath(opId, docId, `b${n}`),
    };
  };
  const signer = async (cadesAttached = false): Promise<LocalSigner> => {
    const s = new LocalSigner({ dataDir: path.join(dir, 'data'), keyFile: undefined, certFile: undefined, cadesAttached, spool, logger: silentLogger() });
    await s.start();
    return s;
  };
  const pdf = async (): Promise<Buffer> => {
    const doc = await PDFDocument.create();
    doc.addPage();
    doc.context.register(doc.context.stream(randomBytes(600 * 1024)));
    return Buffer.from(await doc.save());
  };

  it.each([
    ['PAdES', false],
    ['CAdES', false],
    ['CAdES', true],
    ['XAdES', false],
  ] as const)('%s (attached: %s): the reported size and sha256 are the result file’s, which starts as expected', async (type: SignatureType, attached) => {
    const s = await signer(attached);
    // Over a spare larger than the result: the reused file is cut to what was written.
    const spare = spool.tmpPath('spare-test');
    await writeFile(spare, randomBytes(2 * 1024 * 1024));
    await spool.retire(spare, 2 * 1024 * 1024);
    const content = type === 'PAdES' ? await pdf() : type === 'XAdES' ? Buffer.from('<?xml version="1.0"?>\n<a x="1">text</a>\n') : randomBytes(700 * 1024);
    const doc = await put(content);
    const [r] = await s.signBatch({ batchId: 'b', tenant: 't', signatureType: type, documents: [doc] }, new AbortController().signal);
    if (!r?.ok) throw new Error(`not signed: ${r?.ok === false ? r.error.code : 'no result'}`);
    const file = await readFile(r.path);
    expect(r.path).toBe(doc.resultPath);
    expect(r.size).toBe(file.length);
    expect(r.sha256).toBe(sha(file));
    if (type === 'PAdES') expect(file.subarray(0, content.length).equals(content)).toBe(true);
    if (attached) expect(file.includes(content)).toBe(true);
    await s.stop();
  });

  it.each(['PAdES', 'CAdES', 'XAdES'] as const)(
    '%s: a spooled file that no longer matches its sha256 fails as SPOOL_FILE_CORRUPT, leaving no result',
    async (type) => {
      const s = await signer();
      const content = type === 'PAdES' ? await pdf() : Buffer.from('<?xml version="1.0"?>\n<a>text</a>\n');
      const doc = { ...(await put(content)), sha256: sha(Buffer.from('the bytes uploaded')) };
      const [r] = await s.signBatch({ batchId: 'b', tenant: 't', signatureType: type, documents: [doc] }, new AbortController().signal);
      expect(r).toMatchObject({ ok: false, error: { code: 'SPOOL_FILE_CORRUPT' } });
      await expect(readFile(doc.resultPath)).rejects.toMatchObject({ code: 'ENOENT' });
      await s.stop();
    },
  );

  it.each([
    ['PAdES', false],
    ['CAdES', false],
    ['CAdES', true],
    ['XAdES', false],
  ] as const)(
    '%s (attached: %s): reads the spooled file up to the upload’s size; bytes the file gained later are not signed',
    async (type: SignatureType, attached) => {
      const s = await signer(attached);
      const content = type === 'PAdES' ? await pdf() : type === 'XAdES' ? Buffer.from('<?xml version="1.0"?>\n<a x="1">text</a>\n') : randomBytes(300 * 1024);
      const doc = await put(content);
      const gained = Buffer.from('GAINED-AFTER-UPLOAD');
      await appendFile(doc.path, gained);
      const [r] = await s.signBatch({ batchId: 'b', tenant: 't', signatureType: type, documents: [doc] }, new AbortController().signal);
      if (!r?.ok) throw new Error(`not signed: ${r?.ok === false ? r.error.code : 'no result'}`);
      const file = await readFile(r.path);
      expect(r.sha256).toBe(sha(file));
      expect(file.includes(gained)).toBe(false);
      if (type === 'PAdES') expect(file.subarray(0, content.length).equals(content)).toBe(true);
      if (attached) expect(file.includes(content)).toBe(true);
      await s.stop();
    },
  );

  it('writes a PDF that fits its read buffer together with its update, in one call; a larger one piece by piece', async () => {
    const identity = await loadOrCreateSigningIdentity({ dataDir: path.join(dir, 'data'), keyFile: undefined, certFile: undefined, logger: silentLogger() });
    const documents = new DocumentSigner(identity, { cadesAttached: false });
    const small = await PDFDocument.create();
    small.addPage();
    for (const content of [Buffer.from(await small.save()), await pdf()]) {
      const doc = await put(content);
      const { calls, out, written } = await signRecorded(documents, 'PAdES', doc);
      expect(written.subarray(0, content.length).equals(content)).toBe(true);
      expect(out).toMatchObject({ size: written.length, sha256: sha(written) });
      if (content.length < 256 * 1024) expect(calls.map((c) => c.length)).toEqual([2]);
      else expect(calls.length).toBeGreaterThan(2);
    }
  });

  it('writes an enveloped XAdES result in one call: the document with its Signature before the root end tag', async () => {
    const identity = await loadOrCreateSigningIdentity({ dataDir: path.join(dir, 'data'), keyFile: undefined, certFile: undefined, logger: silentLogger() });
    const documents = new DocumentSigner(identity, { cadesAttached: false });
    for (const [xml, before] of [
      ['<?xml version="1.0"?>\n<a x="1"><b>t</b></a>\n', '<?xml version="1.0"?>\n<a x="1"><b>t</b>'],
      ['<a/>', '<a>'],
    ] as const) {
      const doc = await put(Buffer.from(xml));
      const { calls, out, written } = await signRecorded(documents, 'XAdES', doc);
      expect(calls.length).toBe(1);
      expect(out).toMatchObject({ size: written.length, sha256: sha(written) });
      expect(written.toString('utf8').startsWith(`${before}<ds:Signature`)).toBe(true);
    }
  });

  it('fsyncs each result directory once per batch, after the results are in place and before they are handed back', async () => {
    const s = await signer();
    const docs = [await put(Buffer.from('one'), 'op_a'), await put(Buffer.from('two'), 'op_a'), await put(Buffer.from('three'), 'op_b')];
    const synced: string[][] = [];
    const syncDirs = vi.spyOn(spool, 'syncDirs').mockImplementation(async (dirs) => {
      const list = [...dirs];
      // Every result is renamed into place by the time its directory is fsynced.
      for (const d of docs) expect((await readdir(path.dirname(d.resultPath))).includes(path.basename(d.resultPath))).toBe(true);
      synced.push(list.sort());
    });
    const syncDir = vi.spyOn(spool, 'syncDir');
    try {
      const results = await s.signBatch({ batchId: 'b', tenant: 't', signatureType: 'CAdES', documents: docs }, new AbortController().signal);
      expect(results.every((r) => r.ok)).toBe(true);
      expect(synced).toEqual([[spool.signedDir('op_a'), spool.signedDir('op_b')].sort()]);
      expect(syncDir).not.toHaveBeenCalled();
    } finally {
      syncDirs.mockRestore();
      syncDir.mockRestore();
      await s.stop();
    }
  });

  it('a result that cannot be renamed into place fails alone, and leaves no tmp file', async () => {
    const s = await signer();
    const good = await put(Buffer.from('good'));
    const bad = await put(Buffer.from('bad'));
    // A directory where the result file should go: the rename fails.
    await mkdir(bad.resultPath, { recursive: true });
    await writeFile(path.join(bad.resultPath, 'x'), 'x');
    const tmpBefore = (await readdir(spool.tmpRoot)).length;
    const results = await s.signBatch({ batchId: 'b', tenant: 't', signatureType: 'CAdES', documents: [good, bad] }, new AbortController().signal);
    expect(results.find((r) => r.docId === good.docId)?.ok).toBe(true);
    expect(results.find((r) => r.docId === bad.docId)).toMatchObject({ ok: false, error: { code: 'SIGNER_FAILED' } });
    expect((await readdir(spool.tmpRoot)).length).toBeLessThanOrEqual(tmpBefore);
    await s.stop();
  });
});
