/**
 * Upstream faults mixed under load, in waves: 5xx (500, 502, 503), 429 with Retry-After,
 * connections reset, and answers delayed by 3 s. Each is retryable: every document must end signed.
 */
import type { Fault } from '../../fake-signstash/server.js';
import type { Scenario } from '../driver.js';

const WAVE: Fault[] = [
  { kind: 'server_error', status: 500 },
  { kind: 'rate_limit', retryAfterS: 1 },
  { kind: 'reset' },
  { kind: 'server_error', status: 502 },
  { kind: 'slow', delayMs: 3000 },
  { kind: 'server_error', status: 503 },
];

export const upstreamMix: Scenario = {
  name: 'upstream-5xx-429-reset-slow',
  title: "Sign'Stash answers 5xx, 429, resets and slow answers in waves",
  async run(ctx) {
    await ctx.waitAcked(3);
    for (let wave = 0; wave < 3; wave++) {
      for (const f of WAVE) ctx.fake.injectFault(f);
      await ctx.waitFor('the wave consumed', () => ctx.fake.requests().filter((r) => r.outcome !== 'ok').length >= (wave + 1) * (WAVE.length - 1), 60_000);
      await new Promise((r) => setTimeout(r, 1500));
    }
  },
};
