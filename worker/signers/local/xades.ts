/**
 * XAdES baseline B-B (and B-T with a SignatureTimeStamp): an enveloped XML signature over the whole
 * document, with SignedProperties (SigningTime, SigningCertificateV2) referenced and signed, made
 * with xadesjs on Node's WebCrypto. XML signing needs the document as a DOM: the document is held
 * in memory while it is signed (the signer bounds what it takes at once; see docs/signers.md).
 */
import { randomBytes, type webcrypto } from 'node:crypto';
import { createRequire } from 'node:module';
import * as xmldom from '@xmldom/xmldom';
import * as xadesjs from 'xadesjs';
import { XmlCanonicalizer } from 'xmldsigjs';

// Loaded untyped: its type declarations pull the DOM library into the whole program.
const xpath: unknown = createRequire(import.meta.url)('xpath');
import type { SigningIdentity } from './cert.js';

const XADES_NS = 'http://uri.etsi.org/01903/v1.3.2#';
const DS_NS = 'http://www.w3.org/2000/09/xmldsig#';
const C14N = 'http://www.w3.org/TR/2001/REC-xml-c14n-20010315';

let ready = false;
const init = (): void => {
  if (ready) return;
  xadesjs.setNodeDependencies({ XMLSerializer: xmldom.XMLSerializer, DOMParser: xmldom.DOMParser, DOMImplementation: xmldom.DOMImplementation, xpath });
  xadesjs.Application.setEngine('NodeJS', globalThis.crypto);
  ready = true;
};

export class XmlNotSignableError extends Error {}

export class XadesSigner {
  private key: webcrypto.CryptoKey | undefined;
  private readonly algorithm: webcrypto.RsaHashedImportParams | webcrypto.EcKeyImportParams;
  private readonly signAlgorithm: webcrypto.Algorithm;

  constructor(private readonly identity: SigningIdentity) {
    init();
    this.algorithm = identity.keyType === 'ec' ? { name: 'ECDSA', namedCurve: 'P-256' } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    this.signAlgorithm = identity.keyType === 'ec' ? ({ name: 'ECDSA', hash: 'SHA-256' } as webcrypto.Algorithm) : { name: 'RSASSA-PKCS1-v1_5' };
  }

  private async cryptoKey(): Promise<webcrypto.CryptoKey> {
    this.key ??= await globalThis.crypto.subtle.importKey('pkcs8', this.identity.privateKey.export({ type: 'pkcs8', format: 'der' }), this.algorithm, false, [
      'sign',
    ]);
    return this.key;
  }

  /**
   * Signs the XML text. `timestamp`, when given, is asked for a token over the canonical
   * SignatureValue element (B-T); it returns the DER TimeStampToken.
   */
  async sign(xml: string, timestamp?: (data: Buffer) => Promise<Buffer>, now = new Date()): Promise<string> {
    const errors: string[] = [];
    const doc = new xmldom.DOMParser({
      onError: (level: string, msg: string) => {
        if (level !== 'warning') errors.push(msg);
      },
    }).parseFromString(xml, 'application/xml');
    if (errors.length > 0 || !doc.documentElement) throw new XmlNotSignableError(`the XML cannot be parsed (${errors[0] ?? 'no root element'})`);
    const signedXml = new xadesjs.SignedXml();
    const cert = this.identity.certificateDer.toString('base64');
    type SignArgs = Parameters<typeof signedXml.Sign>;
    const signature = await signedXml.Sign(this.signAlgorithm, (await this.cryptoKey()) as unknown as SignArgs[1], doc as unknown as SignArgs[2], {
      x509: [cert, ...this.identity.chainDer.map((c) => c.toString('base64'))],
      references: [{ uri: '', hash: 'SHA-256', transforms: ['enveloped', 'c14n'] }],
      signingCertificateV2: { certificate: cert, digestAlgorithm: 'SHA-256' },
      signingTime: { value: now },
    });
    const sigEl = signature.GetXml() as unknown as xmldom.Element;
    doc.documentElement.appendChild(sigEl);
    const id = sigEl.getAttribute('Id') ?? `signspool-${randomBytes(6).toString('hex')}`;
    if (timestamp) {
      const value = sigEl.getElementsByTagNameNS(DS_NS, 'SignatureValue')[0];
      const qp = sigEl.getElementsByTagNameNS(XADES_NS, 'QualifyingProperties')[0];
      if (!value || !qp) throw new Error('xadesjs made a signature without SignatureValue or QualifyingProperties');
      value.setAttribute('Id', `${id}-value`);
      const canonical = new XmlCanonicalizer(false, false).Canonicalize(value as unknown as Parameters<XmlCanonicalizer['Canonicalize']>[0]);
      const token = await timestamp(Buffer.from(canonical, 'utf8'));
      const prefix = qp.prefix ? `${qp.prefix}:` : '';
      const el = (name: string): xmldom.Element => doc.createElementNS(XADES_NS, `${prefix}${name}`);
      const unsigned = el('UnsignedProperties');
      const props = el('UnsignedSignatureProperties');
      const ts = el('SignatureTimeStamp');
      ts.setAttribute('Id', `${id}-ts`);
      const c14n = doc.createElementNS(DS_NS, `${value.prefix ? `${value.prefix}:` : ''}CanonicalizationMethod`);
      c14n.setAttribute('Algorithm', C14N);
      const encapsulated = el('EncapsulatedTimeStamp');
      encapsulated.appendChild(doc.createTextNode(token.toString('base64')));
      ts.appendChild(c14n);
      ts.appendChild(encapsulated);
      props.appendChild(ts);
      unsigned.appendChild(props);
      qp.appendChild(unsigned);
    }
    return new xmldom.XMLSerializer().serializeToString(doc);
  }
}
