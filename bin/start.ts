/**
 * Composition root: `node dist/bin/start.js all|api|worker` (built by `npm run build`; `npm run dev`
 * runs this file through tsx).
 * all    — api and worker in one process (npm start); with no REDIS_URL it uses 127.0.0.1:6379,
 *          or starts its own redis-server with a data dir under DATA_DIR.
 * api    — the HTTP api only (scale-out).
 * worker — the signing worker only (scale-out).
 *
 * Start order: configuration, checks of what can fail (ports, directories), tracing
 * (bin/tracing.ts), Redis (spawned or reached within REDIS_CONNECT_TIMEOUT), the components,
 * then one banner. A failure at any step stops whatever was started (a spawned redis-server
 * included) and exits 1 with one line.
 */
import './threadpool.js';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { ApiServer } from '@signspool/api/server';
import { ApiKeys, type ApiKeySource } from '@signspool/api/auth/api-keys';
import { resolveApiKeys } from '@signspool/api/auth/auth';
import { ConfigError, loadConfig, type Config } from '@signspool/shared/config';
import { createLogger, type Logger } from '@signspool/shared/logger';
import { createMetrics } from '@signspool/shared/metrics';
import { SignerRegistry } from '@signspool/shared/signers/registry';
import { prettyDestination } from './pretty-log.js';
import { closeRedis, createApiRedis, DEFAULT_REDIS_URL, waitForRedis } from '@signspool/shared/redis/clients';
import { durabilityProblems } from '@signspool/shared/durability';
import { resolveWebhookSecrets } from '@signspool/shared/webhooks/secrets';
import { isPortOpen, spawnRedisServer } from './redis-server.js';
import { describeRedis, RedisUnreachableError, redisTargetOptions, sentinelUrl, waitUntilReachable } from '@signspool/shared/redis/target';
import { lowerOwnPriority } from './priority.js';
import { ShutdownManager } from './shutdown.js';
import { startTracing } from './tracing.js';
import { ServiceHttpServer } from '@signspool/shared/service-http';
import { missingWorkerNodeFlags } from '@signspool/worker/node-flags';
import { SigningWorker } from '@signspool/worker/worker';
import { assertPortFree, assertWritableDir, StartError } from './preflight.js';

type Mode = 'all' | 'api' | 'worker';

interface ResolvedRedis {
  url: string;
  /** How the banner names it. */
  description: string;
}

const resolveRedis = async (config: Config, mode: Mode, logger: Logger, shutdown: ShutdownManager): Promise<ResolvedRedis> => {
  if (config.redisSentinel) {
    const url = sentinelUrl(config);
    return { url, description: describeRedis(url, config) };
  }
  if (config.redisUrl) return { url: config.redisUrl, description: describeRedis(config.redisUrl, config) };
  if (mode !== 'all' || (await isPortOpen(6379))) return { url: DEFAULT_REDIS_URL, description: `${DEFAULT_REDIS_URL} (default)` };
  const dir = path.join(config.dataDir, 'redis');
  logger.info({ dir }, 'no Redis at REDIS_URL or 127.0.0.1:6379: starting redis-server');
  // On a socket in its data dir: only this user reaches it, and a command costs the api less than over TCP.
  const server = await spawnRedisServer({ dir, appendOnly: true, appendFsync: config.durability.mode === 'strict' ? 'always' : 'everysec', unixSocket: true });
  // Whatever way this process ends, its redis-server ends with it.
  process.once('exit', () => server.process.kill('SIGTERM'));
  shutdown.register('redis-server', () => server.stop());
  return { url: server.url, description: `${describeRedis(server.url, config)} (redis-server started by signspool, data in ${dir})` };
};

const describeSigner = (config: Config, signers: SignerRegistry): string => {
  if (config.signersFile !== undefined) return `${signers.identities.names().length} identities from ${config.signersFile} (SIGHUP reloads)`;
  if (config.signer === 'signstash') return `signstash ${config.signstash.url} (client ${config.signstash.clientId})`;
  if (config.localSigner.certFile) return `local (certificate ${config.localSigner.certFile})`;
  return `local (self-signed development certificate in ${path.join(config.dataDir, 'local-signer')})`;
};

