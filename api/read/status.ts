/**
 * The status read (GET /v1/operations/:id) without waiting: the operation's record, read with the
 * tenant's reads window in one Redis round trip (rate-limits.ts readOperation), and its answer.
 * Express's route (routes/operations.ts) and the fast path (read/fast-status.ts) share it.
 */
import { SignspoolError } from '@signspool/shared/errors';
import { parseOperation, type OperationRecord } from '@signspool/shared/operations/record';
import { isTerminal } from '@signspool/shared/operations/states';
import type { OperationStore } from '@signspool/shared/operations/store';
import { operationView, type OperationView } from '@signspool/shared/operations/view';
import type { HeaderTarget, TenantRateLimits } from '../rate-limits.js';

/** An operation's id, as the routes' `:id` must be. */
export const OPERATION_ID = /^op_[0-9a-f]{32}$/;

/** Another tenant's operation is indistinguishable from a missing one. */
export const ownedBy = <T extends { tenant: string }>(tenant: string | undefined, op: T | undefined): T => {
  if (!op || op.tenant !== tenant) throw new SignspoolError('NOT_FOUND', { detail: 'no such operation' });
  return op;
};

/** An operation record from HGETALL's flat list of fields and values (undefined when missing). */
export const recordOf = (flat: readonly (string | null)[]): OperationRecord | undefined => {
  const h: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) h[flat[i] ?? ''] = flat[i + 1] ?? '';
  return h['id'] ? parseOperation(h) : undefined;
};

export interface StatusReadDeps {
  store: OperationStore;
  limits: TenantRateLimits;
}

/** `tenant`'s operation `id`, taking a read of its window (429 over it, RateLimit fields on `res`); 404 when missing or another tenant's. */
export const readOwnedOperation = async (deps: StatusReadDeps, tenant: string, id: string, res: HeaderTarget): Promise<OperationRecord> =>
  ownedBy(tenant, recordOf(await deps.limits.readOperation(tenant, deps.store.key(id), 'all', res)));

/** The Retry-After of a status answer: while the operation has not ended, when to ask again. */
export const retryAfterOf = (op: OperationRecord): string | undefined => (isTerminal(op.status) ? undefined : op.status === 'queued' ? '2' : '1');

/** The status answer's body: the operation's view, with its webhook's deliveries when it has one (read then: a promise). */
export const statusView = (store: OperationStore, op: OperationRecord): OperationView | Promise<OperationView> =>
  op.webhookUrl ? store.deliveries.list(op.id).then((deliveries) => operationView(op, deliveries)) : operationView(op, []);
