/**
 * `npm run bench:fs`: what a file-system call costs through libuv's thread pool against the same
 * call on the calling thread (CPU of the whole process, pool threads included). The reason the
 * spool does page-cache I/O on the calling thread (shared/page-cache-io.ts). Prints ratios against
 * the synchronous call measured in the same run.
 */
import { statSync } from 'node:fs';
import { stat } from 'node:fs/promises';

const N = Number(process.env['BENCH_FS_CALLS'] ?? 20_000);
const file = import.meta.filename;
const cpuUs = (): number => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const measure = async (run: () => Promise<void> | void): Promise<number> => {
  const c0 = cpuUs();
  await run();
  return (cpuUs() - c0) / N;
};

const sync = await measure(() => {
  for (let i = 0; i < N; i++) statSync(file);
});
const serial = await measure(async () => {
  for (let i = 0; i < N; i++) await stat(file);
});
const eightWay = await measure(async () => {
  for (let i = 0; i < N; i += 8) await Promise.all(Array.from({ length: 8 }, () => stat(file)));
});
const row = (name: string, us: number): void => console.log(`${name.padEnd(44)} ${us.toFixed(1).padStart(6)} µs CPU  ${(us / sync).toFixed(1)}×`);
console.log(`stat of one file, ${N} calls each`);
row('statSync (calling thread, the baseline)', sync);
row('await stat (thread pool, one at a time)', serial);
row('stat via the thread pool, 8 in flight', eightWay);
