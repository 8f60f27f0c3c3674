/**
 * What a section runs against: the run's private redis-server and fake Sign'Stash (started once by
 * run.ts), and api and worker processes started per section with `stackEnv`. They run from the
 * tree's dist/, as `npm start` runs them (BENCH_RUNTIME=tsx: from the sources through tsx).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { hashApiKey } from '@signspool/api/auth/auth';
import { DEFAULT_WORKER_NICE } from '@signspool/shared/config';
import { freePort } from '../bin/redis-server.js';
import { WORKER_NODE_FLAGS } from '@signspool/worker/node-flags';
import { startService, type ServiceProcess } from '../test/harness/processes.js';
import { benchNodeArgs } from './load.js';
import { START_NODE_FLAGS, buildService } from './production-build.js';
import { readScriptSettings, type Settings } from './settings.js';

export const root = path.resolve(import.meta.dirname, '..');
export const MB = 1024 * 1024;

/** The run's shared services and the api key every stack accepts. */
export interface Env {
  redisUrl: string;
  key: string;
  fakeUrl: string;
  fakePid: number | undefined;
  redisPid: number | undefined;
}

const nodeArgs = benchNodeArgs();
const { runtime } = readScriptSettings(process.env);
// Built once, before the first process starts, when a source changed since the last build.
if (runtime === 'dist') buildService();
/** The flags `npm start` gives every process (the worker's come from startService). */
const runtimeArgs = runtime === 'dist' ? START_NODE_FLAGS : [];

export const startRole = (role: 'api' | 'worker', env: Record<string, string>): Promise<ServiceProcess> =>
  startService(role, env, { nodeArgs: [...runtimeArgs, ...nodeArgs], dist: runtime === 'dist' });

/** The environment of an api or worker of the run, in its own data dir and queue prefix; `extra` overrides. */
export const stackEnv = (s: Settings, e: Env, dir: string, extra: Record<string, string>): Record<string, string> => ({
  REDIS_URL: e.redisUrl,
  QUEUE_PREFIX: `b${randomBytes(4).toString('hex')}`,
  DATA_DIR: dir,
  API_KEYS: `bench:${hashApiKey(e.key)}`,
  LOG_LEVEL: 'warn',
  SIGNER: 'signstash',
  // The documents are random bytes: as PAdES they would be refused at submit (DOCUMENT_NOT_PDF).
  DEFAULT_SIGNATURE_TYPE: 'CAdES',
  SIGNSTASH_URL: `${e.fakeUrl}/signstash/einvoice-integration-client-ws`,
  SIGNSTASH_AUTH_URL: `${e.fakeUrl}/oauth2/authorization-server`,
  SIGNSTASH_CLIENT_ID: 'signspool',
  SIGNSTASH_CLIENT_SECRET: 'signspool-secret',
  UPSTREAM_CONCURRENCY: String(s.concurrency),
  BATCH_MAX_DOCS: String(s.maxDocs),
  BATCH_LINGER: `${s.lingerMs}ms`,
  SPOOL_MIN_FREE_BYTES: '64MiB',
  UPLOAD_MAX_TOTAL_BYTES: '1100MiB',
  // One tenant drives the whole load, under the default per-tenant limits (they fit one tenant),
  // except the caps of long polls and of requests in progress: the load long-polls every document it has in flight.
  LONG_POLL_TENANT_MAX: '0',
  // The service's default (the test harness, which starts these processes, keeps workers at its own priority).
  WORKER_NICE: process.env['WORKER_NICE'] ?? String(DEFAULT_WORKER_NICE),
  HTTP_TENANT_MAX_CONNECTIONS: '0',
  ...extra,
});

/** The fake Sign'Stash as its own process, answering after `perRequestMs` plus the body at `bytesPerSec`. */
export const startFake = async (perRequestMs: number, bytesPerSec: number): Promise<{ url: string; child: ChildProcess; stop: () => Promise<void> }> => {
  const port = await freePort();
  const entry =
    runtime === 'dist'
      ? [...runtimeArgs, path.join(root, 'dist/test/fake-signstash/main.js')]
      : ['--import', 'tsx', path.join(root, 'test/fake-signstash/main.ts')];
  const child = spawn(process.execPath, [...WORKER_NODE_FLAGS, ...entry], {
    cwd: root,
    env: {
      ...process.env,
      FAKE_SIGNSTASH_PORT: String(port),
      FAKE_SIGNSTASH_LATENCY_MS: String(perRequestMs),
      FAKE_SIGNSTASH_BYTES_PER_SEC: String(bytesPerSec),
      // The benchmarks measure signspool: the fake's cheap trailer, not real signatures.
      FAKE_SIGNSTASH_SIGNATURES: 'trailer',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 400; i++) {
    if (
      await fetch(`${url}/_fake/stats`).then(
        (r) => r.ok,
        () => false,
      )
    )
      break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    url,
    child,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
};
