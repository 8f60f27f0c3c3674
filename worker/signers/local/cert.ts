/**
 * The local signer's identity: a configured key and certificate (PEM, the certificate file may
 * carry the chain after the signer's certificate), a PKCS#12 file, or a self-signed development
 * certificate generated on first start and kept in <DATA_DIR>/local-signer/ (key mode 0600).
 * A configured identity that cannot sign (key not matching, certificate expired or not yet
 * valid, key type unsupported) stops start with one line that names the file and the reason.
 */
import { createPrivateKey, createPublicKey, randomBytes, webcrypto, type KeyObject } from 'node:crypto';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { ConfigError } from '@signspool/shared/config';
import type { Logger } from '@signspool/shared/logger';
import { readPkcs12 } from './pkcs12.js';

export interface SigningIdentity {
  privateKey: KeyObject;
  /** 'rsa' or 'ec' (P-256). */
  keyType: 'rsa' | 'ec';
  certificateDer: Buffer;
  /** The issuing certificates (intermediates, root) to include in signatures, leaf excluded. */
  chainDer: Buffer[];
  certificatePem: string;
  /** A PEM file of the signer's certificate, when there is one (PEM identities). */
  certPath: string | undefined;
  /** The certificate's subject (RFC 4514), for status views. */
  subject: string;
  notAfter: Date;
}

export interface IdentitySource {
  dataDir: string;
  keyFile: string | undefined;
  certFile: string | undefined;
  p12File?: string | undefined;
  p12Password?: string | undefined;
  logger: Logger;
  now?: Date;
}

const pemCertificates = (pem: string): Buffer[] =>
  [...pem.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/g)].map((m) => Buffer.from((m[1] ?? '').replace(/\s+/g, ''), 'base64'));

const toPem = (der: Buffer): string =>
  `-----BEGIN CERTIFICATE-----\n${der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .trim()}\n-----END CERTIFICATE-----\n`;

const spkiOf = (der: Buffer): Buffer =>
  Buffer.from(
    createPublicKey({ key: Buffer.from(new x509.X509Certificate(der).publicKey.rawData), format: 'der', type: 'spki' }).export({ type: 'spki', format: 'der' }),
  );

/** Puts the certificate of `privateKey` first and checks that it can sign now. */
const assemble = (privateKey: KeyObject, certs: Buffer[], source: string, certPath: string | undefined, now: Date): SigningIdentity => {
  const ours = Buffer.from(createPublicKey(privateKey).export({ type: 'spki', format: 'der' }));
  const leaf = certs.find((c) => spkiOf(c).equals(ours));
  if (!leaf) throw new ConfigError(`${source}: the private key does not belong to the certificate`);
  const type = privateKey.asymmetricKeyType;
  const curve = privateKey.asymmetricKeyDetails?.namedCurve;
  if (type !== 'rsa' && !(type === 'ec' && curve === 'prime256v1')) {
    throw new ConfigError(`${source}: the key is ${type ?? 'unknown'}${curve ? ` ${curve}` : ''}; the local signer signs with RSA or ECDSA P-256`);
  }
  const cert = new x509.X509Certificate(leaf);
  if (cert.notAfter.getTime() <= now.getTime()) throw new ConfigError(`${source}: the certificate "${cert.subject}" expired on ${cert.notAfter.toISOString()}`);
  if (cert.notBefore.getTime() > now.getTime())
    throw new ConfigError(`${source}: the certificate "${cert.subject}" is not valid before ${cert.notBefore.toISOString()}`);
  return {
    privateKey,
    keyType: type,
    certificateDer: leaf,
    chainDer: certs.filter((c) => c !== leaf),
    certificatePem: toPem(leaf),
    certPath,
    subject: cert.subject,
    notAfter: cert.notAfter,
  };
};

const readOrRefuse = async (file: string, variable: string): Promise<Buffer> => {
  try {
    return await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw err;
    throw new ConfigError(`${variable}: cannot read ${file} (${code ?? 'error'})`);
  }
};

