/**
 * `npm run bench:fs`: two measurements behind the spool's file I/O (shared/spool/file-io.ts).
 *  1. What a file-system call costs through libuv's thread pool against the same call on the
 *     calling thread (CPU of the whole process, pool threads included): why page-cache I/O is done
 *     on the calling thread. Ratios against the synchronous call.
 *  2. Writing a 200 KB document into a new file, into a truncated file, and over an existing file
 *     in place, with and without fsync: why spares are overwritten (Spool.retire). Ratios against
 *     the overwrite. BENCH_FS_DIR chooses the file system (default: the OS temp dir).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, ftruncateSync, openSync, statSync, writeSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { readScriptSettings } from './settings.js';

const settings = readScriptSettings(process.env).fs;
const N = settings.calls;
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

// 2. Writing a document: new file, truncated file, overwritten in place.
const files = Math.max(50, Math.round(N / 25));
const dir = await mkdtemp(path.join(settings.dir ?? os.tmpdir(), 'signspool-bench-fs-'));
const doc = randomBytes(200 * 1024);
const writeDoc = (fd: number, sync: boolean): void => {
  for (let off = 0; off < doc.length;) off += writeSync(fd, doc, off, Math.min(64 * 1024, doc.length - off));
  ftruncateSync(fd, doc.length);
  if (sync) fsyncSync(fd);
  closeSync(fd);
};
const perFile = (run: (i: number) => void): number => {
  const c0 = cpuUs();
  for (let i = 0; i < files; i++) run(i);
  return (cpuUs() - c0) / files;
};
const name = (i: number): string => path.join(dir, `f${i}`);
try {
  for (const sync of [false, true]) {
    const created = perFile((i) => writeDoc(openSync(name(i), 'wx'), sync));
    const overwritten = perFile((i) => writeDoc(openSync(name(i), 'r+'), sync));
    const truncated = perFile((i) => writeDoc(openSync(name(i), 'w'), sync));
    for (let i = 0; i < files; i++) await rm(name(i));
    const r = (label: string, us: number): void => console.log(`${label.padEnd(44)} ${us.toFixed(1).padStart(6)} µs CPU  ${(us / overwritten).toFixed(1)}×`);
    console.log(`\nwrite a 200 KB document${sync ? ' and fsync it' : ''}, ${files} files each`);
    r('over an existing file in place (the baseline)', overwritten);
    r('into a new file', created);
    r('into a truncated file', truncated);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
