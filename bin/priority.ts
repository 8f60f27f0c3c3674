/**
 * The worker role's CPU priority (WORKER_NICE). An upload or a status read waits on the api's
 * event loop; a batch only waits for CPU in the background. When api and worker share a host and
 * the CPU is full, the kernel's scheduler should serve the api first, so the worker process lowers
 * its own priority at start. On Linux the nice value belongs to each thread and a new thread takes
 * its creator's, so every thread that exists now (V8's, libuv's) is lowered, and the ones made later
 * by the main thread follow. Only ever lowered: raising a priority needs a privilege a service
 * should not have.
 */
import { getPriority, setPriority } from 'node:os';
import { readdirSync } from 'node:fs';

/** What was done: the nice value asked for, and how many threads now run at it. */
export interface Lowered {
  nice: number;
  threads: number;
}

const threadIds = (): number[] => {
  try {
    return readdirSync('/proc/self/task').map(Number).filter(Number.isInteger);
  } catch {
    // No /proc (macOS, BSD): the process as a whole.
    return [0];
  }
};

/** Lowers every thread of this process to `nice` (0: nothing done); a thread already lower is left alone. */
export const lowerOwnPriority = (nice: number): Lowered => {
  if (nice <= 0) return { nice: 0, threads: 0 };
  let threads = 0;
  for (const tid of threadIds()) {
    try {
      if (getPriority(tid) < nice) setPriority(tid, nice);
      threads++;
    } catch {
      // A thread that ended between the listing and the call.
    }
  }
  return { nice, threads };
};
