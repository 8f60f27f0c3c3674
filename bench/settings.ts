/**
 * The benchmark's parameters, read once from the command line and the environment: the fake
 * upstream's speed, the batching settings every stack runs with, and the sizes of the load runs.
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
}

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
  };
};
