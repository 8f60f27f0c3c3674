/**
 * Nothing is lost: a worker stopped mid-batch gives its documents back and another worker signs
 * them; the janitor removes spool files with no record and keeps the rest.
 */
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { createLogger } from '@signspool/shared/logger';
import { OperationStore } from '@signspool/shared/operations/store';
import { Spool } from '@signspool/shared/spool/spool';
import { Janitor } from '@signspool/worker/janitor';
import { eventually, getOperation, submit, waitForTerminal } from './harness/client.js';
import { useFakeSignstash } from './harness/fake-upstream.js';
import { startStack, testPrefix } from './harness/stack.js';

describe('recovery', () => {
  const fake = useFakeSignstash({ perRequestMs: 2000 });

  it('a worker stopped past its deadline releases its batch; another worker signs every document once', async () => {
    const env = fake().clientEnv({ DEFAULT_SIGNATURE_TYPE: 'CAdES', BATCH_LINGER: '20ms', SHUTDOWN_TIMEOUT: '300ms' });
    const api = await startStack({ env, worker: false });
    const reuse = { dir: api.dir, prefix: api.config.queuePrefix };
    try {
      const first = await startStack({ env, api: false, reuse });
      const files = Array.from({ length: 10 }, (_, i) => ({ name: `r${i}.pdf`, content: `document ${i}` }));
      const res = await submit(api.apiUrl, api.keys.acme, files);
      expect(res.status).toBe(202);
      // The batch is at the (slow) upstream: stop the worker before it answers.
      await eventually('batch in flight', () => (first.worker?.batchesInFlight ?? 0) > 0);
      await first.stop();
      const released = await getOperation(api.apiUrl, api.keys.acme, res.body.id);
      expect(released.body.documents.map((d) => d.status)).toEqual(files.map(() => 'queued'));

      fake().setLatency({ perRequestMs: 10 });
      const secondStartedAt = Date.now();
      const second = await startStack({ env, api: false, reuse });
      try {
        const done = await waitForTerminal(api.apiUrl, api.keys.acme, res.body.id);
        expect(done.status).toBe('succeeded');
        const ok = fake()
          .requests()
          .filter((r) => r.outcome === 'ok' && r.at >= secondStartedAt);
        // Every document signed exactly once by the second worker: none lost, none recorded twice.
        expect(ok.flatMap((r) => r.docs.map((d) => d.externalReference)).sort()).toEqual(done.documents.map((d) => d.id).sort());
      } finally {
        await second.stop();
      }
    } finally {
      await api.stop();
    }
  });

  it('the janitor removes spool files with no record, past the grace period only', async () => {
    const stack = await startStack({ api: false, worker: false });
    const redis = new Redis(stack.config.redisUrl ?? '');
    try {
      const spool = new Spool(stack.config.spoolDir);
      await spool.init();
      const store = new OperationStore(redis, { prefix: testPrefix(), retentionMs: 60_000 });
      const old = new Date(Date.now() - 2 * 3600_000);
      const mk = async (opId: string, age: Date): Promise<void> => {
        await mkdir(spool.incomingDir(opId), { recursive: true });
        await mkdir(spool.signedDir(opId), { recursive: true });
        for (const p of [spool.incomingPath(opId, 'doc_1'), spool.signedPath(opId, 'doc_2')]) {
          await writeFile(p, 'x');
          await utimes(p, age, age);
        }
      };
      await mk('op_orphan', old);
      await mk('op_recent', new Date());
      await mk('op_alive', old);
      await store.create({
        id: 'op_alive',
        tenant: 't',
        signer: 'default',
        signatureType: 'CAdES',
        externalReference: undefined,
        createdAt: Date.now(),
        documents: [],
      });
      const janitor = new Janitor({ spool, store, logger: createLogger({ level: 'silent' }), intervalMs: 60_000, orphanGraceMs: 3600_000 });
      const swept = await janitor.sweep();
      expect(swept.removedOperations).toEqual(['op_orphan']);
      expect(await spool.exists(spool.incomingPath('op_orphan', 'doc_1'))).toBe(false);
      expect(await spool.exists(spool.signedPath('op_orphan', 'doc_2'))).toBe(false);
      for (const opId of ['op_recent', 'op_alive']) {
        expect(await spool.exists(spool.incomingPath(opId, 'doc_1'))).toBe(true);
        expect(await spool.exists(spool.signedPath(opId, 'doc_2'))).toBe(true);
      }
      await janitor.stop();
    } finally {
      await redis.quit();
      await stack.stop();
    }
  });

  it('a new record is written whole with an expiry (a crash before its jobs leaves nothing behind for good), then kept once accepted', async () => {
    const stack = await startStack({ api: false, worker: false });
    const redis = new Redis(stack.config.redisUrl ?? '');
    try {
      const store = new OperationStore(redis, { prefix: testPrefix(), retentionMs: 60_000 });
      // More documents than one HSET slice of the create script (500 pairs).
      const documents = Array.from({ length: 1234 }, (_, i) => ({
        id: `doc_${i}`,
        name: `d${i}.pdf`,
        contentType: 'application/pdf',
        size: i,
        sha256: 'ab'.repeat(32),
      }));
      await store.create({ id: 'op_big', tenant: 't', signer: 'default', signatureType: 'PAdES', externalReference: 'ref', createdAt: Date.now(), documents });
      expect(await redis.pttl(store.key('op_big'))).toBeGreaterThan(0);
      const op = await store.get('op_big');
      expect(op?.documents.map((d) => d.id)).toEqual(documents.map((d) => d.id));
      expect(op?.documents[1233]).toMatchObject({ name: 'd1233.pdf', size: 1233, status: 'queued' });
      expect(op).toMatchObject({ status: 'queued', externalReference: 'ref', counts: { queued: 1234, signing: 0 } });
      await store.markAccepted('op_big');
      expect(await redis.pttl(store.key('op_big'))).toBe(-1);
    } finally {
      await redis.quit();
      await stack.stop();
    }
  });
});
