/**
 * Signing identities at the worker (issue 22), against real Redis and the fake Sign'Stash serving
 * several client services: a broken identity (inactive client service, refused credentials)
 * fails only its own documents with their catalog codes while the healthy one signs and keeps its
 * circuit closed; an identity whose upstream is down opens only its own circuit, its documents wait
 * and the worker keeps pulling the others'; tenants sharing an identity coalesce into one upstream call; an identity removed
 * while its documents wait fails them with SIGNER_REMOVED. Rotation under load with SIGHUP to a
 * real worker process is in signers-rotation.e2e.test.ts.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readSignerStates } from '@signspool/shared/circuit-state';
import { createMetrics } from '@signspool/shared/metrics';
import { QUEUES } from '@signspool/shared/queue';
import { SignerRegistry } from '@signspool/shared/signers/registry';
import { SigningWorker } from '@signspool/worker/worker';
import { useFakeSignstash } from './harness/fake-upstream.js';
import { eventually, submit, waitForTerminal } from './harness/client.js';
import { startStack } from './harness/stack.js';

const fake = useFakeSignstash({
  clients: [
    { clientId: 'healthy', clientSecret: 'healthy-secret' },
    { clientId: 'sleepy', clientSecret: 'sleepy-secret', state: 'inactive' },
    { clientId: 'locked', clientSecret: 'locked-secret' },
    { clientId: 'shared', clientSecret: 'shared-secret' },
    { clientId: 'gone', clientSecret: 'gone-secret' },
    { clientId: 'down', clientSecret: 'down-secret' },
  ],
  perRequestMs: 20,
});

let dir: string;
let redis: Redis;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'signers-worker-'));
  redis = new Redis(inject('redisUrl'));
});

afterAll(async () => {
  redis.disconnect();
  await rm(dir, { recursive: true, force: true });
});

/** Writes a SIGNERS_FILE of Sign'Stash identities (name → the secret written to its secret file) and the tenants' lists. */
const signersFile = async (
  name: string,
  identities: Record<string, string>,
  tenants: Record<string, { signers: string[]; default: string }>,
): Promise<string> => {
  const signers: Record<string, unknown> = {};
  for (const [id, secret] of Object.entries(identities)) {
    const secretFile = path.join(dir, `${name}-${id}.secret`);
    await writeFile(secretFile, `${secret}\n`);
    signers[id] = {
      kind: 'signstash',
      url: fake().businessUrl,
      authUrl: fake().authUrl,
      clientId: id,
      clientSecretFile: secretFile,
      signature: { type: 'CAdES' },
      limits: { batchMaxDocs: 100 },
    };
  }
  const file = path.join(dir, `${name}.json`);
  await writeFile(file, JSON.stringify({ signers, tenants }));
  return file;
};

/** Documents for the identities' default signature type (CAdES: any bytes). */
const files = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => ({ name: `${prefix}-${i}.txt`, content: `${prefix} ${i}` }));