const loadPem = async (keyFile: string, certFile: string, now: Date): Promise<SigningIdentity> => {
  const [keyPem, certPem] = await Promise.all([readOrRefuse(keyFile, 'LOCAL_SIGNER_KEY_FILE'), readOrRefuse(certFile, 'LOCAL_SIGNER_CERT_FILE')]);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(keyPem);
  } catch {
    throw new ConfigError(`LOCAL_SIGNER_KEY_FILE: ${keyFile} holds no readable unencrypted private key`);
  }
  const certs = pemCertificates(certPem.toString('utf8'));
  if (certs.length === 0) throw new ConfigError(`LOCAL_SIGNER_CERT_FILE: ${certFile} holds no PEM certificate`);
  return assemble(privateKey, certs, `LOCAL_SIGNER_KEY_FILE/LOCAL_SIGNER_CERT_FILE (${keyFile}, ${certFile})`, certFile, now);
};

const loadP12 = async (file: string, password: string, now: Date): Promise<SigningIdentity> => {
  let contents;
  try {
    contents = readPkcs12(await readFile(file), password);
  } catch (err) {
    throw new ConfigError(`LOCAL_SIGNER_P12_FILE: ${file}: ${(err as Error).message}`);
  }
  return assemble(contents.privateKey, contents.certificates, `LOCAL_SIGNER_P12_FILE (${file})`, undefined, now);
};

const generate = async (): Promise<{ keyPem: string; certPem: string }> => {
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const now = new Date();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: `01${randomBytes(15).toString('hex')}`,
    name: 'CN=signspool development signer, O=signspool',
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + 5 * 365 * 86_400_000),
    signingAlgorithm: alg,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.nonRepudiation | x509.KeyUsageFlags.keyCertSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .trim()}\n-----END PRIVATE KEY-----\n`;
  return { keyPem, certPem: cert.toString('pem') + '\n' };
};

/** Writes `content` to `target` only if it does not exist yet (link is atomic and fails on EEXIST). */
const writeOnce = async (target: string, content: string, mode: number): Promise<void> => {
  const tmp = `${target}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, content, { mode });
  try {
    await link(tmp, target);
  } finally {
    await rm(tmp, { force: true });
  }
};

export const loadOrCreateSigningIdentity = async (opts: IdentitySource): Promise<SigningIdentity> => {
  const now = opts.now ?? new Date();
  if (opts.p12File) return loadP12(opts.p12File, opts.p12Password ?? '', now);
  if (opts.keyFile && opts.certFile) {
    try {
      return await loadPem(opts.keyFile, opts.certFile, now);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT')
        throw new ConfigError(`LOCAL_SIGNER_KEY_FILE/LOCAL_SIGNER_CERT_FILE: ${(err as NodeJS.ErrnoException).path ?? 'file'} does not exist`);
      throw err;
    }
  }
  const dir = path.join(opts.dataDir, 'local-signer');
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  try {
    return await loadPem(keyFile, certFile, now);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // The pair is written as one unit: a directory of its own, then linked into place. Of two
  // processes starting at once, the loser finds the winner's pair.
  const { keyPem, certPem } = await generate();
  const bundle = `${keyPem}${certPem}`;
  const lock = path.join(dir, 'pair.pem');
  try {
    await writeOnce(lock, bundle, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const pair = await readFile(lock, 'utf8');
  const key = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n/.exec(pair)?.[0] ?? '';
  const cert = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/.exec(pair)?.[0] ?? '';
  for (const [file, content, mode] of [
    [keyFile, key, 0o600],
    [certFile, cert, 0o644],
  ] as const) {
    try {
      await writeOnce(file, content, mode);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  opts.logger.info({ certPath: certFile }, 'generated a self-signed development certificate for the local signer');
  return loadPem(keyFile, certFile, now);
};
