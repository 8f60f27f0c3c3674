/**
 * Node flags every process that runs the worker is started with (package.json scripts, compose,
 * the test harness, the bench; a test checks the launchers), and the fake Sign'Stash too.
 * `--initial-old-space-size=128`: the worker's live heap is small while it allocates hundreds of
 * MB/s of short-lived base64 strings; without a larger initial old space V8 can fall into a
 * mark-compact every ~90 ms on two busy cores (measurements: bench/results/history.md).
 */
export const WORKER_NODE_FLAGS = ['--initial-old-space-size=128'] as const;

/** The flags of `WORKER_NODE_FLAGS` this process was started without (any value of a flag counts). */
export const missingWorkerNodeFlags = (execArgv: readonly string[] = process.execArgv): string[] =>
  WORKER_NODE_FLAGS.filter((flag) => {
    const name = flag.split('=')[0] ?? flag;
    return !execArgv.some((arg) => arg === name || arg.startsWith(`${name}=`));
  });
