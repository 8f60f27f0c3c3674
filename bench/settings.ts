/**
 * The benchmarks' parameters, read once from the command line and the environment: the fake
 * upstream's speed, the batching settings every stack runs with, and the sizes of the load runs
 * (`npm run bench`, readSettings); the standalone measurements' sizes and places (bench:api,
 * bench:worker, bench:compare, bench:fs, bench:signer, profiling flags: readScriptSettings). Every
 * BENCH_* variable is read here and nowhere else.
 */
export interface Settings {
  quick: boolean;
  /** The fake's time per request (BENCH_LATENCY_MS) and transfer rate (BENCH_BYTES_PER_SEC). */
  latencyMs: number;
  bytesPerSec: number;
  /** UPSTREAM_CONCURRENCY of every worker (BENCH_UPSTREAM_CONCURRENCY). */
  concurrency: number;
  maxDocs: number;
  lingerMs: number;
  /** Section 1's documents (BENCH_DOCS). */
  docs: number;
  /** Unmeasured documents through each load stack (sections 1 and 4) before its measured run (BENCH_WARMUP). */
  warmup: number;
  /** Section 9's backlog of the busy tenant (BENCH_FAIR_BACKLOG). */
  fairBacklog: number;
  /** Section 4's open-loop rate in docs/s (BENCH_OPEN_RATE); section 1's measured throughput when unset. */
  openRate: number | undefined;
}

const positive = (name: string, raw: string): number => {
  const n = Number(raw);
  if (!(n > 0)) throw new Error(`${name} must be a positive number, not "${raw}"`);
  return n;
};

export const readSettings = (argv: readonly string[], env: NodeJS.ProcessEnv): Settings => {
  const quick = argv.includes('--quick');
  return {
    quick,
    latencyMs: Number(env['BENCH_LATENCY_MS'] ?? 100),
    bytesPerSec: Number(env['BENCH_BYTES_PER_SEC'] ?? 50e6),
    concurrency: Number(env['BENCH_UPSTREAM_CONCURRENCY'] ?? 4),
    maxDocs: 50,
    lingerMs: 250,
    docs: Number(env['BENCH_DOCS'] ?? (quick ? 200 : 5000)),
    warmup: Number(env['BENCH_WARMUP'] ?? (quick ? 50 : 500)),
    fairBacklog: Number(env['BENCH_FAIR_BACKLOG'] ?? (quick ? 1000 : 20_000)),
    openRate: env['BENCH_OPEN_RATE'] === undefined ? undefined : positive('BENCH_OPEN_RATE', env['BENCH_OPEN_RATE']),
  };
};

/** The standalone measurements' parameters, each from its BENCH_* variable. */
export const readScriptSettings = (env: NodeJS.ProcessEnv) => ({
  api: {
    /** Uploads measured (BENCH_API_UPLOADS). */
    uploads: Number(env['BENCH_API_UPLOADS'] ?? 3000),
    /** Status reads (BENCH_API_READS, as many as uploads by default), round-robin over the uploaded operations. */
    reads: Number(env['BENCH_API_READS'] ?? env['BENCH_API_UPLOADS'] ?? 3000),
    /** Where both servers store (BENCH_API_DIR, e.g. /dev/shm, to leave the disk's file-creation cost out). */
    dir: env['BENCH_API_DIR'],
    /** BENCH_API_LIMITS=defaults: the default per-tenant limits (as `npm start`); off otherwise. */
    defaultLimits: env['BENCH_API_LIMITS'] === 'defaults',
  },
  apiPair: {
    /** bench:api:pair: rounds (BENCH_API_PAIR_ROUNDS) of BENCH_API_PAIR_SECONDS of uploads, then as long of status reads. */
    rounds: Number(env['BENCH_API_PAIR_ROUNDS'] ?? 8),
    seconds: Number(env['BENCH_API_PAIR_SECONDS'] ?? 4),
  },
  worker: {
    /** Documents measured (BENCH_WORKER_DOCS) after a warm-up (BENCH_WARMUP). */
    docs: Number(env['BENCH_WORKER_DOCS'] ?? 2000),
    warmup: Number(env['BENCH_WARMUP'] ?? 300),
  },
  compare: {
    /** Paired runs, at least 2 (BENCH_COMPARE_PAIRS); documents per run (BENCH_DOCS, 1000 here). */
    pairs: Math.max(2, Number(env['BENCH_COMPARE_PAIRS'] ?? 2)),
    docs: env['BENCH_DOCS'] ?? '1000',
  },
  fs: {
    /** File-system calls timed (BENCH_FS_CALLS), in BENCH_FS_DIR (the OS temp dir by default). */
    calls: Number(env['BENCH_FS_CALLS'] ?? 20_000),
    dir: env['BENCH_FS_DIR'],
  },
  signer: {
    /** Batches signed per format (BENCH_SIGNER_BATCHES); XAdES may be given fewer (BENCH_SIGNER_XML_BATCHES). */
    batches: Number(env['BENCH_SIGNER_BATCHES'] ?? 6),
    xmlBatches: Number(env['BENCH_SIGNER_XML_BATCHES'] ?? 6),
    /** Unmeasured batches first, for the signer and the bare program alike (BENCH_SIGNER_WARMUP): a running worker has its code compiled. */
    warmup: Number(env['BENCH_SIGNER_WARMUP'] ?? 80),
    /** What runs the child: the production build's bundle (`bundle`, the default) or `tsx` (BENCH_SIGNER_RUNTIME). */
    runtime: env['BENCH_SIGNER_RUNTIME'] === 'tsx' ? ('tsx' as const) : ('bundle' as const),
  },
  /**
   * What runs the stacks' api, worker and fake (`npm run bench`, bench:worker): the tree's dist/ as
   * `npm start` runs it (`dist`, the default) or the sources through tsx (BENCH_RUNTIME=tsx, as
   * benches before it did: bench:compare sets it for both sides against such a ref).
   */
  runtime: env['BENCH_RUNTIME'] === 'tsx' ? ('tsx' as const) : ('dist' as const),
  /** BENCH_PROFILE_DIR: V8 CPU profiles of the api and worker processes go there; BENCH_NODE_ARGS: more node flags. */
  profileDir: env['BENCH_PROFILE_DIR'],
  nodeArgs: env['BENCH_NODE_ARGS']?.split(' ').filter(Boolean) ?? [],
});
