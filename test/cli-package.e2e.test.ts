/**
 * The standalone `signspool` command: `npm run pack:cli` makes signspool-<version>.tgz, and
 * `npm install -g` of it into a clean prefix, offline (the bundle has no dependencies to fetch),
 * gives a working `signspool` that has nothing of the repository: it signs a sample document
 * against a running api + worker and verifies.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from './harness/stack.js';

const root = path.resolve(import.meta.dirname, '..');

describe('npm run pack:cli → npm install -g ./signspool-<version>.tgz', () => {
  let dir: string;
  let stack: Stack;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'signspool-pack-'));
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('installs a signspool with no dependencies on a clean prefix, offline, that signs', { timeout: 180_000 }, async () => {
    const packed = execFileSync('npm', ['run', '--silent', 'pack:cli', '--', '--out', dir], { cwd: root, encoding: 'utf8' }).trim().split('\n').at(-1) ?? '';
    const { version } = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as { version: string };
    expect(path.basename(packed)).toBe(`signspool-${version}.tgz`);

    const prefix = path.join(dir, 'prefix');
    // An empty cache and --offline: anything to download would fail the install.
    execFileSync('npm', ['install', '-g', packed, '--prefix', prefix, '--offline', '--cache', path.join(dir, 'cache'), '--no-audit', '--no-fund'], {
      cwd: dir,
      encoding: 'utf8',
    });
    const installed = path.join(prefix, 'lib', 'node_modules', 'signspool');
    expect((await readdir(installed)).sort()).toEqual(['README.md', 'bin', 'package.json']);
    const manifest = JSON.parse(await readFile(path.join(installed, 'package.json'), 'utf8')) as Record<string, unknown>;
    expect(manifest['dependencies']).toBeUndefined();

    const bin = path.join(prefix, 'bin', 'signspool');
    expect(execFileSync(bin, ['--version'], { cwd: dir, encoding: 'utf8' }).trim()).toBe(`signspool ${version}`);
    // Run from a folder outside the repository, with the sample document copied there.
    const work = path.join(dir, 'work');
    execFileSync('mkdir', ['-p', work]);
    execFileSync('cp', [path.join(root, 'examples', 'invoice.pdf'), work]);
    const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(
        bin,
        ['sign', 'invoice.pdf', '--type', 'PAdES', '--wait', '--out', '.'],
        { cwd: work, env: { ...process.env, SIGNSPOOL_URL: stack.apiUrl, SIGNSPOOL_API_KEY: stack.keys.acme } },
        (error, stdout, stderr) => resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      ),
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/invoice\.pdf {2}1\.4 KiB {2}signed → invoice\.signed\.pdf/);
    const pdfsig = execFileSync('pdfsig', ['-nocert', 'invoice.signed.pdf'], { cwd: work, encoding: 'utf8' });
    expect(pdfsig).toContain('Signature Validation: Signature is Valid.');
  });
});