describe('signing identities at the worker', () => {
  it('fails only the broken identities’ documents, with their catalog codes; the healthy one signs with its circuit closed', async () => {
    const file = await signersFile(
      'isolation',
      { healthy: 'healthy-secret', sleepy: 'sleepy-secret', locked: 'not-the-secret' },
      { acme: { signers: ['healthy', 'sleepy', 'locked'], default: 'healthy' } },
    );
    const stack = await startStack({ env: { SIGNERS_FILE: file, BATCH_LINGER: '50ms', UPSTREAM_BREAKER_THRESHOLD: '2' } });
    try {
      const before = { healthy: fake().client('healthy').calls };
      // Interleaved: the broken identities' documents are in the queue among the healthy one's.
      const ops = [];
      for (let round = 0; round < 4; round++) {
        for (const signer of ['healthy', 'sleepy', 'locked'] as const) {
          const res = await submit(stack.apiUrl, stack.keys.acme, files(`${signer}-${round}`, 3), { signer });
          expect(res.status, JSON.stringify(res.body)).toBe(202);
          ops.push({ signer, id: res.body.id });
        }
      }
      const codes: Record<string, string[]> = { healthy: [], sleepy: [], locked: [] };
      for (const op of ops) {
        const done = await waitForTerminal(stack.apiUrl, stack.keys.acme, op.id);
        codes[op.signer]?.push(...done.documents.map((d) => (d.status === 'signed' ? 'signed' : (d.error?.code ?? d.status))));
      }
      expect(codes['healthy']).toEqual(Array(12).fill('signed'));
      expect(codes['sleepy']).toEqual(Array(12).fill('UPSTREAM_CLIENT_SERVICE_INACTIVE'));
      expect(codes['locked']).toEqual(Array(12).fill('UPSTREAM_OAUTH_INVALID_CLIENT'));
      expect(fake().client('healthy').calls).toBeGreaterThan(before.healthy);
      // The refused credentials never reached the sign endpoint.
      expect(fake().client('locked').calls).toBe(0);

      // No breaker opened for anyone (non-retryable failures are not outages); the worker stays ready and says why.
      const ready = await stack.worker?.readiness();
      expect(ready?.ready).toBe(true);
      expect(ready?.checks).toMatchObject({
        circuit: 'closed',
        'signer.healthy': 'circuit closed',
        'signer.sleepy': expect.stringMatching(/^circuit closed, last error UPSTREAM_CLIENT_SERVICE_INACTIVE at /) as unknown,
        'signer.locked': expect.stringMatching(/^circuit closed, last error UPSTREAM_OAUTH_INVALID_CLIENT at /) as unknown,
      });
      // What GET /v1/admin/signers reads: each identity's state over the live workers.
      await eventually('signer states published', async () => Object.keys(await readSignerStates(redis, stack.config.queuePrefix)).length === 3);
      const states = await readSignerStates(redis, stack.config.queuePrefix);
      expect(states['healthy']).toMatchObject({ circuit: 'closed' });
      expect(states['healthy']?.tokenValidUntil).toBeGreaterThan(Date.now());
      expect(states['healthy']?.lastError).toBeUndefined();
      expect(states['sleepy']).toMatchObject({ circuit: 'closed', lastError: { code: 'UPSTREAM_CLIENT_SERVICE_INACTIVE' } });
      expect(states['locked']).toMatchObject({ circuit: 'closed', lastError: { code: 'UPSTREAM_OAUTH_INVALID_CLIENT' } });
      expect(JSON.stringify(states)).not.toMatch(/secret/);
    } finally {
      await stack.stop();
    }
  });

  it("keeps signing the other identities' documents while one identity's circuit is open; that one's documents wait", async () => {
    const file = await signersFile(
      'outage',
      { healthy: 'healthy-secret', down: 'down-secret' },
      { acme: { signers: ['healthy', 'down'], default: 'healthy' } },
    );
    // Few documents held per worker (BATCH_MAX_DOCS × (UPSTREAM_CONCURRENCY + 1) = 15) and a cool-down longer than the test.
    const stack = await startStack({
      env: {
        SIGNERS_FILE: file,
        BATCH_LINGER: '50ms',
        BATCH_MAX_DOCS: '5',
        UPSTREAM_CONCURRENCY: '2',
        UPSTREAM_BREAKER_THRESHOLD: '2',
        UPSTREAM_BREAKER_COOLDOWN: '60s',
        UPSTREAM_BACKOFF_BASE: '50ms',
      },
    });
    try {
      fake().injectFault({ kind: 'server_error', status: 503, times: 1000, clientId: 'down' });
      const down = [];
      for (let i = 0; i < 4; i++) down.push((await submit(stack.apiUrl, stack.keys.acme, files(`down-${i}`, 10), { signer: 'down' })).body.id);
      await eventually(
        'the circuit of down open',
        async () => (await stack.worker?.readiness())?.checks['signer.down']?.startsWith('circuit open') === true,
        20_000,
      );
      // 40 documents of the healthy identity behind 40 of the one that is down, more than the worker holds at once.
      const healthy = await submit(stack.apiUrl, stack.keys.acme, files('healthy', 40), { signer: 'healthy' });
      const done = await waitForTerminal(stack.apiUrl, stack.keys.acme, healthy.body.id);
      expect(done.documents.map((d) => d.status)).toEqual(Array(40).fill('signed'));
      const ready = await stack.worker?.readiness();
      expect(ready?.ready).toBe(true);
      expect(ready?.checks['signer.down']).toMatch(/^circuit open, last error UPSTREAM_UNAVAILABLE/);
      expect(ready?.checks['signer.healthy']).toBe('circuit closed');
      // The down identity's documents wait (no attempt spent, none failed).
      for (const id of down) {
        const res = await fetch(`${stack.apiUrl}/v1/operations/${id}`, { headers: { authorization: `Bearer ${stack.keys.acme}` } });
        const op = (await res.json()) as { documents: { status: string }[] };
        expect(op.documents.every((d) => d.status === 'queued' || d.status === 'signing')).toBe(true);
      }
    } finally {
      fake().reset();
      await stack.stop();
    }
  });

  it("coalesces two tenants' documents that share an identity into one upstream call", async () => {
    const file = await signersFile(
      'coalesce',
      { shared: 'shared-secret' },
      { acme: { signers: ['shared'], default: 'shared' }, globex: { signers: ['shared'], default: 'shared' } },
    );
    // A long linger: both submissions land in the bucket before it is sent.
    const stack = await startStack({ env: { SIGNERS_FILE: file, BATCH_LINGER: '1500ms' } });
    try {
      const [a, g] = await Promise.all([submit(stack.apiUrl, stack.keys.acme, files('acme', 3)), submit(stack.apiUrl, stack.keys.globex, files('globex', 4))]);
      expect([a.status, g.status], JSON.stringify([a.body, g.body])).toEqual([202, 202]);
      const [doneA, doneG] = await Promise.all([
        waitForTerminal(stack.apiUrl, stack.keys.acme, a.body.id),
        waitForTerminal(stack.apiUrl, stack.keys.globex, g.body.id),
      ]);
      expect([...doneA.documents, ...doneG.documents].every((d) => d.status === 'signed')).toBe(true);
      expect(fake().client('shared').documentsPerCall).toEqual([7]);
      const call = fake()
        .requests()
        .filter((r) => r.clientId === 'shared' && r.outcome === 'ok');
      expect(call).toHaveLength(1);
      const sent = new Set(call[0]?.docs.map((d) => d.externalReference));
      expect([...doneA.documents, ...doneG.documents].every((d) => sent.has(d.id))).toBe(true);
    } finally {
      await stack.stop();
    }
  });

  it('fails the queued documents of an identity removed from the file with SIGNER_REMOVED', async () => {
    const tenants = { acme: { signers: ['healthy', 'gone'], default: 'healthy' } };
    const file = await signersFile('removed', { healthy: 'healthy-secret', gone: 'gone-secret' }, tenants);
    // The api accepts while no worker runs: the documents wait in the queue.
    const api = await startStack({ env: { SIGNERS_FILE: file }, worker: false });
    let worker: Awaited<ReturnType<typeof startStack>> | undefined;
    try {
      const gone = await submit(api.apiUrl, api.keys.acme, files('gone', 3), { signer: 'gone' });
      const kept = await submit(api.apiUrl, api.keys.acme, files('kept', 2), { signer: 'healthy' });
      expect([gone.status, kept.status]).toEqual([202, 202]);
      // The identity is removed; the worker starting now has never known it.
      await signersFile('removed', { healthy: 'healthy-secret' }, { acme: { signers: ['healthy'], default: 'healthy' } });
      worker = await startStack({ env: { SIGNERS_FILE: file }, api: false, reuse: { dir: api.dir, prefix: api.config.queuePrefix } });
      const doneGone = await waitForTerminal(api.apiUrl, api.keys.acme, gone.body.id);
      expect(doneGone.status).toBe('failed');
      for (const d of doneGone.documents) {
        expect(d.error?.code).toBe('SIGNER_REMOVED');
        expect(d.error?.message).toContain('gone');
      }
      const doneKept = await waitForTerminal(api.apiUrl, api.keys.acme, kept.body.id);
      expect(doneKept.documents.map((d) => d.status)).toEqual(['signed', 'signed']);
      expect(fake().client('gone').calls).toBe(0);
    } finally {
      await worker?.stop();
      await api.stop();
    }
  });

  it("fails with SIGNER_REMOVED the documents a running worker holds when a reload removes their identity; the others' sign", async () => {
    const both = { acme: { signers: ['healthy', 'gone'], default: 'healthy' } };
    const file = await signersFile('removed-live', { healthy: 'healthy-secret', gone: 'gone-secret' }, both);
    // A long linger: the documents sit in the worker's buckets when the reload comes.
    const api = await startStack({ env: { SIGNERS_FILE: file, BATCH_LINGER: '3s' }, worker: false });
    const registry = new SignerRegistry({ config: api.config, logger: api.logger });
    const worker = new SigningWorker({ config: api.config, logger: api.logger, metrics: createMetrics({ defaultMetrics: false }), signers: registry });
    await worker.start();
    const queue = new Queue(QUEUES.sign, { connection: redis, prefix: api.config.queuePrefix });
    try {
      const gone = await submit(api.apiUrl, api.keys.acme, files('live-gone', 3), { signer: 'gone' });
      const kept = await submit(api.apiUrl, api.keys.acme, files('live-kept', 2), { signer: 'healthy' });
      await eventually('the worker holds the five documents', async () => (await queue.getJobCounts('active')).active === 5);
      await signersFile('removed-live', { healthy: 'healthy-secret' }, { acme: { signers: ['healthy'], default: 'healthy' } });
      expect(await registry.reload()).toEqual({ ok: true, changed: ['gone'], tenantsChanged: true });
      const doneGone = await waitForTerminal(api.apiUrl, api.keys.acme, gone.body.id);
      expect(doneGone.documents.map((d) => d.error?.code)).toEqual(['SIGNER_REMOVED', 'SIGNER_REMOVED', 'SIGNER_REMOVED']);
      const doneKept = await waitForTerminal(api.apiUrl, api.keys.acme, kept.body.id);
      expect(doneKept.documents.map((d) => d.status)).toEqual(['signed', 'signed']);
      expect(fake().client('gone').calls).toBe(0);
      expect((await worker.readiness()).checks).not.toHaveProperty('signer.gone');
    } finally {
      await queue.close();
      await worker.stop();
      await api.stop();
    }
  });
});
