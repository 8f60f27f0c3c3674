/**
 * Section 1, coalescing gain: N single-document operations by 64 clients in a closed loop, against
 * the same stack with one document per upstream call (BATCH_MAX_DOCS=1); where the CPU goes, and
 * the bounds the fake's latency model and the machine's cores allow. Section 4 reads its load run.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { closeClients, closedLoop, cpuSeconds, newClients, submissionOf } from '../load.js';
import { machineCpu, speedProbe } from '../machine-probe.js';
import { fmt } from '../report.js';
import type { BenchContext, Section } from '../section.js';
import { stackEnv, startRole } from '../stack.js';

export interface LoadRunOptions {
  docs: number;
  maxDocs: number;
  /** Names the run's data dir. */
  label: string;
  warmup: number;
  /** More environment for api and worker (e.g. `{ DURABILITY: 'strict' }`). */
  env?: Record<string, string>;
}

export type LoadRun = Awaited<ReturnType<typeof loadRun>>;

/** Redis's per-command counters (INFO commandstats): calls and µs of Redis CPU, by command. */
const commandStats = async (redis: Redis): Promise<Map<string, { calls: number; usec: number }>> => {
  const out = new Map<string, { calls: number; usec: number }>();
  for (const m of (await redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm))
    out.set(m[1] ?? '?', { calls: Number(m[2]), usec: Number(m[3]) });
  return out;
};

/**
 * Section 1's load: `docs` single-document operations from 64 clients in a closed loop (each sends
 * its next document when the previous POST answered), every operation long-polled to its end.
 * `warmup` documents go through the same stack first, unmeasured: a long-running service's code is
 * compiled by then (in a fresh process V8's optimizing compiler takes a share of the first seconds).
 */
export const loadRun = async (ctx: BenchContext, o: LoadRunOptions) => {
  const e = ctx.env;
  const dir = await mkdtemp(path.join(ctx.tmp, `${o.label}-`));
  const env = stackEnv(ctx.settings, e, dir, { BATCH_MAX_DOCS: String(o.maxDocs), ...o.env });
  const [api, worker] = await Promise.all([startRole('api', env), startRole('worker', env)]);
  const submission = submissionOf(randomBytes(200 * 1024));
  const clients = newClients(64);
  if (o.warmup > 0) await closedLoop(api.url, e.key, clients, submission, o.warmup);
  await fetch(`${e.fakeUrl}/_fake/reset`, { method: 'POST' });
  const probeBefore = speedProbe();
  const cpu0 = await machineCpu();
  const pids = { api: api.child.pid, worker: worker.child.pid, redis: e.redisPid, fake: e.fakePid, bench: process.pid };
  const cpuBefore = Object.fromEntries(await Promise.all(Object.entries(pids).map(async ([k, pid]) => [k, await cpuSeconds(pid)] as const)));
  // Commands counted, not timed: a change that adds a round trip per document shows whatever the machine does.
  const redis = new Redis(e.redisUrl);
  await redis.config('RESETSTAT');
  const started = performance.now();
  const { postTimes, e2e } = await closedLoop(api.url, e.key, clients, submission, o.docs);
  const seconds = (performance.now() - started) / 1000;
  const commands = [...(await commandStats(redis))]
    .filter(([name]) => name !== 'info' && name !== 'config|resetstat')
    .map(([name, c]) => ({ name, perDoc: c.calls / o.docs, usecPerDoc: c.usec / o.docs }))
    .sort((a, b) => b.usecPerDoc - a.usecPerDoc);
  redis.disconnect();
  const probeAfter = speedProbe();
  const cpu1 = await machineCpu();
  /** CPU seconds each process spent per document. */
  const cpuPerDoc: Record<string, number> = {};
  for (const [k, pid] of Object.entries(pids)) cpuPerDoc[k] = ((await cpuSeconds(pid)) - (cpuBefore[k] ?? 0)) / o.docs;
  const machineBusy = (cpu1.busy - cpu0.busy) / Math.max(1, cpu1.total - cpu0.total);
  const machineSteal = (cpu1.steal - cpu0.steal) / Math.max(1, cpu1.total - cpu0.total);
  const stats = (await (await fetch(`${e.fakeUrl}/_fake/requests`)).json()) as { outcome: string; documents: number; at: number }[];
  await Promise.all([api.stop(), worker.stop()]);
  await closeClients(clients);
  // `dir` (many small files) goes with the run's temp dir at the end.
  return {
    machineBusy,
    machineSteal,
    probe: [probeBefore, probeAfter] as const,
    cpuPerDoc,
    /** Redis commands per document, by command (most Redis CPU first). */
    commands,
    docsPerSec: o.docs / seconds,
    requests: stats.filter((s) => s.outcome === 'ok'),
    postTimes: postTimes.sort((a, b) => a - b),
    e2e: e2e.sort((a, b) => a - b),
  };
};

/**
 * CPU to create a small file in a directory of the spool's file system, against rewriting an
 * existing one (what the worker does with the inode of a signed document's upload). Synchronous
 * calls, so the figure is the kernel's work and not the thread pool's. On a journal-less ext4 a
 * creation scans past every recently deleted inode of its group, so it is dearer after a large delete.
 */
