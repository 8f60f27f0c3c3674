/**
 * A long upstream outage: every sign request answers 503 for CHAOS_OUTAGE_MS (10 minutes in the
 * full run). Documents must wait (circuit breaker) and all be signed once the upstream is back,
 * not fail UPSTREAM_UNAVAILABLE after their attempts are spent.
 */
import type { Scenario } from '../driver.js';

const outageMs = (): number => Number(process.env['CHAOS_OUTAGE_MS'] ?? 600_000);

export const upstreamOutage: Scenario = {
  name: 'upstream-outage',
  title: "Sign'Stash down (503) for CHAOS_OUTAGE_MS",
  // A slower load over a long outage: the backlog stays within what the stack follows at once.
  settings: (base) => ({ docsPerSec: Math.min(base.docsPerSec, Math.max(2, Math.round(base.docs / Math.max(1, outageMs() / 1000)))) }),
  async run(ctx) {
    await ctx.waitAcked(3);
    const ms = outageMs();
    ctx.fake.setOutage(ms);
    ctx.log(`upstream outage for ${ms / 1000} s`);
    ctx.note(`outage ${Math.round(ms / 1000)} s`);
    await new Promise((r) => setTimeout(r, ms));
    ctx.fake.endOutage();
    ctx.log('upstream back');
  },
};
