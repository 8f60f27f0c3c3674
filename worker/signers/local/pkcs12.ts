/**
 * Reads a PKCS#12 (.p12/.pfx) file: the private key and every certificate in it. Supports what
 * OpenSSL 3 and current tools write (PBES2 with PBKDF2 and AES, HMAC-SHA-256 integrity) and the
 * older 3DES profile; the MAC is checked first so a wrong password is reported as such.
 */
import { createDecipheriv, createHash, createHmac, createPrivateKey, pbkdf2Sync, timingSafeEqual, type KeyObject } from 'node:crypto';
import { children, intOf, oidOf, readElement, type DerElement } from './der.js';

const OID = {
  data: '1.2.840.113549.1.7.1',
  encryptedData: '1.2.840.113549.1.7.6',
  keyBag: '1.2.840.113549.1.12.10.1.1',
  shroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
  certBag: '1.2.840.113549.1.12.10.1.3',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  pbeSha3Des: '1.2.840.113549.1.12.1.3',
};
const HASHES: Record<string, { name: string; block: number }> = {
  '1.3.14.3.2.26': { name: 'sha1', block: 64 },
  '2.16.840.1.101.3.4.2.1': { name: 'sha256', block: 64 },
  '2.16.840.1.101.3.4.2.2': { name: 'sha384', block: 128 },
  '2.16.840.1.101.3.4.2.3': { name: 'sha512', block: 128 },
};
const PRFS: Record<string, string> = {
  '1.2.840.113549.2.7': 'sha1',
  '1.2.840.113549.2.9': 'sha256',
  '1.2.840.113549.2.10': 'sha384',
  '1.2.840.113549.2.11': 'sha512',
};
const CIPHERS: Record<string, string> = {
  '2.16.840.1.101.3.4.1.2': 'aes-128-cbc',
  '2.16.840.1.101.3.4.1.22': 'aes-192-cbc',
  '2.16.840.1.101.3.4.1.42': 'aes-256-cbc',
  '1.2.840.113549.3.7': 'des-ede3-cbc',
};

export interface Pkcs12Contents {
  privateKey: KeyObject;
  /** DER certificates in file order. */
  certificates: Buffer[];
}

const at = (els: DerElement[], i: number, what: string): DerElement => {
  const el = els[i];
  if (!el) throw new Error(`PKCS#12: ${what} missing`);
  return el;
};

/**
 * A password as RFC 7292's key derivation takes it: BMPString with its NUL terminator. An empty
 * password has two spellings in the wild (OpenSSL writes the terminator alone; some tools nothing),
 * so it yields both, and the MAC tells which the file used.
 */
const passwordEncodings = (password: string): Buffer[] =>
  password === '' ? [Buffer.alloc(2), Buffer.alloc(0)] : [Buffer.from(`${password}\0`, 'utf16le').swap16()];

/** RFC 7292 appendix B.2: the PKCS#12 key derivation (id 1 key, 2 IV, 3 MAC key) from an encoded password. */
const pkcs12Kdf = (pw: Buffer, salt: Buffer, id: number, iterations: number, size: number, hash: { name: string; block: number }): Buffer => {
  const v = hash.block;
  const fill = (b: Buffer): Buffer => (b.length === 0 ? b : Buffer.alloc(v * Math.ceil(b.length / v), b));
  const I = Buffer.concat([fill(salt), fill(pw)]);
  const D = Buffer.alloc(v, id);
  const out: Buffer[] = [];
  for (let got = 0; got < size;) {
    let A = createHash(hash.name).update(D).update(I).digest();
    for (let i = 1; i < iterations; i++) A = createHash(hash.name).update(A).digest();
    out.push(A);
    got += A.length;
    const B = Buffer.alloc(v, A);
    for (let j = 0; j < I.length; j += v) {
      let carry = 1;
      for (let k = v - 1; k >= 0; k--) {
        const sum = (I[j + k] ?? 0) + (B[k] ?? 0) + carry;
        I[j + k] = sum & 0xff;
        carry = sum >> 8;
      }
    }
  }
  return Buffer.concat(out).subarray(0, size);
};

