/** The spool (unit, real file system): sharded layout, and file reuse (retired uploads become the next tmp files). */
import { mkdir, mkdtemp, readdir, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '@signspool/shared/logger';
import type { OperationStore } from '@signspool/shared/operations/store';
import { shardOf, Spool } from '@signspool/shared/spool/spool';
import { listOperationIds, newestMtime } from '@signspool/shared/spool/scan';
import { Janitor } from '@signspool/worker/janitor';
import { OWNER_STALE_MS, ownerOf } from '@signspool/shared/spool/tmp-owners';

let root: string;
let spool: Spool;
beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'spool-'));
  spool = new Spool(root);
  await spool.init();
});
afterEach(async () => {
  await spool.close();
  await rm(root, { recursive: true, force: true });
});

/** tmp/ without the processes' heartbeats. */
const tmpFiles = async (): Promise<string[]> => (await readdir(spool.tmpRoot)).filter((n) => !n.startsWith('owner-'));

describe('Spool.syncDir', () => {
  it('keeps one descriptor per directory, does not keep a failed open, and reopens after close', async () => {
    const dir = spool.signedDir('op_1');
    await expect(spool.syncDir(dir)).rejects.toThrow(/ENOENT/);
    await spool.ensureDir(dir);
    const fds = async () => (await readdir('/proc/self/fd')).length;
    const before = await fds();
    await Promise.all([spool.syncDir(dir), spool.syncDir(dir), spool.syncDir(dir)]);
    expect(await fds()).toBe(before + 1);
    await spool.close();
    await spool.close();
    expect(await fds()).toBe(before);
    await spool.syncDir(dir);
    expect(await fds()).toBe(before + 1);
  });
});

