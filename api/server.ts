/** The api process: start() connects Redis, prepares the spool and listens; stop() drains and closes. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Queue } from 'bullmq';
import type { Express } from 'express';
import type { Redis } from 'ioredis';
import type { ApiKeyEntry, Config } from '@signspool/shared/config';
import type { Logger } from '@signspool/shared/logger';
import type { Metrics } from '@signspool/shared/metrics';
import { SignerRegistry } from '@signspool/shared/signers/registry';
import { OperationStore } from '@signspool/shared/operations/store';
import { Durability } from '@signspool/shared/durability';
import { QUEUES } from '@signspool/shared/queue';
import { redisTargetOptions } from '@signspool/shared/redis/target';
import { closeRedis, createApiRedis, waitForRedis } from '@signspool/shared/redis/clients';
import { Spool } from '@signspool/shared/spool/spool';
import { TenantBacklogReader } from '@signspool/shared/scheduling/tenant-backlog';
import { createApp } from './app.js';
import type { FastStatusReads } from './read/fast-status.js';
import type { FastUploads } from './upload/fast-upload.js';
import { ServiceHttpServer } from '@signspool/shared/service-http';
import { onClientError } from './http/client-errors.js';
import { connectionCaps, ConnectionLimits, descriptorLimit } from './http/connection-limits.js';
import { HttpDrain } from './http/drain.js';
import { keepAlive } from './http/keep-alive.js';
import type { ApiKeys } from './auth/api-keys.js';
import { allowHalfOpen } from './http/half-close.js';
import { OperationEvents } from './operation-events.js';
import { SubmissionUndo } from '@signspool/shared/operations/undo';
import { RedisHealth } from './redis-health.js';

export interface ApiServerDeps {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  /** The keys (ApiKeys: reloadable on SIGHUP, bin/start.ts), or fixed entries. */
  apiKeys: readonly ApiKeyEntry[] | ApiKeys;
  /** The process's signing identities (shared with a worker in the same process; reloaded on SIGHUP). */
  signers?: SignerRegistry;
}

export class ApiServer {
  /** The express application (for introspection in tests). */
  app: Express | undefined;
  private spool: Spool | undefined;
  private redis: Redis | undefined;
  private queue: Queue | undefined;
  private webhookQueue: Queue | undefined;
  private undo: SubmissionUndo | undefined;
  private redisHealth: RedisHealth | undefined;
  private events: OperationEvents | undefined;
  private metricsServer: ServiceHttpServer | undefined;
  private drain: HttpDrain | undefined;
  /** The status read's fast path (for tests: how many reads it answered). */
  statusReads: FastStatusReads | undefined;
  /** The upload's fast path (for tests: how many uploads it ran). */
  uploads: FastUploads | undefined;
  /** The connection limits (for tests: counts and caps). */
  connections: ConnectionLimits | undefined;
  /** The /metrics URL when METRICS_PORT serves it on its own port. */
  metricsUrl = '';
  private stopPromise: Promise<void> | undefined;
  /** The signing identities every submission reads (the one given, else loaded from the config). */
  readonly signers: SignerRegistry;

  constructor(private readonly deps: ApiServerDeps) {
    this.signers = deps.signers ?? new SignerRegistry({ config: deps.config, logger: deps.logger, metrics: deps.metrics });
  }

  /** Requests currently waiting on `Prefer: wait`. */
  get waitingRequests(): number {
    return this.events?.waiting ?? 0;
  }

  /** False while the api finds Redis unavailable (redis-health.ts: uploads are refused then). */
  get redisAvailable(): boolean {
    return this.redisHealth?.available ?? false;
  }

  /** The base URL once listening (port 0 resolves to the real port). */
  url = '';

