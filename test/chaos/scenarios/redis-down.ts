/**
 * Redis down for CHAOS_REDIS_DOWN_MS (default 20 s) under load: stopped cleanly (SIGTERM, the AOF
 * is complete) and started again. Every request meanwhile must get a 503, not a 500, and the
 * health checks must answer within 1 s (their latency is noted in the row).
 */
import type { Scenario } from '../driver.js';

const downMs = (): number => Number(process.env['CHAOS_REDIS_DOWN_MS'] ?? 20_000);

const timeReadyz = async (url: string): Promise<string> => {
  const t0 = Date.now();
  const status = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(5000) }).then(
    (r) => String(r.status),
    () => 'no answer in 5 s',
  );
  return `${status} in ${Date.now() - t0} ms`;
};

export const redisDown: Scenario = {
  // Downloads wait out the fault: the records must outlive it on a busy machine (15 s did not, once).
  settings: (base) => ({ retentionMs: Math.max(base.retentionMs, 30_000), orphanGraceMs: Math.max(base.orphanGraceMs, 30_000) }),
  name: 'redis-down',
  title: 'Redis down for 20 s under load',
  async run(ctx) {
    await ctx.waitAcked(8);
    await ctx.redis.stop('SIGTERM');
    const t0 = Date.now();
    ctx.log(`redis-server stopped for ${downMs() / 1000} s`);
    await new Promise((r) => setTimeout(r, Math.min(3000, downMs() / 2)));
    const probes = [`api /readyz ${await timeReadyz(ctx.api.url)}`];
    for (const [i, w] of ctx.workers.entries()) probes.push(`worker ${i} /readyz ${await timeReadyz(w.url)}`);
    ctx.note(`while Redis was down: ${probes.join(', ')}`);
    await new Promise((r) => setTimeout(r, Math.max(0, downMs() - (Date.now() - t0))));
    await ctx.redis.start();
    ctx.log('redis-server started again');
  },
};