describe('Spool.retire / takeTmp', () => {
  it('moves a retired file into tmp/, keeps its blocks, and hands its inode out to be overwritten', async () => {
    const incoming = spool.incomingPath('op_1', 'doc_1');
    await mkdir(path.dirname(incoming), { recursive: true });
    await writeFile(incoming, Buffer.alloc(200_000, 1));
    const ino = (await stat(incoming)).ino;
    await spool.retire(incoming, 200_000);
    await expect(stat(incoming)).rejects.toThrow(/ENOENT/);
    const spares = await tmpFiles();
    expect(spares).toHaveLength(1);
    expect((await stat(path.join(spool.tmpRoot, spares[0] ?? ''))).size).toBe(200_000);

    const tmp = await spool.takeTmp('signed');
    expect(tmp.flags).toBe('overwrite');
    expect((await stat(tmp.path)).ino).toBe(ino);
    // The next one is fresh: nothing left to reuse.
    const fresh = await spool.takeTmp('signed');
    expect(fresh.flags).toBe('wx');
    expect(path.dirname(fresh.path)).toBe(spool.tmpRoot);

    // writeAtomic through a spare: the content is the new one, the old bytes are gone.
    const again = spool.incomingPath('op_1', 'doc_2');
    await writeFile(again, 'old bytes, longer than the new ones');
    await spool.retire(again, 35);
    const dest = spool.signedPath('op_1', 'doc_2');
    const written = await spool.writeAtomic(dest, Readable.from([Buffer.from('new')]));
    expect(written.size).toBe(3);
    expect((await stat(dest)).size).toBe(3);
    // Only the spare taken above (and not written) is left in tmp/.
    expect(await tmpFiles()).toEqual([path.basename(tmp.path)]);
  });

  it('does not reuse spares older than ten minutes (a janitor may be removing them)', async () => {
    const t0 = Date.now();
    const retireAt = async (name: string, at: number): Promise<void> => {
      vi.setSystemTime(at);
      const p = path.join(spool.incomingRoot, name);
      await writeFile(p, 'x');
      await spool.retire(p, 1);
    };
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      await retireAt('old1', t0);
      await retireAt('old2', t0);
      await retireAt('fresh', t0 + 11 * 60_000);
      vi.setSystemTime(t0 + 11 * 60_000 + 1000);
      const first = await spool.takeTmp();
      expect(first.flags).toBe('overwrite');
      expect((await spool.takeTmp()).flags).toBe('wx');
      expect(await tmpFiles()).toEqual([path.basename(first.path)]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('retiring a missing file is harmless, and dropSpares removes what is kept', async () => {
    await spool.retire(path.join(spool.incomingRoot, 'op_x', 'nope'), 0);
    for (let i = 0; i < 3; i++) {
      const p = path.join(spool.incomingRoot, `f${i}`);
      await writeFile(p, 'x');
      await spool.retire(p, 1);
    }
    expect(await tmpFiles()).toHaveLength(3);
    await spool.spares.drop();
    expect(await tmpFiles()).toEqual([]);
    expect((await spool.takeTmp()).flags).toBe('wx');
  });
});

describe('Spool spares: blocks kept within a bound, and safe from the janitor', () => {
  it('keeps the blocks of small spares up to 256 MiB in all; a larger file, or one past the bound, keeps only its inode', async () => {
    /** Retires a (sparse) file of `size` bytes; returns the size its spare keeps. */
    const retireSized = async (name: string, size: number): Promise<number> => {
      const p = path.join(spool.incomingRoot, name);
      await writeFile(p, '');
      await truncate(p, size);
      const before = new Set(await readdir(spool.tmpRoot));
      await spool.retire(p, size);
      const [spare, ...more] = (await readdir(spool.tmpRoot)).filter((f) => !before.has(f));
      expect(more).toEqual([]);
      return (await stat(path.join(spool.tmpRoot, spare ?? ''))).size;
    };
    expect(await retireSized('big', 17 * 1024 * 1024)).toBe(0);
    // Sixteen spares of 16 MiB fill the 256 MiB; the seventeenth keeps only its inode.
    for (let i = 0; i < 16; i++) expect(await retireSized(`m${i}`, 16 * 1024 * 1024)).toBe(16 * 1024 * 1024);
    expect(await retireSized('over', 16 * 1024 * 1024)).toBe(0);
    // Taking spares gives their bytes back to the bound.
    for (let i = 0; i < 18; i++) expect((await spool.takeTmp()).flags).toBe('overwrite');
    expect(await retireSized('again', 16 * 1024 * 1024)).toBe(16 * 1024 * 1024);
  });

  it('the janitor leaves a spare alone while it is young even when its mtime is old, and removes it when old', async () => {
    const p = path.join(spool.incomingRoot, 'uploaded-long-ago');
    await writeFile(p, 'x');
    const longAgo = new Date(Date.now() - 5 * 3600_000);
    await utimes(p, longAgo, longAgo);
    await spool.retire(p, 1);
    const store = {
      existing: () => Promise.resolve(new Set<string>()),
      pruneIndexes: () => Promise.resolve(0),
      retentionMs: 1000,
    } as unknown as OperationStore;
    const janitor = new Janitor({ spool, store, logger: createLogger({ level: 'silent' }), intervalMs: 60_000, orphanGraceMs: 60_000 });
    expect((await janitor.sweep()).removedTmpFiles).toBe(0);
    expect(await tmpFiles()).toHaveLength(1);
    // Two hours on, this process still alive (its heartbeat touched): the spare goes by its age.
    const later = Date.now() + 2 * 3600_000;
    const beat = path.join(spool.tmpRoot, (await readdir(spool.tmpRoot)).find((n) => n.startsWith('owner-')) ?? '?');
    await utimes(beat, new Date(later), new Date(later));
    expect((await janitor.sweep(later)).removedTmpFiles).toBe(1);
    expect(await tmpFiles()).toEqual([]);
  });
});

describe('tmp/ files of a dead process', () => {
  const store = { existing: () => Promise.resolve(new Set<string>()), pruneIndexes: () => Promise.resolve(0), retentionMs: 1000 } as unknown as OperationStore;
  const janitor = () => new Janitor({ spool, store, logger: createLogger({ level: 'silent' }), intervalMs: 60_000, orphanGraceMs: 3600_000 });
  /** Sets a file's mtime to `at` (its ctime stays now: the sweep runs at a later `now` instead of ageing files). */
  const touch = async (p: string, at: number) => utimes(p, new Date(at), new Date(at));
  const beatOf = (p: string) => path.join(spool.tmpRoot, `owner-${ownerOf(path.basename(p)) ?? '?'}`);

  it('are removed once its heartbeat is stale; a live process keeps its own, and an untagged partial write keeps the hour rule', async () => {
    // What a killed process on the same spool leaves: its heartbeat and a partial write, no longer changing.
    const deadBeat = path.join(spool.tmpRoot, 'owner-00112233445566ff');
    const deadWrite = path.join(spool.tmpRoot, 'signed-00112233445566ff-0b7c6a52-2f0e-4a55-9d9a-6c1d2f3e4a5b');
    const untagged = path.join(spool.tmpRoot, 'part-0b7c6a52-2f0e-4a55-9d9a-6c1d2f3e4a5b');
    const liveWrite = spool.tmpPath('signed');
    for (const p of [deadBeat, deadWrite, untagged, liveWrite]) await writeFile(p, 'x');
    // Later: this process's heartbeat and write went on changing; the dead one's did not.
    const later = Date.now() + OWNER_STALE_MS + 1000;
    for (const p of [beatOf(liveWrite), liveWrite]) await touch(p, later);
    expect((await janitor().sweep(later)).removedTmpFiles).toBe(2);
    expect((await readdir(spool.tmpRoot)).sort()).toEqual([beatOf(liveWrite), liveWrite, untagged].map((p) => path.basename(p)).sort());
    // A graceful stop removes the heartbeat: what the process left goes by the same rule, once unchanged as long.
    await spool.close();
    expect((await janitor().sweep(later)).removedTmpFiles).toBe(0);
    expect((await janitor().sweep(later + OWNER_STALE_MS)).removedTmpFiles).toBe(1);
    expect(await readdir(spool.tmpRoot)).toEqual([path.basename(untagged)]);
  });
});

describe('Spool layout', () => {
  it('keeps an operation in one of 64 shard directories and removes only its own files', async () => {
    expect(new Set(Array.from({ length: 2000 }, (_, i) => shardOf(`op_${i}`))).size).toBe(64);
    // Two operations that share a shard.
    const a = 'op_a';
    const b = Array.from({ length: 1000 }, (_, i) => `op_b${i}`).find((id) => shardOf(id) === shardOf(a)) ?? '';
    expect(spool.incomingDir(b)).toBe(spool.incomingDir(a));
    expect(path.relative(root, spool.signedPath(a, 'doc_1'))).toBe(path.join('signed', shardOf(a), 'op_a.doc_1'));
    for (const op of [a, b]) {
      await spool.ensureDir(spool.incomingDir(op));
      await spool.ensureDir(spool.signedDir(op));
      await writeFile(spool.incomingPath(op, 'doc_1'), 'in');
      await writeFile(spool.signedPath(op, 'doc_1'), 'out');
    }
    expect([...(await listOperationIds(spool))].sort()).toEqual([a, b].sort());
    expect(await newestMtime(spool, a)).toBeGreaterThan(0);
    await spool.removeOperation(a, ['incoming']);
    expect(await spool.exists(spool.incomingPath(a, 'doc_1'))).toBe(false);
    expect(await spool.exists(spool.signedPath(a, 'doc_1'))).toBe(true);
    await spool.removeOperation(a);
    expect(await spool.exists(spool.signedPath(a, 'doc_1'))).toBe(false);
    expect(await spool.exists(spool.incomingPath(b, 'doc_1'))).toBe(true);
    expect(await spool.exists(spool.signedPath(b, 'doc_1'))).toBe(true);
    expect([...(await listOperationIds(spool))]).toEqual([b]);
    expect(await newestMtime(spool, a)).toBe(0);
  });
});
