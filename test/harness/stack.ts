/**
 * Starts api and worker in-process (through their start()/stop()) against the test Redis, each
 * test file with its own queue prefix and data dir. Two tenants with known keys: acme and globex.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { inject } from 'vitest';
import { ApiServer } from '@signspool/api/server';
import { generateApiKey, hashApiKey } from '@signspool/api/auth/auth';
import { loadConfig, type Config } from '@signspool/shared/config';
import { createLogger, type Logger } from '@signspool/shared/logger';
import { createMetrics, type Metrics } from '@signspool/shared/metrics';
import { SigningWorker } from '@signspool/worker/worker';

export interface Stack {
  apiUrl: string;
  /** The api's /metrics (its own port, METRICS_PORT=0 here; '' without an api), or `${apiUrl}/metrics` with METRICS_PORT=api. */
  metricsUrl: string;
  config: Config;
  keys: { acme: string; globex: string };
  dir: string;
  logger: Logger;
  /** The registry api and worker share in-process (read it to see what they counted). */
  metrics: Metrics;
  api: ApiServer | undefined;
  worker: SigningWorker | undefined;
  stop(): Promise<void>;
}

export interface StackOptions {
  env?: Record<string, string>;
  api?: boolean;
  worker?: boolean;
  /** Reuse a data dir (and prefix) of an earlier stack, e.g. to restart a worker. */
  reuse?: { dir: string; prefix: string };
  /** Where api and worker log (default: a logger at TEST_LOG_LEVEL). */
  logger?: Logger;
}

/** A METRICS_TOKEN for tests that read tenant names on /metrics (exported only to scrapers that send it). */
export const TEST_METRICS_TOKEN = 'metrics-token-for-tests-0123456789';

/** Scrapes the stack's api /metrics, sending its METRICS_TOKEN when it has one. */
export const scrapeMetrics = (stack: Pick<Stack, 'metricsUrl' | 'config'>): Promise<Response> =>
  fetch(stack.metricsUrl, stack.config.metrics.token === undefined ? {} : { headers: { authorization: `Bearer ${stack.config.metrics.token}` } });

export const testPrefix = (): string => `t${randomBytes(5).toString('hex')}`;

export const startStack = async (opts: StackOptions = {}): Promise<Stack> => {
  const dir = opts.reuse?.dir ?? (await mkdtemp(path.join(os.tmpdir(), 'signspool-test-')));
  const keys = { acme: generateApiKey(), globex: generateApiKey() };
  const env: Record<string, string> = {
    REDIS_URL: inject('redisUrl'),
    QUEUE_PREFIX: opts.reuse?.prefix ?? testPrefix(),
    DATA_DIR: dir,
    PORT: '0',
    METRICS_PORT: '0',
    LOG_LEVEL: process.env['TEST_LOG_LEVEL'] ?? 'silent',
    API_KEYS: `acme:${hashApiKey(keys.acme)},globex:${hashApiKey(keys.globex)}`,
    BATCH_LINGER: '100ms',
    SPOOL_MIN_FREE_BYTES: '1MiB',
    SHUTDOWN_TIMEOUT: '10s',
    // A stop waits that long for the idle connections of the test's own clients (default: HTTP_KEEPALIVE_TIMEOUT).
    HTTP_DRAIN_WINDOW: '100ms',
    ...opts.env,
  };
  const config = loadConfig(env);
  const logger = opts.logger ?? createLogger({ level: config.logLevel });
  const metrics = createMetrics({ defaultMetrics: false });
  let worker: SigningWorker | undefined;
  let api: ApiServer | undefined;
  if (opts.worker ?? true) {
    worker = new SigningWorker({ config, logger, metrics });
    await worker.start();
  }
  let apiUrl = '';
  if (opts.api ?? true) {
    api = new ApiServer({ config, logger, metrics, apiKeys: config.apiKeys ?? [] });
    apiUrl = await api.start();
  }
  let stopped = false;
  const metricsUrl = api === undefined ? '' : config.metrics.port === undefined ? `${apiUrl}/metrics` : api.metricsUrl;
  return {
    apiUrl,
    metricsUrl,
    config,
    metrics,
    keys,
    dir,
    logger,
    api,
    worker,
    async stop() {
      if (stopped) return;
      stopped = true;
      await api?.stop();
      await worker?.stop();
      if (!opts.reuse) await rm(dir, { recursive: true, force: true });
    },
  };
};

/** Counters and histogram counts of the api's /metrics, by series. */
export const metricCounts = async (stack: Stack): Promise<Map<string, number>> => {
  const text = await (await scrapeMetrics(stack)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\S+(?:_total|_count)(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m?.[1] !== undefined) out.set(m[1], Number(m[2]));
  }
  return out;
};

/** The series that changed between two scrapes, and by how much. */
export const metricDelta = (before: Map<string, number>, after: Map<string, number>): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const [k, v] of after) if (v !== (before.get(k) ?? 0)) out[k] = v - (before.get(k) ?? 0);
  return out;
};
