/** The local signer: detached CAdES-B that openssl verifies; identity kept; failures per document. */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '@signspool/shared/logger';
import { Spool } from '@signspool/shared/spool';
import { LocalSigner } from '@signspool/worker/signers/local';
import type { BatchDocument, DocumentResult } from '@signspool/worker/signer';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

const verify = (sig: string, content: string, ca: string) =>
  spawnSync('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', sig, '-content', content, '-CAfile', ca, '-out', '/dev/null']);

describe('LocalSigner', () => {
  let dir: string;
  let spool: Spool;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'local-signer-'));
    spool = new Spool(path.join(dir, 'spool'));
    await spool.init();
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const put = async (docId: string, content: Buffer, name = `${docId}.bin`): Promise<BatchDocument> => {
    const p = spool.incomingPath('op_local', docId);
    await mkdir(path.dirname(p), { recursive: true });
    await writeFile(p, content);
    return { opId: 'op_local', docId, name, contentType: 'application/octet-stream', size: content.length, sha256: sha(content), path: p, resultPath: spool.signedPath('op_local', docId, 'b1') };
  };

  const signer = (dataDir: string, keyFile?: string, certFile?: string) =>
    new LocalSigner({ dataDir, keyFile, certFile, spool, logger: silentLogger() });

  it('makes detached CAdES signatures that openssl verifies, and that fail on tampered content', async () => {
    const s = signer(path.join(dir, 'data'));
    await s.start();
    const docs = [await put('doc_small', Buffer.from('hello, signed world\n')), await put('doc_big', randomBytes(3 * 1024 * 1024))];
    const results = await s.signBatch({ batchId: 'b1', tenant: 't', signatureType: 'CAdES', documents: docs }, new AbortController().signal);
    const cert = s.certificatePath ?? '';
    for (const [i, r] of results.entries()) {
      expect(r.ok).toBe(true);
      if (!r.ok) continue;
      expect(r.fileName).toBe(`${docs[i]?.name}.p7s`);
      const v = verify(r.path, docs[i]?.path ?? '', cert);
      expect(v.status, v.stderr.toString()).toBe(0);
      const tampered = path.join(dir, `tampered-${i}`);
      const original = await readFile(docs[i]?.path ?? '');
      original[0] = (original[0] ?? 0) ^ 0xff;
      await writeFile(tampered, original);
      expect(verify(r.path, tampered, cert).status).not.toBe(0);
    }
    const printed = spawnSync('openssl', ['cms', '-cmsout', '-print', '-inform', 'DER', '-in', (results[0] as { path: string }).path]).stdout.toString();
    expect(printed).toMatch(/id-smime-aa-signingCertificateV2|signingCertificateV2/);
    expect(printed).toMatch(/signingTime/);
    expect(printed).toMatch(/eContent: <ABSENT>/);
  });

  it('keeps its generated identity across restarts', async () => {
    const a = signer(path.join(dir, 'data2'));
    await a.start();
    const first = await readFile(a.certificatePath ?? '', 'utf8');
    const b = signer(path.join(dir, 'data2'));
    await b.start();
    expect(await readFile(b.certificatePath ?? '', 'utf8')).toBe(first);
  });

  it('uses a configured key and certificate', async () => {
    const key = path.join(dir, 'k.pem');
    const cert = path.join(dir, 'c.pem');
    const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=configured signer']);
    expect(gen.status, gen.stderr.toString()).toBe(0);
    const s = signer(path.join(dir, 'data3'), key, cert);
    await s.start();
    const doc = await put('doc_rsa', Buffer.from('rsa signed'));
    const [r] = await s.signBatch({ batchId: 'b2', tenant: 't', signatureType: 'CAdES', documents: [doc] }, new AbortController().signal);
    expect(r?.ok).toBe(true);
    expect(verify((r as { path: string }).path, doc.path, cert).status).toBe(0);
  });

  it('fails documents it cannot sign, one by one', async () => {
    const s = signer(path.join(dir, 'data'));
    await s.start();
    const good = await put('doc_good', Buffer.from('good'));
    const missing = { ...(await put('doc_missing', Buffer.from('gone'))) };
    await rm(missing.path);
    const corrupt = { ...(await put('doc_corrupt', Buffer.from('changed'))), sha256: sha(Buffer.from('original')) };
    const results = await s.signBatch({ batchId: 'b3', tenant: 't', signatureType: 'CAdES', documents: [good, missing, corrupt] }, new AbortController().signal);
    const codes = (r: DocumentResult | undefined) => (r && !r.ok ? r.error.code : 'ok');
    expect(results.map(codes)).toEqual(['ok', 'SPOOL_FILE_MISSING', 'SPOOL_FILE_CORRUPT']);
    const pades = await s.signBatch({ batchId: 'b4', tenant: 't', signatureType: 'PAdES', documents: [good] }, new AbortController().signal);
    expect(pades.map(codes)).toEqual(['SIGNATURE_TYPE_UNSUPPORTED']);
  });
});
