/**
 * Section 8, what DURABILITY=strict costs: section 1's load (200 KB documents, 64 clients) against
 * a Redis with AOF and `appendfsync everysec` (DURABILITY=everysec, the default), then against one
 * with `appendfsync always` (DURABILITY=strict on Redis < 7.2; WAITAOF on 7.2+), in the same run.
 */
import path from 'node:path';
import { spawnRedisServer } from '../../bin/redis-server.js';
import { pct } from '../report.js';
import type { BenchContext, Section } from '../section.js';
import { loadRun } from './coalescing.js';

const runOn = async (ctx: BenchContext, mode: 'everysec' | 'strict', docs: number) => {
  const redis = await spawnRedisServer({ dir: path.join(ctx.tmp, `redis-${mode}`), appendOnly: true, appendFsync: mode === 'strict' ? 'always' : 'everysec' });
  try {
    const env = { ...ctx.env, redisUrl: redis.url, redisPid: redis.process.pid };
    return await loadRun(
      { ...ctx, env },
      { docs, maxDocs: ctx.settings.maxDocs, label: `durability-${mode}`, warmup: Math.min(ctx.settings.warmup, 100), env: { DURABILITY: mode } },
    );
  } finally {
    await redis.stop();
  }
};

export const durabilitySection: Section = {
  id: '8',
  title: 'durability',
  run: async (ctx: BenchContext) => {
    const add = ctx.report.section('8 durability');
    const docs = Math.max(100, Math.round(ctx.settings.docs / 5));
    const everysec = await runOn(ctx, 'everysec', docs);
    const strict = await runOn(ctx, 'strict', docs);
    add({
      metric: `documents/s, DURABILITY=strict (${docs} × 200 KB; baseline everysec, both with AOF)`,
      value: strict.docsPerSec,
      unit: 'docs/s',
      baseline: everysec.docsPerSec,
      ratio: strict.docsPerSec / everysec.docsPerSec,
    });
    const p99 = (r: typeof strict): number => pct(r.postTimes, 0.99);
    add({
      metric: 'POST p99, DURABILITY=strict (baseline everysec)',
      value: p99(strict),
      unit: 'ms',
      baseline: p99(everysec),
      ratio: p99(strict) / p99(everysec),
    });
    add({
      metric: 'POST p50, DURABILITY=strict (baseline everysec)',
      value: pct(strict.postTimes, 0.5),
      unit: 'ms',
      baseline: pct(everysec.postTimes, 0.5),
      ratio: pct(strict.postTimes, 0.5) / pct(everysec.postTimes, 0.5),
    });
    return { everysec: everysec.docsPerSec, strict: strict.docsPerSec };
  },
};
