/**
 * Undoing a submission that failed before its commit: its record (still accepting) is deleted,
 * its jobs dropped, its uploaded files removed. When Redis cannot be reached the outcome is
 * unknown (the commit may have reached Redis before the connection broke), so nothing is removed
 * yet: the undo is tried again every `retryMs` until Redis answers. A commit found then stands;
 * otherwise the rest is removed at once rather than when the accepting record expires.
 */
import type { Logger } from '../logger.js';
import type { NewOperation } from './record.js';
import { ACCEPTING_TTL_MS, type OperationStore } from './store.js';
import { signJobId } from '../queue.js';
import type { Spool } from '../spool/spool.js';

/** What undoing needs of the sign queue (structural: shared does not depend on bullmq). */
export interface RemovableJobs {
  remove(jobId: string): Promise<unknown>;
}

export type UndoOutcome = 'abandoned' | 'committed' | 'missing' | 'unknown';

export interface SubmissionUndoOptions {
  store: OperationStore;
  queue: RemovableJobs;
  spool: Spool;
  logger: Logger;
  retryMs?: number;
  /** How long an unknown outcome is retried: the accepting record's lifetime, after which it is gone anyway. */
  giveUpAfterMs?: number;
}

export class SubmissionUndo {
  private readonly pending = new Map<string, { op: NewOperation; until: number }>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = false;

  constructor(private readonly opts: SubmissionUndoOptions) {}

  /** Undoes `op` now; an unknown outcome is retried in the background. */
  async undo(op: NewOperation): Promise<UndoOutcome> {
    const outcome = await this.attempt(op);
    if (outcome === 'unknown') this.later(op);
    return outcome;
  }

  /** Undoes `op` in the background, first in `retryMs`: for a Redis that does not answer now (the caller answers at once). */
  later(op: NewOperation): void {
    if (this.stopped) return;
    this.pending.set(op.id, { op, until: Date.now() + (this.opts.giveUpAfterMs ?? ACCEPTING_TTL_MS) });
    this.timer ??= setInterval(() => void this.retry(), this.opts.retryMs ?? 1000);
    this.timer.unref();
  }

  /** Submissions whose undo waits for Redis. */
  get waiting(): number {
    return this.pending.size;
  }

  private async attempt(op: NewOperation): Promise<UndoOutcome> {
    const { store, queue, spool } = this.opts;
    const outcome = await store.abandon(op.id).catch(() => 'unknown' as const);
    if (outcome === 'committed' || outcome === 'unknown') return outcome;
    // The record is gone: workers would drop these jobs; removing them now leaves nothing behind.
    const removed = await Promise.allSettled(op.documents.map((d) => queue.remove(signJobId(d.id))));
    if (removed.some((r) => r.status === 'rejected')) return 'unknown';
    await spool.removeOperation(op.id, ['incoming']);
    return outcome;
  }

  private async retry(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (const [id, { op, until }] of [...this.pending]) {
        const outcome = await this.attempt(op);
        if (outcome === 'unknown' && Date.now() < until) continue;
        this.pending.delete(id);
        this.opts.logger.info(
          { opId: id, outcome },
          outcome === 'unknown' ? 'gave up undoing a failed submission; its record expires' : 'undid a failed submission once Redis answered',
        );
      }
    } finally {
      this.running = false;
      if (this.pending.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    }
  }

  /** Idempotent. Undos still waiting are left to the accepting record's expiry and the janitor. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.pending.clear();
  }
}
