/**
 * `npm run bench:worker`: the worker's CPU per document against a bare batch client
 * (bench/bare-batch-client.ts) that signs the same documents in batches of the same sizes through
 * the same fake Sign'Stash, with no Redis and no BullMQ; both measured in the same run. The worker
 * runs as a process of its own beside an api that 64 clients upload 200 KB documents to (closed
 * loop, each operation long-polled to its end, as section 1); its CPU is counted over the measured
 * documents, after a warm-up. The bare client then reads spooled files of those documents.
 * BENCH_WORKER_DOCS sets the count (2000), BENCH_WARMUP the warm-up (300); fake and batching
 * settings as `npm run bench`. Goal: ≤ 1.5× (MISS printed otherwise, never a failure).
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { generateApiKey } from '@signspool/api/auth/auth';
import { WORKER_NODE_FLAGS } from '@signspool/worker/node-flags';
import { spawnRedisServer } from '../bin/redis-server.js';
import { closeClients, closedLoop, cpuSeconds, newClients, submissionOf } from './load.js';
import { speedProbe } from './machine-probe.js';
import { START_NODE_FLAGS, bundleProgram } from './production-build.js';
import { readScriptSettings, readSettings } from './settings.js';
import { stackEnv, startFake, startRole, type Env } from './stack.js';

const settings = readSettings(process.argv, process.env);
const scriptSettings = readScriptSettings(process.env);
const { docs: N, warmup: WARMUP } = scriptSettings.worker;
const GOAL = 1.5;

/**
 * Spooled files of the measured documents under `spool`, at most `count`: the signed results
 * (`<opId>.<docId>.<batchId>`, the 200 KB document and the fake's short trailer). The uploads
 * themselves are retired into spare files once signed.
 */
const spooledFiles = async (spool: string, count: number): Promise<string[]> => {
  const out: string[] = [];
  for (const shard of await readdir(spool)) {
    const dir = path.join(spool, shard);
    if (!(await stat(dir)).isDirectory()) continue;
    for (const f of await readdir(dir)) if (f.split('.').length === 3) out.push(path.join(dir, f));
  }
  return out.slice(0, count);
};

const tmp = await mkdtemp(path.join(os.tmpdir(), 'signspool-bench-worker-'));
const redis = await spawnRedisServer({ dir: path.join(tmp, 'redis'), unixSocket: true });
const fake = await startFake(settings.latencyMs, settings.bytesPerSec);
try {
  const e: Env = { redisUrl: redis.url, key: generateApiKey(), fakeUrl: fake.url, fakePid: fake.child.pid, redisPid: redis.process.pid };
  const dir = path.join(tmp, 'stack');
  const env = stackEnv(settings, e, dir, {});
  const [api, worker] = await Promise.all([startRole('api', env), startRole('worker', env)]);
  const clients = newClients(64);
  const submission = submissionOf(randomBytes(200 * 1024));
  await closedLoop(api.url, e.key, clients, submission, WARMUP);
  await fetch(`${fake.url}/_fake/reset`, { method: 'POST' });
  const probe0 = speedProbe();
  const w0 = await cpuSeconds(worker.child.pid);
  await closedLoop(api.url, e.key, clients, submission, N);
  const workerMs = (((await cpuSeconds(worker.child.pid)) - w0) * 1000) / N;
  const requests = ((await (await fetch(`${fake.url}/_fake/requests`)).json()) as { outcome: string; documents: number }[]).filter((r) => r.outcome === 'ok');
  await Promise.all([api.stop(), worker.stop()]);
  await closeClients(clients);

  // The bare client: the measured run's batch sizes over spooled files of the same size.
  const files = await spooledFiles(path.join(dir, 'spool', 'signed'), N + WARMUP);
  if (files.length < N) throw new Error(`found ${files.length} signed files in the spool for ${N} documents`);
  const sizes = requests.map((r) => r.documents);
  let at = 0;
  const batches = sizes.map((k) => files.slice(at, (at += k)));
  const warmup = Array.from({ length: Math.ceil(Math.min(WARMUP, files.length - N) / settings.maxDocs) }, (_, i) =>
    files.slice(N + i * settings.maxDocs, N + (i + 1) * settings.maxDocs),
  ).filter((b) => b.length > 0);
  const outDir = path.join(tmp, 'bare-out');
  await mkdir(outDir);
  // On the worker's runtime: bundled as dist/ is (BENCH_RUNTIME=tsx: both through tsx).
  const bareProgram =
    scriptSettings.runtime === 'dist'
      ? { file: bundleProgram('bare-batch-client', 'bench/bare-batch-client.ts'), execArgv: [...WORKER_NODE_FLAGS, ...START_NODE_FLAGS] }
      : { file: path.join(import.meta.dirname, 'bare-batch-client.ts'), execArgv: ['--import', 'tsx'] };
  const bare = fork(bareProgram.file, { execArgv: bareProgram.execArgv, stdio: 'inherit' });
  const done = new Promise<{ cpuMs: number; documents: number }>((resolve, reject) => {
    bare.once('message', (m) => resolve(m as { cpuMs: number; documents: number }));
    bare.once('exit', (code) => reject(new Error(`bare batch client exited ${code}`)));
  });
  bare.send({ fakeUrl: fake.url, outDir, batches, warmup, concurrency: settings.concurrency });
  const b = await done;
  bare.kill('SIGTERM');
  const bareMs = b.cpuMs / b.documents;
  const probe1 = speedProbe();

  const ratio = workerMs / bareMs;
  console.log(
    `worker alone against a bare batch client, ${N} documents of 200 KB in ${requests.length} batches (mean ${(N / Math.max(1, requests.length)).toFixed(1)}), UPSTREAM_CONCURRENCY=${settings.concurrency}; speed probe ${probe0.toFixed(0)} / ${probe1.toFixed(0)} ms (shared machine)`,
  );
  console.log(
    `CPU per document: worker ${workerMs.toFixed(3)} ms   bare batch client ${bareMs.toFixed(3)} ms   ${ratio.toFixed(2)}×   goal ≤ ${GOAL}× ${ratio <= GOAL ? 'PASS' : 'MISS'}`,
  );
} finally {
  await fake.stop();
  await redis.stop();
  await rm(tmp, { recursive: true, force: true });
}
