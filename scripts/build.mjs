#!/usr/bin/env node
/**
 * The production build: esbuild bundles each entry point (the service, the CLI, the fake
 * Sign'Stash) with the workspace packages (@signspool/*) compiled in, and every npm dependency left
 * as an import resolved from node_modules at run time. Output: dist/<entry>.js with source maps.
 * Types are checked by `npm run typecheck`, not here.
 *
 *   node scripts/build.mjs              build
 *   node scripts/build.mjs --if-needed  build only when an input is newer than the last build
 *   node scripts/build.mjs --entry <name>=<file.ts> --outdir <dir>
 *                                       one entry point alone, into <dir> (inside this tree, so that
 *                                       its imports resolve from node_modules): the bench's children
 *                                       run the code as production does (bench/local-signer.ts)
 */
import { cp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { build } from 'esbuild';

const root = path.resolve(import.meta.dirname, '..');
const dist = path.join(root, 'dist');
const metaFile = path.join(dist, 'meta.json');

const ENTRIES = {
  'bin/start': 'bin/start.ts',
  'cli/main': 'cli/main.ts',
  'test/fake-signstash/main': 'test/fake-signstash/main.ts',
};

/** Workspace imports are bundled (they are TypeScript); anything else from a package stays external. */
const workspaceFirst = {
  name: 'externals',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path.startsWith('@signspool/') || args.path.startsWith('node:')) return undefined;
      return { path: args.path, external: true };
    });
  },
};

/** True when dist is missing or any file the last build read (or the lock file) changed since. */
const needsBuild = async () => {
  let meta;
  try {
    meta = JSON.parse(await readFile(metaFile, 'utf8'));
  } catch {
    return true;
  }
  const builtAt = (await stat(metaFile)).mtimeMs;
  const lua = (await readdir(path.join(root, 'shared/lua'), { recursive: true })).map((f) => path.join('shared/lua', f));
  for (const input of [...Object.keys(meta.inputs), 'package-lock.json', ...lua]) {
    const s = await stat(path.join(root, input)).catch(() => undefined);
    if (!s || s.mtimeMs > builtAt) return true;
  }
  for (const out of Object.keys(ENTRIES)) {
    if (!(await stat(path.join(dist, `${out}.js`)).catch(() => undefined))) return true;
  }
  return false;
};

/** The esbuild options of every build: the service's and the bench's children alike. */
const options = (entryPoints, outdir) => ({
  absWorkingDir: root,
  entryPoints,
  outdir,
  bundle: true,
  // Dynamic imports (the signer adapters) stay separate chunks, loaded only when used.
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  metafile: true,
  logLevel: 'warning',
  plugins: [workspaceFirst],
  // `import.meta.dirname` and friends keep their meaning: each output is an ES module file.
  banner: { js: '// Built by scripts/build.mjs from the TypeScript sources; do not edit.' },
});

const argValue = (flag) => {
  const i = process.argv.indexOf(flag);
  return i === -1 ? undefined : process.argv[i + 1];
};

const run = async () => {
  const entry = argValue('--entry');
  const outdir = argValue('--outdir');
  if (entry !== undefined || outdir !== undefined) {
    const [name, file] = entry?.split('=') ?? [];
    if (!name || !file || !outdir) throw new Error('usage: node scripts/build.mjs --entry <name>=<file.ts> --outdir <dir>');
    const out = path.resolve(outdir);
    await rm(out, { recursive: true, force: true });
    await build(options({ [name]: file }, out));
    return;
  }
  if (process.argv.includes('--if-needed') && !(await needsBuild())) return;
  const started = Date.now();
  await rm(dist, { recursive: true, force: true });
  const result = await build(options(Object.fromEntries(Object.entries(ENTRIES)), dist));
  // The Redis scripts are read at run time (shared/redis/scripts.ts finds them at dist/lua).
  await cp(path.join(root, 'shared/lua'), path.join(dist, 'lua'), { recursive: true });
  await writeFile(metaFile, JSON.stringify({ inputs: result.metafile.inputs }));
  process.stderr.write(`signspool: built dist/ in ${Date.now() - started} ms\n`);
};

await run();
