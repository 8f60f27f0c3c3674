/**
 * Test certificates made with openssl in a temp dir: a root CA, an intermediate and signing
 * certificates (RSA or ECDSA P-256), PKCS#12 exports, and a TSA certificate (extendedKeyUsage
 * critical timeStamping) for the local TSA.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

const openssl = (args: string[], cwd: string): void => {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
};

export type KeyKind = 'rsa' | 'ec';
const newKey = (kind: KeyKind): string[] => (kind === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']);

export interface Issued {
  key: string;
  cert: string;
}

/** A self-signed root CA in `dir`. */
export const makeRoot = (dir: string, name = 'root'): Issued => {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.pem`);
  openssl(
    [
      'req',
      '-x509',
      ...newKey('ec'),
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '3',
      '-subj',
      `/CN=signspool test ${name}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  return { key, cert };
};

/** A certificate issued by `ca`; `ext`: the extensions (openssl x509v3 config lines). */
export const issue = (dir: string, ca: Issued, name: string, kind: KeyKind, ext: string[]): Issued => {
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.pem`);
  const extFile = path.join(dir, `${name}.ext`);
  writeFileSync(extFile, `${ext.join('\n')}\n`);
  openssl(['req', ...newKey(kind), '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=signspool test ${name}`], dir);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', cert, '-days', '2', '-sha256', '-extfile', extFile], dir);
  return { key, cert };
};

export const CA_EXT = ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'];
export const SIGNER_EXT = ['basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature,nonRepudiation'];
export const TSA_EXT = ['basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=critical,timeStamping'];

/** A PKCS#12 file of `leaf` with `chain` (PEM files), protected by `password` (OpenSSL 3 defaults). */
export const exportP12 = (dir: string, leaf: Issued, chain: string[], password: string, name = 'signer.p12'): string => {
  const out = path.join(dir, name);
  const chainFile = path.join(dir, `${name}.chain.pem`);
  execFileSync('sh', ['-c', `cat ${chain.map((c) => `'${c}'`).join(' ')} > '${chainFile}'`]);
  openssl(['pkcs12', '-export', '-inkey', leaf.key, '-in', leaf.cert, '-certfile', chainFile, '-out', out, '-passout', `pass:${password}`], dir);
  return out;
};
