/**
 * The Sign'Stash transport over TLS against the fake served over HTTPS: a CA, a server certificate
 * and a client certificate are made here with openssl. Trusted only through SIGNSTASH_CA_FILE;
 * refused (UPSTREAM_TLS, naming what to set) without it; mTLS required by the fake is refused
 * without the client certificate and works with it. No setting turns verification off.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES } from '@signspool/shared/config';
import { silentLogger } from '@signspool/shared/logger';
import { Spool } from '@signspool/shared/spool/spool';
import type { BatchDocument } from '@signspool/worker/signer';
import { SignstashSigner } from '@signspool/worker/signers/signstash/adapter';
import { FakeSignstash } from './fake-signstash/server.js';

const run = promisify(execFile);

describe("Sign'Stash over TLS", () => {
  let dir: string;
  let spool: Spool;
  const pem = { ca: '', serverKey: '', serverCert: '', clientKey: '', clientCert: '' };

  const openssl = (...args: string[]) => run('openssl', args, { cwd: dir });

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'upstream-tls-'));
    spool = new Spool(path.join(dir, 'spool'));
    await spool.init();
    await openssl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-days',
      '2',
      '-subj',
      '/CN=signspool test CA',
    );
    await writeFile(path.join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
    await writeFile(path.join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
    for (const [name, cn] of [
      ['server', 'fake signstash'],
      ['client', 'signspool worker'],
    ] as const) {
      await openssl(
        'req',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.csr`,
        '-subj',
        `/CN=${cn}`,
      );
      await openssl(
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        'ca.pem',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-out',
        `${name}.pem`,
        '-days',
        '2',
        '-extfile',
        `${name}.ext`,
      );
    }
    const f = (n: string) => path.join(dir, n);
    Object.assign(pem, { ca: f('ca.pem'), serverKey: f('server.key'), serverCert: f('server.pem'), clientKey: f('client.key'), clientCert: f('client.pem') });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const startFake = async (requestCert: boolean): Promise<FakeSignstash> => {
    const fake = new FakeSignstash({
      perRequestMs: 1,
      tls: {
        key: await readFile(pem.serverKey),
        cert: await readFile(pem.serverCert),
        ...(requestCert ? { requestCert: true, rejectUnauthorized: true, ca: await readFile(pem.ca) } : {}),
      },
    });
    await fake.start();
    return fake;
  };

  const signer = (fake: FakeSignstash, tls: { caFile?: string; clientCertFile?: string; clientKeyFile?: string }) =>
    new SignstashSigner({
      config: fake.signerConfig(tls),
      spool,
      logger: silentLogger(),
    });

  let n = 0;
  const oneDoc = async (): Promise<{ batchId: string; tenant: string; signatureType: 'CAdES'; documents: BatchDocument[] }> => {
    n += 1;
    const docId = `doc_tls${n}`;
    const file = spool.incomingPath('op_tls', docId);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, `document ${n}`);
    const sha256 = createHash('sha256').update(`document ${n}`).digest('hex');
    return {
      batchId: `b_tls${n}`,
      tenant: 't',
      signatureType: 'CAdES',
      documents: [
        {
          opId: 'op_tls',
          docId,
          name: `${docId}.txt`,
          contentType: 'text/plain',
          size: `document ${n}`.length,
          sha256,
          path: file,
          resultPath: spool.signedPath('op_tls', docId, 'b1'),
        },
      ],
    };
  };

  it('has no setting that turns verification off', () => {
    expect(CONFIG_VARIABLES.filter((v) => /INSECURE|VERIFY|REJECT_UNAUTHORIZED|SKIP_TLS/.test(v))).toEqual([]);
  });

  it('signs over HTTPS with SIGNSTASH_CA_FILE, and refuses the same server without it', async () => {
    const fake = await startFake(false);
    try {
      expect(fake.url).toMatch(/^https:/);
      const trusted = signer(fake, { caFile: pem.ca });
      const results = await trusted.signBatch(await oneDoc(), new AbortController().signal);
      expect(results.map((r) => r.ok)).toEqual([true]);
      await trusted.stop();

      const untrusted = signer(fake, {});
      // Not even Node's global switch turns verification off.
      process.env['NODE_TLS_REJECT_UNAUTHORIZED'] = '0';
      const err = await untrusted
        .signBatch(await oneDoc(), new AbortController().signal)
        .then(
          () => undefined,
          (e: unknown) => e as { code?: string; retryable?: boolean; detail?: string },
        )
        .finally(() => delete process.env['NODE_TLS_REJECT_UNAUTHORIZED']);
      expect(err).toMatchObject({ code: 'UPSTREAM_TLS', retryable: false });
      expect(err?.detail).toContain('SIGNSTASH_CA_FILE');
      await untrusted.stop();
      // The refused attempt never reached a handler of the fake.
      expect(fake.requests()).toHaveLength(1);
    } finally {
      await fake.stop();
    }
  });

  it('presents the client certificate when the proxy requires mTLS, and fails clearly without it', async () => {
    const fake = await startFake(true);
    try {
      const withoutCert = signer(fake, { caFile: pem.ca });
      const err = await withoutCert.signBatch(await oneDoc(), new AbortController().signal).then(
        () => undefined,
        (e: unknown) => e as { code?: string; detail?: string },
      );
      expect(err).toMatchObject({ code: 'UPSTREAM_TLS' });
      expect(err?.detail).toContain('SIGNSTASH_CLIENT_CERT_FILE');
      await withoutCert.stop();
      expect(fake.tokenRequests).toBe(0);

      const withCert = signer(fake, { caFile: pem.ca, clientCertFile: pem.clientCert, clientKeyFile: pem.clientKey });
      const results = await withCert.signBatch(await oneDoc(), new AbortController().signal);
      expect(results.map((r) => r.ok)).toEqual([true]);
      await withCert.stop();
    } finally {
      await fake.stop();
    }
  });
});