const main = async (mode: Mode, config: Config, logger: Logger, shutdown: ShutdownManager): Promise<void> => {
  // What can fail without Redis is checked before anything is spawned or generated.
  if (mode !== 'worker') await assertPortFree(config.host, config.port, 'PORT');
  if (mode !== 'worker' && config.metrics.port) await assertPortFree(config.host, config.metrics.port, 'METRICS_PORT');
  if (mode === 'worker') await assertPortFree(config.host, config.workerMetricsPort, 'WORKER_METRICS_PORT');
  await assertWritableDir(config.dataDir, 'DATA_DIR');
  await assertWritableDir(config.spoolDir, 'SPOOL_DIR');

  // First started, last stopped: spans of the drain are exported too.
  const tracing = await startTracing(config.tracing, mode, logger);
  shutdown.register('tracing', () => tracing.stop());

  const redis = await resolveRedis(config, mode, logger, shutdown);
  logger.info({ redis: redis.description }, 'connecting to Redis');
  await waitUntilReachable(redis.url, config, logger);
  const durable = await redisDurability(redis.url, config);
  // Without WEBHOOK_SECRETS: the secrets kept in DATA_DIR; the api with generated API keys makes one for `default`.
  const webhookSecrets = await resolveWebhookSecrets(config.webhooks.secrets, config.dataDir, mode !== 'worker' && config.apiKeys === undefined);
  const cfg: Config = { ...config, redisUrl: redis.url, webhooks: { ...config.webhooks, secrets: webhookSecrets.entries } };
  try {
    await startComponents(mode, cfg, logger, shutdown, { redis, durable, tracing, webhookSecret: webhookSecrets.generated });
  } catch (err) {
    // Nobody saw the secret: do not keep it.
    if (webhookSecrets.generated) await rm(webhookSecrets.generated.file, { force: true });
    throw err;
  }
};

/** Whether this Redis can keep what is acknowledged: the problems, one sentence each (none: durable). */
const redisDurability = async (url: string, config: Config): Promise<string[]> => {
  const client = createApiRedis(url, config.redisCommandTimeoutMs, redisTargetOptions(config));
  client.on('error', () => undefined);
  try {
    await waitForRedis(client, config.redisConnectTimeoutMs);
    return (await durabilityProblems(client)).problems;
  } finally {
    await closeRedis(client);
  }
};

interface Started {
  redis: ResolvedRedis;
  durable: string[];
  tracing: { enabled: boolean };
  webhookSecret: { tenant: string; secret: string; file: string } | undefined;
}

