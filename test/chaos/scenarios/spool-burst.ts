/**
 * The spool filled by the uploads themselves (issue 26.1): an 8 MiB tmpfs spool with
 * SPOOL_MIN_FREE_BYTES=1MiB, an upstream that takes 1.5 s per request, and beside the steady load
 * a burst of 160 uploads of 40-120 KB from 8 clients at once. Uploads beyond the room may get 507;
 * every acknowledged document must end signed (none stuck because the space is held by the very
 * documents that wait). Skipped where the tmpfs cannot be mounted.
 */
import type { Scenario } from '../driver.js';
import { SMALL_SPOOL_LIMITS } from './spool-full.js';

const CLIENTS = 8;
const PER_CLIENT = 20;

export const spoolBurst: Scenario = {
  name: 'spool-filled-by-uploads',
  title: 'a burst of 160 uploads of 40-120 KB from 8 clients into an 8 MiB spool',
  // Limits sized for so small a spool (as test/spool-burst.e2e.test.ts): the api keeps room for a
  // batch of results beyond the floor, min(BATCH_MAX_BYTES, BATCH_MAX_DOCS × UPLOAD_MAX_FILE_BYTES).
  settings: () => ({
    spoolTmpfs: '8m',
    fake: { perRequestMs: 1500, bytesPerSec: 500e6 },
    env: { ...SMALL_SPOOL_LIMITS, SPOOL_MIN_FREE_BYTES: '1MiB' },
  }),
  async run(ctx) {
    await ctx.waitAcked(3);
    const before = ctx.acks().length;
    let n = 0;
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        for (let i = 0; i < PER_CLIENT; i++) await ctx.submit([40_000 + ((n++ * 7919) % 80_000)]);
      }),
    );
    ctx.note(`burst: ${CLIENTS * PER_CLIENT} uploads, ${ctx.acks().length - before} acknowledged (with the steady load's)`);
  },
};
