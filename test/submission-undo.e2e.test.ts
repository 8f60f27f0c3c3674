/**
 * Undoing a failed submission when Redis could not be reached at the time: nothing is removed
 * while the outcome is unknown, and once Redis answers the submission is undone (record, jobs,
 * files) or, if its commit had reached Redis, left to stand.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Durability } from '@signspool/shared/durability';
import { acceptOperation, type SignQueue } from '@signspool/shared/operations/lifecycle';
import { SubmissionUndo } from '@signspool/shared/operations/undo';
import { FairShare } from '@signspool/shared/scheduling/fair-share';
import { pipelinedSignQueue } from '@signspool/api/upload/enqueue';
import { silentLogger } from '@signspool/shared/logger';
import type { NewOperation } from '@signspool/shared/operations/record';
import { OperationStore } from '@signspool/shared/operations/store';
import { QUEUES, signJobId } from '@signspool/shared/queue';
import { newId, Spool } from '@signspool/shared/spool/spool';
import { eventually } from './harness/client.js';
import { testPrefix } from './harness/stack.js';

/** A store whose first `failures` undo calls fail as they do while Redis is down. */
class UnreachableAtFirst extends OperationStore {
  failures = 2;
  override async abandon(opId: string): Promise<'abandoned' | 'committed' | 'missing'> {
    if (this.failures-- > 0) throw new Error('Connection is closed.');
    return super.abandon(opId);
  }
}

