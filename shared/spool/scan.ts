/**
 * Scans of the spool's directories: an operation's files, the operations that have files (for the
 * janitor), their newest mtime, and the bytes in use (for metrics). Each is a directory walk, run
 * rarely; nothing on the document path scans.
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { opIdOfFile } from './layout.js';
import type { Spool } from './spool.js';

/** Files of an operation in incoming/ and/or signed/. */
export const filesOf = async (spool: Spool, opId: string, where: readonly ('incoming' | 'signed')[]): Promise<string[]> => {
  const dirs = where.map((w) => (w === 'incoming' ? spool.incomingDir(opId) : spool.signedDir(opId)));
  const found: string[] = [];
  for (const dir of dirs) {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const n of names) if (opIdOfFile(n) === opId) found.push(path.join(dir, n));
  }
  return found;
};

/** Ids of the operations that have files under incoming/ or signed/. */
export const listOperationIds = async (spool: Spool): Promise<Set<string>> => {
  const ids = new Set<string>();
  for (const root of [spool.incomingRoot, spool.signedRoot]) {
    for (const shard of await readdir(root).catch(() => [] as string[])) {
      for (const name of await readdir(path.join(root, shard)).catch(() => [] as string[])) {
        const opId = opIdOfFile(name);
        if (opId) ids.add(opId);
      }
    }
  }
  return ids;
};

/** The newest mtime among an operation's files (0 when it has none). */
export const newestMtime = async (spool: Spool, opId: string): Promise<number> => {
  let newest = 0;
  for (const f of await filesOf(spool, opId, ['incoming', 'signed'])) {
    const st = await stat(f).catch(() => undefined);
    if (st) newest = Math.max(newest, st.mtimeMs);
  }
  return newest;
};

/** Bytes of files under a directory tree. */
export const treeBytes = async (root: string): Promise<number> => {
  let bytes = 0;
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else bytes += (await stat(p).catch(() => ({ size: 0 }))).size;
    }
  };
  await walk(root);
  return bytes;
};