/** Decrypts PKCS#12 encrypted content (PBES2 or pbeWithSHAAnd3-KeyTripleDES-CBC). */
const decrypt = (algorithm: DerElement, data: Buffer, password: string, encoded: Buffer): Buffer => {
  const [algOid, params] = children(algorithm.body);
  const alg = oidOf(algOid);
  if (alg === OID.pbes2 && params) {
    const [kdf, scheme] = children(params.body).map((e) => children(e.body));
    if (!kdf || !scheme || oidOf(kdf[0]) !== OID.pbkdf2) throw new Error('PKCS#12: unsupported PBES2 key derivation');
    const p = children(at(kdf, 1, 'PBKDF2 parameters').body);
    const salt = at(p, 0, 'salt').body;
    const iterations = intOf(p[1]);
    const prfEl = p.find((e, i) => i >= 2 && e.tag === 0x30);
    const prf = prfEl ? PRFS[oidOf(children(prfEl.body)[0])] : 'sha1';
    const cipher = CIPHERS[oidOf(scheme[0])];
    if (!prf || !cipher) throw new Error('PKCS#12: unsupported PBES2 cipher or PRF');
    const keyLen = cipher === 'des-ede3-cbc' ? 24 : Number(/aes-(\d+)/.exec(cipher)?.[1] ?? 256) / 8;
    const key = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, keyLen, prf);
    const d = createDecipheriv(cipher, key, at(scheme, 1, 'IV').body);
    return Buffer.concat([d.update(data), d.final()]);
  }
  if (alg === OID.pbeSha3Des && params) {
    const [salt, iter] = children(params.body);
    if (!salt) throw new Error('PKCS#12: PBE parameters missing');
    const sha1 = { name: 'sha1', block: 64 };
    const key = pkcs12Kdf(encoded, salt.body, 1, intOf(iter), 24, sha1);
    const iv = pkcs12Kdf(encoded, salt.body, 2, intOf(iter), 8, sha1);
    const d = createDecipheriv('des-ede3-cbc', key, iv);
    return Buffer.concat([d.update(data), d.final()]);
  }
  throw new Error(`PKCS#12: encryption ${alg} is not supported (legacy RC2/RC4?); re-export it with OpenSSL 3 defaults`);
};

/** The OCTET STRING inside a ContentInfo of type data. */
const dataContent = (contentInfo: DerElement[]): Buffer => at(children(at(contentInfo, 1, 'content').body), 0, 'data').body;

export const readPkcs12 = (file: Buffer, password: string): Pkcs12Contents => {
  const pfx = children(readElement(file).body);
  const authSafe = children(at(pfx, 1, 'authSafe').body);
  if (oidOf(authSafe[0]) !== OID.data) throw new Error('PKCS#12: public-key integrity mode is not supported');
  const safeBytes = dataContent(authSafe);
  const macData = pfx[2];
  const candidates = passwordEncodings(password);
  let encoded = candidates[0] ?? Buffer.alloc(0);
  if (macData) {
    const [digestInfo, salt, iter] = children(macData.body);
    const [algId, digest] = children(at([digestInfo as DerElement], 0, 'MAC').body);
    const hash = HASHES[oidOf(children(at([algId as DerElement], 0, 'MAC algorithm').body)[0])];
    if (!hash || !digest || !salt) throw new Error('PKCS#12: unsupported MAC');
    const macOf = (pw: Buffer): Buffer =>
      createHmac(hash.name, pkcs12Kdf(pw, salt.body, 3, iter ? intOf(iter) : 1, createHash(hash.name).digest().length, hash))
        .update(safeBytes)
        .digest();
    const matching = candidates.find((pw) => {
      const mac = macOf(pw);
      return mac.length === digest.body.length && timingSafeEqual(mac, digest.body);
    });
    if (!matching) throw new Error('PKCS#12: wrong password (the integrity check failed)');
    encoded = matching;
  }
  let privateKey: KeyObject | undefined;
  const certificates: Buffer[] = [];
  for (const ci of children(readElement(safeBytes).body)) {
    const parts = children(ci.body);
    let safeContents: Buffer;
    if (oidOf(parts[0]) === OID.data) safeContents = dataContent(parts);
    else if (oidOf(parts[0]) === OID.encryptedData) {
      const encryptedData = children(at(children(at(parts, 1, 'content').body), 0, 'EncryptedData').body);
      const eci = children(at(encryptedData, 1, 'EncryptedContentInfo').body);
      safeContents = decrypt(at(eci, 1, 'algorithm'), at(eci, 2, 'encrypted content').body, password, encoded);
    } else continue;
    for (const bag of children(readElement(safeContents).body)) {
      const [id, value] = children(bag.body);
      const bagId = oidOf(id);
      const inner = at(children(at([value as DerElement], 0, 'bag value').body), 0, 'bag value');
      if (bagId === OID.keyBag) privateKey = createPrivateKey({ key: inner.raw, format: 'der', type: 'pkcs8' });
      else if (bagId === OID.shroudedKeyBag) privateKey = createPrivateKey({ key: inner.raw, format: 'der', type: 'pkcs8', passphrase: password });
      else if (bagId === OID.certBag) {
        const [certId, certValue] = children(inner.body);
        if (oidOf(certId) !== OID.x509Certificate || !certValue) continue;
        certificates.push(Buffer.from(at(children(certValue.body), 0, 'certificate').body));
      }
    }
  }
  if (!privateKey) throw new Error('PKCS#12: no private key in the file');
  if (certificates.length === 0) throw new Error('PKCS#12: no certificate in the file');
  return { privateKey, certificates };
};
