/**
 * `npm run bench:compare <git ref>`: section 1 of the benchmark for a git ref and for the working
 * tree in turn (A B A B …, BENCH_COMPARE_PAIRS pairs, at least 2), and the paired ratio of
 * signspool's CPU per document and of throughput (working tree ÷ ref) with its spread. The ref is
 * checked out in a temporary git worktree; its node_modules are a hard-link copy of this tree's
 * when the lockfiles match (npm ci there otherwise). Paired runs only: on this shared machine a
 * figure from another day, or another hour, is not a baseline. BENCH_DOCS sets section 1's size
 * (1000 by default here), BENCH_WARMUP its warm-up; every other BENCH_* setting passes through.
 * Both sides run on one runtime: through tsx when the ref's bench cannot run its stacks from dist/.
 */
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fmt } from './report.js';
import { checkoutRef, shown } from './ref-tree.js';
import { root } from './stack.js';
import { readScriptSettings } from './settings.js';

interface RowLike {
  section: string;
  metric: string;
  value: number;
}

/** What one section-1 run measured. */
interface Measured {
  docsPerSec: number;
  /** api + worker + redis, ms per document. */
  cpuMs: number;
  /** Each of them, ms per document. */
  parts: Record<'api' | 'worker' | 'redis', number>;
  probeMs: number;
}

const PARTS = ['api', 'worker', 'redis'] as const;

/** The section-1 figures of a result file (the signspool row, or api + worker + redis in older files). */
const measuredOf = (rows: RowLike[]): Measured => {
  const s1 = rows.filter((r) => r.section.startsWith('1 '));
  const find = (prefix: string): number | undefined => s1.find((r) => r.metric.startsWith(prefix))?.value;
  const docsPerSec = find('documents/s');
  const parts = { api: find('CPU per document: api') ?? NaN, worker: find('CPU per document: worker') ?? NaN, redis: find('CPU per document: redis') ?? NaN };
  const own = find('CPU per document: signspool') ?? parts.api + parts.worker + parts.redis;
  if (docsPerSec === undefined || !Number.isFinite(own)) throw new Error('the result file has no section-1 throughput or CPU rows');
  return { docsPerSec, cpuMs: own, parts, probeMs: find('machine speed probe') ?? NaN };
};

/** Section 1 in `tree`; its figures, read from the result file the run wrote (then removed). */
const sectionOne = async (tree: string, label: string, env: NodeJS.ProcessEnv): Promise<Measured> => {
  const dir = path.join(tree, 'bench', 'results');
  const list = async (): Promise<Set<string>> => new Set((await readdir(dir).catch(() => [])).filter((f) => f.endsWith('.json')));
  const before = await list();
  await shown('npm', ['run', '--silent', 'bench', '--', '--only', '1'], tree, env, `[${label}]`);
  const fresh = [...(await list())].filter((f) => !before.has(f));
  const [file] = fresh;
  if (fresh.length !== 1 || !file) throw new Error(`expected one new result file in ${dir}, found ${fresh.length}`);
  const { rows } = JSON.parse(await readFile(path.join(dir, file), 'utf8')) as { rows: RowLike[] };
  await rm(path.join(dir, file));
  return measuredOf(rows);
};

/** Mean and spread of a list of ratios. */
const spread = (xs: number[]) => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return { mean, min: Math.min(...xs), max: Math.max(...xs) };
};

const main = async (): Promise<void> => {
  const ref = process.argv.slice(2).find((a) => !a.startsWith('-'));
  if (!ref) throw new Error('usage: npm run bench:compare <git ref>   (BENCH_COMPARE_PAIRS, BENCH_DOCS, BENCH_WARMUP)');
  const { pairs, docs } = readScriptSettings(process.env).compare;
  const env: NodeJS.ProcessEnv = { ...process.env, BENCH_DOCS: docs };
  const a: Measured[] = [];
  const b: Measured[] = [];
  const { tree, sha, how, remove } = await checkoutRef(ref);
  try {
    // Both sides on one runtime: a ref whose bench predates BENCH_RUNTIME runs its stacks through tsx.
    const refSettings = await readFile(path.join(tree, 'bench', 'settings.ts'), 'utf8').catch(() => '');
    if (!refSettings.includes('BENCH_RUNTIME')) env['BENCH_RUNTIME'] = 'tsx';
    console.log(`A = ${ref} (${sha.slice(0, 10)}) in ${tree}, ${how}; B = the working tree ${root}`);
    console.log(`both run their stacks ${env['BENCH_RUNTIME'] === 'tsx' ? 'through tsx (BENCH_RUNTIME=tsx)' : 'from their dist/ (npm start)'}`);
    console.log(`section 1 with BENCH_DOCS=${env['BENCH_DOCS']}, ${pairs} pairs, A B A B …`);
    for (let i = 0; i < pairs; i++) {
      a.push(await sectionOne(tree, `A${i + 1}`, env));
      b.push(await sectionOne(root, `B${i + 1}`, env));
    }
  } finally {
    await remove();
  }
  console.log('\npair | A docs/s | B docs/s | B/A | A CPU ms/doc | B CPU ms/doc | B/A | speed probe A / B ms');
  const cpuRatios: number[] = [];
  const rateRatios: number[] = [];
  a.forEach((x, i) => {
    const y = b[i];
    if (!y) return;
    cpuRatios.push(y.cpuMs / x.cpuMs);
    rateRatios.push(y.docsPerSec / x.docsPerSec);
    console.log(
      [
        i + 1,
        fmt(x.docsPerSec),
        fmt(y.docsPerSec),
        `${(y.docsPerSec / x.docsPerSec).toFixed(3)}×`,
        x.cpuMs.toFixed(3),
        y.cpuMs.toFixed(3),
        `${(y.cpuMs / x.cpuMs).toFixed(3)}×`,
        `${fmt(x.probeMs)} / ${fmt(y.probeMs)}`,
      ].join(' | '),
    );
  });
  const cpu = spread(cpuRatios);
  const rate = spread(rateRatios);
  const pc = (r: number): string => `${r >= 1 ? '+' : ''}${((r - 1) * 100).toFixed(1)} %`;
  console.log(`\nworking tree against ${ref}, paired (shared machine: compare the spread with the change):`);
  console.log(`  signspool CPU per document  ${cpu.mean.toFixed(3)}× (${pc(cpu.mean)}; pairs ${cpu.min.toFixed(3)}–${cpu.max.toFixed(3)}×)`);
  console.log(`  documents/s                 ${rate.mean.toFixed(3)}× (${pc(rate.mean)}; pairs ${rate.min.toFixed(3)}–${rate.max.toFixed(3)}×)`);
  for (const k of PARTS) {
    const r = spread(a.map((x, i) => (b[i]?.parts[k] ?? NaN) / x.parts[k]));
    console.log(`    ${k.padEnd(24)}${r.mean.toFixed(3)}× (pairs ${r.min.toFixed(3)}–${r.max.toFixed(3)}×)`);
  }
  if (cpu.min > 1) console.log('  every pair spent more CPU per document on the working tree');
  if (cpu.max < 1) console.log('  every pair spent less CPU per document on the working tree');
  const file = path.join(root, 'bench', 'results', `compare-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(file, JSON.stringify({ ref, sha, docs: Number(env['BENCH_DOCS']), a, b, cpuRatio: cpu, rateRatio: rate }, null, 2));
  console.log(`\nwrote ${path.relative(root, file)}`);
};

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
