/**
 * Worker SIGKILL ×3: three times, a worker is killed while it has a batch at the (slow) upstream,
 * and a replacement is started. Its jobs stall, come back after the lock expires, and are signed
 * by another worker; every document must end signed with the bytes the upstream returned.
 */
import type { Scenario } from '../driver.js';

export const workerSigkill: Scenario = {
  name: 'worker-sigkill-x3',
  title: 'a worker SIGKILLed 3 times with batches in flight',
  settings: () => ({ fake: { perRequestMs: 1200, bytesPerSec: 500e6 } }),
  async run(ctx) {
    await ctx.waitAcked(3);
    for (let k = 0; k < 3; k++) {
      const i = k % ctx.workers.length;
      await ctx.waitInFlight(i);
      // Not waiting for the replacement: the next kill may hit the other worker first.
      await ctx.replaceWorker(i, 'SIGKILL', { wait: false });
    }
  },
};
