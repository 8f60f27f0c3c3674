/**
 * Webhook slots are shared fairly: tenant acme's endpoint never answers and has many deliveries
 * queued before globex's operations end; globex's deliveries (and acme's to a healthy endpoint of
 * its own) still arrive long before acme's first timeout could free a slot, and the hung endpoint
 * holds no more than its share. Real Redis, in-process api and worker, real receivers.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, submit, waitForTerminal } from './harness/client.js';
import { startStack, type Stack } from './harness/stack.js';
import { startReceiver, type Receiver } from './harness/webhook-receiver.js';

const SECRET = 'whsec_' + Buffer.from('fairness-secret-0123456789abcdef').toString('base64');
/** Long enough that a slot taken by the hung endpoint stays taken for the whole test. */
const TIMEOUT_MS = 60_000;
const CONCURRENCY = 8;

/** A receiver that reads each request and never answers. */
const startHungReceiver = async () => {
  const sockets = new Set<Socket>();
  const requests: number[] = [];
  const server = http.createServer((req) => {
    req.resume();
    req.on('end', () => requests.push(Date.now()));
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (p: string) => `http://127.0.0.1:${port}${p}`,
    requests,
    /** Open connections: requests the dispatcher has in flight. */
    open: () => sockets.size,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
};

describe('fair webhook slots', () => {
  let stack: Stack;
  let hung: Awaited<ReturnType<typeof startHungReceiver>>;
  let globexHook: Receiver;
  let acmeHealthy: Receiver;

  beforeAll(async () => {
    hung = await startHungReceiver();
    globexHook = await startReceiver();
    acmeHealthy = await startReceiver();
    stack = await startStack({
      env: {
        WEBHOOK_SECRETS: `acme:${SECRET},globex:${SECRET}`,
        WEBHOOK_ALLOW: '127.0.0.1:*',
        WEBHOOK_ALLOW_HTTP: 'true',
        WEBHOOK_TIMEOUT: `${TIMEOUT_MS}ms`,
        WEBHOOK_CONCURRENCY: String(CONCURRENCY),
        WEBHOOK_SCHEDULE: '0,1s',
        RATE_LIMIT_REQUESTS: '0',
        DEFAULT_SIGNATURE_TYPE: 'CAdES',
      },
    });
  });
  afterAll(async () => {
    // The hung requests end first, so the worker's drain does not wait for their timeout.
    await hung?.close();
    await stack?.stop();
    await globexHook?.close();
    await acmeHealthy?.close();
  });

  it("delivers globex's webhooks while acme's endpoint hangs with many deliveries queued first", async () => {
    const doc = (n: string) => [{ name: `${n}.txt`, content: `document ${n}` }];
    // acme: 12 operations whose webhook goes to the endpoint that never answers.
    const acme = await Promise.all(
      Array.from({ length: 12 }, (_, i) => submit(stack.apiUrl, stack.keys.acme, doc(`a${i}`), { webhookUrl: hung.url(`/a${i}`) })),
    );
    for (const r of acme) expect(r.status).toBe(202);
    for (const r of acme) await waitForTerminal(stack.apiUrl, stack.keys.acme, r.body.id);
    // Every acme delivery is queued, the hung endpoint holds what it could take.
    await eventually('the hung endpoint received a delivery', () => hung.requests.length >= 1);
    const firstHungAt = hung.requests[0] ?? 0;

    // One more of acme's operations ends, to a healthy endpoint of its own; then globex's.
    const acmeOk = await submit(stack.apiUrl, stack.keys.acme, doc('a-ok'), { webhookUrl: acmeHealthy.url('/a-ok') });
    expect(acmeOk.status).toBe(202);
    await waitForTerminal(stack.apiUrl, stack.keys.acme, acmeOk.body.id);
    const globex = await Promise.all(
      Array.from({ length: 5 }, (_, i) => submit(stack.apiUrl, stack.keys.globex, doc(`g${i}`), { webhookUrl: globexHook.url(`/g${i}`) })),
    );
    for (const r of globex) expect(r.status).toBe(202);

    // Old scheme: all 8 slots held by the hung endpoint until its 60 s timeout, so nothing else before then.
    await eventually('globex and the healthy acme endpoint delivered', () => globexHook.received.length >= 5 && acmeHealthy.received.length >= 1, 30_000);
    const lastAt = Math.max(...globexHook.received.map((r) => r.at), ...acmeHealthy.received.map((r) => r.at));
    expect(lastAt).toBeLessThan(firstHungAt + TIMEOUT_MS);
    expect(globexHook.received.map((r) => r.path).sort()).toEqual(['/g0', '/g1', '/g2', '/g3', '/g4']);
    expect(acmeHealthy.received.map((r) => r.path)).toEqual(['/a-ok']);

    // The hung endpoint holds its share (2 of 8: acme's half, then half of that for one of its endpoints), not every slot.
    expect(hung.requests.length).toBeLessThanOrEqual(2);
    expect(hung.open()).toBeLessThanOrEqual(2);
  }, 90_000);
});
