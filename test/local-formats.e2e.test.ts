/**
 * PAdES and XAdES through the whole pipeline with the local signer (api, queue, worker, spool):
 * the downloads are judged by pdfsig and xmlsec1; documents of the wrong format are refused at
 * submit with 422 and leave nothing behind.
 */
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PDFDocument } from 'pdf-lib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { download, submit, waitForTerminal } from './harness/client.js';
import { startStack, type Stack } from './harness/stack.js';
import { pdfsig, xmlsecVerify } from './harness/verify.js';

describe('PAdES and XAdES with the local signer, end to end', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const downloaded = async (id: string, docId: string, name: string): Promise<string> => {
    const dl = await download(stack.apiUrl, stack.keys.acme, id, docId);
    expect(dl.status).toBe(200);
    const file = path.join(stack.dir, name);
    await writeFile(file, dl.body);
    return file;
  };

  it('a PDF submitted as PAdES comes back signed; pdfsig finds the signature valid over the whole file', async () => {
    const pdf = await PDFDocument.create();
    pdf.addPage();
    const res = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'invoice.pdf', content: Buffer.from(await pdf.save()), type: 'application/pdf' }], {
      signatureType: 'PAdES',
    });
    expect(res.status).toBe(202);
    const done = await waitForTerminal(stack.apiUrl, stack.keys.acme, res.body.id);
    expect(done.status).toBe('succeeded');
    expect(done.documents[0]?.signed).toMatchObject({ contentType: 'application/pdf', fileName: 'invoice.signed.pdf' });
    const file = await downloaded(done.id, done.documents[0]?.id ?? '', 'signed.pdf');
    const out = pdfsig(file).out;
    expect(out).toMatch(/Total document signed/);
    expect(out).toMatch(/Signature Validation: Signature is Valid\./);
  });

  it('an XML submitted as XAdES comes back with an enveloped signature that xmlsec1 verifies', async () => {
    const res = await submit(
      stack.apiUrl,
      stack.keys.acme,
      [{ name: 'invoice.xml', content: '<Invoice xmlns="urn:x"><ID>7</ID></Invoice>', type: 'application/xml' }],
      { signatureType: 'XAdES' },
    );
    const done = await waitForTerminal(stack.apiUrl, stack.keys.acme, res.body.id);
    expect(done.status).toBe('succeeded');
    const file = await downloaded(done.id, done.documents[0]?.id ?? '', 'signed.xml');
    const v = xmlsecVerify(file, path.join(stack.dir, 'local-signer', 'cert.pem'));
    expect(v.status, v.out).toBe(0);
    expect(v.out).toMatch(/SignedInfo References \(ok\/all\): 2\/2/);
  });

  it('refuses at submit a non-PDF as PAdES and malformed XML as XAdES (422, own codes), keeping nothing', async () => {
    // Files only: the fan-out directories are shared and stay.
    const incoming = async (): Promise<string[]> =>
      (await readdir(path.join(stack.config.spoolDir, 'incoming'), { recursive: true, withFileTypes: true }))
        .filter((e) => e.isFile())
        .map((e) => path.join(e.parentPath, e.name))
        .sort();
    const before = await incoming();
    const notPdf = await submit(
      stack.apiUrl,
      stack.keys.acme,
      [
        { name: 'ok.pdf', content: '%PDF-1.7\n%%EOF\n' },
        { name: 'a.txt', content: 'plain text' },
      ],
      { signatureType: 'PAdES' },
    );
    expect(notPdf.status).toBe(422);
    expect(notPdf.body).toMatchObject({ code: 'DOCUMENT_NOT_PDF', document: 2 });
    const notXml = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'b.xml', content: '<a><b></a>' }], { signatureType: 'XAdES' });
    expect(notXml.status).toBe(422);
    expect(notXml.body).toMatchObject({ code: 'DOCUMENT_NOT_XML', status: 422 });
    expect(await incoming()).toEqual(before);
  });
});
