/**
 * Upload admission (UPLOAD_CONCURRENCY): the rule alone (unit), and through a real api with one
 * slot: a second upload waits until the first is answered, a client that leaves while waiting
 * leaves the queue, and the `signspool_uploads` gauge shows both.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UploadAdmission } from '@signspool/api/upload-admission';
import { auth, eventually, submit } from './harness/client.js';
import { startStack, type Stack } from './harness/stack.js';

describe('UploadAdmission', () => {
  it('admits up to its limit, then one per release, first come first served', async () => {
    const seen: { active: number; waiting: number }[] = [];
    const a = new UploadAdmission(2, 1, (c) => seen.push(c));
    const never = (): void => undefined;
    const r1 = await a.admit('t', never);
    const r2 = await a.admit('t', never);
    const order: number[] = [];
    const p3 = a.admit('t', never).then((r) => (order.push(3), r));
    const p4 = a.admit('t', never).then((r) => (order.push(4), r));
    expect(a.counts).toEqual({ active: 2, waiting: 2 });
    r1?.();
    r1?.(); // a release works once
    const r3 = await p3;
    expect(a.counts).toEqual({ active: 2, waiting: 1 });
    r2?.();
    const r4 = await p4;
    expect(order).toEqual([3, 4]);
    r3?.();
    r4?.();
    expect(a.counts).toEqual({ active: 0, waiting: 0 });
    expect(seen[0]).toEqual({ active: 0, waiting: 0 });
    expect(seen.at(-1)).toEqual({ active: 0, waiting: 0 });
  });

  it('caps one tenant at its share and admits the other tenants first, round-robin among equals', async () => {
    const a = new UploadAdmission(4, 0.5);
    expect(a.perTenant).toBe(2);
    const never = (): void => undefined;
    const order: string[] = [];
    const take = (tenant: string): Promise<(() => void) | undefined> => a.admit(tenant, never).then((r) => (order.push(tenant), r));
    // Tenant A fills its share and queues three more; B and C arrive later.
    const [a1, a2] = await Promise.all([take('A'), take('A')]);
    const queuedA = [take('A'), take('A'), take('A')];
    expect(a.counts).toEqual({ active: 2, waiting: 3 });
    const b1 = await take('B');
    const c1 = await take('C');
    // Every slot is taken (A 2, B 1, C 1); then B and C queue behind A's three.
    const b2 = take('B');
    const c2 = take('C');
    expect(a.counts).toEqual({ active: 4, waiting: 5 });
    order.length = 0;
    // A slot of A frees: A, B and C each hold one, so the tenant served longest ago goes first (A).
    a1?.();
    await queuedA[0];
    expect(order).toEqual(['A']);
    // Now A holds 2 (its share): the next slot goes to B, then to C, although A queued first.
    b1?.();
    await b2;
    c1?.();
    await c2;
    expect(order).toEqual(['A', 'B', 'C']);
    expect(a.tenantCounts('A')).toEqual({ active: 2, waiting: 2 });
    // A's own release admits its next upload only while it stays within its share.
    a2?.();
    await queuedA[1];
    expect(a.tenantCounts('A')).toEqual({ active: 2, waiting: 1 });
  });

  it('drops a waiting upload whose client went away, and cancelling after admission does nothing', async () => {
    const a = new UploadAdmission(1);
    let cancelFirst = (): void => undefined;
    const r1 = await a.admit('t', (c) => (cancelFirst = c));
    let cancel = (): void => undefined;
    const p2 = a.admit('t', (c) => (cancel = c));
    cancel();
    expect(await p2).toBeUndefined();
    expect(a.counts).toEqual({ active: 1, waiting: 0 });
    cancelFirst();
    expect(a.counts).toEqual({ active: 1, waiting: 0 });
    r1?.();
    expect(a.counts).toEqual({ active: 0, waiting: 0 });
  });
});

describe('api with UPLOAD_CONCURRENCY=1', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ worker: false, env: { UPLOAD_CONCURRENCY: '1' } });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const gauge = async (state: 'reading' | 'waiting'): Promise<number> => {
    const text = await (await fetch(`${stack.apiUrl}/metrics`)).text();
    return Number(new RegExp(`^signspool_uploads\\{state="${state}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  };

  /** An upload whose body is sent in two halves: the second when the caller says so. */
  const slowUpload = (key: string) => {
    const boundary = 'slowupload';
    const head = Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="slow.txt"\r\ncontent-type: text/plain\r\n\r\nfirst half, `);
    const tail = Buffer.from(`second half\r\n--${boundary}--\r\n`);
    const url = new URL(`${stack.apiUrl}/v1/operations`);
    const req = http.request({
      host: url.hostname,
      port: url.port,
      path: url.pathname,
      method: 'POST',
      headers: { ...auth(key), 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': head.length + tail.length },
    });
    const answered = new Promise<number>((resolve, reject) => {
      req.once('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.once('error', reject);
    });
    req.write(head);
    return { answered, finish: () => req.end(tail), abort: () => req.destroy() };
  };

  it('makes a second upload wait until the first one is answered, and forgets a client that leaves while waiting', async () => {
    const key = stack.keys.acme;
    const first = slowUpload(key);
    await eventually('the first upload is being read', async () => (await gauge('reading')) === 1);

    // A client that gives up while waiting leaves the queue.
    const quitter = slowUpload(key);
    await eventually('the second upload waits', async () => (await gauge('waiting')) === 1);
    quitter.abort();
    await quitter.answered.catch(() => undefined);
    await eventually('the quitter left the queue', async () => (await gauge('waiting')) === 0);

    let secondDone = false;
    const second = submit(stack.apiUrl, key, [{ name: 'b.txt', content: Buffer.from('second') }]).then((r) => {
      secondDone = true;
      return r;
    });
    await eventually('the third upload waits', async () => (await gauge('waiting')) === 1);
    // It is queued, so it cannot have been answered.
    expect(secondDone).toBe(false);
    first.finish();
    expect(await first.answered).toBe(202);
    expect((await second).status).toBe(202);
    await eventually('both slots are free', async () => (await gauge('reading')) === 0 && (await gauge('waiting')) === 0);
  });
});
