/**
 * Spare files: an upload that is no longer needed (its document was signed) is not deleted but
 * moved to tmp/ and handed out for the next write, which overwrites it in place (WriteMode
 * 'overwrite'). Creating a file, or writing into a truncated one, costs far more CPU than
 * overwriting one (docs/design.md, "The spool"), so a worker that retires one document and writes one
 * result per document creates no file and allocates no block in steady state. The rename makes a
 * spare's ctime recent; a spare left by a dead process is removed by the janitor.
 */
import { renameSync, truncateSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { WriteMode } from './file-io.js';

/** Spent files a process keeps. */
const MAX_SPARES = 1024;
/** Bytes spares may keep allocated; past this, or for a file over MAX_KEPT_SPARE_BYTES, a spare keeps only its inode. */
const MAX_SPARE_BYTES = 256 * 1024 * 1024;
const MAX_KEPT_SPARE_BYTES = 16 * 1024 * 1024;
/** A spare older than this is removed, not reused (the janitor removes older ones of dead processes). */
export const SPARE_MAX_AGE_MS = 10 * 60 * 1000;

interface Spare {
  path: string;
  at: number;
  bytes: number;
}

export class SpareFiles {
  private readonly spares: Spare[] = [];
  private spareBytes = 0;

  /** `sparePath()` names a new spare under tmp/; `freshPath(label)` a new file when no spare is left. */
  constructor(
    private readonly sparePath: () => string,
    private readonly freshPath: (label: string) => string,
  ) {}

  /** Keeps `p` (of `size` bytes) as a spare, or removes it when enough are kept. */
  async retire(p: string, size: number): Promise<void> {
    if (this.spares.length >= MAX_SPARES) return rm(p, { force: true });
    const spare = this.sparePath();
    // Rename (and truncate) on the calling thread: page-cache work (shared/spool/file-io.ts).
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

  /** A path for a new write and how to open it: the newest spare (its pages likeliest cached), else a fresh file. */
  async take(label: string): Promise<{ path: string; flags: WriteMode }> {
    // Stale spares (an idle worker) go: no janitor may be removing a file while it is rewritten.
    const now = Date.now();
    const fresh = this.spares.findIndex((s) => now - s.at <= SPARE_MAX_AGE_MS);
    const gone = this.spares.splice(0, fresh === -1 ? this.spares.length : fresh);
    await Promise.all(gone.map((s) => this.remove(s)));
    const spare = this.spares.pop();
    if (!spare) return { path: this.freshPath(label), flags: 'wx' };
    this.spareBytes -= spare.bytes;
    return { path: spare.path, flags: 'overwrite' };
  }

  private remove(s: Spare): Promise<void> {
    this.spareBytes -= s.bytes;
    return rm(s.path, { force: true });
  }

  /** Removes every spare (at shutdown). Idempotent. */
  async drop(): Promise<void> {
    const spares = this.spares.splice(0);
    await Promise.all(spares.map((s) => this.remove(s)));
  }
}
