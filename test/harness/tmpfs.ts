/**
 * A small tmpfs for tests that need a spool that really fills up (ENOSPC at a known size). Mounting
 * needs root; where it fails, `mounted` is false and the suite skips itself.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export interface Tmpfs {
  dir: string;
  mounted: boolean;
  /** Unmounts and removes the directory; idempotent. */
  remove(): Promise<void>;
}

/** A tmpfs of `size` (mount's notation: `4m`) on a new temporary directory named after `name`. */
export const mountTmpfs = async (name: string, size: string): Promise<Tmpfs> => {
  const dir = await mkdtemp(path.join(os.tmpdir(), `signspool-${name}-`));
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]).status === 0;
  const remove = async (): Promise<void> => {
    if (mounted) spawnSync('umount', [dir]);
    await rm(dir, { recursive: true, force: true });
  };
  if (!mounted) await remove();
  return { dir, mounted, remove };
};
