/**
 * Faults an operator meets, each with the answer the service owes: Redis unreachable (503 with
 * Retry-After from every route, health within a second, nothing half-accepted), a claim that
 * fails, a spool below its floor on the worker, downloads cut by the client or whose file vanished.
 */
import { readdir, readlink, rm } from 'node:fs/promises';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { OperationStore } from '@signspool/shared/operations/store';
import { spawnRedisServer, type RunningRedisServer } from '../bin/redis-server.js';
import { FakeSignstash } from './fake-signstash/server.js';
import { auth, download, eventually, submit, waitForTerminal } from './harness/client.js';
import { startStack, testPrefix, type Stack } from './harness/stack.js';

/** Files of the spool this process holds open. */
const openSpoolFiles = async (spoolDir: string): Promise<string[]> => {
  const fds = await readdir('/proc/self/fd').catch(() => [] as string[]);
  const targets = await Promise.all(fds.map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
  // Files only: the spool keeps its shard directories open for their fsyncs.
  return targets.filter((t) => t.startsWith(spoolDir) && /\/(incoming|signed|tmp)\/([0-9a-f]{2}\/)?[^/]*\./.test(t));
};

describe('faults', () => {
  let dir: string;
  let redis: RunningRedisServer;
  const stacks: Stack[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'signspool-faults-'));
    redis = await spawnRedisServer({ dir: path.join(dir, 'redis'), appendOnly: true });
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await Promise.all(stacks.splice(0).map((s) => s.stop()));
  });
  afterAll(async () => {
    await redis?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const stackOf = async (env: Record<string, string> = {}, opts: Parameters<typeof startStack>[0] = {}): Promise<Stack> => {
    const s = await startStack({ ...opts, env: { REDIS_URL: redis.url, ...env, ...opts.env } });
    stacks.push(s);
    return s;
  };

  it('answers 503 problem+json with Retry-After on every route while Redis is down, health within a second, and recovers', async () => {
    const s = await stackOf({ WEBHOOK_SECRETS: `acme:whsec_${Buffer.from('faults-webhook-secret-012345678').toString('base64')}` });
    const first = await submit(s.apiUrl, s.keys.acme, [{ name: 'a.txt', content: 'before the outage' }]);
    expect(first.status).toBe(202);
    const done = await waitForTerminal(s.apiUrl, s.keys.acme, first.body.id);
    const docId = done.documents[0]?.id ?? '';
    const opUrl = `${s.apiUrl}/v1/operations/${first.body.id}`;
    const port = redis.port;
    await redis.stop('SIGKILL');
    try {
      const form = (): FormData => {
        const f = new FormData();
        f.append('file', new Blob(['during the outage']), 'b.txt');
        return f;
      };
      const calls: [string, () => Promise<Response>][] = [
        [
          'POST with Idempotency-Key',
          () => fetch(`${s.apiUrl}/v1/operations`, { method: 'POST', headers: { ...auth(s.keys.acme), 'idempotency-key': 'k-outage' }, body: form() }),
        ],
        ['POST', () => fetch(`${s.apiUrl}/v1/operations`, { method: 'POST', headers: auth(s.keys.acme), body: form() })],
        ['GET operation', () => fetch(opUrl, { headers: auth(s.keys.acme) })],
        ['GET operation, Prefer: wait', () => fetch(opUrl, { headers: { ...auth(s.keys.acme), prefer: 'wait=2' } })],
        ['GET document', () => fetch(`${opUrl}/documents/${docId}`, { headers: auth(s.keys.acme) })],
        ['DELETE', () => fetch(opUrl, { method: 'DELETE', headers: auth(s.keys.acme) })],
        ['redeliver', () => fetch(`${opUrl}/webhook/redeliver`, { method: 'POST', headers: auth(s.keys.acme) })],
        ['readyz', () => fetch(`${s.apiUrl}/readyz`)],
      ];
      const answers = [];
      for (const [label, call] of calls) {
        const res = await call();
        answers.push([label, res.status, res.headers.get('content-type')?.split(';')[0], res.headers.get('retry-after') !== null || label === 'readyz']);
      }
      expect(answers).toEqual(calls.map(([label]) => [label, 503, 'application/problem+json', true]));
      const started = Date.now();
      const readiness = await s.worker?.readiness();
      expect(Date.now() - started).toBeLessThan(5000);
      expect(readiness?.ready).toBe(false);
      expect(readiness?.checks['redis']).not.toBe('ok');
    } finally {
      redis = await spawnRedisServer({ dir: path.join(dir, 'redis'), appendOnly: true, port });
    }
    // Only the operation acknowledged before the outage exists: nothing refused was kept.
    const store = new OperationStore(new Redis(redis.url), { prefix: s.config.queuePrefix, retentionMs: 1000 });
    try {
      await eventually('api answers again', async () => (await fetch(opUrl, { headers: auth(s.keys.acme) })).status === 200, 20_000);
      const keys = await store.redis.keys(`${s.config.queuePrefix}:op:*`);
      expect(keys.filter((k) => !k.endsWith(':webhooks'))).toEqual([store.key(first.body.id)]);
    } finally {
      store.redis.disconnect();
    }
    const after = await submit(s.apiUrl, s.keys.acme, [{ name: 'c.txt', content: 'after the outage' }]);
    expect(after.status).toBe(202);
    expect((await waitForTerminal(s.apiUrl, s.keys.acme, after.body.id, 60_000)).status).toBe('succeeded');
  });

  it('gives a batch back to the queue when its claim fails, and signs it afterwards', async () => {
    const s = await stackOf();
    const real = OperationStore.prototype.transitionMany;
    let failed = 0;
    vi.spyOn(OperationStore.prototype, 'transitionMany').mockImplementation(async function (this: OperationStore, updates) {
      const claiming = [...updates.values()].some((ups) => ups.some((u) => u.to === 'signing'));
      if (claiming && failed++ === 0) throw new Error('Connection is closed.');
      return real.call(this, updates);
    });
    const res = await submit(s.apiUrl, s.keys.acme, [{ name: 'a.txt', content: 'claimed twice' }]);
    const done = await waitForTerminal(s.apiUrl, s.keys.acme, res.body.id, 60_000);
    expect([failed >= 2, done.status]).toEqual([true, 'succeeded']);
  });

  it('gives a batch back to the queue when its outcome cannot be recorded, and removes the results it wrote', async () => {
    const s = await stackOf({ UPSTREAM_MAX_ATTEMPTS: '1' });
    const real = OperationStore.prototype.transitionMany;
    let failed = 0;
    vi.spyOn(OperationStore.prototype, 'transitionMany').mockImplementation(async function (this: OperationStore, updates) {
      const recording = [...updates.values()].some((ups) => ups.some((u) => u.to === 'signed'));
      if (recording && failed++ === 0) throw new Error('Connection is closed.');
      return real.call(this, updates);
    });
    const res = await submit(s.apiUrl, s.keys.acme, [{ name: 'a.txt', content: 'recorded on the second claim' }]);
    const done = await waitForTerminal(s.apiUrl, s.keys.acme, res.body.id, 60_000);
    // Redis's failure is not the upstream's (one attempt allowed), and the first claim's result is gone.
    expect([failed >= 2, done.status]).toEqual([true, 'succeeded']);
    const signedDir = path.join(s.config.spoolDir, 'signed');
    const files = (await Promise.all((await readdir(signedDir)).map(async (shard) => readdir(path.join(signedDir, shard))))).flat();
    expect(files).toHaveLength(1);
  });

  it('keeps the recorded result when its outcome is applied twice (the answer lost, the command resent)', async () => {
    const s = await stackOf();
    const real = OperationStore.prototype.transitionMany;
    let replayed = 0;
    vi.spyOn(OperationStore.prototype, 'transitionMany').mockImplementation(async function (this: OperationStore, updates) {
      const recording = [...updates.values()].some((ups) => ups.some((u) => u.to === 'signed'));
      if (!recording || replayed++ > 0) return real.call(this, updates);
      // Applied once, its answer lost: ioredis resends the command after reconnecting, and this is its answer.
      await real.call(this, updates);
      return real.call(this, updates);
    });
    const content = 'recorded once, answered twice';
    const res = await submit(s.apiUrl, s.keys.acme, [{ name: 'a.txt', content }]);
    const done = await waitForTerminal(s.apiUrl, s.keys.acme, res.body.id, 60_000);
    expect([replayed, done.status]).toEqual([1, 'succeeded']);
    const doc = done.documents[0];
    const got = await download(s.apiUrl, s.keys.acme, res.body.id, doc?.id ?? '');
    expect(got.status).toBe(200);
  });

  it('stops pulling while the spool is below its floor (no upstream call, nothing failed), says so in readiness, and resumes', async () => {
    const prefix = testPrefix();
    const api = await stackOf({ QUEUE_PREFIX: prefix }, { worker: false });
    const worker = await stackOf({ QUEUE_PREFIX: prefix, SPOOL_MIN_FREE_BYTES: '1000000GiB' }, { api: false, reuse: { dir: api.dir, prefix } });
    const res = await submit(api.apiUrl, api.keys.acme, [{ name: 'a.txt', content: 'waits for room' }]);
    expect(res.status).toBe(202);
    await eventually('worker reports the full spool', async () => (await worker.worker?.readiness())?.checks['spool'] !== 'ok', 10_000);
    expect((await worker.worker?.readiness())?.ready).toBe(false);
    const waiting = await fetch(`${api.apiUrl}/v1/operations/${res.body.id}`, { headers: auth(api.keys.acme) });
    expect(((await waiting.json()) as { status: string }).status).toBe('queued');
    // Space is freed: the worker resumes by itself.
    worker.config.spoolMinFreeBytes = 1024 * 1024;
    expect((await waitForTerminal(api.apiUrl, api.keys.acme, res.body.id, 30_000)).status).toBe('succeeded');
    expect((await worker.worker?.readiness())?.ready).toBe(true);
  });

  it('closes the file of every download the client abandons, and answers 404 when the result vanished', async () => {
    // PAdES through the fake: the signed result is as large as the document, larger than socket buffers.
    const fake = new FakeSignstash({ clientId: 'signspool', clientSecret: 'signspool-secret', perRequestMs: 5, bytesPerSec: 1e9 });
    await fake.start();
    onTestFinished(() => fake.stop());
    const s = await stackOf(fake.clientEnv({ DEFAULT_SIGNATURE_TYPE: 'PAdES', BATCH_LINGER: '20ms' }));
    // A PDF's frame around 16 MiB of filler: what the submit-time PAdES check looks for.
    const pdf = Buffer.concat([Buffer.from('%PDF-1.7\n'), Buffer.alloc(16 * 1024 * 1024, 7), Buffer.from('\n%%EOF\n')]);
    const res = await submit(s.apiUrl, s.keys.acme, [{ name: 'big.pdf', content: pdf }]);
    const done = await waitForTerminal(s.apiUrl, s.keys.acme, res.body.id);
    const doc = done.documents[0];
    expect(doc?.status).toBe('signed');
    const url = `${s.apiUrl}/v1/operations/${res.body.id}/documents/${doc?.id ?? ''}`;
    for (let i = 0; i < 20; i++) {
      const ctl = new AbortController();
      const r = await fetch(url, { headers: auth(s.keys.acme), signal: ctl.signal });
      expect(r.status).toBe(200);
      ctl.abort();
    }
    await eventually('no descriptor into the spool', async () => (await openSpoolFiles(s.config.spoolDir)).length === 0, 5000);
    // The result removed behind the api's back.
    const signedDir = path.join(s.config.spoolDir, 'signed');
    for (const shard of await readdir(signedDir)) for (const f of await readdir(path.join(signedDir, shard))) await rm(path.join(signedDir, shard, f));
    expect((await download(s.apiUrl, s.keys.acme, res.body.id, doc?.id ?? '')).status).toBe(404);
  });
});
