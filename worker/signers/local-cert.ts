/**
 * The local signer's identity: a configured key and certificate (PEM), or a self-signed development
 * certificate generated on first start and kept in <DATA_DIR>/local-signer/ (key mode 0600).
 */
import { createPrivateKey, createPublicKey, randomBytes, webcrypto, type KeyObject } from 'node:crypto';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { Logger } from '@signspool/shared/logger';

export interface SigningIdentity {
  privateKey: KeyObject;
  certificateDer: Buffer;
  certificatePem: string;
  certPath: string;
}

const pemToDer = (pem: string): Buffer => {
  const m = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(pem);
  if (!m?.[1]) throw new Error('no PEM certificate found');
  return Buffer.from(m[1].replace(/\s+/g, ''), 'base64');
};

const load = async (keyFile: string, certFile: string): Promise<SigningIdentity> => {
  const [keyPem, certPem] = await Promise.all([readFile(keyFile, 'utf8'), readFile(certFile, 'utf8')]);
  const privateKey = createPrivateKey(keyPem);
  const certificateDer = pemToDer(certPem);
  const cert = new x509.X509Certificate(certificateDer);
  const certKey = createPublicKey({ key: Buffer.from(cert.publicKey.rawData), format: 'der', type: 'spki' });
  const ours = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  if (!Buffer.from(certKey.export({ type: 'spki', format: 'der' })).equals(Buffer.from(ours))) {
    throw new Error(`the key in ${keyFile} does not belong to the certificate in ${certFile}`);
  }
  return { privateKey, certificateDer, certificatePem: certPem, certPath: certFile };
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
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/(.{64})/g, '$1\n').trim()}\n-----END PRIVATE KEY-----\n`;
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

export const loadOrCreateSigningIdentity = async (opts: {
  dataDir: string;
  keyFile: string | undefined;
  certFile: string | undefined;
  logger: Logger;
}): Promise<SigningIdentity> => {
  if (opts.keyFile && opts.certFile) return load(opts.keyFile, opts.certFile);
  const dir = path.join(opts.dataDir, 'local-signer');
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  try {
    return await load(keyFile, certFile);
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
  return load(keyFile, certFile);
};
