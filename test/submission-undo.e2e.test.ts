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
import { SubmissionUndo } from '@signspool/shared/operations/undo';
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

  beforeAll(async () => {
    redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
    dir = await mkdtemp(path.join(os.tmpdir(), 'signspool-undo-'));
    spool = new Spool(dir);
    await spool.init();
    const prefix = testPrefix();
    queue = new Queue(QUEUES.sign, { connection: redis, prefix });
    store = new UnreachableAtFirst(redis, { prefix, retentionMs: 60_000 });
    undo = new SubmissionUndo({ store, queue, spool, logger: silentLogger(), retryMs: 50 });
  });
  afterAll(async () => {
    undo?.stop();
    await queue?.close();
    await spool?.close();
    redis?.disconnect();
    await rm(dir, { recursive: true, force: true });
  });

  /** A submission that got as far as its record, its job and its file, but not its commit. */
  const halfSubmitted = async (): Promise<{ op: NewOperation; file: string; jobId: string }> => {
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
    await store.create(op);
    const file = spool.incomingPath(op.id, docId);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, 'abc');
    const jobId = signJobId(docId);
    await queue.add('sign-document', { opId: op.id, docId }, { jobId });
    return { op, file, jobId };
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
});
