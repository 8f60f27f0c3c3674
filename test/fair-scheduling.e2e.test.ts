/**
 * Fair scheduling across tenants: the priorities lua/fair-share.lua hands out, and the pipeline
 * serving a small tenant's document ahead of another tenant's backlog while batches stay full.
 */
import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { QUEUES } from '@signspool/shared/queue';
import { FairShare, type FairShareOptions } from '@signspool/shared/scheduling/fair-share';
import { submit, waitForTerminal } from './harness/client.js';
import { useFakeSignstash } from './harness/fake-upstream.js';
import { startStack, testPrefix } from './harness/stack.js';

describe('fair-share priorities', () => {
  let redis: Redis;
  beforeAll(() => {
    redis = new Redis(inject('redisUrl'));
  });
  afterAll(async () => {
    await redis?.quit();
  });

  const queues: Queue[] = [];
  afterAll(async () => {
    await Promise.all(queues.map((q) => q.close()));
  });
  const share = (over: Partial<FairShareOptions> = {}): { fair: FairShare; queue: Queue; prefix: string } => {
    const prefix = testPrefix();
    const queue = new Queue(QUEUES.sign, { connection: redis, prefix });
    queues.push(queue);
    const opts: FairShareOptions = {
      prefix,
      prioritizedKey: queue.toKey('prioritized'),
      scheduling: 'fair',
      quantum: 4,
      maxDocs: 4,
      maxBytes: 4000,
      ...over,
    };
    return { fair: new FairShare(redis, opts), queue, prefix };
  };
  const small = (n: number): number[] => Array.from({ length: n }, () => 10);

  it('fills one round per tenant with a quantum of documents, in order', async () => {
    const { fair, prefix } = share();
    expect(await fair.priorities('a', small(10))).toEqual([1, 1, 1, 1, 2, 2, 2, 2, 3, 3]);
    // A tenant's later documents follow its own earlier ones.
    expect(await fair.priorities('a', small(3))).toEqual([3, 3, 4]);
    // Another tenant starts at the round being served, not behind a's backlog.
    expect(await fair.priorities('b', small(5))).toEqual([1, 1, 1, 1, 2]);
    // The rounds are bookkeeping: they expire when nobody submits for a week.
    expect(await redis.pttl(`${prefix}:fair`)).toBeGreaterThan(6 * 24 * 3600 * 1000);
  });

  it('starts a tenant with nothing queued at the head of the queue', async () => {
    const { fair, queue } = share();
    expect(await fair.priorities('a', small(12))).toEqual([1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]);
    // Workers took rounds 1 and 2: the head of the prioritized set is round 3.
    await queue.add('sign-document', {}, { priority: 3 });
    expect(await fair.priorities('b', small(1))).toEqual([3]);
    // b had its turn in round 1 long ago: that does not push it behind the head either.
    expect(await fair.priorities('c', small(1))).toEqual([3]);
    expect(await fair.priorities('a', small(1))).toEqual([4]);
  });

  it('charges a large document its share of BATCH_MAX_BYTES', async () => {
    const { fair } = share();
    expect(fair.cost(10)).toBe(1);
    expect(fair.cost(2500)).toBe(3);
    // 1 + 3 fill the round; the next small one opens round 2, a document over the quantum gets a round alone.
    expect(await fair.priorities('a', [10, 2500, 10, 9000, 10])).toEqual([1, 1, 2, 3, 4]);
  });

  it('hands out no priority with TENANT_SCHEDULING=fifo', async () => {
    const { fair, prefix } = share({ scheduling: 'fifo' });
    expect(await fair.priorities('a', small(3))).toEqual([undefined, undefined, undefined]);
    expect(await redis.exists(`${prefix}:fair`)).toBe(0);
  });
});

