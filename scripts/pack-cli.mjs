#!/usr/bin/env node
/**
 * `npm run pack:cli`: the `signspool` command as a package of its own, installable anywhere with
 * `npm install -g ./signspool-<version>.tgz`. esbuild bundles cli/main.ts with everything it
 * imports (undici and the workspace code included) into one file, so the package has no
 * dependencies: installing it needs no registry (it works offline). The service is not in it.
 *
 *   node scripts/pack-cli.mjs [--out <dir>]   writes <dir>/signspool-<version>.tgz (default: the current directory)
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

const root = path.resolve(import.meta.dirname, '..');
const { values } = parseArgs({ options: { out: { type: 'string', default: '.' } } });
const out = path.resolve(values.out);
const rootPackage = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8'));

const stage = await mkdtemp(path.join(os.tmpdir(), 'signspool-cli-'));
try {
  await mkdir(path.join(stage, 'bin'));
  await build({
    absWorkingDir: root,
    entryPoints: ['cli/main.ts'],
    outfile: path.join(stage, 'bin', 'signspool.mjs'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    minify: false,
    legalComments: 'inline',
    logLevel: 'warning',
    // undici is CommonJS: give the bundle a require() for the built-ins it asks for.
    banner: {
      js: "#!/usr/bin/env node\n// The signspool command, bundled by scripts/pack-cli.mjs.\nimport { createRequire as __signspoolRequire } from 'node:module';\nconst require = __signspoolRequire(import.meta.url);",
    },
  });
  const manifest = {
    name: 'signspool',
    version: rootPackage.version,
    description: 'The signspool command: submit documents to a signspool service, wait, download the signed results',
    license: rootPackage.license,
    type: 'module',
    bin: { signspool: 'bin/signspool.mjs' },
    engines: rootPackage.engines,
  };
  await writeFile(path.join(stage, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  await writeFile(
    path.join(stage, 'README.md'),
    '# signspool (command)\n\nThe `signspool` command of the signspool service, alone. `signspool --help` lists its commands;\nset `SIGNSPOOL_URL` and `SIGNSPOOL_API_KEY`. Built from the repository with `npm run pack:cli`.\n',
  );
  await mkdir(out, { recursive: true });
  const file = execFileSync('npm', ['pack', '--silent', '--pack-destination', out], { cwd: stage, encoding: 'utf8' }).trim().split('\n').at(-1);
  process.stdout.write(`${path.join(out, file ?? '')}\n`);
} finally {
  await rm(stage, { recursive: true, force: true });
}
