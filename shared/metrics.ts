/**
 * The one prom-client Registry of a process, and every metric signspool exports. Labels stay
 * low-cardinality: outcomes, reasons, catalog codes, routes; never operation ids. Tenants are not a
 * bounded set (JWT tenants come from a claim), so no metric has a tenant label but one:
 * `signspool_tenant_backlog_documents`, bounded to the METRICS_TENANT_SERIES largest backlogs plus
 * `tenant="_other"` (at most N + 1 series), with names only behind METRICS_TOKEN. Signing identities
 * are bounded (they come from SIGNERS_FILE, names checked): metrics of the signer side carry a `signer` label.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { errorCatalog } from './errors.js';
import { anonymousBacklog, topTenants } from './scheduling/tenant-backlog.js';

export type FlushReason = 'docs' | 'bytes' | 'linger' | 'shutdown';

/** Something whose job counts by state can be read (a BullMQ Queue). */
export interface QueueDepthSource {
  name: string;
  getJobCounts(...states: string[]): Promise<Record<string, number>>;
}

/** Spool usage, read at scrape time. */
export interface SpoolUsageSource {
  usedBytes(): Promise<number>;
  freeBytes(): Promise<number>;
}

/** The backlog of every tenant (tenant → unfinished documents), read at scrape time (TenantBacklogReader). */
/** Open connections of an api process, and the anonymous ones among them (api/http/connection-limits.ts). */
export interface ConnectionCountSource {
  readonly counts: { total: number; anonymous: number };
}

export interface TenantBacklogSource {
  /** Tenants that get a series of their own; the rest are summed into tenant="_other". 0: no series. */
  readonly series: number;
  /** False: no tenant name is exported, only tenant="_other" with the sum (scrapes without METRICS_TOKEN). */
  readonly named: boolean;
  /** Rejects when the backlog cannot be read (the gauge keeps its last values). */
  read(): Promise<Record<string, number>>;
}

export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed', 'prioritized', 'waiting-children'] as const;

/** Label values that exist from the start, so dashboards show 0 rather than no data. */
const initLabels = <L extends string>(counter: Counter<L>, label: L, values: readonly string[]): Counter<L> => {
  for (const v of values) counter.inc({ [label]: v } as Partial<Record<L, string>>, 0);
  return counter;
};

