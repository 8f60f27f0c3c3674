/**
 * Upload admission (UPLOAD_CONCURRENCY) through a real api with one slot: a second upload waits
 * until the first is answered, a client that leaves while waiting leaves the queue, and the
 * `signspool_uploads` gauge shows both. The rule alone: test/unit/api/upload/admission.test.ts.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth, eventually, submit } from './harness/client.js';
import { startStack, type Stack } from './harness/stack.js';

describe('api with UPLOAD_CONCURRENCY=1', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ worker: false, env: { UPLOAD_CONCURRENCY: '1' } });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const gauge = async (state: 'reading' | 'waiting'): Promise<number> => {
    const text = await (await fetch(stack.metricsUrl)).text();
    return Number(new RegExp(`^signspool_uploads\\{state="${state}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  };

  /** An upload whose body is sent in two halves: the second when the caller says so. */
  const slowUpload = (key: string) => {
    const boundary = 'slowupload';
    const head = Buffer.from(
      `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="slow.txt"\r\ncontent-type: text/plain\r\n\r\nfirst half, `,
    );
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
