/**
 * The PKCS#12 reader against files OpenSSL writes: the OpenSSL 3 default (PBES2, PBKDF2, AES-256,
 * HMAC-SHA-256), the older 3DES profile (SHA-1 MAC), an RSA and an EC key, a chain, an empty
 * password; a wrong password is reported as such, the RC2 profile is refused with what to do, and
 * what it returns is the key and certificates OpenSSL put in.
 */
import { execFileSync } from 'node:child_process';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readPkcs12 } from '@signspool/worker/signers/local/pkcs12';

const dir = mkdtempSync(path.join(os.tmpdir(), 'pkcs12-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const openssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });

/** A self-signed certificate for `name` with a key of `keyAlg` ('rsa' or 'ec'), as PEM files. */
const selfSigned = (name: string, keyAlg: 'rsa' | 'ec'): void => {
  const key = keyAlg === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  openssl('req', '-x509', ...key, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-subj', `/CN=${name}`, '-days', '2');
};
/** A .p12 of `name`'s key and certificate (plus `extra` certificates), with OpenSSL's options. */
const p12 = (name: string, password: string, opts: string[] = [], extra: string[] = []): Buffer => {
  const out = `${name}-${opts.join('') || 'default'}.p12`;
  openssl(
    'pkcs12',
    '-export',
    '-inkey',
    `${name}.key`,
    '-in',
    `${name}.crt`,
    ...extra.flatMap((e) => ['-certfile', e]),
    '-passout',
    `pass:${password}`,
    '-out',
    out,
    ...opts,
  );
  return readFileSync(path.join(dir, out));
};
const derOf = (pemFile: string): Buffer => Buffer.from(new X509Certificate(readFileSync(path.join(dir, pemFile))).raw);
const samePublicKey = (name: string, got: ReturnType<typeof readPkcs12>): boolean =>
  createPublicKey(got.privateKey)
    .export({ format: 'der', type: 'spki' })
    .equals(createPublicKey(readFileSync(path.join(dir, `${name}.key`))).export({ format: 'der', type: 'spki' }));

describe('readPkcs12', () => {
  selfSigned('rsa-signer', 'rsa');
  selfSigned('ec-signer', 'ec');
  selfSigned('issuer', 'ec');

  it('reads the OpenSSL 3 default profile (PBES2 / PBKDF2 / AES-256-CBC, HMAC-SHA-256)', () => {
    const got = readPkcs12(p12('rsa-signer', 's3cret'), 's3cret');
    expect(got.certificates).toEqual([derOf('rsa-signer.crt')]);
    expect(samePublicKey('rsa-signer', got)).toBe(true);
  });

  it('reads the older 3DES profile (SHA-1 MAC) and an EC key', () => {
    const got = readPkcs12(p12('ec-signer', 'pw', ['-keypbe', 'PBE-SHA1-3DES', '-certpbe', 'PBE-SHA1-3DES', '-macalg', 'sha1']), 'pw');
    expect(got.certificates).toEqual([derOf('ec-signer.crt')]);
    expect(samePublicKey('ec-signer', got)).toBe(true);
    expect(got.privateKey.asymmetricKeyType).toBe('ec');
  });

  it('returns every certificate of a chain', () => {
    const got = readPkcs12(p12('ec-signer', 'pw', [], ['issuer.crt']), 'pw');
    expect(got.certificates.map((c) => new X509Certificate(c).subject).sort()).toEqual(['CN=ec-signer', 'CN=issuer']);
  });

  it('reads a file with an empty password', () => {
    expect(samePublicKey('rsa-signer', readPkcs12(p12('rsa-signer', ''), ''))).toBe(true);
  });

  it('says the password is wrong, before decrypting anything', () => {
    const file = p12('rsa-signer', 'right');
    expect(() => readPkcs12(file, 'wrong')).toThrow(/wrong password/);
    expect(() => readPkcs12(p12('ec-signer', 'right', ['-keypbe', 'PBE-SHA1-3DES', '-certpbe', 'PBE-SHA1-3DES', '-macalg', 'sha1']), 'wrong')).toThrow(
      /wrong password/,
    );
  });

  it('refuses the RC2 profile of `-legacy` with what to do about it', () => {
    expect(() => readPkcs12(p12('ec-signer', 'pw', ['-legacy']), 'pw')).toThrow(/not supported .*re-export it with OpenSSL 3 defaults/);
  });

  it('refuses a file that is not PKCS#12', () => {
    expect(() => readPkcs12(Buffer.from('not a pfx'), 'pw')).toThrow();
    expect(() => readPkcs12(derOf('issuer.crt'), 'pw')).toThrow(/PKCS#12/);
  });
});
