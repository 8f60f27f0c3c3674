/**
 * `npm run bench:api`: the api's CPU per 200 KB upload and per status read, the api alone (no
 * worker: nothing competes with it), against a bare `node:http` server doing the least the same
 * requests need (bench/bare-server.ts) measured in the same run with the same client, both run from
 * production bundles (bench/production-build.ts). The ratio
 * is what signspool's upload path (multipart parsing, SHA-256, Express, auth, three Redis
 * scripts, metrics) costs over writing the bytes durably. BENCH_API_UPLOADS sets the count,
 * BENCH_API_READS the status reads (as many as uploads by default).
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Agent, request } from 'undici';
import { generateApiKey, hashApiKey } from '@signspool/api/auth/auth';
import { freePort, spawnRedisServer } from '../bin/redis-server.js';
import { startService } from '../test/harness/processes.js';
import { benchNodeArgs, cpuSeconds, submissionOf } from './load.js';
import { apiNodeFlags, buildService, bundleProgram } from './production-build.js';
import { readScriptSettings } from './settings.js';

const settings = readScriptSettings(process.env).api;
const N = settings.uploads;
/** Status reads, round-robin over the uploaded operations. */
const READS = settings.reads;
const WARMUP = 500;
const CLIENTS = 64;

/** Uploads `count` copies of one multipart body, then reads a status `count` times; CPU ms of `pid` (and of `redisPid`) per request. */
const measure = async (url: string, pid: number | undefined, headers: Record<string, string>, redisPid?: number) => {
  const agent = new Agent({ connections: CLIENTS });
  const { body, contentType } = submissionOf(randomBytes(200 * 1024));
  const ids: string[] = [];
  const upload = async (): Promise<void> => {
    const r = await request(`${url}/v1/operations`, { method: 'POST', dispatcher: agent, headers: { ...headers, 'content-type': contentType }, body });
    const { id } = (await r.body.json()) as { id: string };
    if (r.statusCode !== 202) throw new Error(`upload answered ${r.statusCode}`);
    ids.push(id);
  };
  const read = async (id: string): Promise<void> => {
    const r = await request(`${url}/v1/operations/${id}`, { dispatcher: agent, headers });
    await r.body.dump();
    if (r.statusCode !== 200) throw new Error(`status read answered ${r.statusCode}`);
  };
  const run = async (count: number, one: (i: number) => Promise<void>): Promise<[number, number]> => {
    let next = 0;
    const [c0, r0] = [await cpuSeconds(pid), await cpuSeconds(redisPid)];
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        while (next < count) await one(next++);
      }),
    );
    const [c1, r1] = [await cpuSeconds(pid), await cpuSeconds(redisPid)];
    return [((c1 - c0) / count) * 1000, ((r1 - r0) / count) * 1000];
  };
  await run(WARMUP, upload);
  const [uploadMs, uploadRedisMs] = await run(N, upload);
  const [readMs, readRedisMs] = await run(READS, (i) => read(ids[i % ids.length] ?? ''));
  await agent.close();
  return { uploadMs, readMs, uploadRedisMs, readRedisMs };
};

// Both servers from production bundles (dist/ as `npm start` runs it; the bare server bundled alike).
buildService();
const bareServer = bundleProgram('bare-server', 'bench/bare-server.ts');
const tmp = await mkdtemp(path.join(settings.dir ?? os.tmpdir(), 'signspool-bench-api-'));
try {
  const bareDir = path.join(tmp, 'bare');
  await mkdir(bareDir);
  const port = await freePort();
  const bare = fork(bareServer, {
    env: { ...process.env, PORT: String(port), DIR: bareDir },
    execArgv: [],
    stdio: 'inherit',
  });
  await new Promise((resolve) => bare.once('message', resolve));
  const base = await measure(`http://127.0.0.1:${port}`, bare.pid, {});
  bare.kill('SIGTERM');

  const redis = await spawnRedisServer({ dir: path.join(tmp, 'redis'), unixSocket: true });
  const key = generateApiKey();
  const api = await startService(
    'api',
    {
      REDIS_URL: redis.url,
      DATA_DIR: path.join(tmp, 'data'),
      API_KEYS: `bench:${hashApiKey(key)}`,
      LOG_LEVEL: 'warn',
      SIGNER: 'local',
      SPOOL_MIN_FREE_BYTES: '64MiB',
      // BENCH_API_LIMITS=defaults: the default per-tenant limits (as `npm start`); off otherwise.
      ...(settings.defaultLimits ? {} : { RATE_LIMIT_REQUESTS: '0', RATE_LIMIT_READS: '0', RATE_LIMIT_UPLOAD_BYTES: '0', BACKLOG_MAX_DOCUMENTS: '0' }),
    },
    { nodeArgs: [...apiNodeFlags(), ...benchNodeArgs()], dist: true },
  );
  const ours = await measure(api.url, api.child.pid, { authorization: `Bearer ${key}` }, redis.process.pid);
  await api.stop();
  await redis.stop();

  console.log(
    `api alone, ${N} uploads of 200 KB then ${READS} status reads, ${CLIENTS} clients; CPU of the serving process per request (both from production bundles)`,
  );
  // Redis's CPU is beside the ratio, not in it (the bare server has none): work moved from the api into Redis shows there.
  const row = (what: string, ms: number, baseMs: number, redisMs: number): void =>
    console.log(
      `${what.padEnd(38)} ${ms.toFixed(3)} ms   bare server ${baseMs.toFixed(3)} ms   ${(ms / baseMs).toFixed(2)}×   (redis-server ${redisMs.toFixed(3)} ms)`,
    );
  row('upload (POST /v1/operations)', ours.uploadMs, base.uploadMs, ours.uploadRedisMs);
  row('status read (GET /v1/operations/:id)', ours.readMs, base.readMs, ours.readRedisMs);
} finally {
  await rm(tmp, { recursive: true, force: true });
}
