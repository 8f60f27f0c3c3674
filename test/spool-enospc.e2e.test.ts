/**
 * The api's spool filling up during an upload (the free-space check passed when it started): the
 * answer is 507 problem+json with Retry-After, not a 500, and nothing of the upload is kept. The
 * spool is a 4 MiB tmpfs (skipped where one cannot be mounted: run as root with mount(8)).
 * The worker's spool filling up while a signed result streams in is ours (SPOOL_FULL), not the
 * upstream's: the document waits in the queue, no attempt is counted.
 */
import { readdir, rm, statfs, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeSignstash } from './fake-signstash/server.js';
import { eventually, getOperation, submit, waitForTerminal } from './harness/client.js';
import { incomingFiles, openFilesUnder } from './harness/raw-http.js';
import { startStack, testPrefix, type Stack } from './harness/stack.js';
import { mountTmpfs } from './harness/tmpfs.js';

const { dir, mounted, remove } = await mountTmpfs('enospc', '4m');

describe.skipIf(!mounted)('a spool that fills up during an upload', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ env: { DEFAULT_SIGNATURE_TYPE: 'CAdES', SPOOL_MIN_FREE_BYTES: '64KiB' }, worker: false, reuse: { dir, prefix: testPrefix() } });
  });
  afterAll(async () => {
    await stack?.stop();
    await remove();
  });

  it('answers 507 with Retry-After and keeps nothing', async () => {
    const boundary = 'enospcboundary';
    // 8 MiB with no Content-Length: the check before the body sees 4 MiB free and lets it in.
    const body = Readable.from(
      (function* () {
        yield Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="big.bin"\r\ncontent-type: application/octet-stream\r\n\r\n`);
        for (let i = 0; i < 128; i++) yield Buffer.alloc(64 * 1024, i);
        yield Buffer.from(`\r\n--${boundary}--\r\n`);
      })(),
    );
    const res = await request(`${stack.apiUrl}/v1/operations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.keys.acme}`, 'content-type': `multipart/form-data; boundary=${boundary}` },
      body,
    });
    const problem = (await res.body.json()) as { code?: string };
    expect(res.statusCode).toBe(507);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.headers['retry-after']).toBeDefined();
    expect(problem.code).toBe('INSUFFICIENT_STORAGE');
    const spool = stack.config.spoolDir;
    await eventually(
      'no file of the upload left',
      async () =>
        (await incomingFiles(spool)).length === 0 &&
        (await readdir(path.join(spool, 'tmp')).catch(() => [])).filter((f) => !f.startsWith('spare-') && !f.startsWith('owner-')).length === 0,
    );
    expect(openFilesUnder(spool)).toEqual([]);
  });
});

const result = await mountTmpfs('enospc-result', '8m');
const { dir: resultDir, mounted: resultMounted } = result;

describe.skipIf(!resultMounted)("a worker's spool that fills up while a signed result streams in", () => {
  let fake: FakeSignstash;
  const stacks: Stack[] = [];
  beforeAll(async () => {
    fake = new FakeSignstash({ perRequestMs: 5, bytesPerSec: 1e9 });
    await fake.start();
  });
  afterAll(async () => {
    await Promise.all(stacks.map((s) => s.stop()));
    await fake?.stop();
    await result.remove();
  });

  it('is SPOOL_FULL: the document goes back to the queue, no attempt counted, and is signed once there is room', async () => {
    fake.setLatency({ perRequestMs: 1500 });
    const env = fake.clientEnv({
      DEFAULT_SIGNATURE_TYPE: 'CAdES',
      SPOOL_MIN_FREE_BYTES: '64KiB',
      UPLOAD_MAX_FILE_BYTES: '1MiB',
      BATCH_MAX_DOCS: '2',
      UPSTREAM_MAX_ATTEMPTS: '1',
    });
    const s = await startStack({ env, reuse: { dir: resultDir, prefix: testPrefix() } });
    stacks.push(s);
    const content = Buffer.alloc(1024 * 1024, 7);
    const res = await submit(s.apiUrl, s.keys.acme, [{ name: 'big.bin', content }]);
    expect(res.status).toBe(202);
    // While the upstream signs (the worker had room when it sent), the disk fills: 512 KiB are left for the 1 MiB result.
    await eventually('the upstream is signing', () => fake.signing > 0, 20_000);
    const filler = path.join(resultDir, 'filler');
    const st = await statfs(resultDir);
    await writeFile(filler, Buffer.alloc(st.bavail * st.bsize - 512 * 1024));
    await eventually('the upstream answered once', () => fake.requests().some((r) => r.outcome === 'ok'), 20_000);
    // Back in the queue, not failed: with one attempt allowed, counting this one would fail it.
    await eventually('the document is queued again', async () => (await getOperation(s.apiUrl, s.keys.acme, res.body.id)).body.status === 'queued', 10_000);
    expect((await getOperation(s.apiUrl, s.keys.acme, res.body.id)).body.documents[0]?.error).toBeUndefined();
    await rm(filler);
    const done = await waitForTerminal(s.apiUrl, s.keys.acme, res.body.id, 30_000);
    expect(done.status).toBe('succeeded');
    expect(fake.requests().filter((r) => r.outcome === 'ok').length).toBeGreaterThanOrEqual(2);
    // Not the upstream's failure: no upstream error counted, the circuit stayed closed.
    const metrics = await s.metrics.registry.metrics();
    expect(metrics).not.toMatch(/signspool_upstream_errors_total\{[^}]*\} [1-9]/);
    expect(metrics).toMatch(/signspool_upstream_circuit\{[^}]*state="closed"[^}]*\} 1/);
  });
});
