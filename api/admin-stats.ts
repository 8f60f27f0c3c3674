/**
 * What GET /v1/admin/stats reports, read from Redis (the api holds no batch or circuit of its own):
 * queue counts, the backlog per tenant, the oldest waiting document, the documents workers hold
 * (BullMQ active jobs: in a bucket or in an upstream batch) and the circuits workers published.
 *
 * The per-tenant backlog is a bounded scan: the `BACKLOG_SCAN_LIMIT` oldest waiting jobs (one
 * LRANGE and one pipelined HGET of each job's data); `complete` says whether that was all of them.
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
    // BullMQ pushes new jobs on the left and workers take from the right: the oldest are last.
    const ids = (await this.redis.lrange(sign.toKey('wait'), -this.scanLimit, -1)).reverse();
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hget(sign.toKey(id), 'data');
    const results = ids.length > 0 ? ((await pipeline.exec()) ?? []) : [];
    const byTenant: Record<string, number> = {};
    let oldest: AdminStats['oldestWaiting'] = null;
    for (const [i, [error, raw]] of results.entries()) {
      const data = error ? undefined : parseData(raw as string | null);
      if (!data || typeof data.tenant !== 'string') continue;
      byTenant[data.tenant] = (byTenant[data.tenant] ?? 0) + 1;
      if (i === 0 && typeof data.acceptedAt === 'number') {
        oldest = {
          opId: String(data.opId),
          docId: String(data.docId),
          tenant: data.tenant,
          acceptedAt: new Date(data.acceptedAt).toISOString(),
          ageSeconds: Math.max(0, Math.round((now - data.acceptedAt) / 1000)),
        };
      }
    }
    const waiting = signCounts['waiting'] ?? 0;
    const worst = circuits.some((c) => c.state === 'open') ? 'open' : circuits.length > 0 ? 'half_open' : 'closed';
    return {
      generatedAt: new Date(now).toISOString(),
      queues: { sign: signCounts, webhook: webhookCounts },
      backlog: { waiting, scanned: ids.length, complete: ids.length >= waiting, byTenant },
      oldestWaiting: oldest,
      inFlight: { documents: signCounts['active'] ?? 0 },
      circuit: { state: worst, workers: circuits },
    };
  }
}
