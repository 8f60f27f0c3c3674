/**
 * The API end to end with the local signer: submit, poll, download, verify with openssl; auth,
 * tenants, limits, aborted uploads, cancel, problem+json. Real Redis, real HTTP, real files.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth, download, eventually, getOperation, submit, waitForTerminal } from './harness/client.js';
import { startStack, type Stack } from './harness/stack.js';
import { cmsVerify } from './harness/verify.js';

const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

const LIMITS = { UPLOAD_MAX_FILE_BYTES: '64KiB', UPLOAD_MAX_FILES: '3', UPLOAD_MAX_TOTAL_BYTES: '150KiB' };

/**
 * Every file under spool/incoming/ (`<shard>/<opId>.<docId>`, see shared/spool/spool.ts). No catch: a
 * missing incoming/ is a changed layout, and must fail the tests that look for files here.
 */
const incomingEntries = async (stack: Stack): Promise<string[]> => {
  const root = path.join(stack.config.spoolDir, 'incoming');
  const files: string[] = [];
  for (const shard of await readdir(root)) files.push(...(await readdir(path.join(root, shard))));
  return files;
};
const incomingOf = async (stack: Stack, opId: string): Promise<string[]> => (await incomingEntries(stack)).filter((f) => f.startsWith(`${opId}.`));

const queueState = async (stack: Stack): Promise<{ jobs: number; records: number }> => {
  const queue = new Queue('sign', { connection: { url: stack.config.redisUrl ?? '' }, prefix: stack.config.queuePrefix });
  const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed', 'completed');
  await queue.close();
  const redis = new Redis(stack.config.redisUrl ?? '');
  const records = await redis.keys(`${stack.config.queuePrefix}:op:*`);
  await redis.quit();
  return { jobs: Object.values(counts).reduce((a, b) => a + b, 0), records: records.length };
};

describe('api with the local signer', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('signs submitted documents; downloads verify with openssl', async () => {
    const docs = [
      { name: 'invoice-1.xml', content: '<invoice id="1"/>\n', type: 'application/xml' },
      { name: 'contract ü.pdf', content: randomBytes(40_000), type: 'application/pdf' },
    ];
    const res = await submit(stack.apiUrl, stack.keys.acme, docs, { externalReference: 'batch-42' });
    expect(res.status).toBe(202);
    expect(res.location).toBe(`/v1/operations/${res.body.id}`);
    expect(res.body.status).toBe('queued');
    expect(res.body.documents.map((d) => [d.name, d.size, d.sha256, d.status])).toEqual(
      docs.map((d) => [d.name, Buffer.byteLength(d.content), sha256(d.content), 'queued']),
    );

    const done = await waitForTerminal(stack.apiUrl, stack.keys.acme, res.body.id);
    expect(done.status).toBe('succeeded');
    const cert = path.join(stack.dir, 'local-signer', 'cert.pem');
    for (const [i, d] of done.documents.entries()) {
      expect(d.status).toBe('signed');
      const dl = await download(stack.apiUrl, stack.keys.acme, done.id, d.id);
      expect(dl.status).toBe(200);
      expect(dl.headers.get('content-type')).toBe('application/pkcs7-signature');
      expect(dl.headers.get('content-disposition')).toMatch(/^attachment; filename="?[^"]*\.p7s"?/);
      expect(sha256(dl.body)).toBe(d.signed?.sha256);
      const sig = path.join(stack.dir, `sig-${i}.p7s`);
      const original = path.join(stack.dir, `orig-${i}`);
      await writeFile(sig, dl.body);
      await writeFile(original, docs[i]?.content ?? '');
      const verify = cmsVerify(sig, cert, original);
      expect(verify.status, verify.out).toBe(0);
    }
    // Originals leave the spool once signed (just after the operation is recorded as ended).
    await eventually('originals removed from spool/incoming', async () => (await incomingOf(stack, done.id)).length === 0);
  });

  it("hides another tenant's operation (404)", async () => {
    const res = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'a.txt', content: 'acme only' }]);
    expect(res.status).toBe(202);
    const done = await waitForTerminal(stack.apiUrl, stack.keys.acme, res.body.id);
    const docId = done.documents[0]?.id ?? '';
    expect((await getOperation(stack.apiUrl, stack.keys.globex, res.body.id)).status).toBe(404);
    expect((await download(stack.apiUrl, stack.keys.globex, res.body.id, docId)).status).toBe(404);
    const del = await fetch(`${stack.apiUrl}/v1/operations/${res.body.id}`, { method: 'DELETE', headers: auth(stack.keys.globex) });
    expect(del.status).toBe(404);
    expect((await download(stack.apiUrl, stack.keys.acme, res.body.id, docId)).status).toBe(200);
  });

  it('fails documents the signer cannot sign, with a catalog code', async () => {
    // PDF-shaped enough for the check at submit, but with no cross-reference section to update.
    const res = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'x.pdf', content: '%PDF-1.7\nnot a real PDF\n%%EOF\n' }], { signatureType: 'PAdES' });
    const done = await waitForTerminal(stack.apiUrl, stack.keys.acme, res.body.id);
    expect(done.status).toBe('failed');
    expect(done.documents[0]?.error?.code).toBe('DOCUMENT_NOT_SIGNABLE');
    const dl = await download(stack.apiUrl, stack.keys.acme, done.id, done.documents[0]?.id ?? '');
    expect(dl.status).toBe(409);
  });
});

