/**
 * The local signer judged by tools nobody here wrote: pdfsig/pdfinfo (PAdES), xmlsec1 (XAdES),
 * openssl cms (CAdES detached and attached), openssl ts (B-T time-stamps against a local TSA).
 * Identities: generated, PEM with a chain (RSA and ECDSA P-256), PKCS#12; refusals at start.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ContentInfo, SignedData } from '@peculiar/asn1-cms';
import { AsnConvert } from '@peculiar/asn1-schema';
import { PDFDocument, StandardFonts } from 'pdf-lib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '@signspool/shared/logger';
import { Spool } from '@signspool/shared/spool/spool';
import { LocalSigner, type LocalSignerDeps } from '@signspool/worker/signers/local/local';
import type { BatchDocument, DocumentResult, SignedDocument } from '@signspool/worker/signer';
import type { SignatureType } from '@signspool/shared/queue';
import { CA_EXT, exportP12, issue, makeRoot, SIGNER_EXT, type Issued } from './harness/pki.js';
import { LocalTsa } from './harness/tsa.js';
import { cmsVerify, pdfsig, tool, xmlsecVerify } from './harness/verify.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
/** `filler`: bytes of an incompressible stream (a PDF larger than the signer's read buffer is parsed from its file, a smaller one from memory). */
const makePdf = async (objectStreams: boolean, pages = 2, filler = 0): Promise<Buffer> => {
  const pdf = await PDFDocument.create();
  const font = await pdf.embedFont(StandardFonts.Helvetica);
  for (let i = 0; i < pages; i++) pdf.addPage().drawText(`Invoice page ${i + 1}`, { x: 50, y: 700, font });
  if (filler > 0) pdf.context.register(pdf.context.stream(randomBytes(filler)));
  return Buffer.from(await pdf.save({ useObjectStreams: objectStreams }));
};
const XML =
  '<?xml version="1.0" encoding="UTF-8"?>\n<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"><ID>INV-1</ID><Note>Grüße &amp; thanks</Note><Total currency="EUR">12.50</Total></Invoice>\n';

/** Flips one byte of `file` at `at` into a new file. */
const flipped = async (file: string, at: number): Promise<string> => {
  const b = await readFile(file);
  b[at] = (b[at] ?? 0) ^ 0x01;
  const out = `${file}.flipped`;
  await writeFile(out, b);
  return out;
};

