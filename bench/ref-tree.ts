/**
 * A git ref checked out beside the working tree, for the paired benchmarks (bench:compare,
 * bench:api:pair): a temporary git worktree whose node_modules are a hard-link copy of this tree's
 * when the lockfiles match (npm ci there otherwise), removed again by `remove`.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { root } from './stack.js';

const run = promisify(execFile);

const git = async (...args: string[]): Promise<string> => (await run('git', args, { cwd: root, maxBuffer: 64 << 20 })).stdout;

/** Runs a command with its output shown, prefixed; rejects on a non-zero exit. */
export const shown = (cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, prefix: string): Promise<void> =>
  new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const relay = (to: NodeJS.WriteStream) => (d: Buffer) => {
      for (const line of d.toString().split('\n')) if (line.trim()) to.write(`${prefix} ${line}\n`);
    };
    child.stdout.on('data', relay(process.stdout));
    child.stderr.on('data', relay(process.stderr));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} in ${cwd} exited ${code}`))));
  });

/** node_modules for the ref's worktree: hard links of this tree's when the lockfiles match, npm ci otherwise. */
const installInto = async (tree: string, sha: string): Promise<string> => {
  const refLock = await git('show', `${sha}:package-lock.json`);
  const ourLock = await readFile(path.join(root, 'package-lock.json'), 'utf8');
  if (refLock !== ourLock) {
    await shown('npm', ['ci', '--no-audit', '--no-fund'], tree, process.env, '[npm ci]');
    return 'npm ci (lockfiles differ)';
  }
  // Every node_modules of the workspaces; workspace links inside them are relative, so they point into the copy.
  const dirs = ['.', 'shared', 'api', 'worker', 'test'];
  for (const d of dirs) {
    const from = path.join(root, d, 'node_modules');
    if (!(await stat(from).catch(() => null))) continue;
    await run('cp', ['-al', from, path.join(tree, d, 'node_modules')]);
  }
  return 'node_modules hard-linked (lockfiles match)';
};

export interface RefTree {
  tree: string;
  sha: string;
  /** How its node_modules came. */
  how: string;
  remove(): Promise<void>;
}

/** Checks `ref` out in a temporary worktree; removed by `remove`, and on SIGINT / SIGTERM (exit 130). */
export const checkoutRef = async (ref: string): Promise<RefTree> => {
  const sha = (await git('rev-parse', '--verify', `${ref}^{commit}`)).trim();
  const tree = await mkdtemp(path.join(os.tmpdir(), 'signspool-compare-'));
  const removeTree = async (): Promise<void> => {
    await git('worktree', 'remove', '--force', tree).catch(() => undefined);
    await rm(tree, { recursive: true, force: true });
    await git('worktree', 'prune').catch(() => undefined);
  };
  const onSignal = (): void => void removeTree().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const remove = async (): Promise<void> => {
    await removeTree();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
  try {
    await git('worktree', 'add', '--detach', tree, sha);
    return { tree, sha, how: await installInto(tree, sha), remove };
  } catch (err) {
    await remove();
    throw err;
  }
};
