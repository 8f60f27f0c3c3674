/**
 * The status read that waits (`Prefer: wait=N`, RFC 7240): what the preference asks, the tenant's
 * long-poll slot (LONG_POLL_TENANT_MAX: past it the read is answered at once, the preference not
 * applied), and the record once the operation ended or the wait ran out. Express's route
 * (routes/operations.ts) and the fast path (read/fast-status.ts) share one, and so one count of
 * slots per tenant.
 */
import type { ServerResponse } from 'node:http';
import type { OperationRecord } from '@signspool/shared/operations/record';
import { isTerminal, type OperationStatus } from '@signspool/shared/operations/states';
import { preferredWait, type OperationEvents } from '../operation-events.js';
import type { HeaderTarget } from '../rate-limits.js';
import { TenantSlots } from '../tenant-slots.js';
import { ownedBy, readOwnedOperation, type StatusReadDeps } from './status.js';

/** A status read's wait: its Preference-Applied value (undefined: not applied), the seconds to wait, and its slot's release. */
export interface Wait {
  applied: string | undefined;
  seconds: number;
  release: () => void;
}

/** Sets a read's Preference-Applied, before the reads window's fields (as both paths order them). */
export const applyPreference = (wait: Wait, headers: HeaderTarget): void => {
  if (wait.applied !== undefined) headers.setHeader('Preference-Applied', wait.applied);
};

const NO_WAIT: Wait = { applied: undefined, seconds: 0, release: () => undefined };

export class LongPolls {
  private readonly slots: TenantSlots;

  /** Without `events` nothing waits: every read is answered at once, the preference not applied. */
  constructor(
    private readonly events: OperationEvents | undefined,
    perTenant: number,
  ) {
    this.slots = new TenantSlots(perTenant);
  }

  /** The wait `prefer` asks of a read of `tenant`: applied with a slot taken (release it once answered), or not applied at the tenant's cap; 0 seconds: answered at once. */
  begin(tenant: string, prefer: string | undefined): Wait {
    const seconds = preferredWait(prefer);
    if (seconds === undefined || !this.events) return NO_WAIT;
    // wait=0 is applied and answered at once: no slot.
    if (seconds === 0) return { applied: 'wait=0', seconds, release: NO_WAIT.release };
    const release = this.slots.take(tenant);
    return release ? { applied: `wait=${seconds}`, seconds, release } : NO_WAIT;
  }

  /**
   * The record a status read answers with, its Preference-Applied and the reads window's fields on
   * `headers` first: at once, or with a wait once the operation ended or the wait ran out;
   * undefined when the client went away meanwhile (nothing to answer).
   */
  read(deps: StatusReadDeps, tenant: string, id: string, wait: Wait, res: ServerResponse, headers: HeaderTarget): Promise<OperationRecord | undefined> {
    applyPreference(wait, headers);
    // At once: the read's own promise, no layer of its own (most reads).
    if (!this.events || wait.seconds === 0) return readOwnedOperation(deps, tenant, id, headers);
    return this.readAfterWait(this.events, deps, tenant, id, wait.seconds, res, headers);
  }

  private async readAfterWait(
    events: OperationEvents,
    deps: StatusReadDeps,
    tenant: string,
    id: string,
    seconds: number,
    res: ServerResponse,
    headers: HeaderTarget,
  ): Promise<OperationRecord | undefined> {
    // Register first, then check: an end between the check and the wait is not missed. The check
    // reads owner and status only (with the reads window); the record is read once, when the answer is due.
    const waiter = events.waitFor(id, seconds * 1000);
    let head: { tenant: string; status: OperationStatus } | undefined;
    try {
      const [found, owner, status] = await deps.limits.readOperation(tenant, deps.store.key(id), 'head', headers);
      head = ownedBy(tenant, found ? { tenant: owner ?? '', status: (status ?? 'queued') as OperationStatus } : undefined);
    } finally {
      if (!head || isTerminal(head.status)) waiter.cancel();
    }
    if (!isTerminal(head.status)) {
      // The client going away ends the wait.
      res.once('close', waiter.cancel);
      await waiter.done;
      res.off('close', waiter.cancel);
      if (res.destroyed) return undefined;
    }
    return ownedBy(tenant, await deps.store.get(id));
  }
}
