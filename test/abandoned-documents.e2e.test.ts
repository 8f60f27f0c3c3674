/**
 * A document abandoned by dead workers more often than JOB_MAX_STALLED fails DOCUMENT_STALLED, and
 * the operation it ends is announced like any other end (shared/operations/lifecycle.ts announceEnd,
 * from the worker's abandoned-job path): its `operation.completed` webhook is delivered.
 */
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { QUEUES } from '@signspool/shared/queue';
import { eventually, submit, waitForTerminal } from './harness/client.js';
import { useFakeSignstash } from './harness/fake-upstream.js';
import { startStack } from './harness/stack.js';
import { startReceiver } from './harness/webhook-receiver.js';

const SECRET = 'whsec_' + Buffer.from('abandoned-secret-0123456789abcdef').toString('base64');

describe('abandoned documents', () => {
  const fake = useFakeSignstash();

  it('fail DOCUMENT_STALLED once abandoned more than JOB_MAX_STALLED times, and their operation is announced', async () => {
    const hook = await startReceiver();
    const env = fake().clientEnv({
      WEBHOOK_SECRETS: `acme:${SECRET}`,
      WEBHOOK_ALLOW: '127.0.0.1:*',
      WEBHOOK_ALLOW_HTTP: 'true',
      JOB_MAX_STALLED: '0',
      JOB_LOCK_DURATION: '5s',
    });
    const api = await startStack({ env, worker: false });
    const connection = new Redis(api.config.redisUrl ?? '', { maxRetriesPerRequest: null });
    // A worker that takes the job and dies: its lock is never extended.
    const dead = new Worker(QUEUES.sign, null, { connection, prefix: api.config.queuePrefix, lockDuration: 1000, autorun: false });
    try {
      const res = await submit(api.apiUrl, api.keys.acme, [{ name: 'a.pdf', content: '%PDF-1.4 abandoned' }], {
        signatureType: 'CAdES',
        webhookUrl: hook.url(),
      });
      expect(res.status).toBe(202);
      expect(await dead.getNextJob('dead-worker-token')).toBeDefined();
      // A live worker's stalled-job checker finds the lock gone and, with JOB_MAX_STALLED=0, gives up on the document.
      const worker = await startStack({ env, api: false, reuse: { dir: api.dir, prefix: api.config.queuePrefix } });
      try {
        const done = await waitForTerminal(api.apiUrl, api.keys.acme, res.body.id);
        expect(done.status).toBe('failed');
        expect(done.documents[0]?.error?.code).toBe('DOCUMENT_STALLED');
        await eventually('the operation.completed webhook', () => hook.received.length > 0, 20_000);
        const event = JSON.parse(hook.received[0]?.body ?? '{}') as { type: string; data: { id: string; status: string } };
        expect(event).toMatchObject({ type: 'operation.completed', data: { id: res.body.id, status: 'failed' } });
        expect(fake().requests()).toEqual([]);
      } finally {
        await worker.stop();
      }
    } finally {
      await dead.close();
      await connection.quit();
      await api.stop();
      await hook.close();
    }
  });
});
