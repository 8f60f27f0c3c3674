/**
 * The `local` signer (the default of `npm start`): real detached CMS signatures (CAdES-B baseline)
 * made in-process with a configured or generated key. Each document is hashed by streaming it
 * from the spool; only the small CMS structure is built in memory. Output verifies with
 * `openssl cms -verify -binary -inform DER -in <sig> -content <original> -CAfile <cert>`.
 */
import { createHash, sign } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import {
  Attribute,
  CertificateChoices,
  CertificateSet,
  ContentInfo,
  DigestAlgorithmIdentifiers,
  EncapsulatedContentInfo,
  IssuerAndSerialNumber,
  SignedData,
  SignerIdentifier,
  SignerInfo,
  SignerInfos,
  id_data,
  id_signedData,
} from '@peculiar/asn1-cms';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, Certificate } from '@peculiar/asn1-x509';
import { SignspoolError } from '@signspool/shared/errors';
import type { Logger } from '@signspool/shared/logger';
import type { Spool } from '@signspool/shared/spool';
import type { BatchDocument, DocumentResult, SignBatch, Signer } from '../signer.js';
import { loadOrCreateSigningIdentity, type SigningIdentity } from './local-cert.js';

const OID = {
  sha256: '2.16.840.1.101.3.4.2.1',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  sha256WithRsa: '1.2.840.113549.1.1.11',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingTime: '1.2.840.113549.1.9.5',
  signingCertificateV2: '1.2.840.113549.1.9.16.2.47',
};

