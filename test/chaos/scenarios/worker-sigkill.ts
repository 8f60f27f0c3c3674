/**
 * Worker SIGKILL ×3: three times, a worker is killed while it has a batch at the (slow) upstream,
 * and a replacement is started. Its jobs stall, come back after the lock expires, and are signed
 * by another worker; every document must end signed with the bytes the upstream returned.
 */
import type { Scenario } from '../driver.js';

export const workerSigkill: Scenario = {
  name: 'worker-sigkill-x3',
  title: 'a worker SIGKILLed 3 times with batches in flight',
  settings: (base) => ({ workers: Math.max(3, base.workers), fake: { perRequestMs: 1200, bytesPerSec: 500e6 } }),
  async run(ctx) {
    await ctx.waitAcked(3);
    for (let k = 0; k < 3; k++) {
      const i = k % ctx.workers.length;
      await ctx.waitFor(`worker ${i} with a batch in flight`, async () => (await ctx.batchesInFlight(i)) >= 1, 60_000);
      // The next kill hits another worker: no need to wait for this one's replacement.
      await ctx.replaceWorker(i, 'SIGKILL', { wait: false });
    }
  },
};
