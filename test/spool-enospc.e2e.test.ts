/**
 * The api's spool filling up during an upload (the free-space check passed when it started): the
 * answer is 507 problem+json with Retry-After, not a 500, and nothing of the upload is kept. The
 * spool is a 4 MiB tmpfs (skipped where one cannot be mounted: run as root with mount(8)).
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './harness/client.js';
import { incomingFiles, openFilesUnder } from './harness/raw-http.js';
import { startStack, testPrefix, type Stack } from './harness/stack.js';

const dir = await mkdtemp(path.join(os.tmpdir(), 'signspool-enospc-'));
const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', dir]).status === 0;
if (!mounted) await rm(dir, { recursive: true, force: true });

describe.skipIf(!mounted)('a spool that fills up during an upload', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ env: { DEFAULT_SIGNATURE_TYPE: 'CAdES', SPOOL_MIN_FREE_BYTES: '64KiB' }, worker: false, reuse: { dir, prefix: testPrefix() } });
  });
  afterAll(async () => {
    await stack?.stop();
    spawnSync('umount', [dir]);
    await rm(dir, { recursive: true, force: true });
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
        (await readdir(path.join(spool, 'tmp')).catch(() => [])).filter((f) => !f.startsWith('spare-')).length === 0,
    );
    expect(openFilesUnder(spool)).toEqual([]);
  });
});