// --- minimal DER for the attribute values --------------------------------------------------------
const derLength = (n: number): Buffer => {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
};
const tlv = (tag: number, body: Buffer): Buffer => Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
const derOid = (oid: string): Buffer => {
  const parts = oid.split('.').map(Number);
  const out: number[] = [40 * (parts[0] ?? 0) + (parts[1] ?? 0)];
  for (const p of parts.slice(2)) {
    const chunk: number[] = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
};
const utcTime = (d: Date): Buffer => {
  const p = (n: number): string => String(n).padStart(2, '0');
  const s = `${p(d.getUTCFullYear() % 100)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  return tlv(0x17, Buffer.from(s, 'ascii'));
};
const ab = (b: Buffer): ArrayBuffer => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;

/** ESS SigningCertificateV2 with one ESSCertIDv2 (hash algorithm: the default, SHA-256). */
const signingCertificateV2 = (certDer: Buffer): Buffer => {
  const certHash = createHash('sha256').update(certDer).digest();
  return tlv(0x30, tlv(0x30, tlv(0x30, tlv(0x04, certHash))));
};

const sha256File = (file: string, signal: AbortSignal): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    const stream = createReadStream(file, { signal });
    stream.on('data', (chunk) => hash.update(chunk));
    stream.on('error', reject);
    stream.on('end', () => resolve(hash.digest()));
  });

export interface LocalSignerDeps {
  dataDir: string;
  keyFile: string | undefined;
  certFile: string | undefined;
  spool: Spool;
  logger: Logger;
}

export class LocalSigner implements Signer {
  readonly name = 'local';
  private identity: SigningIdentity | undefined;
  private certificate: Certificate | undefined;

  constructor(private readonly deps: LocalSignerDeps) {}

  async start(): Promise<void> {
    this.identity = await loadOrCreateSigningIdentity({ ...this.deps });
    this.certificate = AsnConvert.parse(this.identity.certificateDer, Certificate);
  }

  /** Path of the certificate to verify signatures with. */
  get certificatePath(): string | undefined {
    return this.identity?.certPath;
  }

  async signBatch(batch: SignBatch, signal: AbortSignal): Promise<DocumentResult[]> {
    const results: DocumentResult[] = [];
    for (const doc of batch.documents) {
      if (signal.aborted) throw signal.reason;
      if (batch.signatureType !== 'CAdES') {
        results.push({
          ok: false,
          docId: doc.docId,
          error: new SignspoolError('SIGNATURE_TYPE_UNSUPPORTED', {
            detail: `the local signer makes CAdES (detached CMS) signatures only, not ${batch.signatureType}; use SIGNER=signstash for PAdES/XAdES`,
          }),
        });
        continue;
      }
      results.push(await this.signOne(doc, signal));
    }
    return results;
  }

  private async signOne(doc: BatchDocument, signal: AbortSignal): Promise<DocumentResult> {
    let digest: Buffer;
    try {
      digest = await sha256File(doc.path, signal);
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { ok: false, docId: doc.docId, error: new SignspoolError('SPOOL_FILE_MISSING') };
      throw err;
    }
    if (digest.toString('hex') !== doc.sha256) {
      return { ok: false, docId: doc.docId, error: new SignspoolError('SPOOL_FILE_CORRUPT', { detail: 'the spooled file no longer matches the sha256 taken at upload' }) };
    }
    try {
      const der = this.signedData(digest);
      const written = await this.deps.spool.writeAtomic(doc.resultPath, Readable.from([der]));
      return { ok: true, docId: doc.docId, path: written.path, size: written.size, sha256: written.sha256, contentType: 'application/pkcs7-signature', fileName: `${doc.name}.p7s` };
    } catch (err) {
      this.deps.logger.error({ err: { message: (err as Error).message }, docId: doc.docId }, 'local signing failed');
      return { ok: false, docId: doc.docId, error: new SignspoolError('SIGNER_FAILED') };
    }
  }

  /** A detached CMS SignedData over a document whose SHA-256 is `digest`. */
  signedData(digest: Buffer, now = new Date()): Buffer {
    const identity = this.identity;
    const cert = this.certificate;
    if (!identity || !cert) throw new Error('local signer not started');
    const isEc = identity.privateKey.asymmetricKeyType === 'ec';
    const attributes = [
      new Attribute({ attrType: OID.contentType, attrValues: [ab(derOid(id_data))] }),
      new Attribute({ attrType: OID.signingTime, attrValues: [ab(utcTime(now))] }),
      new Attribute({ attrType: OID.messageDigest, attrValues: [ab(tlv(0x04, digest))] }),
      new Attribute({ attrType: OID.signingCertificateV2, attrValues: [ab(signingCertificateV2(identity.certificateDer))] }),
    ]
      .map((a) => ({ a, der: Buffer.from(AsnConvert.serialize(a)) }))
      // DER: the elements of a SET OF are sorted by their encoding.
      .sort((x, y) => Buffer.compare(x.der, y.der));
    const signedAttrsDer = tlv(0x31, Buffer.concat(attributes.map((x) => x.der)));
    const signature = isEc
      ? sign('sha256', signedAttrsDer, { key: identity.privateKey, dsaEncoding: 'der' })
      : sign('sha256', signedAttrsDer, identity.privateKey);
    const signerInfo = new SignerInfo({
      version: 1,
      sid: new SignerIdentifier({
        issuerAndSerialNumber: new IssuerAndSerialNumber({ issuer: cert.tbsCertificate.issuer, serialNumber: cert.tbsCertificate.serialNumber }),
      }),
      digestAlgorithm: new AlgorithmIdentifier({ algorithm: OID.sha256 }),
      signedAttrs: attributes.map((x) => x.a),
      signatureAlgorithm: new AlgorithmIdentifier({ algorithm: isEc ? OID.ecdsaWithSha256 : OID.sha256WithRsa, ...(isEc ? {} : { parameters: null }) }),
      signature: new OctetString(signature),
    });
    const signedData = new SignedData({
      version: 1,
      digestAlgorithms: new DigestAlgorithmIdentifiers([new AlgorithmIdentifier({ algorithm: OID.sha256 })]),
      encapContentInfo: new EncapsulatedContentInfo({ eContentType: id_data }),
      certificates: new CertificateSet([new CertificateChoices({ certificate: cert })]),
      signerInfos: new SignerInfos([signerInfo]),
    });
    const contentInfo = new ContentInfo({ contentType: id_signedData, content: AsnConvert.serialize(signedData) });
    return Buffer.from(AsnConvert.serialize(contentInfo));
  }

  async stop(): Promise<void> {
    this.identity = undefined;
  }
}
