/**
 * SIGTERM under load, as an orchestrator does on a rollout: the api (uploads in progress; a new
 * api takes its port) and then each worker (batches in flight; a replacement is started). What
 * was acknowledged must be signed; what was not acknowledged must not be processed.
 */
import type { Scenario } from '../driver.js';

export const sigtermApi: Scenario = {
  name: 'sigterm-api',
  title: 'the api SIGTERMed under load and restarted',
  // Operations that end while no api answers must still be readable when one does again.
  settings: (base) => ({ retentionMs: Math.max(base.retentionMs, 30_000), orphanGraceMs: Math.max(base.orphanGraceMs, 30_000) }),
  async run(ctx) {
    await ctx.waitAcked(8);
    await ctx.restartApi('SIGTERM');
    await ctx.waitAcked(ctx.acks().length + 5);
    await ctx.restartApi('SIGTERM');
  },
};

export const sigtermWorker: Scenario = {
  name: 'sigterm-worker',
  title: 'each worker SIGTERMed with batches in flight and replaced',
  settings: () => ({ fake: { perRequestMs: 1200, bytesPerSec: 500e6 } }),
  async run(ctx) {
    await ctx.waitAcked(3);
    for (let i = 0; i < ctx.workers.length; i++) {
      await ctx.waitInFlight(i);
      await ctx.replaceWorker(i, 'SIGTERM');
    }
  },
};
