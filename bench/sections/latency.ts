/**
 * Section 4, latency: accepted → signed at 1 doc/s; POST and accepted → signed in section 1's
 * closed loop, and with documents arriving at section 1's throughput and at half of it (an open
 * loop: a submission does not wait for the previous one).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import path from 'node:path';
import { closeClients, closedLoop, newClients, submissionOf, submitOne, waitSigned } from '../load.js';
import { fmt, pct } from '../report.js';
import type { BenchContext, Section } from '../section.js';
import { stackEnv, startRole } from '../stack.js';
import { coalescingSection } from './coalescing.js';

/** Single-document operations arriving at `rate` per second for `seconds`, each long-polled to its end. */
const paced = async (ctx: BenchContext, rate: number, seconds: number, warmup: number) => {
  const e = ctx.env;
  const dir = await mkdtemp(path.join(ctx.tmp, 'paced-'));
  const env = stackEnv(ctx.settings, e, dir, {});
  const [api, worker] = await Promise.all([startRole('api', env), startRole('worker', env)]);
  const submission = submissionOf(randomBytes(200 * 1024));
  const clients = newClients(1024);
  // Warmed up as section 1's stacks are, then idle again before the paced arrivals start.
  if (warmup > 0) await closedLoop(api.url, e.key, clients, submission, warmup);
  const postTimes: number[] = [];
  const e2e: number[] = [];
  const total = Math.max(1, Math.round(rate * seconds));
  const started = performance.now();
  const all: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    all.push(
      submitOne(api.url, e.key, clients.upload, submission).then(async ({ id, ms }) => {
        postTimes.push(ms);
        e2e.push(await waitSigned(api.url, e.key, clients.poll, id));
      }),
    );
  }
  await Promise.all(all);
  const offered = total / ((performance.now() - started) / 1000);
  await Promise.all([api.stop(), worker.stop()]);
  await closeClients(clients);
  // `dir` (many small files) goes with the run's temp dir at the end.
  return { rate, offered, postTimes: postTimes.sort((a, b) => a - b), e2e: e2e.sort((a, b) => a - b) };
};

/** One document a second for `seconds`; accepted → signed of each. */
const trickle = async (ctx: BenchContext, seconds: number) => {
  const e = ctx.env;
  const dir = await mkdtemp(path.join(ctx.tmp, 'trickle-'));
  const env = stackEnv(ctx.settings, e, dir, {});
  const [api, worker] = await Promise.all([startRole('api', env), startRole('worker', env)]);
  const doc = randomBytes(200 * 1024);
  const lat: number[] = [];
  const pending: Promise<void>[] = [];
  for (let i = 0; i < seconds; i++) {
    const form = new FormData();
    // Random bytes: as PAdES they would be refused at submit (DOCUMENT_NOT_PDF).
    form.append('signatureType', 'CAdES');
    form.append('file', new Blob([doc]), `t${i}.pdf`);
    const r = await fetch(`${api.url}/v1/operations`, { method: 'POST', headers: { authorization: `Bearer ${e.key}` }, body: form });
    if (r.status !== 202) throw new Error(`trickle: submit answered ${r.status}`);
    const { id } = (await r.json()) as { id: string };
    pending.push(
      (async () => {
        for (;;) {
          const g = await fetch(`${api.url}/v1/operations/${id}`, { headers: { authorization: `Bearer ${e.key}`, prefer: 'wait=30' } });
          if (g.status !== 200) throw new Error(`trickle: GET answered ${g.status}`);
          const b = (await g.json()) as { status: string; createdAt: string; completedAt: string | null };
          if (b.completedAt) {
            lat.push(Date.parse(b.completedAt) - Date.parse(b.createdAt));
            return;
          }
        }
      })(),
    );
    await new Promise((res) => setTimeout(res, 1000));
  }
  await Promise.all(pending);
  await Promise.all([api.stop(), worker.stop()]);
  // `dir` (many small files) goes with the run's temp dir at the end.
  return lat.sort((a, b) => a - b);
};

export const latencySection: Section<void> = {
  id: '4',
  title: 'latency',
  needs: [coalescingSection],
  async run(ctx) {
    const { settings: s } = ctx;
    const add = ctx.report.section('4 latency');
    const docBytes = 200 * 1024;
    const oneDocCall = s.latencyMs + (docBytes / s.bytesPerSec) * 1000;
    const lat = await trickle(ctx, s.quick ? 5 : 30);
    const latTarget = s.lingerMs + oneDocCall + 50;
    add({ metric: 'accepted → signed p50 at 1 doc/s', value: pct(lat, 0.5), unit: 'ms', target: `≤ ${fmt(latTarget)} ms`, pass: pct(lat, 0.5) <= latTarget });
    add({ metric: 'accepted → signed p99 at 1 doc/s', value: pct(lat, 0.99), unit: 'ms' });
    // Closed loop (section 1): 64 clients, each waiting for its answer. By Little's law the mean
    // POST time is 64 / throughput, whatever the server does: printed for reference.
    const load = ctx.resultOf(coalescingSection);
    add({
      metric: `POST p50 / p99, 64 clients in a closed loop (1) [Little: 64 / ${fmt(load.docsPerSec)} docs/s = ${fmt((64 / load.docsPerSec) * 1000)} ms mean]`,
      value: pct(load.postTimes, 0.5),
      unit: `/ ${fmt(pct(load.postTimes, 0.99))} ms`,
    });
    add({ metric: 'accepted → signed p50 / p99, closed loop (1)', value: pct(load.e2e, 0.5), unit: `/ ${fmt(pct(load.e2e, 0.99))} ms` });
    // Open loop at section 1's throughput (or BENCH_OPEN_RATE, to offer two trees the same rate):
    // documents arrive at that rate whatever the answers do.
    const rate = Math.max(1, Math.floor(s.openRate ?? load.docsPerSec));
    const offered = s.openRate === undefined ? 'throughput of 1' : 'BENCH_OPEN_RATE';
    const pl = await paced(ctx, rate, s.quick ? 3 : 15, s.warmup);
    for (const q of [0.5, 0.95, 0.99]) {
      add({
        metric: `POST /v1/operations p${q * 100} at ${rate} docs/s (${offered}, open loop)`,
        value: pct(pl.postTimes, q),
        unit: 'ms',
        ...(q === 0.99 ? { target: '< 100 ms', pass: pct(pl.postTimes, q) < 100 } : {}),
      });
    }
    for (const q of [0.5, 0.95, 0.99]) add({ metric: `accepted → signed p${q * 100} at ${rate} docs/s`, value: pct(pl.e2e, q), unit: 'ms' });
    // The same at half that rate: how much of the above is queueing at saturation.
    const half = Math.max(1, Math.floor(rate / 2));
    const ph = await paced(ctx, half, s.quick ? 3 : 15, s.warmup);
    add({
      metric: `POST /v1/operations p50 / p99 at ${half} docs/s (half of that, open loop)`,
      value: pct(ph.postTimes, 0.5),
      unit: `/ ${fmt(pct(ph.postTimes, 0.99))} ms`,
    });
    add({ metric: `accepted → signed p50 / p99 at ${half} docs/s`, value: pct(ph.e2e, 0.5), unit: `/ ${fmt(pct(ph.e2e, 0.99))} ms` });
  },
};
