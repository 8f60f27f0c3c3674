/**
 * The hand-written CMS SignedData of the local signer against the same structure assembled with
 * @peculiar/asn1-cms (the library it was built with before): byte for byte, for an ECDSA and an
 * RSA identity with a chain, detached, attached and with a time-stamp token; and openssl cms
 * verifies a detached signature over its content.
 */
import { createHash, randomBytes, verify } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  Attribute,
  CertificateChoices,
  CertificateSet,
  ContentInfo,
  DigestAlgorithmIdentifier,
  DigestAlgorithmIdentifiers,
  EncapsulatedContent,
  EncapsulatedContentInfo,
  IssuerAndSerialNumber,
  SignatureAlgorithmIdentifier,
  SignedData,
  SignerIdentifier,
  SignerInfo,
  SignerInfos,
  id_data,
  id_signedData,
} from '@peculiar/asn1-cms';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '@signspool/shared/logger';
import { loadOrCreateSigningIdentity, type SigningIdentity } from '@signspool/worker/signers/local/cert';
import { CmsBuilder, OID, type CmsSignature } from '@signspool/worker/signers/local/cms';
import { children, readElement, toArrayBuffer, tlv } from '@signspool/worker/signers/local/der';
import { CA_EXT, issue, makeRoot, SIGNER_EXT } from '../../../../harness/pki.js';
import { cmsVerify } from '../../../../harness/verify.js';

/** The SignedData of `signature` as @peculiar/asn1-cms encodes it (`content`: attached). */
const theirs = (identity: SigningIdentity, signature: CmsSignature, token?: Buffer, content?: Buffer): Buffer => {
  const parse = (der: Buffer): CertificateChoices => AsnConvert.parse(der, CertificateChoices);
  const cert = parse(identity.certificateDer).certificate;
  if (!cert) throw new Error('not a certificate');
  const isEc = identity.keyType === 'ec';
  const signedAttrs = children(signature.signedAttrs).map((a) => AsnConvert.parse(a.raw, Attribute));
  const signerInfo = new SignerInfo({
    version: 1,
    sid: new SignerIdentifier({
      issuerAndSerialNumber: new IssuerAndSerialNumber({ issuer: cert.tbsCertificate.issuer, serialNumber: cert.tbsCertificate.serialNumber }),
    }),
    digestAlgorithm: new DigestAlgorithmIdentifier({ algorithm: OID.sha256 }),
    signedAttrs,
    signatureAlgorithm: new SignatureAlgorithmIdentifier({ algorithm: isEc ? OID.ecdsaWithSha256 : OID.sha256WithRsa, ...(isEc ? {} : { parameters: null }) }),
    signature: new OctetString(signature.value),
    ...(token ? { unsignedAttrs: [new Attribute({ attrType: OID.signatureTimeStampToken, attrValues: [toArrayBuffer(token)] })] } : {}),
  });
  const signedData = new SignedData({
    version: 1,
    digestAlgorithms: new DigestAlgorithmIdentifiers([new DigestAlgorithmIdentifier({ algorithm: OID.sha256 })]),
    encapContentInfo: new EncapsulatedContentInfo({
      eContentType: id_data,
      ...(content ? { eContent: new EncapsulatedContent({ single: new OctetString(toArrayBuffer(content)) }) } : {}),
    }),
    certificates: new CertificateSet([identity.certificateDer, ...identity.chainDer].map(parse)),
    signerInfos: new SignerInfos([signerInfo]),
  });
  return Buffer.from(AsnConvert.serialize(new ContentInfo({ contentType: id_signedData, content: AsnConvert.serialize(signedData) })));
};

let dir: string;
let ec: SigningIdentity;
let rsa: SigningIdentity;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'cms-unit-'));
  ec = await loadOrCreateSigningIdentity({ dataDir: path.join(dir, 'ec'), keyFile: undefined, certFile: undefined, logger: silentLogger() });
  const root = makeRoot(dir);
  const intermediate = issue(dir, root, 'intermediate', 'ec', CA_EXT);
  const leaf = issue(dir, intermediate, 'leaf-rsa', 'rsa', SIGNER_EXT);
  const bundle = path.join(dir, 'bundle.pem');
  await writeFile(bundle, Buffer.concat([await readFile(leaf.cert), await readFile(intermediate.cert)]));
  rsa = await loadOrCreateSigningIdentity({ dataDir: path.join(dir, 'rsa'), keyFile: leaf.key, certFile: bundle, logger: silentLogger() });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('CmsBuilder', () => {
  it('writes the SignedData @peculiar/asn1-cms writes, detached, attached and with a time-stamp token, for ECDSA and RSA with a chain', () => {
    // Any DER element stands for a token here (it is carried as it is).
    const token = tlv(0x30, tlv(0x04, randomBytes(300)));
    for (const identity of [ec, rsa]) {
      const cms = new CmsBuilder(identity);
      for (const signingTime of [true, false]) {
        const signature = cms.sign(createHash('sha256').update('document').digest(), { signingTime, now: new Date('2026-12-07T12:00:00Z') });
        for (const stamp of [undefined, token]) {
          const detached = cms.encode(signature, stamp);
          expect(detached.tail.length).toBe(0);
          expect(detached.head.equals(theirs(identity, signature, stamp))).toBe(true);
          for (const content of [randomBytes(5), randomBytes(70_000)]) {
            const { head, tail } = cms.encode(signature, stamp, content.length);
            expect(Buffer.concat([head, content, tail]).equals(theirs(identity, signature, stamp, content))).toBe(true);
          }
        }
      }
    }
  });

  it('signs the DER SET of its signed attributes (sorted), which hold the digest, and openssl cms verifies the result', async () => {
    const content = randomBytes(10_000);
    const contentFile = path.join(dir, 'content.bin');
    await writeFile(contentFile, content);
    for (const identity of [ec, rsa]) {
      const cms = new CmsBuilder(identity);
      const digest = createHash('sha256').update(content).digest();
      const signature = cms.sign(digest, { signingTime: true });
      const attrs = children(signature.signedAttrs).map((a) => a.raw);
      expect(attrs.length).toBe(4);
      expect([...attrs].sort(Buffer.compare)).toEqual(attrs);
      expect(signature.signedAttrs.includes(digest)).toBe(true);
      const signed = tlv(0x31, signature.signedAttrs);
      expect(readElement(signed).body.equals(signature.signedAttrs)).toBe(true);
      expect(
        verify('sha256', signed, identity.keyType === 'ec' ? { key: identity.privateKey, dsaEncoding: 'der' } : identity.privateKey, signature.value),
      ).toBe(true);
      const sig = path.join(dir, `${identity.keyType}.p7s`);
      await writeFile(sig, cms.encode(signature).head);
      const ca = identity.certPath ?? '';
      const v = cmsVerify(sig, identity.chainDer.length > 0 ? path.join(dir, 'root.pem') : ca, contentFile);
      expect(v.status, v.out).toBe(0);
    }
  });
});
