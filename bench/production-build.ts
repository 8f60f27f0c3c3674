/**
 * The bench's children run as production runs: the service from its tree's dist/ (scripts/build.mjs,
 * as `npm start` builds it) and a bench-only program (the bare server) bundled by the same esbuild
 * options into .tmp/ of this tree. Neither pays tsx's transform (its `__name` wrappers) that
 * production does not run.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');

const runBuild = (tree: string, args: string[]): void => {
  const built = spawnSync(process.execPath, [path.join(tree, 'scripts', 'build.mjs'), ...args], { cwd: tree, stdio: 'inherit' });
  if (built.status !== 0) throw new Error(`bench: node scripts/build.mjs ${args.join(' ')} in ${tree} failed (exit ${built.status})`);
};

/** Builds `tree`'s dist/ when its sources changed since the last build (the tree's own build script). */
export const buildService = (tree: string = ROOT): void => runBuild(tree, ['--if-needed']);

/** Bundles `file` (relative to this tree) into .tmp/bench-<name>/; the path of the bundle. */
export const bundleProgram = (name: string, file: string): string => {
  const outdir = path.join(ROOT, '.tmp', `bench-${name}`);
  runBuild(ROOT, ['--entry', `${name}=${file}`, '--outdir', outdir]);
  return path.join(outdir, `${name}.js`);
};

/** The node flags `tree`'s `npm run start:api` gives the api (those between `node` and the script). */
export const apiNodeFlags = (tree: string = ROOT): string[] => {
  const scripts = (JSON.parse(readFileSync(path.join(tree, 'package.json'), 'utf8')) as { scripts?: Record<string, string> }).scripts ?? {};
  const words = (scripts['start:api'] ?? '').split(/\s+/);
  const node = words.indexOf('node');
  const script = words.findIndex((w) => w.endsWith('start.js'));
  return node === -1 || script === -1 ? [] : words.slice(node + 1, script);
};

/** The node flag `npm start` gives every process it runs (the api's own flags come with startService: api/node-flags.ts). */
export const START_NODE_FLAGS = ['--enable-source-maps'];