const fileCreationCost = async (tmp: string) => {
  const dir = await mkdtemp(path.join(tmp, 'files-'));
  const files = 500;
  const timed = (fn: (i: number) => void): number => {
    const c0 = process.cpuUsage();
    for (let i = 0; i < files; i++) fn(i);
    const c = process.cpuUsage(c0);
    return (c.user + c.system) / files;
  };
  const writeWith = (flag: string) => (i: number) => {
    const fd = openSync(path.join(dir, `f${i}`), flag);
    writeSync(fd, 'x');
    closeSync(fd);
  };
  const createUs = timed(writeWith('wx'));
  const rewriteUs = timed(writeWith('w'));
  return { createUs, rewriteUs };
};

export const coalescingSection: Section<LoadRun> = {
  id: '1',
  title: 'coalescing gain',
  async run(ctx) {
    const s = ctx.settings;
    const add = ctx.report.section('1 coalescing');
    const n = s.docs;
    const docBytes = 200 * 1024;
    const nBase = Math.max(50, Math.round(n / 5));
    const ours = await loadRun(ctx, { docs: n, maxDocs: s.maxDocs, label: 'coalesce', warmup: s.warmup });
    const base = await loadRun(ctx, { docs: nBase, maxDocs: 1, label: 'baseline', warmup: Math.min(s.warmup, nBase) });
    const batchMs = s.latencyMs + ((s.maxDocs * docBytes) / s.bytesPerSec) * 1000;
    const bound = (s.concurrency * s.maxDocs) / (batchMs / 1000);
    const meanDocs = n / ours.requests.length;
    add({
      metric: `documents/s (${n} × 200 KB, 64 clients)`,
      value: ours.docsPerSec,
      unit: 'docs/s',
      baseline: base.docsPerSec,
      ratio: ours.docsPerSec / base.docsPerSec,
      target: '≥ 10× baseline',
      pass: ours.docsPerSec / base.docsPerSec >= 10,
    });
    add({
      metric: `against the latency-model bound (${fmt(bound)} docs/s)`,
      value: ours.docsPerSec,
      unit: 'docs/s',
      ratio: ours.docsPerSec / bound,
      target: '≥ 0.8× bound',
      pass: ours.docsPerSec / bound >= 0.8,
    });
    add({
      metric: 'mean documents per upstream request',
      value: meanDocs,
      unit: 'docs',
      baseline: nBase / Math.max(1, base.requests.length),
      target: `≤ ${s.maxDocs}`,
    });
    add({ metric: 'machine CPU busy during the run', value: ours.machineBusy * 100, unit: '%' });
    add({
      metric: 'machine speed probe: fixed CPU work just before / after the run (lower is faster; compare runs by it)',
      value: ours.probe[0],
      unit: `/ ${fmt(ours.probe[1])} ms`,
    });
    // The machine is shared: time the hypervisor took from this VM is time the run did not get.
    add({ metric: 'machine CPU stolen by the hypervisor during the run', value: ours.machineSteal * 100, unit: '%' });
    // Where the CPU goes, and the throughput the machine's cores allow at that cost (a bound computed
    // from this run: every core busy with nothing but this work).
    const cores = os.cpus().length;
    const cpuPerDocMs = Object.values(ours.cpuPerDoc).reduce((a, b) => a + b, 0) * 1000;
    for (const [k, v] of Object.entries(ours.cpuPerDoc)) add({ metric: `CPU per document: ${k}`, value: v * 1000, unit: 'ms' });
    const cpuBound = (cores * 1000) / cpuPerDocMs;
    add({
      metric: `against the CPU bound (${cores} cores / ${fmt(cpuPerDocMs)} ms CPU per document = ${fmt(cpuBound)} docs/s)`,
      value: ours.docsPerSec,
      unit: 'docs/s',
      ratio: ours.docsPerSec / cpuBound,
    });
    // What the targets would ask of signspool's own processes on this machine: the cores' CPU per
    // document at the target rate, minus what the fake upstream and the load generator spend.
    const harnessMs = ((ours.cpuPerDoc['fake'] ?? 0) + (ours.cpuPerDoc['bench'] ?? 0)) * 1000;
    const ownMs = cpuPerDocMs - harnessMs;
    add({ metric: 'CPU per document: signspool (api + worker + redis)', value: ownMs, unit: 'ms' });
    add({
      metric: "Redis commands per document, scripts' inner calls included (the five costliest: calls, Redis µs per document)",
      value: ours.commands.reduce((a, c) => a + c.perDoc, 0),
      unit: ours.commands
        .slice(0, 5)
        .map((c) => `${c.name} ${fmt(c.perDoc)} (${fmt(c.usecPerDoc)} µs)`)
        .join(', '),
    });
    for (const [label, rate] of [
      ['10× baseline', 10 * base.docsPerSec],
      ['0.8× bound', 0.8 * bound],
    ] as const) {
      // ratio: the share of today's CPU per document the target leaves signspool.
      const budgetMs = Math.max(0, (cores * 1000) / rate - harnessMs);
      add({
        metric: `… what ${label} (${fmt(rate)} docs/s) leaves it on ${cores} cores, after the fake and load generator`,
        value: budgetMs,
        unit: 'ms',
        ratio: budgetMs / ownMs,
      });
    }
    const fc = await fileCreationCost(ctx.tmp);
    add({ metric: 'CPU to create a file on the spool file system', value: fc.createUs, unit: 'µs', baseline: fc.rewriteUs, ratio: fc.createUs / fc.rewriteUs });
    return ours;
  },
};
