/**
 * The fast path's status answers at once (read/fast-status.ts), kept rendered per operation and
 * served again while the record in Redis is still at the revision they were rendered from (the
 * record's `rev`, counted up by every script that changes it, with its updatedAt:
 * lua/read-operation.lua). Every read still takes the tenant's reads window and checks the revision
 * in its one round trip (rate-limits.ts readOperationView): Redis answers "same", or sends the
 * record. A read therefore never shows a state older than what Redis holds at the read, nor another
 * tenant's operation (a kept answer carries its tenant); the record's parse, its view and its JSON
 * are made once per change of the record instead of once per read, and Redis sends a short answer
 * instead of the record. Records without a revision (not yet committed, or from before revisions)
 * and operations with a webhook (their deliveries are read apart) are not kept. Bounded in bytes:
 * the answers kept longest go first.
 */
import type { OperationRecord } from '@signspool/shared/operations/record';
import type { HeaderTarget } from '../rate-limits.js';
import { ownedBy, recordOf, retryAfterOf, statusView, type StatusReadDeps } from './status.js';

/** What the answers kept may take, with their ids. */
const DEFAULT_MAX_BYTES = 8 * 1024 * 1024;
/** What a kept answer costs beyond its strings' characters (the map entry, the object). */
const ENTRY_OVERHEAD = 160;

/** A status answer's parts: its body, Content-Length and Retry-After, and its operation's tenant. */
export interface StatusAnswer {
  tenant: string;
  body: string;
  length: string;
  retryAfter: string | undefined;
}

interface Kept extends StatusAnswer {
  revision: string;
  bytes: number;
}

/** The answer to a read of `op` (its webhook's deliveries read first when it has one). */
export const renderStatus = async (deps: StatusReadDeps, op: OperationRecord): Promise<StatusAnswer> => {
  const view = statusView(deps.store, op);
  const body = JSON.stringify(view instanceof Promise ? await view : view);
  return { tenant: op.tenant, body, length: String(Buffer.byteLength(body)), retryAfter: retryAfterOf(op) };
};

/** Values by key within a budget of bytes (each value says what it takes): the values kept longest go first. */
export class BoundedMap<V extends { bytes: number }> {
  private readonly values = new Map<string, V>();
  private total = 0;

  constructor(private readonly maxBytes: number) {}

  get(key: string): V | undefined {
    return this.values.get(key);
  }

  /** Keeps `value` as the newest (none when it alone is over the budget), then lets the oldest go until within it. */
  set(key: string, value: V): void {
    const old = this.values.get(key);
    if (old) {
      this.values.delete(key);
      this.total -= old.bytes;
    }
    if (value.bytes > this.maxBytes) return;
    this.values.set(key, value);
    this.total += value.bytes;
    // A map iterates in insertion order: the values kept longest first.
    for (const [oldest, o] of this.values) {
      if (this.total <= this.maxBytes) break;
      this.values.delete(oldest);
      this.total -= o.bytes;
    }
  }

  /** Values kept and their bytes. */
  get size(): { values: number; bytes: number } {
    return { values: this.values.size, bytes: this.total };
  }
}

export class StatusAnswers {
  /** Reads answered with a kept answer (tests: which reads rendered). */
  hits = 0;
  private readonly kept: BoundedMap<Kept>;

  constructor(maxBytes = DEFAULT_MAX_BYTES) {
    this.kept = new BoundedMap(maxBytes);
  }

  /** `tenant`'s operation `id` at once, taking a read of its window (429 over it, RateLimit fields on `res`); 404 when missing or another tenant's. */
  async read(deps: StatusReadDeps, tenant: string, id: string, res: HeaderTarget): Promise<StatusAnswer> {
    const held = this.kept.get(id);
    const r = await deps.limits.readOperationView(tenant, deps.store.key(id), held?.revision ?? '', res);
    if (r.same) {
      // Only a revision sent can be the same: `held`'s was sent.
      if (!held) throw new Error(`status read of ${id}: Redis answered "same" to no revision`);
      this.hits++;
      return ownedBy(tenant, held);
    }
    const op = ownedBy(tenant, recordOf(r.fields));
    const answer = await renderStatus(deps, op);
    if (r.revision !== undefined && !op.webhookUrl)
      this.kept.set(id, { ...answer, revision: r.revision, bytes: answer.body.length + id.length + ENTRY_OVERHEAD });
    return answer;
  }
}
