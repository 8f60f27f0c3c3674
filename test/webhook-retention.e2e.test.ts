/**
 * Webhook retries outlive RETENTION: with RETENTION=2s and WEBHOOK_SCHEDULE=0,6s, an endpoint
 * answering 500 then 204 gets the retry after the operation record has expired, signed and with
 * the event as it was when the operation ended. A delivery with nothing left to send is dropped
 * with one warn line and counted (signspool_webhook_deliveries_total{outcome="dropped"}).
 */
import { Redis } from 'ioredis';
import { Queue } from 'bullmq';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '@signspool/shared/metrics';
import { OperationStore } from '@signspool/shared/operations/store';
import { enqueueWebhook, QUEUES } from '@signspool/shared/queue';
import { WebhookDispatcher } from '@signspool/worker/webhooks/dispatcher';
import { eventually, getOperation, submit } from './harness/client.js';
import { captureLogs } from './harness/log-capture.js';
import { startStack, type Stack } from './harness/stack.js';
import { startReceiver, type Receiver } from './harness/webhook-receiver.js';

const SECRET = 'whsec_' + Buffer.from('retention-secret-0123456789abcdef').toString('base64');

describe('webhook retries after RETENTION', () => {
  let stack: Stack;
  let hook: Receiver;
  let redis: Redis;

  beforeAll(async () => {
    hook = await startReceiver();
    stack = await startStack({
      env: {
        WEBHOOK_SECRETS: `acme:${SECRET}`,
        WEBHOOK_ALLOW: '127.0.0.1:*',
        WEBHOOK_ALLOW_HTTP: 'true',
        WEBHOOK_SCHEDULE: '0,6s',
        RETENTION: '2s',
        DEFAULT_SIGNATURE_TYPE: 'CAdES',
      },
    });
    redis = new Redis(stack.config.redisUrl ?? '', { maxRetriesPerRequest: null });
  });
  afterAll(async () => {
    await stack?.stop();
    await redis?.quit();
    await hook?.close();
  });

  it('delivers the retry scheduled after the operation record expired', async () => {
    hook.script((_q, r) => r.writeHead(500).end());
    const res = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'r.txt', content: 'retention' }], { webhookUrl: hook.url('/late') });
    expect(res.status).toBe(202);
    const opId = res.body.id;
    await eventually('first attempt answered 500', () => hook.received.length >= 1, 15_000);
    // The record is gone before the second attempt (6 s after the first).
    await eventually('operation record expired', async () => (await getOperation(stack.apiUrl, stack.keys.acme, opId)).status === 404, 10_000);
    expect(hook.received).toHaveLength(1);
    await eventually('retry delivered', () => hook.received.length >= 2, 15_000);
    const [first, second] = hook.received;
    expect(second?.headers['webhook-id']).toBe(first?.headers['webhook-id']);
    const headers = {
      'webhook-id': String(second?.headers['webhook-id']),
      'webhook-timestamp': String(second?.headers['webhook-timestamp']),
      'webhook-signature': String(second?.headers['webhook-signature']),
    };
    const event = new Webhook(SECRET).verify(second?.body ?? '', headers) as { type: string; data: { id: string; status: string } };
    expect(event.type).toBe('operation.completed');
    expect(event.data).toMatchObject({ id: opId, status: 'succeeded' });
    // Delivered: the kept copy is removed, and so is the delivery's job (nothing of it outlives RETENTION).
    await eventually('kept event removed', async () => (await redis.keys(`${stack.config.queuePrefix}:webhook:pending:*`)).length === 0);
    await eventually('delivered job removed', async () => (await redis.exists(`${stack.config.queuePrefix}:webhook:${headers['webhook-id']}`)) === 0);
  }, 60_000);

  it('drops a delivery with nothing left to send: one warn line, counted', async () => {
    const { lines, logger } = captureLogs();
    const metrics = createMetrics({ defaultMetrics: false });
    const prefix = `${stack.config.queuePrefix}-drop`;
    const config = { ...stack.config, queuePrefix: prefix };
    const store = new OperationStore(redis, { prefix, retentionMs: config.retentionMs });
    const dispatcher = new WebhookDispatcher({ config, redis, store, metrics, logger });
    await dispatcher.start();
    const queue = new Queue(QUEUES.webhook, { connection: redis, prefix });
    try {
      await enqueueWebhook(queue, { opId: 'op_gone', tenant: 'acme', deliveryId: 'msg_gone', reason: 'completed' }, 2);
      await eventually('drop counted', async () => (await metrics.registry.metrics()).includes('signspool_webhook_deliveries_total{outcome="dropped"} 1'));
      const warned = lines.filter((l) => l['level'] === 40 && String(l['msg']).includes('dropped'));
      expect(warned).toHaveLength(1);
      expect(warned[0]).toMatchObject({ opId: 'op_gone', deliveryId: 'msg_gone' });
    } finally {
      await queue.close();
      await dispatcher.stop();
    }
  });
});
