/** The api's readiness check: a spool write that outlasts its timeout says so, and its probe file does not stay behind. */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type * as FsPromises from 'node:fs/promises';
import type { Redis } from 'ioredis';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Spool } from '@signspool/shared/spool/spool';

// writeFile answers after the check's 1 s timeout (a slow disk), then writes for real.
let slowWrites = false;
const landed: Promise<void>[] = [];
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof FsPromises>();
  const writeFile: typeof real.writeFile = (...args) => {
    if (!slowWrites) return real.writeFile(...args);
    const done = new Promise<void>((resolve) => setTimeout(resolve, 1300)).then(() => real.writeFile(...args));
    landed.push(done);
    return done;
  };
  return { ...real, writeFile };
});
const { checkReadiness } = await import('@signspool/api/routes/health');

const redis = { ping: () => Promise.resolve('PONG') } as unknown as Redis;

describe('checkReadiness', () => {
  let root: string | undefined;
  afterEach(async () => {
    slowWrites = false;
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('reports a spool write slower than 1 s as not writable and removes the probe once the write lands', async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'ready-'));
    const spool = new Spool(root);
    await spool.init();
    const probes = async () => (await readdir(spool.tmpRoot)).filter((n) => n.startsWith('ready-'));
    expect((await checkReadiness(redis, spool, 0)).checks['spool']).toBe('ok');
    slowWrites = true;
    const slow = await checkReadiness(redis, spool, 0);
    expect(slow.ready).toBe(false);
    expect(slow.checks['spool']).toBe('spool is not writable');
    await Promise.all(landed);
    // The removal follows the write that landed: wait for this turn's fs work to finish.
    await vi.waitFor(async () => expect(await probes()).toEqual([]));
    await spool.close();
  });
});