export const createMetrics = (opts: { defaultMetrics?: boolean } = {}) => {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'signspool_' });
  const registers = [registry];
  const queueSources: QueueDepthSource[] = [];
  const spoolSources: SpoolUsageSource[] = [];
  const tenantBacklogSources: TenantBacklogSource[] = [];
  const connectionSources: ConnectionCountSource[] = [];
  return {
    registry,
    /** Queues whose depth this process reports (the api registers its queues). */
    queueSources,
    /** The spool this process reports on. */
    spoolSources,
    /** The per-tenant backlog this process reports (only the api registers one: one place). */
    tenantBacklogSources,
    /** The api's connection counts, read when scraped (not set per request). */
    connectionSources,
    queueDepth: new Gauge({
      name: 'signspool_queue_jobs',
      help: 'Jobs in each queue by state',
      labelNames: ['queue', 'state'] as const,
      registers,
      async collect() {
        for (const q of queueSources) {
          const counts = await q.getJobCounts(...QUEUE_STATES).catch(() => undefined);
          if (!counts) continue;
          for (const state of QUEUE_STATES) this.set({ queue: q.name, state }, counts[state] ?? 0);
        }
      },
    }),
    tenantBacklog: new Gauge({
      name: 'signspool_tenant_backlog_documents',
      help: 'Unfinished documents (queued or signing) of the METRICS_TENANT_SERIES tenants with the largest backlog; tenant="_other" sums the rest (at most METRICS_TENANT_SERIES + 1 series)',
      labelNames: ['tenant'] as const,
      registers,
      async collect() {
        const s = tenantBacklogSources[0];
        if (!s || s.series <= 0) return;
        // A failed read keeps the last values (the scrape itself never fails); the reader logs it.
        const backlog = await s.read().catch(() => undefined);
        if (!backlog) return;
        // Tenants that left the top N, or whose backlog ended, disappear from the exposition.
        this.reset();
        for (const [tenant, n] of s.named ? topTenants(backlog, s.series) : anonymousBacklog(backlog)) this.set({ tenant }, n);
      },
    }),
    spoolUsedBytes: new Gauge({
      name: 'signspool_spool_used_bytes',
      help: 'Bytes of documents in the spool (incoming, signed, partial)',
      registers,
      async collect() {
        const s = spoolSources[0];
        if (s) this.set(await s.usedBytes().catch(() => 0));
      },
    }),
    spoolFreeBytes: new Gauge({
      name: 'signspool_spool_free_bytes',
      help: 'Free bytes on the spool file system',
      registers,
      async collect() {
        const s = spoolSources[0];
        if (s) this.set(await s.freeBytes().catch(() => 0));
      },
    }),
    httpRequestDuration: new Histogram({
      name: 'signspool_http_request_duration_seconds',
      help: 'HTTP request duration by route and status',
      labelNames: ['method', 'route', 'status'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    uploadedBytes: new Counter({ name: 'signspool_uploaded_bytes_total', help: 'Document bytes accepted into the spool', registers }),
    documentsAccepted: new Counter({
      name: 'signspool_documents_accepted_total',
      help: 'Documents accepted, by signing identity',
      labelNames: ['signer'] as const,
      registers,
    }),
    batchDocuments: new Histogram({
      name: 'signspool_batch_documents',
      help: 'Documents per upstream batch',
      buckets: [1, 2, 5, 10, 20, 30, 40, 50, 75, 100, 200],
      registers,
    }),
    batchBytes: new Histogram({
      name: 'signspool_batch_bytes',
      help: 'Bytes per upstream batch',
      buckets: [1e4, 1e5, 1e6, 1e7, 5e7, 1e8, 2.5e8, 5e8, 1e9],
      registers,
    }),
    batchFillRatio: new Histogram({
      name: 'signspool_batch_fill_ratio',
      help: 'Batch fill against the tighter of BATCH_MAX_DOCS and BATCH_MAX_BYTES (1 = full)',
      buckets: [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1],
      registers,
    }),
    batchFlushes: initLabels(
      new Counter({ name: 'signspool_batch_flushes_total', help: 'Batches flushed, by reason', labelNames: ['reason'] as const, registers }),
      'reason',
      ['docs', 'bytes', 'linger', 'shutdown'],
    ),
    bucketWait: new Histogram({
      name: 'signspool_bucket_wait_seconds',
      help: 'Time a document waited in a batch bucket before its batch was sent',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
      registers,
    }),
    upstreamDuration: new Histogram({
      name: 'signspool_upstream_request_duration_seconds',
      help: 'Upstream (signer) batch call duration by signing identity and outcome',
      labelNames: ['signer', 'outcome'] as const,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300],
      registers,
    }),
    upstreamErrors: initLabels(
      new Counter({ name: 'signspool_upstream_errors_total', help: 'Upstream errors by catalog code', labelNames: ['code'] as const, registers }),
      'code',
      Object.keys(errorCatalog).filter((c) => c.startsWith('UPSTREAM_')),
    ),
    tokenRefreshes: new Counter({
      name: 'signspool_token_refreshes_total',
      help: "Sign'Stash OAuth token requests, by signing identity",
      labelNames: ['signer'] as const,
      registers,
    }),
    signerBatches: new Counter({
      name: 'signspool_signer_batches_total',
      help: 'Batches run per signing identity, by outcome (signed, failed, partial, requeued, released, none, error)',
      labelNames: ['signer', 'outcome'] as const,
      registers,
    }),
    signerDocuments: new Counter({
      name: 'signspool_signer_documents_total',
      help: 'Documents that reached a terminal state, per signing identity and outcome (signed, failed)',
      labelNames: ['signer', 'outcome'] as const,
      registers,
    }),
    signerCircuit: new Gauge({
      name: 'signspool_signer_circuit',
      help: "State of this worker's circuit breaker of each signing identity (1 for the current state)",
      labelNames: ['signer', 'state'] as const,
      registers,
    }),
    signerCertificateExpiry: new Gauge({
      name: 'signspool_signer_certificate_expiry_timestamp_seconds',
      help: 'When the certificate of each local signing identity expires (Unix seconds)',
      labelNames: ['signer'] as const,
      registers,
    }),
    documentsCompleted: initLabels(
      new Counter({ name: 'signspool_documents_completed_total', help: 'Documents reaching a terminal state', labelNames: ['outcome'] as const, registers }),
      'outcome',
      ['signed', 'failed'],
    ),
    documentLatency: new Histogram({
      name: 'signspool_document_latency_seconds',
      help: 'End-to-end document latency, accepted to signed',
      buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900],
      registers,
    }),
    webhookDeliveries: initLabels(
      new Counter({
        name: 'signspool_webhook_deliveries_total',
        help: 'Webhook delivery attempts by outcome (delivered, failed, refused, disabled); dropped: deliveries given up with nothing left to send (operation and kept event expired)',
        labelNames: ['outcome'] as const,
        registers,
      }),
      'outcome',
      ['delivered', 'failed', 'refused', 'disabled', 'dropped'],
    ),
    webhookLatency: new Histogram({
      name: 'signspool_webhook_latency_seconds',
      help: 'Webhook delivery latency (request sent to answer)',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15],
      registers,
    }),
    batchesInFlight: new Gauge({ name: 'signspool_batches_in_flight', help: 'Upstream batches in flight', registers }),
    upstreamCircuit: new Gauge({
      name: 'signspool_upstream_circuit',
      help: "State of this worker's upstream circuit breakers, the worst over its signing identities (1 for the current state)",
      labelNames: ['state'] as const,
      registers,
    }),
    documentsResent: new Counter({
      name: 'signspool_documents_resent_total',
      help: 'Documents sent upstream again after an earlier request had already carried them (at-least-once cost)',
      registers,
    }),
    workerPaused: new Gauge({
      name: 'signspool_worker_paused',
      help: 'Whether the worker stopped pulling documents, by reason (spool_full, circuit_open)',
      labelNames: ['reason'] as const,
      registers,
    }),
    rateLimitDecisions: new Counter({
      name: 'signspool_rate_limit_decisions_total',
      help: 'Per-tenant limit checks by limit (requests, upload_bytes, backlog, redeliveries) and outcome (allowed, limited, error: Redis unreachable, answered 503)',
      labelNames: ['limit', 'outcome'] as const,
      registers,
    }),
    uploadTimeouts: initLabels(
      new Counter({
        name: 'signspool_upload_timeouts_total',
        help: 'Uploads ended by a timeout, by reason (idle, slow: 408 while read; queue: 503 UPLOADS_BUSY after UPLOAD_QUEUE_TIMEOUT waiting for a turn)',
        labelNames: ['reason'] as const,
        registers,
      }),
      'reason',
      ['idle', 'slow', 'queue'],
    ),
    connections: new Gauge({
      name: 'signspool_http_connections',
      help: "Open connections of this api process by holder: anonymous (head not authenticated yet, or idle) or tenant (a tenant's request in progress)",
      labelNames: ['holder'] as const,
      registers,
      collect() {
        let total = 0;
        let anonymous = 0;
        for (const s of connectionSources) {
          total += s.counts.total;
          anonymous += s.counts.anonymous;
        }
        this.set({ holder: 'anonymous' }, anonymous);
        this.set({ holder: 'tenant' }, total - anonymous);
      },
    }),
    connectionsClosed: initLabels(
      new Counter({
        name: 'signspool_http_connections_refused_total',
        help: 'Connections closed or requests refused by the connection limits, by reason (anonymous_cap, total_cap: oldest connection closed; tenant_cap: 429)',
        labelNames: ['reason'] as const,
        registers,
      }),
      'reason',
      ['anonymous_cap', 'total_cap', 'tenant_cap'],
    ),
    // Each reloadable configuration sets its own series to 0 when made (signers/registry.ts, api/auth/api-keys.ts).
    configReloads: new Counter({
      name: 'signspool_config_reload_total',
      help: 'Reloads (SIGHUP) by configuration (signers: SIGNERS_FILE, api_keys: the API keys file) and outcome; a failed one keeps the running configuration',
      labelNames: ['config', 'outcome'] as const,
      registers,
    }),
    configLastReloadSuccessful: new Gauge({
      name: 'signspool_config_last_reload_successful',
      help: 'Whether the last load of a configuration (signers, api_keys) succeeded (1) or was refused (0)',
      labelNames: ['config'] as const,
      registers,
    }),
    configLastReloadSuccessTimestamp: new Gauge({
      name: 'signspool_config_last_reload_success_timestamp_seconds',
      help: 'When a configuration (signers, api_keys) was last loaded successfully (Unix seconds)',
      labelNames: ['config'] as const,
      registers,
    }),
    uploads: new Gauge({
      name: 'signspool_uploads',
      help: 'Upload requests of this api process: being read, or waiting for a turn (UPLOAD_CONCURRENCY)',
      labelNames: ['state'] as const,
      registers,
    }),
  };
};

