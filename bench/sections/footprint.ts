/**
 * Section 5, footprint: Redis memory per queued document (no worker runs, so every document stays
 * queued), and spool bytes on disk per document beyond its size.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import type { BenchContext, Section } from '../section.js';
import { stackEnv, startRole } from '../stack.js';

const footprint = async (ctx: BenchContext, docs: number) => {
  const e = ctx.env;
  const dir = await mkdtemp(path.join(ctx.tmp, 'footprint-'));
  const env = stackEnv(ctx.settings, e, dir, {});
  const redis = new Redis(e.redisUrl);
  await redis.flushall();
  const api = await startRole('api', env);
  const memBefore = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1] ?? 0);
  const size = 200 * 1024;
  const doc = randomBytes(size);
  for (let i = 0; i < docs; i += 20) {
    await Promise.all(
      Array.from({ length: Math.min(20, docs - i) }, async (_, j) => {
        const form = new FormData();
        form.append('file', new Blob([doc]), `f${i + j}.pdf`);
        const r = await fetch(`${api.url}/v1/operations`, { method: 'POST', headers: { authorization: `Bearer ${e.key}` }, body: form });
        if (r.status !== 202) throw new Error(`footprint submit ${r.status}`);
      }),
    );
  }
  const memAfter = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1] ?? 0);
  // Spool: bytes on disk (allocated blocks) beyond the documents' own sizes.
  let allocated = 0;
  const incoming = path.join(dir, 'spool', 'incoming');
  for (const shard of await readdir(incoming)) {
    const shardDir = path.join(incoming, shard);
    allocated += (await stat(shardDir)).blocks * 512;
    for (const f of await readdir(shardDir)) allocated += (await stat(path.join(shardDir, f))).blocks * 512;
  }
  await api.stop();
  await redis.quit();
  // `dir` (many small files) goes with the run's temp dir at the end.
  return { redisPerDoc: (memAfter - memBefore) / docs, spoolOverheadPerDoc: (allocated - docs * size) / docs };
};

export const footprintSection: Section<void> = {
  id: '5',
  title: 'footprint',
  async run(ctx) {
    const add = ctx.report.section('5 footprint');
    const fp = await footprint(ctx, ctx.settings.quick ? 100 : 1000);
    add({ metric: 'Redis memory per queued document', value: fp.redisPerDoc, unit: 'bytes', target: '≤ 2048 bytes', pass: fp.redisPerDoc <= 2048 });
    add({ metric: 'spool bytes per document beyond its size', value: fp.spoolOverheadPerDoc, unit: 'bytes' });
  },
};