describe('undoing a submission Redis did not answer for', () => {
  let redis: Redis;
  let dir: string;
  let spool: Spool;
  let queue: Queue;
  let store: UnreachableAtFirst;
  let undo: SubmissionUndo;
  let fairShare: FairShare;
  let durability: Durability;

  beforeAll(async () => {
    redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
    dir = await mkdtemp(path.join(os.tmpdir(), 'signspool-undo-'));
    spool = new Spool(dir);
    await spool.init();
    const prefix = testPrefix();
    queue = new Queue(QUEUES.sign, { connection: redis, prefix });
    store = new UnreachableAtFirst(redis, { prefix, retentionMs: 60_000 });
    undo = new SubmissionUndo({ store, queue, spool, logger: silentLogger(), retryMs: 50 });
    fairShare = new FairShare(redis, {
      prefix,
      prioritizedKey: queue.toKey('prioritized'),
      scheduling: 'fair',
      quantum: 50,
      maxDocs: 50,
      maxBytes: 10_000_000,
    });
    durability = await Durability.check(redis, { mode: 'everysec', minReplicas: 0, timeoutMs: 1000 }, silentLogger());
    await queue.waitUntilReady();
  });
  afterAll(async () => {
    undo?.stop();
    await queue?.close();
    await spool?.close();
    redis?.disconnect();
    await rm(dir, { recursive: true, force: true });
  });

  /** A new one-document operation whose file is in the spool. */
  const spooled = async (): Promise<{ op: NewOperation; file: string; jobId: string }> => {
    const docId = newId('doc');
    const op: NewOperation = {
      id: newId('op'),
      tenant: 'acme',
      signer: 'default',
      signatureType: 'CAdES',
      externalReference: undefined,
      createdAt: Date.now(),
      documents: [{ id: docId, name: 'a.bin', contentType: 'application/octet-stream', size: 3, sha256: '0'.repeat(64) }],
    };
    const file = spool.incomingPath(op.id, docId);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, 'abc');
    return { op, file, jobId: signJobId(docId) };
  };

  /** A submission that got as far as its record, its job and its file, but not its commit. */
  const halfSubmitted = async (): Promise<{ op: NewOperation; file: string; jobId: string }> => {
    const submission = await spooled();
    await store.create(submission.op);
    await queue.add('sign-document', { opId: submission.op.id, docId: submission.op.documents[0]?.id ?? '' }, { jobId: submission.jobId });
    return submission;
  };
  const exists = (file: string): Promise<boolean> => spool.exists(file);

  it('keeps everything while the outcome is unknown, then removes record, job and file', async () => {
    store.failures = 2;
    const { op, file, jobId } = await halfSubmitted();
    expect(await undo.undo(op)).toBe('unknown');
    // Unknown: the commit may have reached Redis, so the document's file stays for now.
    expect(await exists(file)).toBe(true);
    expect(undo.waiting).toBe(1);
    await eventually('the undo retried once Redis answers', async () => undo.waiting === 0, 5000);
    expect(await redis.exists(store.key(op.id))).toBe(0);
    expect(await queue.getJob(jobId)).toBeUndefined();
    expect(await exists(file)).toBe(false);
  });

  it('leaves a submission whose commit had reached Redis', async () => {
    store.failures = 1;
    const { op, file, jobId } = await halfSubmitted();
    expect(await undo.undo(op)).toBe('unknown');
    // The commit had gone through before the connection broke.
    await store.markAccepted(op.id);
    await eventually('the undo retried once Redis answers', async () => undo.waiting === 0, 5000);
    expect(await redis.exists(store.key(op.id))).toBe(1);
    expect(await queue.getJob(jobId)).toBeDefined();
    expect(await exists(file)).toBe(true);
  });

  it('refuses a commit that reaches Redis after its window: nothing changes, and the undo removes it', async () => {
    store.failures = 0;
    const { op, file, jobId } = await halfSubmitted();
    const idem = { key: `${store.key(op.id)}:idem`, value: '{"state":"completed"}', ttlMs: 60_000 };
    // As if Redis had been stopped for 2 s between the record and the commit (Redis's own clock).
    await redis.hincrby(store.key(op.id), 'accepting_at', -2000);
    expect(await store.markAccepted(op.id, { withinMs: 1000, also: idem })).toBe('late');
    expect(await redis.hget(store.key(op.id), 'accepting')).toBe('1');
    expect(await redis.exists(idem.key)).toBe(0);
    expect(await undo.undo(op)).toBe('abandoned');
    expect([await redis.exists(store.key(op.id)), await queue.getJob(jobId), await exists(file)]).toEqual([0, undefined, false]);
  });

  it('commits within its window, writing the Idempotency-Key record in the same step', async () => {
    const { op } = await halfSubmitted();
    const idem = { key: `${store.key(op.id)}:idem`, value: '{"state":"completed"}', ttlMs: 60_000 };
    expect(await store.markAccepted(op.id, { withinMs: 60_000, also: idem })).toBe('committed');
    expect(await redis.hmget(store.key(op.id), 'accepting', 'accepting_at')).toEqual([null, null]);
    expect(await redis.get(idem.key)).toBe(idem.value);
    expect(await redis.pttl(idem.key)).toBeGreaterThan(0);
    // Again (a retried commit): still committed, nothing counted twice.
    expect(await store.markAccepted(op.id, { withinMs: 60_000 })).toBe('committed');
    await redis.del(idem.key);
  });

  it('sends the commit right behind the jobs: committed, its job queued with its priority', async () => {
    store.failures = 0;
    const { op, file, jobId } = await spooled();
    const signQueue = pipelinedSignQueue(queue);
    await queue.waitUntilReady();
    const sent: string[] = [];
    const counted: SignQueue = {
      ...signQueue,
      sendAdds: (client, jobs) => {
        const adds = signQueue.sendAdds?.(client, jobs);
        sent.push(adds ? 'together' : 'apart');
        return adds;
      },
    };
    await acceptOperation({ store, signQueue: counted, fairShare, undo, logger: silentLogger(), durability }, op, { windowMs: 5000 });
    expect(sent).toEqual(['together']);
    expect(await redis.hget(store.key(op.id), 'accepting')).toBeNull();
    const job = await queue.getJob(jobId);
    expect(job?.data).toMatchObject({ opId: op.id, docId: op.documents[0]?.id });
    expect(job?.opts.priority).toBeGreaterThan(0);
    expect(await exists(file)).toBe(true);
  });

  it('refuses a commit sent behind an add that failed, and undoes the submission', async () => {
    store.failures = 0;
    const { op, file, jobId } = await spooled();
    // The add fails in Redis (a command that errors, as an add refused by Redis would): the commit must not stand.
    const failingAdd: SignQueue = {
      add: () => Promise.reject(new Error('not used')),
      addBulk: () => Promise.reject(new Error('not used')),
      remove: (id) => queue.remove(id),
      sendAdds: (client, jobs) => ({
        keys: jobs.map((j) => queue.toKey(j.opts.jobId)),
        replies: [client.incr(`${store.key(op.id)}:not-a-number`)],
      }),
    };
    await redis.set(`${store.key(op.id)}:not-a-number`, 'x', 'PX', 60_000);
    await expect(
      acceptOperation({ store, signQueue: failingAdd, fairShare, undo, logger: silentLogger(), durability }, op, { windowMs: 5000 }),
    ).rejects.toThrow(/not an integer/);
    expect([await redis.exists(store.key(op.id)), await queue.getJob(jobId), await exists(file)]).toEqual([0, undefined, false]);
  });
});