export type Metrics = ReturnType<typeof createMetrics>;

/** The metrics of a configuration reloaded on SIGHUP (signers/registry.ts, api/auth/api-keys.ts). */
export type ReloadMetrics = Pick<Metrics, 'configReloads' | 'configLastReloadSuccessful' | 'configLastReloadSuccessTimestamp'>;
export type ReloadableConfig = 'signers' | 'api_keys';

/** A reloadable configuration loaded at start: its reload counts shown at 0, its last load successful. */
export const configLoaded = (metrics: ReloadMetrics | undefined, config: ReloadableConfig): void => {
  for (const outcome of ['success', 'failure']) metrics?.configReloads.inc({ config, outcome }, 0);
  metrics?.configLastReloadSuccessful.set({ config }, 1);
  metrics?.configLastReloadSuccessTimestamp.set({ config }, Date.now() / 1000);
};

/** A reload of `config` counted: a refused one leaves the last success's time as it was. */
export const configReloaded = (metrics: ReloadMetrics | undefined, config: ReloadableConfig, ok: boolean): void => {
  metrics?.configReloads.inc({ config, outcome: ok ? 'success' : 'failure' });
  metrics?.configLastReloadSuccessful.set({ config }, ok ? 1 : 0);
  if (ok) metrics?.configLastReloadSuccessTimestamp.set({ config }, Date.now() / 1000);
};
