/**
 * Sign'Stash hangs longer than signspool's timeouts (SIGNSTASH_HEADERS_TIMEOUT and
 * SIGNSTASH_BODY_TIMEOUT set to 2 s): requests that get no headers for 6 s, and answers that
 * stop in the middle of their body for 6 s. Each is a timeout, retried: every document must end
 * signed, and nothing may stay stuck behind a hung connection.
 */
import type { Fault } from '../../fake-signstash/server.js';
import type { Scenario } from '../driver.js';

const HANG_MS = 6000;
const WAVE: Fault[] = [
  { kind: 'slow', delayMs: HANG_MS },
  { kind: 'stall_body', delayMs: HANG_MS },
  { kind: 'slow', delayMs: HANG_MS },
  { kind: 'stall_body', delayMs: HANG_MS },
];

export const upstreamHang: Scenario = {
  name: 'upstream-hang-past-timeouts',
  title: "Sign'Stash hangs 6 s before its headers or in its body (timeouts 2 s)",
  settings: () => ({ env: { SIGNSTASH_HEADERS_TIMEOUT: '2s', SIGNSTASH_BODY_TIMEOUT: '2s' } }),
  async run(ctx) {
    await ctx.waitAcked(3);
    const hung = (): number => ctx.fake.requests().filter((r) => r.durationMs >= HANG_MS).length;
    const waves = 2;
    for (let wave = 0; wave < waves; wave++) {
      for (const f of WAVE) ctx.fake.injectFault(f);
      await ctx.waitFor('the wave consumed', () => hung() >= (wave + 1) * WAVE.length, 90_000);
    }
    ctx.note(`${hung()} upstream requests hung ${HANG_MS / 1000} s (before the headers or in the body)`);
  },
};
