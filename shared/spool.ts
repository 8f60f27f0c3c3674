/**
 * The disk spool: where uploaded documents wait and signed results are kept until RETENTION.
 *
 *   <root>/incoming/<shard>/<opId>.<docId>   uploaded bytes, written by the api
 *   <root>/signed/<shard>/<opId>.<docId>.<batchId>   signed result, written by the batch that signed it
 *   <root>/tmp/                              partial writes (renamed into place once complete and
 *                                            fsynced) and spare files kept for reuse
 *
 * <shard> is one of 64 directories chosen by a hash of the operation id: an operation's files sit
 * together, no directory grows past 1/64 of the spool, and no directory is created per operation
 * (a directory costs an inode like a file, and making it durable needs its parent fsynced too).
 * Shard directories are made on first use and their parent fsynced then.
 *
 * Every file that becomes visible under incoming/ or signed/ is complete and durable: it was
 * written elsewhere (or under a name nobody reads yet), fsynced, renamed, and its directory fsynced.
 */
import { randomUUID } from 'node:crypto';
import { renameSync, truncateSync, type ReadStream } from 'node:fs';
import { mkdir, open, readdir, rm, stat, statfs, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { SpoolWriteStream, type WriteMode } from './page-cache-io.js';

const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** Spent files a process keeps for reuse (see `Spool.retire`). */
const MAX_SPARES = 1024;
/**
 * Bytes the spares of a process may keep allocated (a spare is overwritten in place, so its blocks
 * and cached pages are reused); past this, or for a file larger than MAX_KEPT_SPARE_BYTES, a spare
 * is truncated when retired and keeps only its inode.
 */
const MAX_SPARE_BYTES = 256 * 1024 * 1024;
const MAX_KEPT_SPARE_BYTES = 16 * 1024 * 1024;
/** A spare older than this is removed, not reused: far younger than the janitor's one-hour tmp limit. */
export const SPARE_MAX_AGE_MS = 10 * 60 * 1000;

const SHARDS = 64;

/** The shard directory name of an operation: FNV-1a of its id, modulo SHARDS, in hex. */
export const shardOf = (opId: string): string => {
  let h = 0x811c9dc5;
  for (let i = 0; i < opId.length; i++) h = Math.imul(h ^ opId.charCodeAt(i), 0x01000193);
  return ((h >>> 0) % SHARDS).toString(16).padStart(2, '0');
};

const fileNameOf = (opId: string, docId: string): string => `${assertSafeId(opId)}.${assertSafeId(docId)}`;

/** The operation id of a spool file name (`<opId>.<docId>` or `<opId>.<docId>.<tag>`), or undefined for anything else. */
const opIdOfFile = (name: string): string | undefined => {
  const [opId, docId, ...rest] = name.split('.');
  const tagOk = rest.length === 0 || (rest.length === 1 && ID_PATTERN.test(rest[0] ?? ''));
  return opId && docId && tagOk && ID_PATTERN.test(opId) && ID_PATTERN.test(docId) ? opId : undefined;
};

/** Ids end up in paths: only a strict alphabet is allowed, so no id can escape the spool. */
export const assertSafeId = (id: string): string => {
  if (!ID_PATTERN.test(id)) throw new Error(`unsafe spool id: ${JSON.stringify(id).slice(0, 80)}`);
  return id;
};

export const newId = (prefix: string): string => `${prefix}_${randomUUID().replaceAll('-', '')}`;

export interface WrittenFile {
  path: string;
  size: number;
  sha256: string;
}

export const fsyncPath = async (target: string): Promise<void> => {
  const fh = await open(target, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
};

export class Spool {
  readonly root: string;
  readonly incomingRoot: string;
  readonly signedRoot: string;
  readonly tmpRoot: string;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.incomingRoot = path.join(this.root, 'incoming');
    this.signedRoot = path.join(this.root, 'signed');
    this.tmpRoot = path.join(this.root, 'tmp');
  }

  async init(): Promise<void> {
    await Promise.all([this.incomingRoot, this.signedRoot, this.tmpRoot].map((dir) => mkdir(dir, { recursive: true })));
    await fsyncPath(this.root);
  }

  /** The directory that holds the operation's uploaded files (its shard of incoming/). */
  incomingDir(opId: string): string {
    return path.join(this.incomingRoot, shardOf(assertSafeId(opId)));
  }

  incomingPath(opId: string, docId: string): string {
    return path.join(this.incomingDir(opId), fileNameOf(opId, docId));
  }

  /** The directory that holds the operation's signed files (its shard of signed/). */
  signedDir(opId: string): string {
    return path.join(this.signedRoot, shardOf(assertSafeId(opId)));
  }

  /** A signed result: `tag` names the batch that wrote it (absent on results written before tags existed). */
  signedPath(opId: string, docId: string, tag?: string): string {
    return path.join(this.signedDir(opId), tag === undefined ? fileNameOf(opId, docId) : `${fileNameOf(opId, docId)}.${assertSafeId(tag)}`);
  }

  private readonly readyDirs = new Set<string>();
  /** Descriptors of the shard directories, kept open for their fsyncs (at most 128 per process). */
  private readonly dirHandles = new Map<string, Promise<FileHandle>>();

  /**
   * fsyncs a directory (after a file was created or renamed in it) through a descriptor kept open:
   * an open and a close less per document than `fsyncPath` (bench: 40 instead of 100 µs of CPU).
   */
  async syncDir(dir: string): Promise<void> {
    let handle = this.dirHandles.get(dir);
    if (!handle) {
      handle = open(dir, 'r');
      this.dirHandles.set(dir, handle);
      const opened = handle;
      opened.catch(() => {
        if (this.dirHandles.get(dir) === opened) this.dirHandles.delete(dir);
      });
    }
    await (await handle).sync();
  }

  /**
   * Releases what this process holds in the spool (at shutdown): removes its spares and closes the
   * directory descriptors (a later `syncDir` opens them again). Idempotent.
   */
  async close(): Promise<void> {
    const handles = [...this.dirHandles.values()];
    this.dirHandles.clear();
    await Promise.all([this.dropSpares(), ...handles.map((h) => h.then((fh) => fh.close()).catch(() => undefined))]);
  }

  /** Makes sure a shard directory exists and is durable (once per process and directory). */
  async ensureDir(dir: string): Promise<void> {
    if (this.readyDirs.has(dir)) return;
    await mkdir(dir, { recursive: true });
    await fsyncPath(path.dirname(dir));
    this.readyDirs.add(dir);
  }

  /** A fresh path under tmp/ for a partial write; rename it into place with `commit`. */
  tmpPath(label = 'part'): string {
    return path.join(this.tmpRoot, `${label}-${randomUUID()}`);
  }

  private readonly spares: { path: string; at: number; bytes: number }[] = [];
  private spareBytes = 0;

  /**
   * Disposes of a file that is no longer needed (an uploaded document once signed) but keeps its
   * inode, and its blocks and cached pages while the spares hold less than MAX_SPARE_BYTES: the
   * file is moved to tmp/ and `takeTmp` hands it out for the next write, which overwrites it in
   * place (`WriteMode` 'overwrite'). Creating a file, or writing into a truncated one, costs far
   * more CPU than overwriting one (`npm run bench:fs`; on a journal-less ext4 a creation also scans
   * past every recently deleted inode), so a worker that retires one document and writes one signed
   * result per document creates no file and allocates no block in steady state. The rename makes
   * the spare's ctime recent (the janitor judges tmp/ files by their newest of mtime and ctime); a
   * spare left behind by a dead process is an ordinary old tmp file, which the janitor removes.
   */
  async retire(p: string, size: number): Promise<void> {
    if (this.spares.length >= MAX_SPARES) return rm(p, { force: true });
    const spare = this.tmpPath('spare');
    // Rename (and truncate) on the calling thread: page-cache work (shared/page-cache-io.ts).
    try {
      renameSync(p, spare);
    } catch {
      return rm(p, { force: true });
    }
    let bytes = size;
    try {
      if (size > MAX_KEPT_SPARE_BYTES || this.spareBytes + size > MAX_SPARE_BYTES) {
        truncateSync(spare, 0);
        bytes = 0;
      }
    } catch {
      return rm(spare, { force: true });
    }
    this.spares.push({ path: spare, at: Date.now(), bytes });
    this.spareBytes += bytes;
  }

  /** A tmp path for a new write and how to open it: a spare file to overwrite when there is one. */
  async takeTmp(label = 'part'): Promise<{ path: string; flags: WriteMode }> {
    // Stale spares (an idle worker) go: no janitor may be removing a file while it is rewritten.
    const now = Date.now();
    const stale = this.spares.findIndex((s) => now - s.at <= SPARE_MAX_AGE_MS);
    const gone = this.spares.splice(0, stale === -1 ? this.spares.length : stale);
    await Promise.all(gone.map((s) => this.removeSpare(s)));
    // The newest spare: its pages are the likeliest to be cached still.
    const spare = this.spares.pop();
    if (!spare) return { path: this.tmpPath(label), flags: 'wx' };
    this.spareBytes -= spare.bytes;
    return { path: spare.path, flags: 'overwrite' };
  }

  private removeSpare(s: { path: string; bytes: number }): Promise<void> {
    this.spareBytes -= s.bytes;
    return rm(s.path, { force: true });
  }

  /** Removes the spares this process holds (at shutdown). */
  async dropSpares(): Promise<void> {
    const spares = this.spares.splice(0);
    await Promise.all(spares.map((s) => this.removeSpare(s)));
  }

  /** True when `p` is a path this spool owns (job payloads are re-checked against this). */
  contains(p: string): boolean {
    const rel = path.relative(this.root, path.resolve(p));
    return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
  }

  /** Streams `source` into `dest` (atomically: tmp file, fsync, rename, fsync dir); returns size and sha256. */
  async writeAtomic(dest: string, source: NodeJS.ReadableStream | AsyncIterable<Buffer>): Promise<WrittenFile> {
    const { path: tmp, flags } = await this.takeTmp('w');
    // The stream hashes what it writes and fsyncs the file before closing it.
    const out = new SpoolWriteStream(tmp, flags, { sha256: true });
    try {
      await pipeline(source, out);
      await this.commit(tmp, dest, { synced: true });
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    return { path: dest, size: out.bytes, sha256: out.digest() };
  }

  /** fsyncs `tmp` (unless the writer already did: `synced`), renames it to `dest` and fsyncs the destination directory. */
  async commit(tmp: string, dest: string, opts: { synced?: boolean } = {}): Promise<void> {
    if (!opts.synced) await fsyncPath(tmp);
    await this.ensureDir(path.dirname(dest));
    renameSync(tmp, dest);
    await this.syncDir(path.dirname(dest));
  }

  /** Opens a file for streaming, or undefined when it does not exist. */
  async openResult(p: string): Promise<ReadStream | undefined> {
    try {
      const fh = await open(p, 'r');
      return fh.createReadStream();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async exists(p: string): Promise<boolean> {
    try {
      await stat(p);
      return true;
    } catch {
      return false;
    }
  }

  /** Files of an operation in incoming/ and/or signed/ (names only). */
  private async filesOf(opId: string, where: readonly ('incoming' | 'signed')[]): Promise<string[]> {
    const dirs = where.map((w) => (w === 'incoming' ? this.incomingDir(opId) : this.signedDir(opId)));
    const found: string[] = [];
    for (const dir of dirs) {
      const names = await readdir(dir).catch(() => [] as string[]);
      for (const n of names) if (opIdOfFile(n) === opId) found.push(path.join(dir, n));
    }
    return found;
  }

  /** Removes an operation's files: uploads and signed results, or only `where`. */
  async removeOperation(opId: string, where: readonly ('incoming' | 'signed')[] = ['incoming', 'signed']): Promise<void> {
    await Promise.all((await this.filesOf(opId, where)).map((f) => rm(f, { force: true })));
  }

  /** Ids of the operations that have files under incoming/ or signed/. */
  async listOperationIds(): Promise<Set<string>> {
    const ids = new Set<string>();
    for (const root of [this.incomingRoot, this.signedRoot]) {
      for (const shard of await readdir(root).catch(() => [] as string[])) {
        for (const name of await readdir(path.join(root, shard)).catch(() => [] as string[])) {
          const opId = opIdOfFile(name);
          if (opId) ids.add(opId);
        }
      }
    }
    return ids;
  }

  /** The newest mtime among an operation's files (0 when it has none). */
  async newestMtime(opId: string): Promise<number> {
    let newest = 0;
    for (const f of await this.filesOf(opId, ['incoming', 'signed'])) {
      const st = await stat(f).catch(() => undefined);
      if (st) newest = Math.max(newest, st.mtimeMs);
    }
    return newest;
  }

  /** Bytes of files under the spool, recomputed at most every `maxAgeMs` (a walk of the tree). */
  async usedBytes(maxAgeMs = 30_000): Promise<number> {
    if (this.usage && Date.now() - this.usage.at < maxAgeMs) return this.usage.bytes;
    let bytes = 0;
    const walk = async (dir: string): Promise<void> => {
      const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const e of entries) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else bytes += (await stat(p).catch(() => ({ size: 0 }))).size;
      }
    };
    await walk(this.root);
    this.usage = { at: Date.now(), bytes };
    return bytes;
  }

  private usage: { at: number; bytes: number } | undefined;

  private free: { at: number; bytes: number } | undefined;

  /** Free bytes on the spool's file system, read anew when the last reading is older than `maxAgeMs`. */
  async freeBytes(maxAgeMs = 0): Promise<number> {
    const now = Date.now();
    if (!this.free || now - this.free.at > maxAgeMs) {
      const st = await statfs(this.root);
      this.free = { at: now, bytes: st.bavail * st.bsize };
    }
    return this.free.bytes;
  }
}
