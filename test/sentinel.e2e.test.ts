/**
 * Redis Sentinel failover under load: api and worker processes find the primary through three
 * sentinels (REDIS_SENTINELS), clients submit documents without pause, the primary is killed
 * with SIGKILL, a replica is promoted, the killed node is started again (it rejoins as a replica),
 * and the service carries on. With REDIS_MIN_REPLICAS equal to the number of replicas, every
 * document acknowledged (202) before or after the failover must end signed, whichever replica the
 * sentinels promote. Prints the failover figures.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey, hashApiKey } from '@signspool/api/auth/auth';
import { FakeSignstash } from './fake-signstash/server.js';
import { getOperation, submit, waitForTerminal } from './harness/client.js';
import { startService, type ServiceProcess } from './harness/processes.js';
import { startSentinelSetup, type SentinelSetup } from './harness/sentinel.js';
import { testPrefix } from './harness/stack.js';

interface Attempt {
  startedAt: number;
  endedAt: number;
  status: number;
  id?: string;
}

describe('Redis Sentinel failover', () => {
  let dir: string;
  let redis: SentinelSetup;
  let fake: FakeSignstash;
  const procs: ServiceProcess[] = [];
  let prefix = '';
  const key = generateApiKey();

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'signspool-sentinel-'));
    redis = await startSentinelSetup(path.join(dir, 'redis'));
    fake = new FakeSignstash({ perRequestMs: 20, bytesPerSec: 500e6 });
    await fake.start();
    const env = fake.clientEnv({
      ...redis.env,
      REDIS_URL: '',
      // The documents are not PDFs: as PAdES (the default with SIGNER=signstash) they would be refused at submit.
      DEFAULT_SIGNATURE_TYPE: 'CAdES',
      // A 202 only once both replicas have the write (WAIT 2): whichever is promoted has it.
      // With WAIT 1 the sentinels may promote the replica that lacks it (docs/operations.md).
      DURABILITY: 'strict',
      REDIS_MIN_REPLICAS: '2',
      // Four clients retrying refusals every 50 ms, then a read of every operation: the tenant's request rate is not the subject.
      RATE_LIMIT_REQUESTS: '0',
      QUEUE_PREFIX: testPrefix(),
      DATA_DIR: path.join(dir, 'data'),
      API_KEYS: `acme:${hashApiKey(key)}`,
      BATCH_LINGER: '50ms',
      JOB_LOCK_DURATION: '5s',
      SPOOL_MIN_FREE_BYTES: '1MiB',
      SHUTDOWN_TIMEOUT: '5s',
      UPSTREAM_BACKOFF_BASE: '200ms',
      UPSTREAM_BACKOFF_MAX: '1s',
    });
    const [api, worker] = await Promise.all([
      startService('api', env, { readyTimeoutMs: 60_000 }),
      startService('worker', env, { readyTimeoutMs: 60_000 }),
      redis.discovered(),
    ]);
    procs.push(api, worker);
    prefix = env['QUEUE_PREFIX'] ?? '';
  });
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop('SIGKILL')));
    await fake?.stop();
    await redis?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps serving after the primary is killed, and loses no acknowledged document', async () => {
    const api = procs[0];
    if (!api) throw new Error('no api');
    const attempts: Attempt[] = [];
    let killedAt = 0;
    let stop = false;
    const ackedAfterKill = (): number => attempts.filter((a) => a.status === 202 && killedAt > 0 && a.startedAt > killedAt).length;
    const client = async (c: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const startedAt = Date.now();
        const attempt: Attempt = { startedAt, endedAt: 0, status: 0 };
        try {
          const res = await submit(api.url, key, [{ name: `c${c}-${i}.pdf`, content: `%PDF sentinel ${c}-${i}\n`.repeat(20) }]);
          attempt.status = res.status;
          if (res.status === 202) attempt.id = res.body.id;
        } catch {
          attempt.status = 0;
        }
        attempt.endedAt = Date.now();
        attempts.push(attempt);
        // After a refusal, retry soon rather than spin.
        if (attempt.status !== 202) await new Promise((r) => setTimeout(r, 50));
      }
    };
    const load = Promise.all([0, 1, 2, 3].map(client));
    // Load first, then kill the primary; keep loading until the service has acknowledged 20 more.
    while (attempts.filter((a) => a.status === 202).length < 20) await new Promise((r) => setTimeout(r, 20));
    killedAt = Date.now();
    const killedPort = redis.primary.port;
    redis.primary.process.kill('SIGKILL');
    // Until a replica is promoted and the killed node is back as a replica, one replica is short: no 202.
    const deadline = Date.now() + 60_000;
    while ((await redis.currentPrimaryPort().catch(() => killedPort)) === killedPort && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const promotedAt = Date.now();
    await redis.restartPrimary();
    const restartedAt = Date.now();
    while (ackedAfterKill() < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    stop = true;
    await load;

    expect([redis.replica.port, redis.replica2.port]).toContain(await redis.currentPrimaryPort());
    // The service's data is on the promoted replica (not on some other Redis).
    const promoted = new Redis({ port: await redis.currentPrimaryPort(), host: '127.0.0.1' });
    const [, keys] = await promoted.scan('0', 'MATCH', `${prefix}:*`, 'COUNT', 100_000);
    promoted.disconnect();
    expect(keys.length).toBeGreaterThan(0);
    const acked = attempts.filter((a) => a.status === 202 && a.id);
    const lastBefore = Math.max(...acked.filter((a) => a.endedAt <= killedAt).map((a) => a.endedAt));
    const firstAfter = Math.min(...acked.filter((a) => a.startedAt > killedAt).map((a) => a.endedAt));
    const refused = attempts.filter((a) => a.status !== 202);
    let lost = 0;
    // Why each lost one is lost (the read's status, or the ended operation's status and its documents' errors), with when it was acknowledged.
    const why: string[] = [];
    for (const a of acked) {
      const found = await getOperation(api.url, key, a.id ?? '');
      const when = `${a.endedAt - killedAt} ms after the kill`;
      if (found.status !== 200) {
        lost++;
        why.push(`${a.id} ${found.status} (${when})`);
        continue;
      }
      const done = await waitForTerminal(api.url, key, a.id ?? '', 30_000);
      if (done.status !== 'succeeded') {
        lost++;
        why.push(`${a.id} ${done.status} ${done.documents.map((d) => d.error?.code ?? d.status).join(',')} (${when})`);
      }
    }
    process.stderr.write(
      `sentinel failover: ${acked.length} documents acknowledged (${ackedAfterKill()} after the kill), ` +
        `no 202 for ${firstAfter - killedAt} ms after SIGKILL of the primary (last before it ${killedAt - lastBefore} ms earlier; ` +
        `a replica promoted after ${promotedAt - killedAt} ms, the killed node started again after ${restartedAt - killedAt} ms), ` +
        `${refused.length} submissions refused meanwhile (${[...new Set(refused.map((a) => a.status))].join('/')}), ${lost} acknowledged documents lost${why.length > 0 ? `: ${why.join('; ')}` : ''}\n`,
    );
    expect(ackedAfterKill()).toBeGreaterThanOrEqual(20);
    expect(lost).toBe(0);
  });
});