  async start(): Promise<string> {
    const { config, logger } = this.deps;
    if (!config.redisUrl) throw new Error('api: REDIS_URL is not set');
    const spool = new Spool(config.spoolDir);
    await spool.init();
    this.spool = spool;
    this.redis = createApiRedis(config.redisUrl, config.redisCommandTimeoutMs, redisTargetOptions(config));
    this.redis.on('error', (err: Error) => logger.warn({ err: { message: err.message } }, 'redis connection error'));
    await waitForRedis(this.redis, config.redisConnectTimeoutMs);
    const durability = await Durability.check(this.redis, config.durability, logger);
    this.queue = new Queue(QUEUES.sign, {
      connection: this.redis,
      prefix: config.queuePrefix,
      // Nobody reads the queue's event stream: keep it short (Redis memory per queued document).
      streams: { events: { maxLen: 100 } },
      defaultJobOptions: { attempts: 1, removeOnComplete: true, removeOnFail: { age: Math.ceil(config.retentionMs / 1000) } },
    });
    this.webhookQueue = new Queue(QUEUES.webhook, { connection: this.redis, prefix: config.queuePrefix });
    this.deps.metrics.queueSources.push({ name: QUEUES.sign, getJobCounts: (...s) => this.queue?.getJobCounts(...(s as never[])) ?? Promise.resolve({}) });
    this.deps.metrics.queueSources.push({
      name: QUEUES.webhook,
      getJobCounts: (...s) => this.webhookQueue?.getJobCounts(...(s as never[])) ?? Promise.resolve({}),
    });
    this.deps.metrics.spoolSources.push(spool);
    // Per-tenant backlog series come from the api only (every api reads the same hash; workers do not);
    // tenant names only where every scrape must send METRICS_TOKEN.
    if (config.metrics.tenantSeries > 0) {
      const named = config.metrics.token !== undefined;
      this.deps.metrics.tenantBacklogSources.push(new TenantBacklogReader(this.redis, config.queuePrefix, config.metrics.tenantSeries, logger, named));
    }
    const store = new OperationStore(this.redis, { prefix: config.queuePrefix, retentionMs: config.retentionMs });
    this.events = new OperationEvents(this.redis, store.channel, logger);
    await this.events.start();
    this.undo = new SubmissionUndo({ store, queue: this.queue, spool, logger });
    this.redisHealth = new RedisHealth(this.redis);
    const descriptors = descriptorLimit();
    const connections = new ConnectionLimits(connectionCaps(config.connections, descriptors), this.deps.metrics, logger);
    this.connections = connections;
    logger.info({ ...connections.caps, descriptors }, 'connection limits');
    // Set with the server below; /readyz answers 503 from the start of a stop.
    const stopping = (): boolean => this.drain?.stopping ?? false;
    const { app, statusReads, uploads, listener } = createApp({
      connections,
      stopping,
      ...this.deps,
      redis: this.redis,
      queue: this.queue,
      webhookQueue: this.webhookQueue,
      store,
      spool,
      durability,
      events: this.events,
      undo: this.undo,
      redisHealth: this.redisHealth,
      signers: this.signers,
    });
    this.app = app;
    this.statusReads = statusReads;
    this.uploads = uploads;
    // Plain status reads and uploads are answered below express (read/fast-status.ts, upload/fast-upload.ts).
    const server = http.createServer(listener);
    // A stop answers every request that reaches an open connection, each closing it (drain.ts).
    this.drain = new HttpDrain(server);
    // Counted from accept: caps on anonymous, per-tenant and all connections (connection-limits.ts).
    connections.attach(server);
    // Parser errors (431, malformed framing) answered as problem+json (client-errors.ts).
    server.on('clientError', onClientError(logger));
    // A client that half-closes after sending its request still gets the answer (half-close.ts).
    allowHalfOpen(server);
    await new Promise<void>((resolve, reject) => {
      server.once('listening', () => resolve());
      server.once('error', reject);
      server.listen({ port: config.port, host: config.host, backlog: config.httpBacklog });
    });
    // Uploads of 1 GB over slow links take time: no request timeout, but headers must come fast.
    server.requestTimeout = 0;
    server.headersTimeout = config.httpHeadersTimeoutMs;
    // Clients are told HTTP_KEEPALIVE_TIMEOUT (app.ts); idle connections close after twice that (keep-alive.ts).
    keepAlive(server, config.httpKeepAliveTimeoutMs);
    const addr = server.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    this.url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${addr.port}`;
    logger.info({ url: this.url }, 'api listening');
    if (config.metrics.port !== undefined) {
      this.metricsServer = new ServiceHttpServer({
        host: config.host,
        port: config.metrics.port,
        metrics: { metrics: this.deps.metrics, token: config.metrics.token },
      });
      this.metricsUrl = `${await this.metricsServer.start()}/metrics`;
      logger.info({ url: this.metricsUrl }, 'api metrics listening');
    }
    return this.url;
  }

  /**
   * Idempotent: stops accepting, answers what reaches an open connection (each answer closing it),
   * closes idle connections after HTTP_DRAIN_WINDOW and all of them at SHUTDOWN_TIMEOUT, closes Redis.
   */
  stop(): Promise<void> {
    this.stopPromise ??= (async () => {
      // First, before any answer the stop causes (drain.ts).
      const drained = this.drain?.drain({ windowMs: this.deps.config.httpDrainWindowMs, deadlineMs: this.deps.config.shutdownTimeoutMs });
      // Waiting requests answer now with the current state, once a client that reconnects is refused.
      await this.drain?.listenerClosed;
      await this.events?.stop();
      await this.metricsServer?.stop();
      if ((await drained) === 'deadline')
        this.deps.logger.warn({ shutdownTimeoutMs: this.deps.config.shutdownTimeoutMs }, 'api stop: connections still busy at SHUTDOWN_TIMEOUT were closed');
      this.undo?.stop();
      this.redisHealth?.stop();
      await this.queue?.close();
      await this.webhookQueue?.close();
      if (this.redis) await closeRedis(this.redis);
      await this.spool?.close();
    })();
    return this.stopPromise;
  }
}
