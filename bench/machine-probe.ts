/**
 * How fast the shared machine is at the moment of a run: a fixed CPU workload timed on this process,
 * and the machine-wide busy and stolen CPU from /proc/stat. Runs are compared by these (the same
 * code's section 1 ran at 220 and at 349 docs/s an hour apart).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

/**
 * Machine-wide CPU ticks from /proc/stat: busy (everything but idle, iowait and steal), steal (time
 * the hypervisor gave this VM's CPUs to others) and the total.
 */
export const machineCpu = async (): Promise<{ busy: number; steal: number; total: number }> => {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const steal = v[7] ?? 0;
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - idle - steal, steal, total };
};

/** Milliseconds of a fixed CPU workload (hashing, object churn, JSON) on this process. Lower is faster. */
export const speedProbe = (): number => {
  const t0 = performance.now();
  const block = Buffer.alloc(1 << 20, 7);
  for (let i = 0; i < 64; i++) createHash('sha256').update(block).digest();
  let keep: { i: number; s: string }[] = [];
  for (let i = 0; i < 200_000; i++) {
    keep.push({ i, s: String(i) });
    if (keep.length > 1000) keep = [];
  }
  for (let i = 0; i < 2000; i++) JSON.parse(JSON.stringify({ id: `op_${i}`, documents: [{ id: 'doc', size: i, status: 'queued' }] }));
  return performance.now() - t0;
};
