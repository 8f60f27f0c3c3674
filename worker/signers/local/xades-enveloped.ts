/**
 * XAdES baseline B-B (and B-T with a SignatureTimeStamp) without a DOM: an enveloped signature
 * over the whole document, built as text. The document's digest is taken over its canonical form
 * (Canonical XML 1.0, written by the byte scanner of shared/xml/c14n.ts straight into the hash);
 * SignedInfo, SignedProperties and SignatureValue are ours, written in their exclusive canonical
 * form (exc-c14n: no namespace from the document around them enters it), so only the signature
 * value is computed over them. The signed document is the original bytes with the Signature
 * inserted before the root's end tag. A document with a DOCTYPE is left to the DOM signer (xades.ts).
 */
import { createHash, randomUUID, sign } from 'node:crypto';
import { scanXml } from '@signspool/shared/xml/c14n';
import type { SigningIdentity } from './cert.js';

const DS = 'http://www.w3.org/2000/09/xmldsig#';
const XADES = 'http://uri.etsi.org/01903/v1.3.2#';
const EXC_C14N = 'http://www.w3.org/2001/10/xml-exc-c14n#';
const C14N = 'http://www.w3.org/TR/2001/REC-xml-c14n-20010315';
const SHA256 = 'http://www.w3.org/2001/04/xmlenc#sha256';
const ENVELOPED = 'http://www.w3.org/2000/09/xmldsig#enveloped-signature';

export class XmlNotWellFormedError extends Error {}

/** The signed document: `before` + `signature` + `after` (`before` and `after` are views of the original bytes, or of a rewritten empty root tag). */
export interface EnvelopedSignature {
  parts: Buffer[];
}

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('base64');
const digestMethod = `<ds:DigestMethod Algorithm="${SHA256}"></ds:DigestMethod>`;

export class XadesEnvelopedSigner {
  private readonly certDigest: string;
  private readonly signatureMethod: string;
  private readonly keyInfo: string;

  constructor(private readonly identity: SigningIdentity) {
    this.certDigest = sha256(identity.certificateDer);
    this.signatureMethod =
      identity.keyType === 'ec' ? 'http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256' : 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256';
    const certs = [identity.certificateDer, ...identity.chainDer].map((c) => `<ds:X509Certificate>${c.toString('base64')}</ds:X509Certificate>`).join('');
    this.keyInfo = `<ds:KeyInfo><ds:X509Data>${certs}</ds:X509Data></ds:KeyInfo>`;
  }

  /** The key's signature over `data` (ECDSA as r||s, as XML Signature wants it). */
  private signValue(data: string): string {
    const { privateKey, keyType } = this.identity;
    const value =
      keyType === 'ec'
        ? sign('sha256', Buffer.from(data, 'utf8'), { key: privateKey, dsaEncoding: 'ieee-p1363' })
        : sign('sha256', Buffer.from(data, 'utf8'), privateKey);
    return value.toString('base64');
  }

  /**
   * Signs the UTF-8 XML `doc`; undefined when it holds a DOCTYPE (left to the DOM signer).
   * `timestamp`, when given, is asked for a token over the canonical SignatureValue (B-T).
   */
  async sign(doc: Buffer, timestamp?: (data: Buffer) => Promise<Buffer>, now = new Date()): Promise<EnvelopedSignature | undefined> {
    const hash = createHash('sha256');
    const scan = scanXml(doc, hash);
    if (scan.kind === 'unsupported') return undefined;
    if (scan.kind === 'malformed') throw new XmlNotWellFormedError(`the XML is not well-formed: ${scan.reason}`);
    const docDigest = hash.digest('base64');
    // 12 random hex digits (randomUUID draws from a cached pool: randomBytes costs a system call each).
    const uuid = randomUUID();
    const id = `signspool-${uuid.slice(0, 8)}${uuid.slice(9, 13)}`;
    // SignedProperties, SignedInfo and SignatureValue as exc-c14n writes them (the namespace
    // declarations are on each of them there; in the document they come from ds:Signature and
    // xades:QualifyingProperties).
    const nsDs = ` xmlns:ds="${DS}"`;
    const nsXades = ` xmlns:xades="${XADES}"`;
    const signedProps = (ns: boolean): string =>
      `<xades:SignedProperties${ns ? nsXades : ''} Id="${id}-signedprops"><xades:SignedSignatureProperties><xades:SigningTime>${now.toISOString()}</xades:SigningTime>` +
      `<xades:SigningCertificateV2><xades:Cert><xades:CertDigest>${digestMethod.replace('<ds:DigestMethod', `<ds:DigestMethod${ns ? nsDs : ''}`)}` +
      `<ds:DigestValue${ns ? nsDs : ''}>${this.certDigest}</ds:DigestValue></xades:CertDigest></xades:Cert></xades:SigningCertificateV2>` +
      `</xades:SignedSignatureProperties></xades:SignedProperties>`;
    const signedInfo = (ns: boolean): string =>
      `<ds:SignedInfo${ns ? nsDs : ''}><ds:CanonicalizationMethod Algorithm="${EXC_C14N}"></ds:CanonicalizationMethod><ds:SignatureMethod Algorithm="${this.signatureMethod}"></ds:SignatureMethod>` +
      `<ds:Reference URI=""><ds:Transforms><ds:Transform Algorithm="${ENVELOPED}"></ds:Transform><ds:Transform Algorithm="${C14N}"></ds:Transform></ds:Transforms>${digestMethod}<ds:DigestValue>${docDigest}</ds:DigestValue></ds:Reference>` +
      `<ds:Reference Type="http://uri.etsi.org/01903#SignedProperties" URI="#${id}-signedprops"><ds:Transforms><ds:Transform Algorithm="${EXC_C14N}"></ds:Transform></ds:Transforms>${digestMethod}<ds:DigestValue>${sha256(signedProps(true))}</ds:DigestValue></ds:Reference>` +
      `</ds:SignedInfo>`;
    const value = this.signValue(signedInfo(true));
    const signatureValue = (ns: boolean): string => `<ds:SignatureValue${ns ? nsDs : ''} Id="${id}-value">${value}</ds:SignatureValue>`;
    let unsigned = '';
    if (timestamp) {
      const token = await timestamp(Buffer.from(signatureValue(true), 'utf8'));
      unsigned =
        `<xades:UnsignedProperties><xades:UnsignedSignatureProperties><xades:SignatureTimeStamp Id="${id}-ts"><ds:CanonicalizationMethod Algorithm="${EXC_C14N}"></ds:CanonicalizationMethod>` +
        `<xades:EncapsulatedTimeStamp>${token.toString('base64')}</xades:EncapsulatedTimeStamp></xades:SignatureTimeStamp></xades:UnsignedSignatureProperties></xades:UnsignedProperties>`;
    }
    const signature = Buffer.from(
      `<ds:Signature${nsDs} Id="${id}">${signedInfo(false)}${signatureValue(false)}${this.keyInfo}` +
        `<ds:Object><xades:QualifyingProperties${nsXades} Target="#${id}">${signedProps(false)}${unsigned}</xades:QualifyingProperties></ds:Object></ds:Signature>`,
      'utf8',
    );
    if (!scan.emptyRoot) return { parts: [doc.subarray(0, scan.rootEndTag), signature, doc.subarray(scan.rootEndTag)] };
    // <root .../> becomes <root ...> Signature </root>.
    const close = Buffer.from(`></${scan.rootName}>`, 'utf8');
    return { parts: [doc.subarray(0, scan.rootEndTag), Buffer.from('>'), signature, close.subarray(1), doc.subarray(scan.rootEndTag + 2)] };
  }
}
