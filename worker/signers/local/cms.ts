/**
 * CMS SignedData (CAdES baseline B-B, and B-T with a signature time-stamp) over a document known
 * by its SHA-256: signed attributes (content-type, message-digest, signingCertificateV2 and,
 * except for PAdES, signing-time), the signer's certificate and chain. Written as DER by hand:
 * everything but the signing time, the digest and the signature value is encoded once per
 * identity. Encoding is split in two so that an attached signature is written as head + the
 * document's bytes (streamed) + tail.
 */
import { createHash, sign } from 'node:crypto';
import { children, derHeader, derOid, readElement, tlv, utcTime } from './der.js';
import type { SigningIdentity } from './cert.js';

export const OID = {
  sha256: '2.16.840.1.101.3.4.2.1',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  sha256WithRsa: '1.2.840.113549.1.1.11',
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
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

/** Attribute ::= SEQUENCE { attrType OID, attrValues SET OF value } with one value. */
const attribute = (oid: string, value: Buffer): Buffer => tlv(0x30, Buffer.concat([derOid(oid), tlv(0x31, value)]));

/** Signs `data` with the identity's key (SHA-256; ECDSA signatures DER-encoded). */
export const signBytes = (identity: SigningIdentity, data: Buffer): Buffer =>
  identity.keyType === 'ec' ? sign('sha256', data, { key: identity.privateKey, dsaEncoding: 'der' }) : sign('sha256', data, identity.privateKey);

/** A signer's signature before encoding: the value a time-stamp is taken over. */
export interface CmsSignature {
  /** The signed attributes as DER: the content of their SET, sorted. */
  signedAttrs: Buffer;
  /** The SignerInfo's signature value. */
  value: Buffer;
}

/** Encoded SignedData: `head` + (attached: the document's bytes) + `tail`. */
export interface CmsEncoding {
  head: Buffer;
  tail: Buffer;
}

export class CmsBuilder {
  /** The attributes that are the same in every signature (DER). */
  private readonly contentTypeAttr: Buffer;
  private readonly signingCertAttr: Buffer;
  /** SignerInfo fields before signedAttrs (version, sid, digestAlgorithm) and signatureAlgorithm. */
  private readonly signerInfoHead: Buffer;
  private readonly signatureAlgorithm: Buffer;
  /** SignedData fields before encapContentInfo (version, digestAlgorithms), and the certificates ([0] IMPLICIT SET OF). */
  private readonly signedDataHead: Buffer;
  private readonly certificates: Buffer;

  constructor(private readonly identity: SigningIdentity) {
    this.contentTypeAttr = attribute(OID.contentType, derOid(OID.data));
    this.signingCertAttr = attribute(OID.signingCertificateV2, signingCertificateV2(identity.certificateDer));
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version?, serialNumber, signature, issuer, ... }, ... }
    const [tbs] = children(readElement(identity.certificateDer).body);
    const fields = children(tbs?.body ?? Buffer.alloc(0));
    const at = fields[0]?.tag === 0xa0 ? 1 : 0;
    const serial = fields[at];
    const issuer = fields[at + 2];
    if (serial?.tag !== 0x02 || issuer?.tag !== 0x30) throw new Error('unexpected certificate encoding');
    const sha256 = tlv(0x30, derOid(OID.sha256));
    const version1 = Buffer.from([0x02, 0x01, 0x01]);
    this.signerInfoHead = Buffer.concat([version1, tlv(0x30, Buffer.concat([issuer.raw, serial.raw])), sha256]);
    this.signatureAlgorithm =
      identity.keyType === 'ec' ? tlv(0x30, derOid(OID.ecdsaWithSha256)) : tlv(0x30, Buffer.concat([derOid(OID.sha256WithRsa), Buffer.from([0x05, 0x00])]));
    this.signedDataHead = Buffer.concat([version1, tlv(0x31, sha256)]);
    this.certificates = tlv(0xa0, Buffer.concat([identity.certificateDer, ...identity.chainDer]));
  }

  /** Signs the signed attributes of a document whose SHA-256 is `digest`. */
  sign(digest: Buffer, opts: { signingTime: boolean; now?: Date }): CmsSignature {
    const attributes = [
      this.contentTypeAttr,
      ...(opts.signingTime ? [attribute(OID.signingTime, utcTime(opts.now ?? new Date()))] : []),
      attribute(OID.messageDigest, tlv(0x04, digest)),
      this.signingCertAttr,
    ]
      // DER: the elements of a SET OF are sorted by their encoding.
      .sort(Buffer.compare);
    const signedAttrs = Buffer.concat(attributes);
    return { signedAttrs, value: signBytes(this.identity, tlv(0x31, signedAttrs)) };
  }

  /**
   * Encodes the SignedData. `timeStampToken`: an RFC 3161 token over `signature.value` (B-T).
   * `attachedLength`: the document's size when its bytes go inside (between head and tail).
   */
  encode(signature: CmsSignature, timeStampToken?: Buffer, attachedLength?: number): CmsEncoding {
    const signerInfo = tlv(
      0x30,
      Buffer.concat([
        this.signerInfoHead,
        tlv(0xa0, signature.signedAttrs),
        this.signatureAlgorithm,
        tlv(0x04, signature.value),
        ...(timeStampToken ? [tlv(0xa1, attribute(OID.signatureTimeStampToken, timeStampToken))] : []),
      ]),
    );
    const tail = Buffer.concat([this.certificates, tlv(0x31, signerInfo)]);
    const eContentType = derOid(OID.data);
    // Detached: EncapsulatedContentInfo without eContent. Attached: the document's bytes in an
    // [0] EXPLICIT OCTET STRING, written around them, never holding them.
    let encapPrefix: Buffer;
    let contentLength = 0;
    if (attachedLength === undefined) encapPrefix = tlv(0x30, eContentType);
    else {
      const octet = derHeader(0x04, attachedLength);
      const explicit = derHeader(0xa0, octet.length + attachedLength);
      encapPrefix = Buffer.concat([derHeader(0x30, eContentType.length + explicit.length + octet.length + attachedLength), eContentType, explicit, octet]);
      contentLength = attachedLength;
    }
    const sdLength = this.signedDataHead.length + encapPrefix.length + contentLength + tail.length;
    const sdHeader = derHeader(0x30, sdLength);
    const contentExplicit = derHeader(0xa0, sdHeader.length + sdLength);
    const ciType = derOid(OID.signedData);
    const ciHeader = derHeader(0x30, ciType.length + contentExplicit.length + sdHeader.length + sdLength);
    const head = Buffer.concat([ciHeader, ciType, contentExplicit, sdHeader, this.signedDataHead, encapPrefix]);
    return attachedLength === undefined ? { head: Buffer.concat([head, tail]), tail: Buffer.alloc(0) } : { head, tail };
  }
}