describe('LocalSigner', () => {
  let dir: string;
  let spool: Spool;
  let root: Issued;
  let chainLeaf: { rsa: Issued; ec: Issued; intermediate: Issued };
  let n = 0;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'local-signer-'));
    spool = new Spool(path.join(dir, 'spool'));
    await spool.init();
    root = makeRoot(dir);
    const intermediate = issue(dir, root, 'intermediate', 'ec', CA_EXT);
    chainLeaf = { intermediate, rsa: issue(dir, intermediate, 'leaf-rsa', 'rsa', SIGNER_EXT), ec: issue(dir, intermediate, 'leaf-ec', 'ec', SIGNER_EXT) };
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const put = async (content: Buffer, name: string): Promise<BatchDocument> => {
    const docId = `doc_${++n}`;
    const p = spool.incomingPath('op_local', docId);
    await mkdir(path.dirname(p), { recursive: true });
    await writeFile(p, content);
    return {
      opId: 'op_local',
      docId,
      name,
      contentType: 'application/octet-stream',
      size: content.length,
      sha256: sha(content),
      path: p,
      resultPath: spool.signedPath('op_local', docId, 'b1'),
    };
  };

  const started = async (extra: Partial<LocalSignerDeps> = {}): Promise<LocalSigner> => {
    const s = new LocalSigner({ dataDir: path.join(dir, 'data'), keyFile: undefined, certFile: undefined, spool, logger: silentLogger(), ...extra });
    await s.start();
    return s;
  };
  const signOne = async (s: LocalSigner, type: SignatureType, doc: BatchDocument): Promise<SignedDocument> => {
    const [r] = await s.signBatch({ batchId: `b${n}`, tenant: 't', signatureType: type, documents: [doc] }, new AbortController().signal);
    if (!r?.ok) throw new Error(`not signed: ${r ? r.error.code : 'no result'}`);
    return r;
  };
  const withChain = (kind: 'rsa' | 'ec'): Partial<LocalSignerDeps> => {
    const bundle = path.join(dir, `bundle-${kind}.pem`);
    spawnSync('sh', ['-c', `cat '${chainLeaf[kind].cert}' '${chainLeaf.intermediate.cert}' > '${bundle}'`]);
    return { keyFile: chainLeaf[kind].key, certFile: bundle };
  };

  it('CAdES detached and attached verify with openssl cms; a flipped byte fails', async () => {
    const s = await started();
    const cert = s.certificatePath ?? '';
    const doc = await put(randomBytes(3 * 1024 * 1024), 'big.bin');
    const detached = await signOne(s, 'CAdES', doc);
    expect(detached.fileName).toBe('big.bin.p7s');
    expect(cmsVerify(detached.path, cert, doc.path).status).toBe(0);
    expect(cmsVerify(detached.path, cert, await flipped(doc.path, 1000)).status).not.toBe(0);
    const printed = tool('openssl', ['cms', '-cmsout', '-print', '-inform', 'DER', '-in', detached.path]).out;
    expect(printed).toMatch(/signingCertificateV2/);
    expect(printed).toMatch(/signingTime/);
    expect(printed).toMatch(/eContent: <ABSENT>/);

    const a = await started({ cadesAttached: true });
    const attached = await signOne(a, 'CAdES', doc);
    expect(attached.fileName).toBe('big.bin.p7m');
    const v = cmsVerify(attached.path, cert);
    expect(v.status, v.out).toBe(0);
    const content = path.join(dir, 'extracted.bin');
    tool('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', attached.path, '-CAfile', cert, '-out', content]);
    expect(sha(await readFile(content))).toBe(doc.sha256);
    // A byte of the embedded document (well past the CMS header).
    expect(cmsVerify(await flipped(attached.path, 200_000), cert).status).not.toBe(0);
  });

  it('PAdES: pdfsig finds the signature valid over the whole file, pdfinfo opens it, a second signature keeps the first valid, a flipped byte is caught', async () => {
    const s = await started();
    for (const [objectStreams, filler] of [
      [false, 0],
      [true, 0],
      [true, 400 * 1024],
    ] as const) {
      const doc = await put(await makePdf(objectStreams, 2, filler), `invoice-${objectStreams}-${filler}.pdf`);
      const first = await signOne(s, 'PAdES', doc);
      expect(first.contentType).toBe('application/pdf');
      const once = pdfsig(first.path);
      expect(once.status, once.out).toBe(0);
      expect(once.out).toMatch(/Signature Type: ETSI\.CAdES\.detached/);
      expect(once.out).toMatch(/Total document signed/);
      expect(once.out).toMatch(/Signature Validation: Signature is Valid\./);
      expect(once.out).not.toMatch(/Syntax Error/);
      expect(tool('pdfinfo', [first.path]).status).toBe(0);
      expect((await readFile(first.path)).subarray(0, doc.size).equals(await readFile(doc.path))).toBe(true);

      const again = await signOne(s, 'PAdES', await put(await readFile(first.path), 'signed-once.pdf'));
      const twice = pdfsig(again.path);
      expect(twice.out.match(/Signature is Valid\./g)?.length, twice.out).toBe(2);
      expect(twice.out).toMatch(/Signature #2:[\s\S]*Total document signed/);

      const broken = pdfsig(await flipped(first.path, 300));
      expect(broken.out).not.toMatch(/Signature is Valid\./);
    }
  });

  it('XAdES: xmlsec1 verifies the enveloped signature and its SignedProperties reference; a flipped byte fails', async () => {
    const s = await started(withChain('ec'));
    const doc = await put(Buffer.from(XML), 'invoice.xml');
    const r = await signOne(s, 'XAdES', doc);
    const signed = await readFile(r.path, 'utf8');
    expect(signed).toMatch(/<xades:SigningTime>/);
    expect(signed).toMatch(/<xades:SigningCertificateV2>/);
    // Only the root is trusted: the intermediate comes from the signature.
    const v = xmlsecVerify(r.path, root.cert);
    expect(v.status, v.out).toBe(0);
    expect(v.out).toMatch(/SignedInfo References \(ok\/all\): 2\/2/);
    const at = signed.indexOf('INV-1');
    expect(xmlsecVerify(await flipped(r.path, at), root.cert).status).not.toBe(0);
  });

  it('XAdES without a DOM: xmlsec1 verifies documents whose canonical form differs from their bytes, with RSA and ECDSA keys', async () => {
    const docs = [
      // Attributes out of order, single quotes, references, tabs and CR LF, CDATA, comments, PIs, superfluous and empty namespace declarations.
      '\uFEFF<?xml version="1.0" encoding="UTF-8"?>\r\n<!-- before -->\r\n<?app  x ?>\r\n<r xmlns="urn:r" xmlns:p="urn:p" z = \'1\'  a="&#65;&gt;\tb&#10;"><p:e xmlns:p="urn:p" p:z="1" a="2" xmlns:q="urn:q" q:a="3"><f xmlns=""><g xmlns=""/></f></p:e>t&gt;&quot;&#233;&#13;\r\n<![CDATA[x<y&z>]]><!-- in --><?p  q?><e/></r >\r\n<!-- after --><?after?>\r\n',
      // An empty root element.
      '<?xml version="1.0"?><Invoice xmlns="urn:i" id="1"/>',
    ];
    for (const kind of ['rsa', 'ec'] as const) {
      const s = await started(withChain(kind));
      for (const [i, xml] of docs.entries()) {
        const r = await signOne(s, 'XAdES', await put(Buffer.from(xml), `doc${i}.xml`));
        const signed = await readFile(r.path, 'utf8');
        expect(signed).toContain('xml-exc-c14n');
        const v = xmlsecVerify(r.path, root.cert);
        expect(v.status, `${kind} ${i}: ${v.out}`).toBe(0);
        expect(v.out).toMatch(/SignedInfo References \(ok\/all\): 2\/2/);
      }
      // A DOCTYPE goes to the DOM signer (xadesjs).
      const r = await signOne(s, 'XAdES', await put(Buffer.from('<?xml version="1.0"?>\n<!DOCTYPE Invoice>\n<Invoice><ID>1</ID></Invoice>\n'), 'dtd.xml'));
      expect(await readFile(r.path, 'utf8')).not.toContain('xml-exc-c14n');
      expect(xmlsecVerify(r.path, root.cert).status).toBe(0);
      await s.stop();
    }
  });

  it('signs with RSA and ECDSA P-256 keys, includes the chain, and reads PKCS#12', async () => {
    for (const kind of ['rsa', 'ec'] as const) {
      const s = await started(withChain(kind));
      const doc = await put(Buffer.from(`signed by ${kind}`), `${kind}.txt`);
      const r = await signOne(s, 'CAdES', doc);
      // Only the root is trusted: the intermediate must come from the signature.
      const v = cmsVerify(r.path, root.cert, doc.path);
      expect(v.status, v.out).toBe(0);
      const pdf = await signOne(s, 'PAdES', await put(await makePdf(true, 1), `${kind}.pdf`));
      expect(pdfsig(pdf.path).out).toMatch(/Signature is Valid\./);
    }
    const p12 = exportP12(dir, chainLeaf.rsa, [chainLeaf.intermediate.cert], 'p12 secret');
    const s = await started({ p12File: p12, p12Password: 'p12 secret' });
    const doc = await put(Buffer.from('pkcs12'), 'p12.txt');
    expect(cmsVerify((await signOne(s, 'CAdES', doc)).path, root.cert, doc.path).status).toBe(0);
    await expect(started({ p12File: p12, p12Password: 'wrong' })).rejects.toThrow(/LOCAL_SIGNER_P12_FILE: .*wrong password/);
  });

  it('refuses to start with one clear line when the key does not match the certificate, or the certificate expired', async () => {
    await expect(started({ keyFile: chainLeaf.ec.key, certFile: chainLeaf.rsa.cert })).rejects.toThrow(
      /^LOCAL_SIGNER_KEY_FILE\/LOCAL_SIGNER_CERT_FILE .*: the private key does not belong to the certificate$/,
    );
    await expect(started({ ...withChain('rsa'), now: new Date(Date.now() + 10 * 86_400_000) })).rejects.toThrow(
      /: the certificate "CN=signspool test leaf-rsa" expired on \d{4}-/,
    );
  });

  it('keeps its generated identity across restarts', async () => {
    const a = await started({ dataDir: path.join(dir, 'data2') });
    const first = await readFile(a.certificatePath ?? '', 'utf8');
    const b = await started({ dataDir: path.join(dir, 'data2') });
    expect(await readFile(b.certificatePath ?? '', 'utf8')).toBe(first);
  });

  it('fails documents it cannot sign, one by one', async () => {
    const s = await started();
    const good = await put(Buffer.from('good'), 'good.bin');
    const missing = await put(Buffer.from('gone'), 'gone.bin');
    await rm(missing.path);
    const corrupt = { ...(await put(Buffer.from('changed'), 'c.bin')), sha256: sha(Buffer.from('original')) };
    const codes = (r: DocumentResult | undefined) => (r && !r.ok ? r.error.code : 'ok');
    const results = await s.signBatch(
      { batchId: 'b3', tenant: 't', signatureType: 'CAdES', documents: [good, missing, corrupt] },
      new AbortController().signal,
    );
    expect(results.map(codes)).toEqual(['ok', 'SPOOL_FILE_MISSING', 'SPOOL_FILE_CORRUPT']);
    const notPdf = await put(Buffer.from('%PDF-1.7\nnot really a pdf\n%%EOF\n'), 'fake.pdf');
    const pades = await s.signBatch(
      { batchId: 'b4', tenant: 't', signatureType: 'PAdES', documents: [notPdf, await put(await makePdf(false, 1), 'ok.pdf')] },
      new AbortController().signal,
    );
    expect(pades.map(codes)).toEqual(['DOCUMENT_NOT_SIGNABLE', 'ok']);
  });

  describe('B-T time-stamps from a local TSA', () => {
    let tsa: LocalTsa;
    beforeAll(async () => {
      tsa = new LocalTsa(await mkdtemp(path.join(dir, 'tsa-')));
      await tsa.start();
    });
    afterAll(async () => {
      await tsa.stop();
    });
    const tsaDeps = (): Partial<LocalSignerDeps> => ({ tsa: { url: tsa.url, timeoutMs: 5000, concurrency: 4 } });

    /** The signature value and its time-stamp token, out of a CMS SignedData. */
    const tokenOf = (der: Buffer): { value: Buffer; token: Buffer } => {
      const sd = AsnConvert.parse(AsnConvert.parse(der, ContentInfo).content, SignedData);
      const si = sd.signerInfos[0];
      const attr = si?.unsignedAttrs?.find((a) => a.attrType === '1.2.840.113549.1.9.16.2.14');
      if (!si || !attr?.attrValues[0]) throw new Error('no signature-time-stamp attribute');
      return { value: Buffer.from(si.signature.buffer), token: Buffer.from(attr.attrValues[0]) };
    };
    const tsVerify = async (data: Buffer, token: Buffer) => {
      const d = path.join(dir, `ts-data-${++n}`);
      const t = `${d}.tst`;
      await writeFile(d, data);
      await writeFile(t, token);
      return tool('openssl', ['ts', '-verify', '-data', d, '-in', t, '-token_in', '-CAfile', tsa.root.cert]);
    };

    it('CAdES and PAdES carry a signature-time-stamp over the signature value that openssl ts verifies; XAdES a SignatureTimeStamp', async () => {
      const s = await started(tsaDeps());
      const docs = await Promise.all([1, 2, 3].map((i) => put(Buffer.from(`doc ${i}`), `d${i}.txt`)));
      const results = await s.signBatch({ batchId: 'bt', tenant: 't', signatureType: 'CAdES', documents: docs }, new AbortController().signal);
      for (const r of results) {
        if (!r.ok) throw new Error(r.error.code);
        const { value, token } = tokenOf(await readFile(r.path));
        const v = await tsVerify(value, token);
        expect(v.status, v.out).toBe(0);
        expect(v.out).toMatch(/Verification: OK/);
        expect((await tsVerify(Buffer.concat([value, Buffer.from([0])]), token)).status).not.toBe(0);
        expect(cmsVerify(r.path, s.certificatePath ?? '', docs.find((d) => d.docId === r.docId)?.path).status).toBe(0);
      }

      const pdf = await signOne(s, 'PAdES', await put(await makePdf(true, 1), 'ts.pdf'));
      const bytes = await readFile(pdf.path);
      const hex = /\/Contents <([0-9a-f]+)>/.exec(bytes.toString('latin1', bytes.lastIndexOf('/ByteRange')))?.[1] ?? '';
      const { value, token } = tokenOf(Buffer.from(hex.replace(/(00)+$/, ''), 'hex'));
      expect((await tsVerify(value, token)).status).toBe(0);
      expect(pdfsig(pdf.path).out).toMatch(/Signature is Valid\./);

      const xml = await signOne(s, 'XAdES', await put(Buffer.from(XML), 'ts.xml'));
      const signedXml = await readFile(xml.path, 'utf8');
      const encapsulated = /<xades:EncapsulatedTimeStamp>([^<]+)</.exec(signedXml)?.[1] ?? '';
      const sigValue = /<ds:SignatureValue[^>]*>[^<]*<\/ds:SignatureValue>/.exec(signedXml)?.[0] ?? '';
      // Inclusive C14N of the element: its namespace declaration comes first, then the Id attribute.
      const canonical = sigValue.replace('<ds:SignatureValue', '<ds:SignatureValue xmlns:ds="http://www.w3.org/2000/09/xmldsig#"');
      const tv = await tsVerify(Buffer.from(canonical), Buffer.from(encapsulated, 'base64'));
      expect(tv.status, tv.out).toBe(0);
      expect(xmlsecVerify(xml.path, s.certificatePath ?? '').status).toBe(0);
    });

    it('a TSA answering 503 fails the batch as TSA_UNAVAILABLE (retryable); one refusing with 400 as TSA_REJECTED', async () => {
      const s = await started(tsaDeps());
      const doc = await put(Buffer.from('x'), 'x.txt');
      tsa.fail = 503;
      const batch = { batchId: 'bf', tenant: 't', signatureType: 'CAdES' as const, documents: [doc] };
      await expect(s.signBatch(batch, new AbortController().signal)).rejects.toMatchObject({ code: 'TSA_UNAVAILABLE', retryable: true });
      tsa.fail = 400;
      await expect(s.signBatch(batch, new AbortController().signal)).rejects.toMatchObject({ code: 'TSA_REJECTED', retryable: false });
      tsa.fail = 0;
      await s.stop();
      const down = await started({ tsa: { url: 'http://127.0.0.1:9/tsa', timeoutMs: 2000, concurrency: 1 } });
      await expect(down.signBatch(batch, new AbortController().signal)).rejects.toMatchObject({ code: 'TSA_UNAVAILABLE' });
      await down.stop();
    });
  });
});
