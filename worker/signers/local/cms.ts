/**
 * CMS SignedData (CAdES baseline B-B, and B-T with a signature time-stamp) over a document known
 * by its SHA-256: signed attributes (content-type, message-digest, signingCertificateV2 and,
 * except for PAdES, signing-time), the signer's certificate and chain. Encoding is split in two
 * so that an attached signature is written as head + the document's bytes (streamed) + tail.
 */
import { createHash, sign } from 'node:crypto';
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
import { children, derHeader, derOid, readElement, tlv, toArrayBuffer, utcTime } from './der.js';
import type { SigningIdentity } from './cert.js';

export const OID = {
  sha256: '2.16.840.1.101.3.4.2.1',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  sha256WithRsa: '1.2.840.113549.1.1.11',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingTime: '1.2.840.113549.1.9.5',
  signingCertificateV2: '1.2.840.113549.1.9.16.2.47',
  signatureTimeStampToken: '1.2.840.113549.1.9.16.2.14',
};

/** ESS SigningCertificateV2 with one ESSCertIDv2 (hash algorithm: the default, SHA-256). */
const signingCertificateV2 = (certDer: Buffer): Buffer => {
  const certHash = createHash('sha256').update(certDer).digest();
  return tlv(0x30, tlv(0x30, tlv(0x30, tlv(0x04, certHash))));
};

/** Signs `data` with the identity's key (SHA-256; ECDSA signatures DER-encoded). */
export const signBytes = (identity: SigningIdentity, data: Buffer): Buffer =>
  identity.keyType === 'ec' ? sign('sha256', data, { key: identity.privateKey, dsaEncoding: 'der' }) : sign('sha256', data, identity.privateKey);

/** A signer's signature before encoding: the value a time-stamp is taken over. */
export interface CmsSignature {
  signedAttrs: Attribute[];
  /** The SignerInfo's signature value. */
  value: Buffer;
}

/** Encoded SignedData: `head` + (attached: the document's bytes) + `tail`. */
export interface CmsEncoding {
  head: Buffer;
  tail: Buffer;
}

export class CmsBuilder {
  private readonly cert: Certificate;
  private readonly certificates: CertificateSet;

  constructor(private readonly identity: SigningIdentity) {
    this.cert = AsnConvert.parse(identity.certificateDer, Certificate);
    this.certificates = new CertificateSet(
      [identity.certificateDer, ...identity.chainDer].map((der) => new CertificateChoices({ certificate: AsnConvert.parse(der, Certificate) })),
    );
  }

  /** Signs the signed attributes of a document whose SHA-256 is `digest`. */
  sign(digest: Buffer, opts: { signingTime: boolean; now?: Date }): CmsSignature {
    const attributes = [
      new Attribute({ attrType: OID.contentType, attrValues: [toArrayBuffer(derOid(id_data))] }),
      ...(opts.signingTime ? [new Attribute({ attrType: OID.signingTime, attrValues: [toArrayBuffer(utcTime(opts.now ?? new Date()))] })] : []),
      new Attribute({ attrType: OID.messageDigest, attrValues: [toArrayBuffer(tlv(0x04, digest))] }),
      new Attribute({ attrType: OID.signingCertificateV2, attrValues: [toArrayBuffer(signingCertificateV2(this.identity.certificateDer))] }),
    ]
      .map((a) => ({ a, der: Buffer.from(AsnConvert.serialize(a)) }))
      // DER: the elements of a SET OF are sorted by their encoding.
      .sort((x, y) => Buffer.compare(x.der, y.der));
    const signedAttrsDer = tlv(0x31, Buffer.concat(attributes.map((x) => x.der)));
    return { signedAttrs: attributes.map((x) => x.a), value: signBytes(this.identity, signedAttrsDer) };
  }

  /**
   * Encodes the SignedData. `timeStampToken`: an RFC 3161 token over `signature.value` (B-T).
   * `attachedLength`: the document's size when its bytes go inside (between head and tail).
   */
  encode(signature: CmsSignature, timeStampToken?: Buffer, attachedLength?: number): CmsEncoding {
    const isEc = this.identity.keyType === 'ec';
    const signerInfo = new SignerInfo({
      version: 1,
      sid: new SignerIdentifier({
        issuerAndSerialNumber: new IssuerAndSerialNumber({ issuer: this.cert.tbsCertificate.issuer, serialNumber: this.cert.tbsCertificate.serialNumber }),
      }),
      digestAlgorithm: new AlgorithmIdentifier({ algorithm: OID.sha256 }),
      signedAttrs: signature.signedAttrs,
      signatureAlgorithm: new AlgorithmIdentifier({ algorithm: isEc ? OID.ecdsaWithSha256 : OID.sha256WithRsa, ...(isEc ? {} : { parameters: null }) }),
      signature: new OctetString(signature.value),
      ...(timeStampToken ? { unsignedAttrs: [new Attribute({ attrType: OID.signatureTimeStampToken, attrValues: [toArrayBuffer(timeStampToken)] })] } : {}),
    });
    const signedData = new SignedData({
      version: 1,
      digestAlgorithms: new DigestAlgorithmIdentifiers([new AlgorithmIdentifier({ algorithm: OID.sha256 })]),
      encapContentInfo: new EncapsulatedContentInfo({ eContentType: id_data }),
      certificates: this.certificates,
      signerInfos: new SignerInfos([signerInfo]),
    });
    const sdDer = Buffer.from(AsnConvert.serialize(signedData));
    if (attachedLength === undefined) {
      const contentInfo = new ContentInfo({ contentType: id_signedData, content: toArrayBuffer(sdDer) });
      return { head: Buffer.from(AsnConvert.serialize(contentInfo)), tail: Buffer.alloc(0) };
    }
    // Attached: the encapsulated content is written around the document's bytes, never holding them.
    const [version, digestAlgorithms, , certificates, signerInfos] = children(readElement(sdDer).body);
    if (!version || !digestAlgorithms || !certificates || !signerInfos) throw new Error('unexpected SignedData encoding');
    const octet = derHeader(0x04, attachedLength);
    const explicit = derHeader(0xa0, octet.length + attachedLength);
    const eContentType = derOid(id_data);
    const encapLength = eContentType.length + explicit.length + octet.length + attachedLength;
    const encapPrefix = Buffer.concat([derHeader(0x30, encapLength), eContentType, explicit, octet]);
    const tail = Buffer.concat([certificates.raw, signerInfos.raw]);
    const sdLength = version.raw.length + digestAlgorithms.raw.length + encapPrefix.length + attachedLength + tail.length;
    const sdHeader = derHeader(0x30, sdLength);
    const contentExplicit = derHeader(0xa0, sdHeader.length + sdLength);
    const ciType = derOid(id_signedData);
    const ciHeader = derHeader(0x30, ciType.length + contentExplicit.length + sdHeader.length + sdLength);
    return { head: Buffer.concat([ciHeader, ciType, contentExplicit, sdHeader, version.raw, digestAlgorithms.raw, encapPrefix]), tail };
  }
}
