/**
 * Chaos, with real processes: a worker is killed with SIGKILL while its batches are at the
 * upstream, Redis (AOF) is restarted, a new worker takes over. The suite counts documents lost,
 * sent upstream more than once, and recovered, and checks that every document ends with exactly
 * one result, byte-equal to one the upstream returned for it.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey, hashApiKey } from '@signspool/api/auth';
import { spawnRedisServer, type RunningRedisServer } from '@signspool/shared/redis-server';
import { FakeSignstash } from './fake-signstash/server.js';
import { download, eventually, submit, waitForTerminal } from './harness/client.js';
import { startService, type ServiceProcess } from './harness/processes.js';
import { testPrefix } from './harness/stack.js';
import { startReceiver, type Receiver } from './harness/webhook-receiver.js';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('chaos: SIGKILLed worker and a Redis restart', () => {
  let dir: string;
  let redis: RunningRedisServer;
  let fake: FakeSignstash;
  let env: Record<string, string>;
  let hook: Receiver;
  const key = generateApiKey();
  const procs: ServiceProcess[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'signspool-chaos-'));
    redis = await spawnRedisServer({ dir: path.join(dir, 'redis'), appendOnly: true });
    fake = new FakeSignstash({ perRequestMs: 1500, bytesPerSec: 500e6 });
    await fake.start();
    hook = await startReceiver();
    env = fake.clientEnv({
      // The documents are arbitrary bytes: as PAdES (the default with SIGNER=signstash) they would be refused at submit.
      DEFAULT_SIGNATURE_TYPE: 'CAdES',
      REDIS_URL: redis.url,
      QUEUE_PREFIX: testPrefix(),
      DATA_DIR: path.join(dir, 'data'),
      API_KEYS: `acme:${hashApiKey(key)}`,
      BATCH_MAX_DOCS: '10',
      BATCH_LINGER: '100ms',
      UPSTREAM_CONCURRENCY: '2',
      JOB_LOCK_DURATION: '5s',
      SPOOL_MIN_FREE_BYTES: '1MiB',
      UPSTREAM_BACKOFF_BASE: '200ms',
      UPSTREAM_BACKOFF_MAX: '1s',
      WEBHOOK_SECRETS: `acme:whsec_${Buffer.from('chaos-webhook-secret-0123456789').toString('base64')}`,
      WEBHOOK_ALLOW: '127.0.0.1',
      WEBHOOK_ALLOW_HTTP: 'true',
    });
  });
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop('SIGKILL')));
    await fake?.stop();
    await hook?.close();
    await redis?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('loses no document and records one result per document', async () => {
    const api = await startService('api', env);
    procs.push(api);
    const first = await startService('worker', env);
    procs.push(first);

    // `npm run chaos` runs a longer version (CHAOS_DOCS=400).
    const docs = Array.from({ length: Number(process.env['CHAOS_DOCS'] ?? 40) }, (_, i) => ({ name: `c${i}.pdf`, content: Buffer.from(`%PDF chaos document ${i} `.repeat(50 + i)) }));
    const ops = [];
    for (let i = 0; i < docs.length; i += 4) {
      const res = await submit(api.url, key, docs.slice(i, i + 4), { webhookUrl: hook.url('/chaos') });
      expect(res.status).toBe(202);
      ops.push(res.body);
    }
    // Kill the worker while its first batches are at the (slow) upstream.
    await eventually('two batches at the upstream', async () => (await (await fetch(`${first.url}/metrics`)).text()).includes('signspool_batches_in_flight 2'), 15_000);
    const killedAt = Date.now();
    expect(await first.stop('SIGKILL')).toBe('SIGKILL');

    // Redis restarts (AOF): the api answers 503 meanwhile, and recovers.
    await redis.stop('SIGTERM');
    const during = await fetch(`${api.url}/readyz`);
    expect(during.status).toBe(503);
    redis = await spawnRedisServer({ dir: path.join(dir, 'redis'), appendOnly: true, port: redis.port });
    await eventually('api ready again', async () => (await fetch(`${api.url}/readyz`)).status === 200, 15_000);

    const second = await startService('worker', env);
    procs.push(second);
    const done = await Promise.all(ops.map((op) => waitForTerminal(api.url, key, op.id, 180_000)));

    const records = fake.requests();
    const returned = new Map<string, Set<string>>();
    for (const r of records.filter((x) => x.outcome === 'ok' || x.outcome === 'aborted')) {
      for (const d of r.docs) returned.set(d.externalReference, (returned.get(d.externalReference) ?? new Set()).add(d.sha256Out));
    }
    const sentCount = new Map<string, number>();
    for (const r of records) for (const d of r.docs) sentCount.set(d.externalReference, (sentCount.get(d.externalReference) ?? 0) + 1);
    const allDocs = done.flatMap((op) => op.documents.map((d) => ({ op: op.id, ...d })));
    const lost = allDocs.filter((d) => d.status !== 'signed');
    const recovered = allDocs.filter((d) => records.some((r) => r.at >= killedAt && r.outcome === 'ok' && r.docs.some((x) => x.externalReference === d.id)));
    const duplicated = [...sentCount.values()].filter((n) => n > 1).length;
    console.log(`chaos: ${allDocs.length} documents, ${lost.length} lost, ${recovered.length} signed after the SIGKILL, ${duplicated} answered upstream more than once`);
    expect(lost).toEqual([]);
    // Every operation's end is announced: one webhook-id per operation, delivered.
    await eventually('one webhook per operation', () => new Set(hook.received.map((r) => r.headers['webhook-id'])).size === ops.length, 30_000);
    expect(new Set(hook.received.map((r) => r.headers['webhook-id']))).toEqual(new Set(ops.map((op) => `msg_${op.id.replace(/^op_/, '')}`)));
    expect(allDocs).toHaveLength(docs.length);
    for (const d of allDocs) {
      const dl = await download(api.url, key, d.op, d.id);
      expect(dl.status).toBe(200);
      // One result per document, and it is one the upstream returned for it.
      expect(sha256(dl.body)).toBe(d.signed?.sha256);
      expect(returned.get(d.id)?.has(sha256(dl.body))).toBe(true);
    }
  });
});
