/**
 * `npm run bench:api:pair <git ref>`: the api's CPU per 200 KB upload and per status read for a git
 * ref (A, checked out beside this tree as bench:compare does) and for the working tree (B), both
 * apis loaded at once. On the shared machine alternated runs of bench:api moved by ±30 % from one
 * run to the next; here each round loads both apis in the same seconds (half the clients each),
 * so the machine's drift falls on both alike, and the ratio B ÷ A is taken per round. Each side is
 * its own tree's api (its dist/bin/start.js, built by its own scripts/build.mjs, run with the
 * node flags of its `npm run start:api`; the bench:api environment) with its own redis-server as
 * its tree's spawnRedisServer starts it with `unixSocket` (a port on trees from before sockets).
 * BENCH_API_PAIR_ROUNDS rounds (8) of BENCH_API_PAIR_SECONDS (4) of uploads, then as long of status
 * reads, after a warm-up of 300 uploads and 3000 reads per side; A's clients start first in even
 * rounds, B's in odd ones.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Agent, request } from 'undici';
import { generateApiKey, hashApiKey } from '@signspool/api/auth/auth';
import type * as RedisServer from '../bin/redis-server.js';
import type * as Processes from '../test/harness/processes.js';
import { cpuSeconds, submissionOf } from './load.js';
import { apiNodeFlags, buildService } from './production-build.js';
import { checkoutRef } from './ref-tree.js';
import { readScriptSettings } from './settings.js';
import { root } from './stack.js';

type RedisServerModule = typeof RedisServer;
type ProcessesModule = typeof Processes;

const CLIENTS = 64;
const { rounds, seconds } = readScriptSettings(process.env).apiPair;
const submission = submissionOf(randomBytes(200 * 1024));

interface Side {
  label: string;
  url: string;
  pid: number | undefined;
  transport: string;
  headers: Record<string, string>;
  agent: Agent;
  ids: string[];
  stop(): Promise<void>;
}

/** The api of `tree` with its own redis-server, as that tree starts them. */
const startSide = async (label: string, tree: string, tmp: string): Promise<Side> => {
  const { spawnRedisServer } = (await import(path.join(tree, 'bin/redis-server.ts'))) as RedisServerModule;
  const { startService } = (await import(path.join(tree, 'test/harness/processes.ts'))) as ProcessesModule;
  buildService(tree);
  const redis = await spawnRedisServer({ dir: path.join(tmp, `redis-${label}`), unixSocket: true });
  const key = generateApiKey();
  const api = await startService(
    'api',
    {
      REDIS_URL: redis.url,
      DATA_DIR: path.join(tmp, `data-${label}`),
      API_KEYS: `bench:${hashApiKey(key)}`,
      LOG_LEVEL: 'warn',
      SIGNER: 'local',
      SPOOL_MIN_FREE_BYTES: '64MiB',
      RATE_LIMIT_REQUESTS: '0',
      RATE_LIMIT_READS: '0',
      RATE_LIMIT_UPLOAD_BYTES: '0',
      BACKLOG_MAX_DOCUMENTS: '0',
    },
    { dist: true, nodeArgs: apiNodeFlags(tree) },
  );
  const agent = new Agent({ connections: CLIENTS });
  return {
    label,
    url: api.url,
    pid: api.child.pid,
    transport: redis.url.startsWith('/') ? 'Unix socket' : 'TCP',
    headers: { authorization: `Bearer ${key}` },
    agent,
    ids: [],
    stop: async () => {
      await agent.close();
      await api.stop();
      await redis.stop();
    },
  };
};

const upload = (s: Side) => async (): Promise<void> => {
  const r = await request(`${s.url}/v1/operations`, {
    method: 'POST',
    dispatcher: s.agent,
    headers: { ...s.headers, 'content-type': submission.contentType },
    body: submission.body,
  });
  const { id } = (await r.body.json()) as { id: string };
  if (r.statusCode !== 202) throw new Error(`${s.label}: upload answered ${r.statusCode}`);
  s.ids.push(id);
};
const read =
  (s: Side) =>
  async (i: number): Promise<void> => {
    const r = await request(`${s.url}/v1/operations/${s.ids[i % s.ids.length] ?? ''}`, { dispatcher: s.agent, headers: s.headers });
    await r.body.dump();
    if (r.statusCode !== 200) throw new Error(`${s.label}: status read answered ${r.statusCode}`);
  };

/** `clients` closed loops of `one` until `count` requests or `deadline`; CPU ms of the side's api per request. */
const load = async (s: Side, one: (i: number) => Promise<void>, clients: number, count: number, deadline = Infinity): Promise<number> => {
  let next = 0;
  const c0 = await cpuSeconds(s.pid);
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < count && Date.now() < deadline) await one(next++);
    }),
  );
  return (((await cpuSeconds(s.pid)) - c0) / next) * 1000;
};

const median = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] ?? NaN) : ((s[mid - 1] ?? NaN) + (s[mid] ?? NaN)) / 2;
};

const main = async (): Promise<void> => {
  const ref = process.argv.slice(2).find((a) => !a.startsWith('-'));
  if (!ref) throw new Error('usage: npm run bench:api:pair <git ref>   (BENCH_API_PAIR_ROUNDS, BENCH_API_PAIR_SECONDS)');
  const refTree = await checkoutRef(ref);
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'signspool-bench-api-pair-'));
  const sides: Side[] = [];
  try {
    sides.push(await startSide('A', refTree.tree, tmp), await startSide('B', root, tmp));
    const [a, b] = sides as [Side, Side];
    console.log(`A = ${ref} (${refTree.sha.slice(0, 10)}, ${refTree.how}), Redis over ${a.transport}; B = the working tree, Redis over ${b.transport}`);
    for (const s of sides) {
      await load(s, upload(s), CLIENTS, 300);
      await load(s, read(s), CLIENTS, 3000);
    }
    const rows = { upload: [] as [number, number][], read: [] as [number, number][] };
    // The side started first in a round has its clients served first in every turn of the
    // generator's event loop: the sides take turns at starting first.
    const together = async (one: (s: Side) => (i: number) => Promise<void>, bFirst: boolean): Promise<[number, number]> => {
      const deadline = Date.now() + seconds * 1000;
      const start = (s: Side): Promise<number> => load(s, one(s), CLIENTS / 2, Infinity, deadline);
      if (!bFirst) return Promise.all([start(a), start(b)]);
      const [y, x] = await Promise.all([start(b), start(a)]);
      return [x, y];
    };
    for (let r = 0; r < rounds; r++) {
      rows.upload.push(await together(upload, r % 2 === 1));
      rows.read.push(await together(read, r % 2 === 1));
    }
    console.log(`\n${rounds} rounds of ${seconds} s, both apis at once (${CLIENTS / 2} clients each); api CPU per request, B ÷ A per round:`);
    for (const [what, xs] of Object.entries(rows)) {
      const ratios = xs.map(([x, y]) => y / x);
      const mean = (k: 0 | 1): number => xs.reduce((t, p) => t + p[k], 0) / xs.length;
      console.log(
        `${what.padEnd(7)} A ${mean(0).toFixed(3)} ms  B ${mean(1).toFixed(3)} ms  B/A median ${median(ratios).toFixed(3)}×  (rounds ${ratios.map((x) => x.toFixed(2)).join(' ')})`,
      );
    }
  } finally {
    for (const s of sides) await s.stop();
    await rm(tmp, { recursive: true, force: true });
    await refTree.remove();
  }
};

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
