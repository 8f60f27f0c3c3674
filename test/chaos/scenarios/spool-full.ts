/**
 * The spool's file system full, on a small tmpfs (skipped where it cannot be mounted):
 * - api: free space below SPOOL_MIN_FREE_BYTES for a while: uploads are refused with 507, what
 *   was acknowledged is signed;
 * - worker: no free space at all while batches are at the upstream, so signed results cannot be
 *   written: the documents must stay queued and be signed once space is back, not fail.
 */
import { open, rm, statfs } from 'node:fs/promises';
import path from 'node:path';
import type { ChaosContext, Scenario } from '../driver.js';

/** Fills the file system of `dir` until `leaveBytes` are free (0: until ENOSPC). */
const fill = async (dir: string, leaveBytes: number): Promise<string> => {
  const file = path.join(dir, 'ballast');
  const st = await statfs(dir);
  let left = st.bavail * st.bsize - leaveBytes;
  const chunk = Buffer.alloc(1024 * 1024, 0x5a);
  const fh = await open(file, 'w');
  try {
    while (leaveBytes === 0 || left > 0) {
      const n = leaveBytes === 0 ? chunk.length : Math.min(chunk.length, left);
      try {
        await fh.write(chunk, 0, n);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw err;
      }
      left -= n;
    }
  } finally {
    await fh.close();
  }
  return file;
};

const hold = async (ctx: ChaosContext, leaveBytes: number, ms: number): Promise<void> => {
  const ballast = await fill(ctx.spoolDir, leaveBytes);
  const st = await statfs(ctx.spoolDir);
  ctx.log(`spool filled: ${Math.round((st.bavail * st.bsize) / 1024)} KiB free, for ${ms / 1000} s`);
  await new Promise((r) => setTimeout(r, ms));
  await rm(ballast, { force: true });
  ctx.log('ballast removed');
};

/**
 * Limits sized for a 20 MiB spool: the api keeps a batch of results' room beyond the floor,
 * min(BATCH_MAX_BYTES, BATCH_MAX_DOCS × UPLOAD_MAX_FILE_BYTES), which with the defaults (128 MiB)
 * is more than the whole spool: every upload would be refused.
 */
export const SMALL_SPOOL_LIMITS = { UPLOAD_MAX_FILE_BYTES: '128KiB', UPLOAD_MAX_TOTAL_BYTES: '256KiB', BATCH_MAX_BYTES: '512KiB' };

export const spoolFullApi: Scenario = {
  name: 'spool-full-api',
  title: 'spool below SPOOL_MIN_FREE_BYTES for 8 s (api refuses uploads)',
  settings: () => ({ spoolTmpfs: '20m', env: { ...SMALL_SPOOL_LIMITS, SPOOL_MIN_FREE_BYTES: '4MiB' } }),
  async run(ctx) {
    await ctx.waitAcked(5);
    await hold(ctx, 2 * 1024 * 1024, 8000);
  },
};

export const spoolFullWorker: Scenario = {
  name: 'spool-full-worker',
  title: 'spool with no free space for 12 s while batches are at the upstream',
  settings: () => ({ spoolTmpfs: '20m', fake: { perRequestMs: 1500, bytesPerSec: 500e6 }, env: SMALL_SPOOL_LIMITS }),
  async run(ctx) {
    await ctx.waitAcked(8);
    const inFlight = async (): Promise<boolean> => (await ctx.batchesInFlight(0)) + (await ctx.batchesInFlight(1)) >= 1;
    await ctx.waitFor('a batch in flight', inFlight, 30_000).catch(() => ctx.note('no batch seen in flight within 30 s; spool filled anyway'));
    await hold(ctx, 0, 12_000);
  },
};
