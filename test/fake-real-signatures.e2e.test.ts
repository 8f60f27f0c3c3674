/**
 * A demo against the fake Sign'Stash in its 'real' mode (the standalone fake's default): the files
 * signspool hands back pass pdfsig, xmlsec1 and openssl cms with the fake's certificate.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PDFDocument } from 'pdf-lib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeSignstash } from './fake-signstash/server.js';
import { download, submit, waitForTerminal } from './harness/client.js';
import { startStack, type Stack } from './harness/stack.js';
import { cmsVerify, pdfsig, xmlsecVerify } from './harness/verify.js';

describe("the fake Sign'Stash signing for real", () => {
  let fake: FakeSignstash;
  let stack: Stack;
  let cert: string;

  beforeAll(async () => {
    fake = new FakeSignstash({ perRequestMs: 5, bytesPerSec: 1e9, signatures: 'real' });
    await fake.start();
    stack = await startStack({ env: fake.clientEnv({ UPSTREAM_BACKOFF_BASE: '20ms', UPSTREAM_BACKOFF_MAX: '100ms' }) });
    cert = path.join(stack.dir, 'fake-cert.pem');
    await writeFile(cert, await (await fetch(`${fake.url}/_fake/certificate`)).text());
  });
  afterAll(async () => {
    await stack?.stop();
    await fake?.stop();
  });

  const signed = async (type: string, name: string, content: Buffer | string): Promise<string> => {
    const res = await submit(stack.apiUrl, stack.keys.acme, [{ name, content }], { signatureType: type });
    expect(res.status).toBe(202);
    const done = await waitForTerminal(stack.apiUrl, stack.keys.acme, res.body.id);
    expect(done.documents[0]?.status, JSON.stringify(done.documents[0]?.error)).toBe('signed');
    const dl = await download(stack.apiUrl, stack.keys.acme, done.id, done.documents[0]?.id ?? '');
    const file = path.join(stack.dir, `${type}-${name}`);
    await writeFile(file, dl.body);
    return file;
  };

  it('returns a PAdES PDF, a XAdES XML and a CAdES signature that the validators accept', async () => {
    const pdf = await PDFDocument.create();
    pdf.addPage();
    const pades = await signed('PAdES', 'demo.pdf', Buffer.from(await pdf.save()));
    expect(pdfsig(pades).out).toMatch(/Total document signed[\s\S]*Signature is Valid\./);

    const xades = await signed('XAdES', 'demo.xml', '<Invoice><ID>demo</ID></Invoice>');
    const x = xmlsecVerify(xades, cert);
    expect(x.status, x.out).toBe(0);

    const original = path.join(stack.dir, 'demo.bin');
    await writeFile(original, 'any bytes at all');
    const cades = await signed('CAdES', 'demo.bin', 'any bytes at all');
    const c = cmsVerify(cades, cert, original);
    expect(c.status, c.out).toBe(0);
  });
});
