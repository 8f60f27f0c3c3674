/**
 * Keeps the spool consistent with Redis: removes operation directories that have no record any
 * more (expired after RETENTION, or left by an upload that died before it was accepted) once they
 * are older than ORPHAN_GRACE, and stale partial writes under tmp/.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '@signspool/shared/logger';
import type { OperationStore } from '@signspool/shared/operations/store';
import { SPARE_MAX_AGE_MS, type Spool } from '@signspool/shared/spool/spool';
import { listOperationIds, newestMtime } from '@signspool/shared/spool/scan';

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
    let removedTmpFiles = 0;
    for (const name of await readdir(spool.tmpRoot).catch(() => [] as string[])) {
      const p = path.join(spool.tmpRoot, name);
      const st = await stat(p).catch(() => undefined);
      // A spare (Spool.retire) is renamed, not written, when it is kept: its ctime says when. Its
      // owner reuses or removes it within SPARE_MAX_AGE, so an older one belongs to a dead process.
      const limit = name.startsWith('spare-') ? SPARE_MAX_AGE_MS + 5 * 60 * 1000 : Math.max(orphanGraceMs, 60 * 60 * 1000);
      if (st && now - Math.max(st.mtimeMs, st.ctimeMs) >= limit) {
        await rm(p, { force: true, recursive: true });
        removedTmpFiles += 1;
      }
    }
    // The tenants' listing indexes lose the operations whose records expired (none can before RETENTION).
    const removedIndexEntries = await store.pruneIndexes(store.retentionMs);
    if (removedOperations.length || removedTmpFiles || removedIndexEntries)
      logger.info(
        { removedOperations: removedOperations.length, removedTmpFiles, removedIndexEntries },
        'janitor removed spool files and expired index entries',
      );
    return { removedOperations, removedTmpFiles };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
