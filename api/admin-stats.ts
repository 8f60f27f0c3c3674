/**
 * What GET /v1/admin/stats reports, read from Redis (the api holds no batch or circuit of its own):
 * queue counts, the backlog per tenant, the oldest waiting document, the documents workers hold
 * (BullMQ active jobs: in a bucket or in an upstream batch) and the circuits workers published.
 *
 * The per-tenant backlog is a bounded scan: the first `BACKLOG_SCAN_LIMIT` waiting jobs in the order
 * workers take them (the wait list, then the prioritized set; one pipelined HGET of each job's
 * data); `complete` says whether that was all of them. With fair scheduling the first ones hold
 * every busy tenant's next round, and with it each tenant's oldest document.
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { readCircuitStates, type WorkerCircuit } from '@signspool/shared/circuit-state';
import { QUEUE_STATES } from '@signspool/shared/metrics';

export const BACKLOG_SCAN_LIMIT = 5000;

export interface AdminStats {
  generatedAt: string;
  queues: Record<string, Record<string, number>>;
  backlog: { waiting: number; scanned: number; complete: boolean; byTenant: Record<string, number> };
  oldestWaiting: { opId: string; docId: string; tenant: string; acceptedAt: string; ageSeconds: number } | null;
  inFlight: { documents: number };
  circuit: { state: 'closed' | 'open' | 'half_open'; workers: WorkerCircuit[] };
}

interface SignJobHead {
  opId?: unknown;
  docId?: unknown;
  tenant?: unknown;
  acceptedAt?: unknown;
}

const parseData = (raw: string | null | undefined): SignJobHead | undefined => {
  if (!raw) return undefined;
  try {
    return JSON.parse(raw) as SignJobHead;
  } catch {
    return undefined;
  }
};

export class AdminStatsReader {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly queues: { sign: Queue; webhook: Queue },
    private readonly scanLimit = BACKLOG_SCAN_LIMIT,
  ) {}

  async read(now = Date.now()): Promise<AdminStats> {
    const { sign, webhook } = this.queues;
    const [signCounts, webhookCounts, circuits] = await Promise.all([
      sign.getJobCounts(...QUEUE_STATES),
      webhook.getJobCounts(...QUEUE_STATES),
      readCircuitStates(this.redis, this.prefix, now),
    ]);
    // Jobs without a priority (FIFO scheduling, stalled jobs given back) come first, oldest last in
    // the list; then the prioritized set in the order workers take it (fair-share.ts).
    const waitIds = (await this.redis.lrange(sign.toKey('wait'), -this.scanLimit, -1)).reverse();
    const room = this.scanLimit - waitIds.length;
    const ids = room > 0 ? [...waitIds, ...(await this.redis.zrange(sign.toKey('prioritized'), 0, room - 1))] : waitIds;
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hget(sign.toKey(id), 'data');
    const results = ids.length > 0 ? ((await pipeline.exec()) ?? []) : [];
    const byTenant: Record<string, number> = {};
    let oldest: SignJobHead | undefined;
    for (const [error, raw] of results) {
      const data = error ? undefined : parseData(raw as string | null);
      if (!data || typeof data.tenant !== 'string') continue;
      byTenant[data.tenant] = (byTenant[data.tenant] ?? 0) + 1;
      if (typeof data.acceptedAt === 'number' && (oldest === undefined || data.acceptedAt < Number(oldest.acceptedAt))) oldest = data;
    }
    const oldestWaiting: AdminStats['oldestWaiting'] =
      oldest === undefined
        ? null
        : {
            opId: String(oldest.opId),
            docId: String(oldest.docId),
            tenant: String(oldest.tenant),
            acceptedAt: new Date(Number(oldest.acceptedAt)).toISOString(),
            ageSeconds: Math.max(0, Math.round((now - Number(oldest.acceptedAt)) / 1000)),
          };
    const waiting = (signCounts['waiting'] ?? 0) + (signCounts['prioritized'] ?? 0);
    const worst = circuits.some((c) => c.state === 'open') ? 'open' : circuits.length > 0 ? 'half_open' : 'closed';
    return {
      generatedAt: new Date(now).toISOString(),
      queues: { sign: signCounts, webhook: webhookCounts },
      backlog: { waiting, scanned: ids.length, complete: ids.length >= waiting, byTenant },
      oldestWaiting,
      inFlight: { documents: signCounts['active'] ?? 0 },
      circuit: { state: worst, workers: circuits },
    };
  }
}
