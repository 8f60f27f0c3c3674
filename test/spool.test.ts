/** The spool (unit, real file system): sharded layout, and file reuse (retired uploads become the next tmp files). */
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { shardOf, Spool } from '@signspool/shared/spool';

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

  it('moves a retired file into tmp/, empties it, and hands its inode out for the next write', async () => {
    const incoming = spool.incomingPath('op_1', 'doc_1');
    await mkdir(path.dirname(incoming), { recursive: true });
    await writeFile(incoming, Buffer.alloc(200_000, 1));
    const ino = (await stat(incoming)).ino;
    await spool.retire(incoming);
    await expect(stat(incoming)).rejects.toThrow(/ENOENT/);
    const spares = await readdir(spool.tmpRoot);
    expect(spares).toHaveLength(1);
    expect((await stat(path.join(spool.tmpRoot, spares[0] ?? ''))).size).toBe(0);

    const tmp = await spool.takeTmp('signed');
    expect(tmp.flags).toBe('w');
    expect((await stat(tmp.path)).ino).toBe(ino);
    // The next one is fresh: nothing left to reuse.
    const fresh = await spool.takeTmp('signed');
    expect(fresh.flags).toBe('wx');
    expect(path.dirname(fresh.path)).toBe(spool.tmpRoot);

    // writeAtomic through a spare: the content is the new one, the old bytes are gone.
    const again = spool.incomingPath('op_1', 'doc_2');
    await writeFile(again, 'old bytes, longer than the new ones');
    await spool.retire(again);
    const dest = spool.signedPath('op_1', 'doc_2');
    const written = await spool.writeAtomic(dest, Readable.from([Buffer.from('new')]));
    expect(written.size).toBe(3);
    expect((await stat(dest)).size).toBe(3);
    // Only the spare taken above (and not written) is left in tmp/.
    expect(await readdir(spool.tmpRoot)).toEqual([path.basename(tmp.path)]);
  });

  it('does not reuse spares older than ten minutes (a janitor may be removing them)', async () => {
    const t0 = Date.now();
    const retireAt = async (name: string, at: number): Promise<void> => {
      vi.setSystemTime(at);
      const p = path.join(spool.incomingRoot, name);
      await writeFile(p, 'x');
      await spool.retire(p);
    };
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      await retireAt('old1', t0);
      await retireAt('old2', t0);
      await retireAt('fresh', t0 + 11 * 60_000);
      vi.setSystemTime(t0 + 11 * 60_000 + 1000);
      const first = await spool.takeTmp();
      expect(first.flags).toBe('w');
      expect((await spool.takeTmp()).flags).toBe('wx');
      expect(await readdir(spool.tmpRoot)).toEqual([path.basename(first.path)]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('retiring a missing file is harmless, and dropSpares removes what is kept', async () => {
    await spool.retire(path.join(spool.incomingRoot, 'op_x', 'nope'));
    for (let i = 0; i < 3; i++) {
      const p = path.join(spool.incomingRoot, `f${i}`);
      await writeFile(p, 'x');
      await spool.retire(p);
    }
    expect(await readdir(spool.tmpRoot)).toHaveLength(3);
    await spool.dropSpares();
    expect(await readdir(spool.tmpRoot)).toEqual([]);
    expect((await spool.takeTmp()).flags).toBe('wx');
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
    expect([...(await spool.listOperationIds())].sort()).toEqual([a, b].sort());
    expect(await spool.newestMtime(a)).toBeGreaterThan(0);
    await spool.removeOperation(a, ['incoming']);
    expect(await spool.exists(spool.incomingPath(a, 'doc_1'))).toBe(false);
    expect(await spool.exists(spool.signedPath(a, 'doc_1'))).toBe(true);
    await spool.removeOperation(a);
    expect(await spool.exists(spool.signedPath(a, 'doc_1'))).toBe(false);
    expect(await spool.exists(spool.incomingPath(b, 'doc_1'))).toBe(true);
    expect(await spool.exists(spool.signedPath(b, 'doc_1'))).toBe(true);
    expect([...(await spool.listOperationIds())]).toEqual([b]);
    expect(await spool.newestMtime(a)).toBe(0);
  });
});