describe('a small tenant behind a large backlog', () => {
  // Each upstream call (300 ms) outlasts the linger (50 ms): the order of batches does not depend on this machine's speed.
  const fake = useFakeSignstash({ perRequestMs: 300 });

  const BACKLOG_OPS = 10;
  const PER_OP = 10;
  const B_SIZE = 1500;

  /** acme queues 200 documents, then globex one; a worker with one upstream slot starts after. Returns acme documents sent before globex's, and acme's batch sizes. */
  const run = async (scheduling: 'fair' | 'fifo'): Promise<{ acmeBefore: number; acmeThrough: number; acmeBatches: number[]; callSizes: number[] }> => {
    fake().reset();
    const env = fake().clientEnv({
      DEFAULT_SIGNATURE_TYPE: 'CAdES',
      TENANT_SCHEDULING: scheduling,
      BATCH_MAX_DOCS: String(PER_OP),
      BATCH_LINGER: '50ms',
      UPSTREAM_CONCURRENCY: '1',
      RATE_LIMIT_REQUESTS: '0',
    });
    const api = await startStack({ env, worker: false });
    let worker: Awaited<ReturnType<typeof startStack>> | undefined;
    try {
      const ops: string[] = [];
      for (let i = 0; i < BACKLOG_OPS; i++) {
        const files = Array.from({ length: PER_OP }, (_, j) => ({ name: `a-${i}-${j}.bin`, content: randomBytes(1000), type: 'application/octet-stream' }));
        const r = await submit(api.apiUrl, api.keys.acme, files);
        expect(r.status).toBe(202);
        ops.push(r.body.id);
      }
      const b = await submit(api.apiUrl, api.keys.globex, [{ name: 'b.bin', content: randomBytes(B_SIZE), type: 'application/octet-stream' }]);
      expect(b.status).toBe(202);
      worker = await startStack({ env, api: false, reuse: { dir: api.dir, prefix: api.config.queuePrefix } });
      const bDone = await waitForTerminal(api.apiUrl, api.keys.globex, b.body.id, 60_000);
      expect(bDone.status).toBe('succeeded');
      for (const id of ops) expect((await waitForTerminal(api.apiUrl, api.keys.acme, id, 60_000)).status).toBe('succeeded');
      const requests = fake()
        .requests()
        .filter((r) => r.outcome === 'ok');
      const bAt = requests.findIndex((r) => r.docs.some((d) => d.size === B_SIZE));
      expect(bAt).toBeGreaterThanOrEqual(0);
      const acmeBefore = requests.slice(0, bAt).reduce((n, r) => n + r.documents, 0);
      // acme's documents sent before globex's or in the same call (one identity: they may share it).
      const acmeThrough = requests.slice(0, bAt + 1).reduce((n, r) => n + r.docs.filter((d) => d.size !== B_SIZE).length, 0);
      // acme's documents in each call (globex's one shares a call with them: both tenants use the one identity).
      const acmeBatches = requests.map((r) => r.docs.filter((d) => d.size !== B_SIZE).length).filter((n) => n > 0);
      const callSizes = requests.map((r) => r.documents);
      console.log(
        `${scheduling}: ${acmeBefore} acme documents sent before globex's one; acme's per call: ${acmeBatches.join(',')}; calls: ${callSizes.join(',')}`,
      );
      return { acmeBefore, acmeThrough, acmeBatches, callSizes };
    } finally {
      await worker?.stop();
      await api.stop();
    }
  };

  it("signs the small tenant's document after one batch of the backlog, with full batches", async () => {
    const { acmeBefore, acmeBatches, callSizes } = await run('fair');
    // globex's document shares round 1 with acme's first ten: it goes in the call after theirs,
    // before acme's second round. Both tenants sign with the one identity, so that call is filled
    // with acme's next documents: every call but the last is full.
    expect(acmeBefore).toBeLessThanOrEqual(PER_OP);
    expect(acmeBatches.reduce((a, b) => a + b, 0)).toBe(BACKLOG_OPS * PER_OP);
    expect(callSizes.slice(0, -1).every((n) => n === PER_OP)).toBe(true);
    expect(callSizes.reduce((a, b) => a + b, 0)).toBe(BACKLOG_OPS * PER_OP + 1);
  }, 120_000);

  it('serves in arrival order with TENANT_SCHEDULING=fifo', async () => {
    // No acme document after globex's call: globex's document, queued last, may share acme's last
    // call (a first batch sent short by the linger shifts the others).
    const { acmeThrough } = await run('fifo');
    expect(acmeThrough).toBe(BACKLOG_OPS * PER_OP);
  }, 120_000);
});
