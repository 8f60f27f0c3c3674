/**
 * Redis hung (SIGSTOP: connections stay open, every command waits) for CHAOS_REDIS_HUNG_MS
 * (default 20 s; longer than any request deadline), then SIGCONT. Meanwhile the api must answer
 * every request with 503 and Retry-After within a few seconds, as when Redis is down: probes (a
 * status read, a download, a small upload; each given 5 s) count in "no answer" when they hang.
 * Afterwards nothing may be lost.
 */
import type { Scenario } from '../driver.js';

const hungMs = (): number => Number(process.env['CHAOS_REDIS_HUNG_MS'] ?? 20_000);
const PROBE_TIMEOUT_MS = 5000;

export const redisHung: Scenario = {
  // Downloads wait out the fault: the records must outlive it on a busy machine (15 s did not, once).
  settings: (base) => ({ retentionMs: Math.max(base.retentionMs, 30_000), orphanGraceMs: Math.max(base.orphanGraceMs, 30_000) }),
  name: 'redis-hung',
  title: 'Redis hung (SIGSTOP) for CHAOS_REDIS_HUNG_MS, then SIGCONT',
  async run(ctx) {
    await ctx.waitAcked(6);
    const ack = ctx.acks()[0];
    if (!ack) throw new Error('nothing acknowledged');
    const doc = ack.docs[0]?.id ?? 'none';
    ctx.redis.pause();
    ctx.log(`redis-server stopped (SIGSTOP) for ${hungMs() / 1000} s`);
    const statuses: string[] = [];
    try {
      const until = Date.now() + hungMs();
      while (Date.now() + PROBE_TIMEOUT_MS < until) {
        const form = new FormData();
        form.append('file', new Blob([`%PDF-1.4 chaos probe ${Date.now()}`], { type: 'application/pdf' }), 'probe.pdf');
        const probes = await Promise.all([
          ctx.request(`/v1/operations/${ack.opId}`, { timeoutMs: PROBE_TIMEOUT_MS }),
          ctx.request(`/v1/operations/${ack.opId}/documents/${doc}`, { timeoutMs: PROBE_TIMEOUT_MS }),
          ctx.request('/v1/operations', { method: 'POST', body: form, timeoutMs: PROBE_TIMEOUT_MS }),
        ]);
        statuses.push(...probes.map((p) => (p.status === 0 ? 'none' : `${p.status}${p.headers?.get('retry-after') ? '+RA' : ''}`)));
        await new Promise((r) => setTimeout(r, 1000));
      }
    } finally {
      ctx.redis.resume();
      ctx.log('redis-server continued (SIGCONT)');
    }
    const counts = statuses.reduce<Record<string, number>>((m, s) => ({ ...m, [s]: (m[s] ?? 0) + 1 }), {});
    ctx.note(`probes while Redis was hung (status, +RA: with Retry-After; none: no answer in ${PROBE_TIMEOUT_MS / 1000} s): ${JSON.stringify(counts)}`);
  },
};
