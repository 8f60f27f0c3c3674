/**
 * Delivers `operation.completed` webhooks from their own BullMQ queue, never inline in the signing
 * path. Standard Webhooks signing; only 2xx counts; redirects are not followed; 410 disables the
 * endpoint; retries follow WEBHOOK_SCHEDULE with jitter and honour Retry-After; every attempt is
 * recorded on the operation. Targets pass the SSRF guard at connect time. Each attempt is a
 * `webhook.deliver` span in the operation's trace (carried by the job from the upload).
 *
 * Slots are shared fairly (delivery-slots.ts): a delivery over its tenant's or endpoint's share is
 * parked, its job delayed without counting an attempt, and woken when a slot frees. The event is
 * kept from the first attempt to the last (pending-events.ts), so retries after RETENTION deliver.
 */
import { DelayedError, Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { Agent, request } from 'undici';
import type { Config } from '@signspool/shared/config';
import type { Logger } from '@signspool/shared/logger';
import type { Metrics } from '@signspool/shared/metrics';
import { completedEvent } from '@signspool/shared/operations/view';
import { announceEnd } from '@signspool/shared/operations/lifecycle';
import type { TransitionResult } from '@signspool/shared/operations/record';
import type { OperationStore } from '@signspool/shared/operations/store';
import type { WebhookAttempt } from '@signspool/shared/webhooks/deliveries';
import { DisabledEndpoints } from '@signspool/shared/webhooks/endpoints';
import { PendingEvents, pendingLifetimeMs, type PendingEvent } from '@signspool/shared/webhooks/pending-events';
import { parseJobData, QUEUES, WEBHOOK_BACKOFF, type DeliverWebhookJob } from '@signspool/shared/queue';
import { ATTR, contextOf, inSpan, SpanKind, SPANS, type Span } from '@signspool/shared/spans';
import { refuseWebhookUrl, TARGET_NOT_ALLOWED, WebhookAllowList, type TargetRules } from '@signspool/shared/webhooks/target';
import { parseRetryAfter } from '../http-util.js';
import { DeliverySlots } from './delivery-slots.js';
import { SsrfGuard } from './ssrf-guard.js';
import { webhookHeaders } from './signature.js';

class DeliveryError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** Delay before attempt `attemptsMade + 1` (BullMQ counts failed attempts), ±10 % jitter. */
export const scheduleDelay = (scheduleMs: readonly number[], attemptsMade: number, retryAfterMs?: number, random = Math.random): number => {
  const base = scheduleMs[Math.min(attemptsMade, scheduleMs.length - 1)] ?? 0;
  const jittered = Math.round(base * (0.9 + random() * 0.2));
  return Math.max(jittered, retryAfterMs ?? 0);
};

/** A parked delivery comes back by itself after this long at most, should no slot wake it (another process took its place). */
const PARK_MAX_MS = 10 * 60_000;

/** The endpoint a delivery occupies: its target's origin (paths of one server share its capacity). */
const endpointOf = (url: string): string => {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
};

export interface WebhookDispatcherDeps {
  config: Config;
  redis: Redis;
  store: OperationStore;
  metrics: Metrics;
  logger: Logger;
  /** Tests inject a resolver to simulate DNS answers. */
  resolve?: (host: string) => Promise<string[]>;
}

export class WebhookDispatcher {
  private worker: Worker | undefined;
  private queue: Queue | undefined;
  private readonly agent: Agent;
  readonly guard: SsrfGuard;
  private readonly rules: TargetRules;
  private stopPromise: Promise<void> | undefined;

  static readonly handlers = ['deliver-webhook'] as const;
  private readonly disabled: DisabledEndpoints;
  private readonly pending: PendingEvents;
  /** Fair shares of WEBHOOK_CONCURRENCY (this process's). */
  readonly slots: DeliverySlots;

  constructor(private readonly deps: WebhookDispatcherDeps) {
    const { webhooks } = deps.config;
    this.disabled = new DisabledEndpoints(deps.redis, deps.config.queuePrefix);
    this.pending = new PendingEvents(deps.redis, deps.config.queuePrefix);
    this.slots = new DeliverySlots(webhooks.concurrency);
    this.guard = new SsrfGuard({ allow: webhooks.allow, ...(deps.resolve ? { resolve: deps.resolve } : {}) });
    this.rules = { allow: new WebhookAllowList(webhooks.allow), allowHttp: webhooks.allowHttp };
    this.agent = new Agent({
      connect: this.guard.connector(),
      headersTimeout: webhooks.timeoutMs,
      bodyTimeout: webhooks.timeoutMs,
      connections: webhooks.concurrency,
    });
  }

  async start(): Promise<void> {
    const { config, redis } = this.deps;
    this.queue = new Queue(QUEUES.webhook, { connection: redis, prefix: config.queuePrefix });
    this.worker = new Worker(QUEUES.webhook, (job: Job, token?: string) => this.process(job, token), {
      connection: redis,
      prefix: config.queuePrefix,
      concurrency: config.webhooks.concurrency,
      settings: {
        backoffStrategy: (attemptsMade: number, type?: string, err?: Error) =>
          type === WEBHOOK_BACKOFF
            ? scheduleDelay(config.webhooks.scheduleMs, attemptsMade, err instanceof DeliveryError ? err.retryAfterMs : undefined)
            : 1000,
      },
    });
    this.worker.on('error', (err) => this.deps.logger.error({ err }, 'webhook worker error'));
    await this.worker.waitUntilReady();
  }

  /** Announces an operation's end (shared/operations/lifecycle.ts) on this process's webhook queue. */
  async announceEnd(opId: string, tenant: string, result: Pick<TransitionResult, 'becameTerminal' | 'webhook'>): Promise<void> {
    if (!this.queue) return;
    await announceEnd({ store: this.deps.store, webhookQueue: this.queue, webhookAttempts: this.deps.config.webhooks.scheduleMs.length }, opId, tenant, result);
  }

  private async process(job: Job, token: string | undefined): Promise<string> {
    if (job.name !== 'deliver-webhook') throw new UnrecoverableError(`unknown job ${job.name}`);
    const data = parseJobData('deliver-webhook', job.data);
    const id = job.id ?? data.deliveryId;
    this.slots.unpark(id);
    const event = await this.eventOf(job, data);
    if (typeof event === 'string') return event;
    const endpoint = endpointOf(event.url);
    const slot = this.slots.tryAcquire(event.tenant, endpoint);
    if (!slot) {
      // Over its share: back to the queue as delayed (no attempt counted) until a slot wakes it.
      // Its own delay if nothing wakes it: when its turn would come were the endpoint hung.
      const turns = Math.floor(this.slots.parkedAt(event.tenant, endpoint) / this.slots.endpointShare(event.tenant, endpoint));
      const waitMs = Math.min(PARK_MAX_MS, this.deps.config.webhooks.timeoutMs * (1 + turns));
      // Parked before the job is delayed: a slot that frees during the move must not be missed.
      if (await this.slots.parkDuring(event.tenant, endpoint, id, () => job.moveToDelayed(Date.now() + waitMs, token))) this.promote(id);
      throw new DelayedError();
    }
    try {
      const attributes = { [ATTR.operationId]: data.opId, [ATTR.deliveryId]: data.deliveryId, [ATTR.attempt]: job.attemptsMade + 1 };
      return await inSpan(SPANS.webhook, { kind: SpanKind.CLIENT, attributes }, (span) => this.deliver(job, data, event, span), contextOf(data.trace));
    } finally {
      slot.release();
      this.wakeParked();
    }
  }

  /** Promotes the parked deliveries a freed slot can take (a failed promotion: the job comes back by its own delay). */
  private wakeParked(): void {
    for (const id of this.slots.wake()) this.promote(id);
  }

  /** Moves a delayed delivery back to the queue now (a failure: it comes back by its own delay). */
  private promote(id: string): void {
    void (async () => {
      const job = await this.queue?.getJob(id);
      await job?.promote();
    })().catch(() => undefined);
  }

  /**
   * The event this delivery sends: the copy kept since its first attempt, else made from the
   * operation (and kept until the last attempt). A string when there is nothing to send.
   */
  private async eventOf(job: Job, data: DeliverWebhookJob): Promise<PendingEvent | string> {
    const { config, store } = this.deps;
    const lifetimeMs = pendingLifetimeMs(config.webhooks.scheduleMs, job.attemptsMade, config.webhooks.timeoutMs);
    const kept = await this.pending.get(data.deliveryId);
    if (kept) {
      await this.pending.extend(data.deliveryId, lifetimeMs);
      return kept;
    }
    const op = await store.get(data.opId);
    if (!op) {
      this.deps.metrics.webhookDeliveries.inc({ outcome: 'dropped' });
      this.deps.logger.warn(
        { opId: data.opId, deliveryId: data.deliveryId, attempt: job.attemptsMade + 1 },
        'webhook delivery dropped: neither the operation nor a kept copy of its event exists any more',
      );
      return 'operation expired';
    }
    if (!op.webhookUrl) return 'no endpoint';
    const event = { tenant: op.tenant, url: op.webhookUrl, body: JSON.stringify(completedEvent(op, config.publicUrl ?? '')) };
    await this.pending.keep(data.deliveryId, event, lifetimeMs);
    return event;
  }

  private async deliver(job: Job, data: DeliverWebhookJob, event: PendingEvent, span: Span): Promise<string> {
    const { config, store, metrics } = this.deps;
    const log = this.deps.logger.child({ opId: data.opId, deliveryId: data.deliveryId });
    const { url, tenant, body } = event;
    const attempt = job.attemptsMade + 1;
    const record = async (a: Omit<WebhookAttempt, 'deliveryId' | 'attempt' | 'url' | 'at'>, at: number): Promise<void> => {
      span.setAttributes({ [ATTR.outcome]: a.outcome, ...(a.status === null ? {} : { 'http.response.status_code': a.status }) });
      await store.deliveries.record(data.opId, { deliveryId: data.deliveryId, attempt, url, at, ...a });
      metrics.webhookDeliveries.inc({ outcome: a.outcome });
    };
    // Once it succeeded, or can never succeed, the kept event goes; after a failure, it stays until the last attempt.
    const settle = async (): Promise<void> => this.pending.remove(data.deliveryId);
    const started = Date.now();
    if (await this.disabled.isDisabled(tenant, url)) {
      await record({ status: null, latencyMs: 0, outcome: 'disabled', error: 'the endpoint answered 410 Gone earlier and is disabled' }, started);
      await settle();
      throw new UnrecoverableError('endpoint disabled');
    }
    const secrets = config.webhooks.secrets.find((s) => s.tenant === tenant)?.secrets ?? [];
    const target = new URL(url);
    // Records stored before the api judged URLs at submit are judged here too; the guard checks again at connect.
    const refused = refuseWebhookUrl(url, this.rules);
    if (secrets.length === 0 || refused !== undefined) {
      const error = secrets.length === 0 ? 'no webhook secret is configured for this tenant (WEBHOOK_SECRETS)' : `refused: ${refused}`;
      await record({ status: null, latencyMs: 0, outcome: 'refused', error }, started);
      await settle();
      throw new UnrecoverableError(error);
    }
    const headers = {
      'content-type': 'application/json',
      'user-agent': 'signspool-webhooks/1',
      ...webhookHeaders(secrets, data.deliveryId, Math.floor(Date.now() / 1000), body),
    };
    let status: number | null = null;
    try {
      const res = await request(target, {
        method: 'POST',
        headers,
        body,
        dispatcher: this.agent,
        signal: AbortSignal.timeout(config.webhooks.timeoutMs),
      });
      status = res.statusCode;
      await res.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
      const latencyMs = Date.now() - started;
      metrics.webhookLatency.observe(latencyMs / 1000);
      if (status >= 200 && status < 300) {
        await record({ status, latencyMs, outcome: 'delivered' }, started);
        await settle();
        return `delivered ${status}`;
      }
      if (status === 410) {
        await this.disabled.disable(tenant, url);
        await record({ status, latencyMs, outcome: 'disabled', error: '410 Gone: endpoint disabled' }, started);
        await settle();
        log.warn('webhook endpoint answered 410 Gone; disabled');
        throw new UnrecoverableError('410 Gone');
      }
      const error = status >= 300 && status < 400 ? `redirect ${status} not followed` : `HTTP ${status}`;
      await record({ status, latencyMs, outcome: 'failed', error }, started);
      throw await this.retryLater(job, data, new DeliveryError(error, parseRetryAfter(res.headers['retry-after'])));
    } catch (err) {
      if (err instanceof UnrecoverableError || err instanceof DeliveryError) throw err;
      const refused = err instanceof Error && err.name === 'SsrfError';
      const detail = err instanceof Error ? err.message : String(err);
      // The tenant sees only that the target is not allowed; what the name resolves to stays in the operator's log.
      if (refused) log.warn({ url: target.origin, detail }, 'webhook target refused by the SSRF guard');
      const message = refused ? TARGET_NOT_ALLOWED : detail;
      await record({ status, latencyMs: Date.now() - started, outcome: refused ? 'refused' : 'failed', error: message }, started);
      if (refused) {
        await settle();
        throw new UnrecoverableError(message);
      }
      throw await this.retryLater(job, data, new DeliveryError(message));
    }
  }

  /** After a failed attempt: the kept event stays until the next one (a Retry-After may push it past the schedule), or goes after the last. */
  private async retryLater(job: Job, data: DeliverWebhookJob, err: DeliveryError): Promise<DeliveryError> {
    const { scheduleMs, timeoutMs } = this.deps.config.webhooks;
    if (job.attemptsMade + 1 >= (job.opts.attempts ?? 1)) await this.pending.remove(data.deliveryId);
    else await this.pending.extend(data.deliveryId, pendingLifetimeMs(scheduleMs, job.attemptsMade, timeoutMs, err.retryAfterMs));
    return err;
  }

  /** Idempotent. */
  stop(): Promise<void> {
    this.stopPromise ??= (async () => {
      await this.worker?.close();
      await this.queue?.close();
      await this.agent.close();
    })();
    return this.stopPromise;
  }
}
