/**
 * `npm run bench [-- --quick] [-- --only 1,4]`: signspool's benchmarks. Every figure is printed
 * against a baseline or a bound measured or computed in the same run (the machine is shared and
 * noisy). Real Redis (a private redis-server), the fake Sign'Stash, api and worker as separate
 * processes. Writes bench/results/<timestamp>.json. The sections are in bench/sections/.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { generateApiKey } from '@signspool/api/auth/auth';
import { spawnRedisServer } from '../bin/redis-server.js';
import { fmt, Report } from './report.js';
import type { BenchContext, Section } from './section.js';
import { SECTIONS } from './sections/index.js';
import { readSettings } from './settings.js';
import { root, startFake, type Env } from './stack.js';

/** The sections `--only a,b` names (all without it), with the sections they need, in SECTIONS order. */
const selectSections = (argv: readonly string[]): Section<unknown>[] => {
  const at = argv.indexOf('--only');
  const arg = at >= 0 ? argv[at + 1] : undefined;
  if (!arg) return [...SECTIONS];
  const wanted = new Set<Section<unknown>>();
  const want = (s: Section<unknown>): void => {
    if (wanted.has(s)) return;
    wanted.add(s);
    for (const n of s.needs ?? []) want(n);
  };
  for (const id of arg.split(',')) {
    const s = SECTIONS.find((x) => x.id === id);
    if (!s) throw new Error(`--only: no section ${id} (sections: ${SECTIONS.map((x) => `${x.id} ${x.title}`).join(', ')})`);
    want(s);
  }
  return SECTIONS.filter((s) => wanted.has(s));
};

const main = async (): Promise<void> => {
  const settings = readSettings(process.argv, process.env);
  const sections = selectSections(process.argv);
  const report = new Report();
  // Directories of many small files stay in here until the run ends, not only until their section
  // does: on a journal-less ext4 (this machine's) every file created in the minutes after a large
  // delete scans past the deleted inodes (section 1's row "CPU to create a file"), so one section's
  // cleanup would slow the next one's uploads. Multi-GB directories of few files go at once.
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'signspool-bench-'));
  const redisServer = await spawnRedisServer({ dir: path.join(tmp, 'redis'), unixSocket: true });
  const fake = await startFake(settings.latencyMs, settings.bytesPerSec);
  const env: Env = { redisUrl: redisServer.url, key: generateApiKey(), fakeUrl: fake.url, fakePid: fake.child.pid, redisPid: redisServer.process.pid };
  const results = new Map<Section<unknown>, unknown>();
  const ctx: BenchContext = {
    settings,
    env,
    tmp,
    report,
    resultOf: <R>(section: Section<R>): R => {
      if (!results.has(section)) throw new Error(`section ${section.id} has not run`);
      return results.get(section) as R;
    },
  };
  const started = Date.now();
  const s = settings;
  report.header(
    `signspool bench${s.quick ? ' --quick' : ''}: fake latency ${s.latencyMs} ms/request + ${s.bytesPerSec / 1e6} MB/s, UPSTREAM_CONCURRENCY=${s.concurrency}, BATCH_MAX_DOCS=${s.maxDocs}, BATCH_LINGER=${s.lingerMs}ms, ${os.cpus().length} CPUs, ${s.warmup} warm-up documents per load stack`,
  );
  try {
    for (const section of sections) results.set(section, await section.run(ctx));
  } finally {
    await fake.stop();
    await redisServer.stop();
    await rm(tmp, { recursive: true, force: true });
  }
  const durationS = (Date.now() - started) / 1000;
  const file = await report.write(path.join(root, 'bench', 'results'), {
    quick: s.quick,
    cpus: os.cpus().length,
    node: process.version,
    latencyMs: s.latencyMs,
    bytesPerSec: s.bytesPerSec,
    concurrency: s.concurrency,
    maxDocs: s.maxDocs,
    lingerMs: s.lingerMs,
    warmupDocs: s.warmup,
    durationS,
    sections: sections.map((x) => x.id),
  });
  console.log(`\nwrote ${path.relative(root, file)} (${fmt(durationS)} s)`);
};

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