describe('api without a worker', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack({ worker: false, env: { ...LIMITS, HTTP_BACKLOG: '1234' } });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it("listens with the configured backlog (HTTP_BACKLOG), not Node's 511", () => {
    // For a listening TCP socket, ss shows the accept-queue limit as Send-Q.
    const port = new URL(stack.apiUrl).port;
    const out = spawnSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' });
    expect(out.status, 'ss (iproute2) is needed for this check').toBe(0);
    const sendQ = Number(out.stdout.trim().split(/\s+/)[2]);
    const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());
    expect(sendQ).toBe(Math.min(1234, somaxconn));
  });

  it('answers 401 problem+json without a valid key', async () => {
    for (const headers of [{}, auth('ssk_wrong'), { authorization: 'Basic abc' }]) {
      const res = await fetch(`${stack.apiUrl}/v1/operations/op_00000000000000000000000000000000`, { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      const body = (await res.json()) as Record<string, unknown>;
      expect(body).toMatchObject({ status: 401, code: 'UNAUTHORIZED', type: expect.stringContaining('unauthorized') });
      expect(JSON.stringify(body)).not.toMatch(/at .*\.ts|\/work\//);
    }
  });

  it('refuses over-limit uploads with 413 and keeps nothing', async () => {
    const big = randomBytes(65 * 1024);
    const cases: [string, { name: string; content: Buffer }[]][] = [
      ['FILE_TOO_LARGE', [{ name: 'big.bin', content: big }]],
      ['TOO_MANY_FILES', [1, 2, 3, 4].map((i) => ({ name: `f${i}`, content: Buffer.from('x') }))],
      ['REQUEST_TOO_LARGE', [1, 2, 3].map((i) => ({ name: `f${i}`, content: randomBytes(60 * 1024) }))],
    ];
    const before = await queueState(stack);
    for (const [code, files] of cases) {
      const res = await submit(stack.apiUrl, stack.keys.acme, files);
      expect(res.status, code).toBe(413);
      expect(res.headers.get('content-type')).toMatch(/problem\+json/);
      expect(res.body['code']).toBe(code);
    }
    await eventually('spool incoming empty', async () => (await incomingEntries(stack)).length === 0);
    expect(await queueState(stack)).toEqual(before);
  });

  it('rejects malformed submissions with problem+json', async () => {
    const noFiles = await submit(stack.apiUrl, stack.keys.acme, [], { externalReference: 'x' });
    expect([noFiles.status, noFiles.body['code']]).toEqual([400, 'NO_FILES']);
    const badType = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'a', content: 'a' }], { signatureType: 'RSA' });
    expect([badType.status, badType.body['code']]).toEqual([400, 'VALIDATION_FAILED']);
    const unknownField = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'a', content: 'a' }], { webhook: 'x' });
    expect([unknownField.status, unknownField.body['code']]).toEqual([400, 'VALIDATION_FAILED']);
    const json = await fetch(`${stack.apiUrl}/v1/operations`, {
      method: 'POST',
      headers: { ...auth(stack.keys.acme), 'content-type': 'application/json' },
      body: '{}',
    });
    expect(json.status).toBe(415);
    const route = await fetch(`${stack.apiUrl}/nope`);
    expect(route.status).toBe(404);
    expect(((await route.json()) as { code: string }).code).toBe('ROUTE_NOT_FOUND');
    await eventually('spool incoming empty', async () => (await incomingEntries(stack)).length === 0);
  });

  it('leaves no file and no job behind when the client aborts mid-upload', async () => {
    const before = await queueState(stack);
    const url = new URL(`${stack.apiUrl}/v1/operations`);
    const boundary = 'signspoolabort';
    const sawBytes = await new Promise<boolean>((resolve) => {
      const req = http.request({
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: { ...auth(stack.keys.acme), 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(200_000) },
      });
      req.on('error', () => resolve(true));
      req.write(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="one.bin"\r\n\r\n${'a'.repeat(10_000)}\r\n`);
      req.write(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="two.bin"\r\n\r\n`);
      req.write(Buffer.alloc(20_000, 1), () => {
        // The server has the first file on disk and is writing the second: now vanish.
        setTimeout(() => {
          req.destroy();
          resolve(true);
        }, 100);
      });
    });
    expect(sawBytes).toBe(true);
    await eventually('spool incoming empty after abort', async () => (await incomingEntries(stack)).length === 0);
    expect(await queueState(stack)).toEqual(before);
  });

  it('reports health and readiness', async () => {
    expect((await fetch(`${stack.apiUrl}/healthz`)).status).toBe(200);
    const ready = await fetch(`${stack.apiUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', checks: { redis: 'ok', spool: 'ok' } });
  });

  it('answers 409 for a document not signed yet, and cancels queued documents', async () => {
    const res = await submit(stack.apiUrl, stack.keys.acme, [
      { name: 'a.txt', content: 'a' },
      { name: 'b.txt', content: 'b' },
    ]);
    expect(res.status).toBe(202);
    const op = res.body;
    const dl = await download(stack.apiUrl, stack.keys.acme, op.id, op.documents[0]?.id ?? '');
    expect(dl.status).toBe(409);
    expect(JSON.parse(dl.body.toString())).toMatchObject({ code: 'DOCUMENT_NOT_SIGNED', documentStatus: 'queued' });
    expect((await queueState(stack)).jobs).toBe(2);
    expect(await incomingOf(stack, op.id)).toHaveLength(2);

    const del = await fetch(`${stack.apiUrl}/v1/operations/${op.id}`, { method: 'DELETE', headers: auth(stack.keys.acme) });
    expect(del.status).toBe(200);
    const canceled = (await del.json()) as { status: string; documents: { status: string; error?: { code: string } }[] };
    expect(canceled.status).toBe('canceled');
    expect(canceled.documents.map((d) => [d.status, d.error?.code])).toEqual([
      ['canceled', 'CANCELED'],
      ['canceled', 'CANCELED'],
    ]);
    expect(await incomingOf(stack, op.id)).toEqual([]);
    expect((await queueState(stack)).jobs).toBe(0);

    const again = await fetch(`${stack.apiUrl}/v1/operations/${op.id}`, { method: 'DELETE', headers: auth(stack.keys.acme) });
    expect(again.status).toBe(409);
    expect(((await again.json()) as { code: string }).code).toBe('OPERATION_TERMINAL');
  });

  it('answers a Prefer: wait request as soon as the operation ends', async () => {
    const res = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'w.txt', content: 'w' }]);
    const waiting = fetch(`${stack.apiUrl}/v1/operations/${res.body.id}`, { headers: { ...auth(stack.keys.acme), prefer: 'wait=30' } }).then(async (r) => ({
      at: Date.now(),
      status: r.status,
      applied: r.headers.get('preference-applied'),
      body: (await r.json()) as { status: string },
    }));
    // Still waiting: nothing has ended yet.
    const early = await Promise.race([waiting, new Promise<'pending'>((r) => setTimeout(() => r('pending'), 300))]);
    expect(early).toBe('pending');
    const del = await fetch(`${stack.apiUrl}/v1/operations/${res.body.id}`, { method: 'DELETE', headers: auth(stack.keys.acme) });
    const endedAt = Date.now();
    expect(del.status).toBe(200);
    const woke = await waiting;
    console.log(`Prefer: wait woke ${woke.at - endedAt} ms after the operation ended`);
    expect(woke).toMatchObject({ status: 200, applied: 'wait=30', body: { status: 'canceled' } });
    // Woken by the end, not by its 30 s deadline (how promptly: bench section 6).
    expect(woke.at - endedAt).toBeLessThan(10_000);
  });

  it('ends a Prefer: wait request at its deadline with Retry-After while pending', async () => {
    const res = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'p.txt', content: 'p' }]);
    const started = Date.now();
    const r = await fetch(`${stack.apiUrl}/v1/operations/${res.body.id}`, { headers: { ...auth(stack.keys.acme), prefer: 'wait=1' } });
    expect(r.status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(r.headers.get('retry-after')).toBe('2');
    expect(((await r.json()) as { status: string }).status).toBe('queued');
  });

  it('answers a Prefer: wait request for an unknown or foreign operation with 404 at once, leaving no waiter', async () => {
    const res = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'f.txt', content: 'f' }]);
    const started = Date.now();
    const [foreign, unknown] = await Promise.all(
      [
        { key: stack.keys.globex, id: res.body.id },
        { key: stack.keys.acme, id: `op_${'0'.repeat(32)}` },
      ].map(({ key, id }) => fetch(`${stack.apiUrl}/v1/operations/${id}`, { headers: { ...auth(key), prefer: 'wait=30' } })),
    );
    expect([foreign?.status, unknown?.status]).toEqual([404, 404]);
    // Answered, not held until the 30 s deadline.
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(stack.api?.waitingRequests).toBe(0);
  });

  it('lets go of a Prefer: wait request whose client disconnects', async () => {
    const res = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'g.txt', content: 'g' }]);
    const client = new AbortController();
    const pending = fetch(`${stack.apiUrl}/v1/operations/${res.body.id}`, {
      headers: { ...auth(stack.keys.acme), prefer: 'wait=60' },
      signal: client.signal,
    }).catch((err: unknown) => err);
    await eventually('the request waiting', () => (stack.api?.waitingRequests ?? 0) === 1);
    client.abort();
    expect(await pending).toBeInstanceOf(Error);
    await eventually('no waiter left', () => (stack.api?.waitingRequests ?? 0) === 0, 5000);
  });

  it('makes submissions idempotent with Idempotency-Key', async () => {
    const before = await queueState(stack);
    const form = (content: string) => {
      const f = new FormData();
      f.append('externalReference', 'idem-1');
      f.append('file', new Blob([content]), 'i.txt');
      return f;
    };
    const post = async (key: string, content: string) => {
      const r = await fetch(`${stack.apiUrl}/v1/operations`, {
        method: 'POST',
        headers: { ...auth(stack.keys.acme), 'idempotency-key': key },
        body: form(content),
      });
      return { status: r.status, location: r.headers.get('location'), body: (await r.json()) as { id?: string; code?: string } };
    };
    const answers = await Promise.all(Array.from({ length: 20 }, () => post('key-20', 'same document')));
    const accepted = answers.filter((a) => a.status === 202);
    expect(accepted.length).toBeGreaterThanOrEqual(1);
    expect(answers.every((a) => a.status === 202 || (a.status === 409 && a.body.code === 'IDEMPOTENCY_KEY_IN_USE'))).toBe(true);
    expect(new Set(accepted.map((a) => a.body.id)).size).toBe(1);
    expect(new Set(accepted.map((a) => a.location)).size).toBe(1);
    const after = await queueState(stack);
    expect(after.records - before.records).toBe(1);
    expect(after.jobs - before.jobs).toBe(1);
    // A replay gives the original answer; a different request with the key is refused.
    const replay = await post('key-20', 'same document');
    expect([replay.status, replay.body.id]).toEqual([202, accepted[0]?.body.id]);
    const other = await post('key-20', 'another document');
    expect([other.status, other.body.code]).toEqual([422, 'IDEMPOTENCY_KEY_MISMATCH']);
    // Another tenant's identical key is a different key.
    const globex = await fetch(`${stack.apiUrl}/v1/operations`, {
      method: 'POST',
      headers: { ...auth(stack.keys.globex), 'idempotency-key': 'key-20' },
      body: form('same document'),
    });
    expect(globex.status).toBe(202);
    expect(((await globex.json()) as { id: string }).id).not.toBe(accepted[0]?.body.id);
    expect((await queueState(stack)).records - before.records).toBe(2);
  });

  it('does not burn an Idempotency-Key on a failed upload', async () => {
    const tooBig = new FormData();
    tooBig.append('file', new Blob([randomBytes(65 * 1024)]), 'big.bin');
    const failed = await fetch(`${stack.apiUrl}/v1/operations`, {
      method: 'POST',
      headers: { ...auth(stack.keys.acme), 'idempotency-key': 'key-retry' },
      body: tooBig,
    });
    expect(failed.status).toBe(413);
    const ok = new FormData();
    ok.append('file', new Blob(['fits']), 'small.bin');
    const retried = await fetch(`${stack.apiUrl}/v1/operations`, {
      method: 'POST',
      headers: { ...auth(stack.keys.acme), 'idempotency-key': 'key-retry' },
      body: ok,
    });
    expect(retried.status).toBe(202);
  });
});