const startComponents = async (mode: Mode, cfg: Config, logger: Logger, shutdown: ShutdownManager, started: Started): Promise<void> => {
  const { redis, durable, tracing, webhookSecret } = started;
  const metrics = createMetrics();
  const banner: Record<string, string> = {};
  // One registry for every component of this process: SIGHUP reloads SIGNERS_FILE and its secret files.
  const signers = new SignerRegistry({ config: cfg, logger, metrics });
  const onHangup = (): void => void signers.reload('signal');
  process.on('SIGHUP', onHangup);
  await signers.start();
  shutdown.register('signers', async () => {
    process.off('SIGHUP', onHangup);
    await signers.stop();
  });

  if (mode === 'all' || mode === 'worker') {
    const missing = missingWorkerNodeFlags();
    if (missing.length > 0)
      logger.warn({ missing }, 'the worker runs best with these node flags (see worker/node-flags.ts): under load, expect frequent major GCs without them');
    if (mode === 'worker') {
      // Batches yield the CPU to the api's requests where both share a host (WORKER_NICE).
      const lowered = lowerOwnPriority(cfg.workerNice);
      if (lowered.threads > 0) banner['priority'] = `nice ${lowered.nice} (WORKER_NICE)`;
    }
    const worker = new SigningWorker({ config: cfg, logger, metrics, signers });
    shutdown.register('worker', () => worker.stop());
    await worker.start();
    if (mode === 'worker') {
      const http = new ServiceHttpServer({
        host: cfg.host,
        port: cfg.workerMetricsPort,
        metrics: { metrics, token: cfg.metrics.token },
        readiness: () => worker.readiness(),
      });
      shutdown.register('worker-http', () => http.stop());
      banner['metrics'] = `${await http.start()}/metrics`;
    }
  }
  let generatedKey: { key: string; file: string } | undefined;
  if (mode === 'all' || mode === 'api') {
    const keys = await resolveApiKeys(cfg.apiKeys, cfg.dataDir);
    // SIGHUP reads the keys' file again (API_KEYS_FILE, or the data directory's); keys inline in API_KEYS stay.
    const source: ApiKeySource =
      cfg.apiKeysFile !== undefined
        ? { kind: 'file', path: cfg.apiKeysFile, syntax: 'API_KEYS_FILE' }
        : keys.file !== undefined
          ? { kind: 'file', path: keys.file, syntax: 'data-dir' }
          : { kind: 'environment' };
    const apiKeys = new ApiKeys(keys.entries, { source, logger, metrics });
    const reloadKeys = (): void => void apiKeys.reload('signal');
    process.on('SIGHUP', reloadKeys);
    shutdown.register('api-keys', async () => {
      process.off('SIGHUP', reloadKeys);
    });
    const api = new ApiServer({ config: cfg, logger, metrics, apiKeys, signers });
    shutdown.register('api', () => api.stop());
    try {
      await api.start();
    } catch (err) {
      // Nobody saw the key: do not keep a hash that locks the next start out.
      if (keys.generatedKey && keys.file) await rm(keys.file, { force: true });
      throw err;
    }
    if (keys.generatedKey && keys.file) generatedKey = { key: keys.generatedKey, file: keys.file };
    banner['api'] = api.url;
    banner['metrics'] = api.metricsUrl || `${api.url}/metrics`;
    banner['docs'] = `${api.url}/docs`;
  }
  banner['redis'] = redis.description;
  banner['spool'] = cfg.spoolDir;
  banner['signer'] = describeSigner(cfg, signers);
  banner['tracing'] = tracing.enabled ? `${cfg.tracing.tracesUrl ?? ''} (${cfg.tracing.protocol})` : 'off';
  banner['durable'] =
    durable.length === 0
      ? `yes: Redis keeps its data on disk (DURABILITY=${cfg.durability.mode})`
      : 'NO: acknowledged documents can be lost (see the warning below)';
  logger.info({ mode, ...banner, ...(durable.length > 0 ? { redisProblems: durable } : {}) }, 'signspool started');
  // The log line first, then any text written straight to stdout.
  await new Promise<void>((resolve) => logger.flush(() => resolve()));
  if (cfg.logFormat === 'pretty' || process.stdout.isTTY) {
    const lines = Object.entries(banner).map(([k, v]) => `  ${k.padEnd(8)} ${v}`);
    process.stdout.write(`\nsignspool (${mode}) is running\n${lines.join('\n')}\n\n`);
  }
  if (durable.length > 0) {
    // Said where a person reads, whatever the log format: the promise of a 202 does not hold.
    process.stderr.write(
      `\nWARNING: the Redis at ${redis.description} cannot keep what signspool acknowledges:\n${durable.map((p) => `  - ${p}`).join('\n')}\n` +
        `Run Redis with appendonly yes and maxmemory-policy noeviction (docs/operations.md#redis); DURABILITY=strict refuses to start without them.\n\n`,
    );
  }
  if (generatedKey) {
    // Printed once, on purpose, to the terminal (never to a log line): only its hash is kept.
    process.stdout.write(
      `\nGenerated an API key for tenant "default" (only its hash is kept in ${generatedKey.file}):\n\n  ${generatedKey.key}\n\nKeep it now: it will not be shown again.\n\n`,
    );
  }
  if (webhookSecret) {
    // Printed once, never logged; kept (mode 0600) because every delivery is signed with it.
    process.stdout.write(
      `\nGenerated a webhook signing secret for tenant "${webhookSecret.tenant}" (kept in ${webhookSecret.file}; WEBHOOK_SECRETS replaces it):\n\n  ${webhookSecret.secret}\n\nWebhook receivers verify deliveries with it (Standard Webhooks).\n\n`,
    );
  }
};

const run = async (): Promise<void> => {
  const mode = (process.argv[2] ?? 'all') as Mode;
  let config: Config;
  try {
    if (!['all', 'api', 'worker'].includes(mode)) throw new ConfigError(`usage: start.js all|api|worker (got ${mode})`);
    config = loadConfig();
  } catch (err) {
    process.stderr.write(`signspool: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  const logger = createLogger({ level: config.logLevel, name: `signspool-${mode}` }, config.logFormat === 'pretty' ? prettyDestination() : undefined);
  const shutdown = new ShutdownManager(logger, config.shutdownTimeoutMs + 5000);
  shutdown.installSignalHandlers();
  try {
    await main(mode, config, logger, shutdown);
  } catch (err) {
    const known = err instanceof StartError || err instanceof RedisUnreachableError || err instanceof ConfigError;
    const message = err instanceof Error ? err.message : String(err);
    if (!known) logger.error({ err }, 'failed to start');
    await shutdown.shutdown('start failed');
    await new Promise<void>((resolve) => logger.flush(() => resolve()));
    process.stderr.write(`signspool: failed to start: ${message}\n`);
    process.exit(1);
  }
};

await run();
