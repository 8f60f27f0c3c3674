/**
 * Node flags every process that runs the worker is started with (package.json scripts, compose,
 * the test harness and the bench; test/compose.test.ts checks the launchers). The fake Sign'Stash
 * streams the same base64 traffic from the other side and is started with them too: without
 * them its old generation stayed at ~16 MB and a 5000-document run of bench section 1 had 150
 * mark-compacts in it, with concurrent marking ~35 % of its CPU (perf); with them, 28, and the
 * fake's CPU per document fell from 0.93 to 0.57–0.67 ms (`npm run bench -- --only 1`, 6 runs).
 *
 * `--initial-old-space-size`: the worker's live heap is small (~25 MB) while it allocates hundreds
 * of MB/s of short-lived base64 strings, so small per-document objects that live for a batch
 * (jobs, promises, parser state) are promoted steadily. V8 sets the next old-generation limit from
 * the live size after each mark-compact and shrinks its growing factor when GC looks slow next to
 * the mutator, which on two saturated cores it does: in 2 of 8 bench runs the worker fell into a
 * loop of a mark-compact every ~90 ms (136 in 12 s, 1.5 s of main-thread GC), costing 4.1 instead
 * of 2.6 ms of CPU per document. With a 128 MB initial old space no run had a mark-compact during
 * the load (`BENCH_NODE_ARGS="--trace-gc …" npm run bench -- --only 1`). The price is at most
 * that much old-space garbage before a collection, whatever the document sizes.
 */
export const WORKER_NODE_FLAGS = ['--initial-old-space-size=128'] as const;

/** The flags of `WORKER_NODE_FLAGS` this process was started without (any value of a flag counts). */
export const missingWorkerNodeFlags = (execArgv: readonly string[] = process.execArgv): string[] =>
  WORKER_NODE_FLAGS.filter((flag) => {
    const name = flag.split('=')[0] ?? flag;
    return !execArgv.some((arg) => arg === name || arg.startsWith(`${name}=`));
  });
