/**
 * Keeps the spool consistent with Redis: removes operation directories that have no record any
 * more (expired after RETENTION, or left by an upload that died before it was accepted) once they
 * are older than ORPHAN_GRACE, and under tmp/ the files of dead processes (their heartbeat went
 * stale) and stale partial writes.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '@signspool/shared/logger';
import type { OperationStore } from '@signspool/shared/operations/store';
import { SPARE_MAX_AGE_MS, type Spool } from '@signspool/shared/spool/spool';
import { listOperationIds, newestMtime } from '@signspool/shared/spool/scan';
import { heartbeatOf, OWNER_STALE_MS, ownerOf } from '@signspool/shared/spool/tmp-owners';

export interface JanitorOptions {
  spool: Spool;
  store: OperationStore;
  logger: Logger;
  intervalMs: number;
  orphanGraceMs: number;
}

export interface SweepResult {
  removedOperations: string[];
  removedTmpFiles: number;
}

/** How long a tmp/ file may stay unchanged before the janitor removes it. */
const tmpLimit = (name: string, alive: Set<string>, orphanGraceMs: number): number => {
  const owner = ownerOf(name) ?? heartbeatOf(name);
  if (owner !== undefined && !alive.has(owner)) return OWNER_STALE_MS;
  if (heartbeatOf(name) !== undefined) return Infinity;
  if (name.startsWith('spare-')) return SPARE_MAX_AGE_MS + 5 * 60 * 1000;
  return Math.max(orphanGraceMs, 60 * 60 * 1000);
};

export class Janitor {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;

  constructor(private readonly opts: JanitorOptions) {}

  start(): void {
    if (this.timer || this.stopped) return;
    this.timer = setInterval(() => {
      if (!this.running)
        this.running = this.sweep()
          .catch((err: unknown) => this.opts.logger.error({ err }, 'janitor sweep failed'))
          .finally(() => (this.running = undefined));
    }, this.opts.intervalMs);
    this.timer.unref();
  }

  async sweep(now = Date.now()): Promise<SweepResult> {
    const { spool, store, orphanGraceMs, logger } = this.opts;
    const ids = [...(await listOperationIds(spool))];
    const alive = new Set<string>();
    for (let i = 0; i < ids.length; i += 1000) for (const id of await store.existing(ids.slice(i, i + 1000))) alive.add(id);
    const removedOperations: string[] = [];
    for (const opId of ids) {
      if (alive.has(opId)) continue;
      // No record: expired, or an upload still being written (its record comes after the files).
      if (now - (await newestMtime(spool, opId)) < orphanGraceMs) continue;
      await spool.removeOperation(opId);
      removedOperations.push(opId);
    }
    const removedTmpFiles = await this.sweepTmp(now);
    // The tenants' listing indexes lose the operations whose records expired (none can before RETENTION).
    const removedIndexEntries = await store.pruneIndexes(store.retentionMs);
    if (removedOperations.length || removedTmpFiles || removedIndexEntries)
      logger.info(
        { removedOperations: removedOperations.length, removedTmpFiles, removedIndexEntries },
        'janitor removed spool files and expired index entries',
      );
    return { removedOperations, removedTmpFiles };
  }

  /**
   * Removes tmp/ files nobody will finish: those of an owner whose heartbeat went stale (and the
   * stale heartbeat itself), once unchanged for OWNER_STALE_MS; otherwise, by age only: a spare
   * past SPARE_MAX_AGE (its owner reuses or removes it within that), a partial write past
   * max(ORPHAN_GRACE, 1 h). Returns how many went.
   */
  private async sweepTmp(now: number): Promise<number> {
    const { spool, orphanGraceMs } = this.opts;
    const names = await readdir(spool.tmpRoot).catch(() => [] as string[]);
    const files = await Promise.all(
      names.map(async (name) => {
        const st = await stat(path.join(spool.tmpRoot, name)).catch(() => undefined);
        // A spare (Spool.retire) is renamed, not written, when it is kept: its ctime says when.
        return { name, changed: st ? Math.max(st.mtimeMs, st.ctimeMs) : undefined };
      }),
    );
    const alive = new Set(files.filter((f) => f.changed !== undefined && now - f.changed < OWNER_STALE_MS).flatMap((f) => heartbeatOf(f.name) ?? []));
    let removed = 0;
    for (const { name, changed } of files) {
      if (changed === undefined) continue;
      if (now - changed >= tmpLimit(name, alive, orphanGraceMs)) {
        await rm(path.join(spool.tmpRoot, name), { force: true, recursive: true });
        removed += 1;
      }
    }
    return removed;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
