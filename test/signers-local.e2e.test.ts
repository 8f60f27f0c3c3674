/**
 * Local signing identities at the worker (issue 22): each signs with its own certificate (PEM or
 * PKCS#12), its expiry is exported per identity and published for GET /v1/admin/signers, and an
 * identity whose key does not belong to its certificate fails only its own documents with
 * SIGNER_FAILED saying why, while the others sign.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readSignerStates } from '@signspool/shared/circuit-state';
import { createMetrics } from '@signspool/shared/metrics';
import { SigningWorker } from '@signspool/worker/worker';
import { eventually, submit, waitForTerminal } from './harness/client.js';
import { exportP12, issue, makeRoot, SIGNER_EXT } from './harness/pki.js';
import { startStack } from './harness/stack.js';

let dir: string;
let redis: Redis;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'signers-local-'));
  redis = new Redis(inject('redisUrl'));
});

afterAll(async () => {
  redis.disconnect();
  await rm(dir, { recursive: true, force: true });
});

describe('local signing identities', () => {
  it('sign each with its own certificate, export its expiry, and fail alone when unusable', async () => {
    const root = makeRoot(dir);
    const alpha = issue(dir, root, 'alpha', 'ec', SIGNER_EXT);
    const beta = issue(dir, root, 'beta', 'rsa', SIGNER_EXT);
    const p12 = exportP12(dir, beta, [root.cert], 'p12-pass', 'beta.p12');
    await writeFile(path.join(dir, 'beta.pass'), 'p12-pass\n');
    const file = path.join(dir, 'signers.yaml');
    await writeFile(
      file,
      [
        'signers:',
        `  alpha: { kind: local, keyFile: ${alpha.key}, certFile: ${alpha.cert} }`,
        `  beta: { kind: local, p12File: ${p12}, p12PasswordFile: ${path.join(dir, 'beta.pass')} }`,
        // A key that does not belong to the certificate: found when the worker first signs with it.
        `  crossed: { kind: local, keyFile: ${alpha.key}, certFile: ${beta.cert} }`,
        'tenants:',
        '  acme: { signers: [alpha, beta, crossed], default: alpha }',
        '',
      ].join('\n'),
    );
    const api = await startStack({ env: { SIGNERS_FILE: file }, worker: false });
    const metrics = createMetrics({ defaultMetrics: false });
    const worker = new SigningWorker({ config: api.config, logger: api.logger, metrics });
    await worker.start();
    try {
      const results: Record<string, { status: string; code: string | undefined; message: string | undefined }[]> = {};
      for (const signer of ['alpha', 'beta', 'crossed']) {
        const res = await submit(
          api.apiUrl,
          api.keys.acme,
          [1, 2].map((i) => ({ name: `${signer}-${i}.txt`, content: `${signer} ${i}` })),
          { signer },
        );
        expect(res.status).toBe(202);
        const done = await waitForTerminal(api.apiUrl, api.keys.acme, res.body.id);
        results[signer] = done.documents.map((d) => ({ status: d.status, code: d.error?.code, message: d.error?.message }));
      }
      expect(results['alpha']?.map((d) => d.status)).toEqual(['signed', 'signed']);
      expect(results['beta']?.map((d) => d.status)).toEqual(['signed', 'signed']);
      expect(results['crossed']?.map((d) => d.code)).toEqual(['SIGNER_FAILED', 'SIGNER_FAILED']);
      expect(results['crossed']?.[0]?.message).toMatch(/crossed cannot sign: .*the private key does not belong to the certificate/);

      const expiry = (await metrics.registry.getSingleMetricAsString('signspool_signer_certificate_expiry_timestamp_seconds')).split('\n');
      for (const [name, cert] of [
        ['alpha', alpha.cert],
        ['beta', beta.cert],
      ] as const) {
        const notAfter = Date.parse(new X509Certificate(readFileSync(cert)).validTo) / 1000;
        expect(expiry).toContain(`signspool_signer_certificate_expiry_timestamp_seconds{signer="${name}"} ${notAfter}`);
      }
      expect(expiry.some((l) => l.includes('signer="crossed"'))).toBe(false);

      const ready = await worker.readiness();
      expect(ready.ready).toBe(true);
      expect(ready.checks['signer.crossed']).toMatch(/^circuit closed, last error SIGNER_FAILED at /);
      // Published with the next heartbeat (every 5 s).
      await eventually('local identities published', async () => (await readSignerStates(redis, api.config.queuePrefix))['beta']?.certificate !== undefined);
      const states = await readSignerStates(redis, api.config.queuePrefix);
      expect(states['alpha']?.certificate).toEqual({
        subject: 'CN=signspool test alpha',
        notAfter: Date.parse(new X509Certificate(readFileSync(alpha.cert)).validTo),
      });
      expect(states['beta']?.certificate?.subject).toBe('CN=signspool test beta');
      expect(JSON.stringify(states)).not.toContain('p12-pass');
    } finally {
      await worker.stop();
      await api.stop();
    }
  });
});
