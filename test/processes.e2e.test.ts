/**
 * Separate api and worker processes, as deployed: submit with a webhook, long-poll, download and
 * verify, receive the signed webhook from the worker process, read both /metrics, stop both with
 * SIGTERM (clean exit). The worker process runs below the api's CPU priority (WORKER_NICE).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateApiKey, hashApiKey } from '@signspool/api/auth/auth';
import { auth, download, eventually, submit, waitForTerminal } from './harness/client.js';
import { startService, type ServiceProcess } from './harness/processes.js';
import { testPrefix } from './harness/stack.js';
import { startReceiver, type Receiver } from './harness/webhook-receiver.js';
import { cmsVerify } from './harness/verify.js';

/** The nice value of each thread of process `pid`, from /proc (field 19 of a task's stat; the name in parentheses may hold spaces). */
const threadNice = (pid: number | undefined): number[] =>
  readdirSync(`/proc/${String(pid)}/task`).map((tid) =>
    Number(
      readFileSync(`/proc/${String(pid)}/task/${tid}/stat`, 'utf8')
        .split(') ')[1]
        ?.split(' ')[16],
    ),
  );

const SECRET = 'whsec_' + Buffer.from('process-test-secret-0123456789').toString('base64');

describe('api and worker as separate processes', () => {
  let dir: string;
  let api: ServiceProcess;
  let worker: ServiceProcess;
  let hook: Receiver;
  const key = generateApiKey();

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'signspool-procs-'));
    hook = await startReceiver();
    const env = {
      REDIS_URL: inject('redisUrl'),
      QUEUE_PREFIX: testPrefix(),
      DATA_DIR: dir,
      API_KEYS: `acme:${hashApiKey(key)}`,
      BATCH_LINGER: '100ms',
      SPOOL_MIN_FREE_BYTES: '1MiB',
      WEBHOOK_SECRETS: `acme:${SECRET}`,
      WEBHOOK_ALLOW: '127.0.0.1:*',
      WEBHOOK_ALLOW_HTTP: 'true',
      SHUTDOWN_TIMEOUT: '5s',
      WORKER_NICE: '7',
    };
    [api, worker] = await Promise.all([startService('api', env), startService('worker', env)]);
  });
  afterAll(async () => {
    await api?.stop('SIGKILL');
    await worker?.stop('SIGKILL');
    await hook?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('signs, long-polls, downloads, and delivers the webhook from the worker process', async () => {
    const files = [
      { name: 'one.txt', content: 'first document\n' },
      { name: 'two.txt', content: 'second document\n' },
    ];
    const res = await submit(api.url, key, files, { webhookUrl: hook.url('/signspool') });
    expect(res.status).toBe(202);
    const done = await waitForTerminal(api.url, key, res.body.id);
    expect(done.status).toBe('succeeded');
    for (const [i, d] of done.documents.entries()) {
      const dl = await download(api.url, key, done.id, d.id);
      const sig = path.join(dir, `p${i}.p7s`);
      const orig = path.join(dir, `p${i}.txt`);
      await writeFile(sig, dl.body);
      await writeFile(orig, files[i]?.content ?? '');
      const v = cmsVerify(sig, path.join(dir, 'local-signer/cert.pem'), orig);
      expect(v.status, v.out).toBe(0);
    }
    await eventually('webhook delivered', () => hook.received.length === 1);
    const got = hook.received[0];
    const event = new Webhook(SECRET).verify(got?.body ?? '', {
      'webhook-id': String(got?.headers['webhook-id']),
      'webhook-timestamp': String(got?.headers['webhook-timestamp']),
      'webhook-signature': String(got?.headers['webhook-signature']),
    }) as { type: string; data: { id: string; status: string } };
    expect(event).toMatchObject({ type: 'operation.completed', data: { id: done.id, status: 'succeeded' } });
    // The worker records the delivery once the receiver's answer is back: after the receiver has the request.
    const outcomes = async (): Promise<string[]> => {
      const view = await fetch(`${api.url}/v1/operations/${done.id}`, { headers: auth(key) });
      return ((await view.json()) as { webhook: { deliveries: { outcome: string }[] } }).webhook.deliveries.map((d) => d.outcome);
    };
    await eventually('delivery recorded', async () => (await outcomes()).length > 0);
    expect(await outcomes()).toEqual(['delivered']);

    const workerMetrics = await (await fetch(`${worker.url}/metrics`)).text();
    expect(workerMetrics).toMatch(/signspool_documents_completed_total\{outcome="signed"\} 2/);
    expect(workerMetrics).toMatch(/signspool_webhook_deliveries_total\{outcome="delivered"\} 1/);
    const apiMetrics = await (await fetch(api.metricsUrl)).text();
    expect(apiMetrics).toMatch(/signspool_documents_accepted_total\{signer="default"\} 2/);
  });

  // After the signing above: the thread pool's threads, made when the batch first used it, included.
  it.runIf(process.platform === 'linux')('runs every thread of the worker at WORKER_NICE, the api at its own priority', () => {
    const workerThreads = threadNice(worker.child.pid);
    expect(workerThreads.length).toBeGreaterThan(4);
    expect(new Set(workerThreads)).toEqual(new Set([7]));
    expect(new Set(threadNice(api.child.pid))).toEqual(new Set([threadNice(process.pid)[0]]));
    expect(worker.output()).toMatch(/"priority":"nice 7 \(WORKER_NICE\)"/);
  });

  it('stops both processes cleanly on SIGTERM', async () => {
    const [a, w] = await Promise.all([api.stop('SIGTERM'), worker.stop('SIGTERM')]);
    expect([a, w]).toEqual([0, 0]);
    expect(worker.output()).toMatch(/worker stopped/);
  });
});
