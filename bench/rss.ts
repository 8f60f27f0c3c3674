/** Resident memory of a process, read from /proc: once, or sampled until stopped (its peak). */
import { readFile } from 'node:fs/promises';

export const rssOf = async (pid: number | undefined): Promise<number> => {
  if (!pid) return 0;
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
};

/** Samples a process's RSS every 25 ms until stopped; resolves with the peak. */
export const sampleRss = (pid: number | undefined) => {
  let peak = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      peak = Math.max(peak, await rssOf(pid));
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      return peak;
    },
  };
};
