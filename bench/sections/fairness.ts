/**
 * Section 9, fairness across tenants: tenant A has a backlog (20,000 documents; 1,000 with
 * --quick) queued before a worker starts; tenant B sends one document a second while A's backlog
 * drains. Three runs in one stack setup each: fair scheduling with A alone (the baseline of A's
 * throughput), fair with B, and FIFO with B (what B waited before). Targets: B's accepted → signed
 * p50 within BATCH_LINGER + 2 upstream calls, and A's throughput within 10 % of A alone.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import { Agent, request } from 'undici';
import { generateApiKey, hashApiKey } from '@signspool/api/auth/auth';
import { backlogKey } from '@signspool/shared/scheduling/tenant-backlog';
import { waitSigned } from '../load.js';
import { fmt, pct } from '../report.js';
import type { BenchContext, Section } from '../section.js';
import { stackEnv, startRole } from '../stack.js';

const A_DOC_BYTES = 2048;
/** B's documents have their own size: the fake's request log tells them apart by it. */
const B_DOC_BYTES = 3000;
const DOCS_PER_OPERATION = 100;

/** A multipart body of `count` documents of `bytes` each (one random content, built once). */
const multipartOf = (count: number, bytes: number): { body: Buffer; contentType: string } => {
  const boundary = `----signspool${randomBytes(12).toString('hex')}`;
  const doc = randomBytes(bytes);
  const parts: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    parts.push(
      Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="d${i}.bin"\r\ncontent-type: application/octet-stream\r\n\r\n`),
      doc,
      Buffer.from('\r\n'),
    );
  }
  parts.push(Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="signatureType"\r\n\r\nCAdES\r\n--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` };
};

const post = async (apiUrl: string, key: string, agent: Agent, m: { body: Buffer; contentType: string }): Promise<string> => {
  const r = await request(`${apiUrl}/v1/operations`, {
    method: 'POST',
    dispatcher: agent,
    headers: { authorization: `Bearer ${key}`, 'content-type': m.contentType },
    body: m.body,
  });
  const res = (await r.body.json()) as { id: string };
  if (r.statusCode !== 202) throw new Error(`fairness: submit answered ${r.statusCode}`);
  return res.id;
};

interface FairnessRun {
  /** A's documents per second between 5 % and 95 % of its backlog signed. */
  aDocsPerSec: number;
  drainSeconds: number;
  /** B's accepted → signed (ms), documents sent while A still had over 10 % of its backlog. */
  bLatency: number[];
  /** Documents per upstream request carrying A's documents. */
  aBatchMean: number;
  /** Mean upstream call (ms) as the worker timed it (signspool_upstream_request_duration_seconds). */
  callMs: number;
}

/** Mean of a histogram over every label set, from a Prometheus text exposition. */
const histogramMean = (text: string, name: string): number => {
  const total = (suffix: string): number =>
    text
      .split('\n')
      .filter((l) => l.startsWith(`${name}_${suffix}`))
      .reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
  return total('sum') / Math.max(1, total('count'));
};

const run = async (ctx: BenchContext, label: string, scheduling: 'fair' | 'fifo', withB: boolean, backlog: number): Promise<FairnessRun> => {
  const e = ctx.env;
  const keys = { a: generateApiKey(), b: generateApiKey() };
  const dir = await mkdtemp(path.join(ctx.tmp, `fair-${label}-`));
  const env = stackEnv(ctx.settings, e, dir, { TENANT_SCHEDULING: scheduling, API_KEYS: `a:${hashApiKey(keys.a)},b:${hashApiKey(keys.b)}` });
  const prefix = env['QUEUE_PREFIX'] ?? '';
  const redis = new Redis(e.redisUrl);
  const agent = new Agent({ connections: 64 });
  const api = await startRole('api', env);
  try {
    // A's backlog, queued before any worker runs.
    const aBody = multipartOf(DOCS_PER_OPERATION, A_DOC_BYTES);
    let queued = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (queued < backlog) {
          queued += DOCS_PER_OPERATION;
          await post(api.url, keys.a, agent, aBody);
        }
      }),
    );
    const total = Number((await redis.hget(backlogKey(prefix), 'a')) ?? 0);
    await fetch(`${e.fakeUrl}/_fake/reset`, { method: 'POST' });
    const worker = await startRole('worker', env);
    const started = performance.now();
    let left = total;
    const marks: { at95?: number; at5?: number } = {};
    const bBody = multipartOf(1, B_DOC_BYTES);
    // B's operations are read once A has drained, not long-polled meanwhile: during the drain the
    // load generator does the same small work in every run.
    const bIds: string[] = [];
    const trickle = (async () => {
      if (!withB) return;
      for (let i = 0; left > total * 0.1; i++) {
        const due = started + i * 1000;
        const wait = due - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        if (left <= total * 0.1) break;
        bIds.push(await post(api.url, keys.b, agent, bBody));
      }
    })();
    while (left > 0) {
      await new Promise((r) => setTimeout(r, 50));
      left = Number((await redis.hget(backlogKey(prefix), 'a')) ?? 0);
      const now = performance.now();
      if (marks.at95 === undefined && left <= total * 0.95) marks.at95 = now;
      if (marks.at5 === undefined && left <= total * 0.05) marks.at5 = now;
    }
    const drainSeconds = (performance.now() - started) / 1000;
    await trickle;
    const bLatency = (await Promise.all(bIds.map((id) => waitSigned(api.url, keys.b, agent, id)))).sort((x, y) => x - y);
    const requests = (await (await fetch(`${e.fakeUrl}/_fake/requests`)).json()) as { outcome: string; documents: number; docs: { size: number }[] }[];
    const aRequests = requests.filter((r) => r.outcome === 'ok' && r.docs.some((d) => d.size === A_DOC_BYTES));
    const callMs = histogramMean(await (await fetch(`${worker.url}/metrics`)).text(), 'signspool_upstream_request_duration_seconds') * 1000;
    await worker.stop();
    const span = ((marks.at5 ?? 0) - (marks.at95 ?? 0)) / 1000;
    return {
      aDocsPerSec: span > 0 ? (total * 0.9) / span : total / drainSeconds,
      drainSeconds,
      bLatency,
      aBatchMean: aRequests.reduce((n, r) => n + r.docs.filter((d) => d.size === A_DOC_BYTES).length, 0) / Math.max(1, aRequests.length),
      callMs,
    };
  } finally {
    await api.stop();
    await agent.close();
    redis.disconnect();
    // `dir` (many small files) goes with the run's temp dir at the end.
  }
};

export const fairnessSection: Section<void> = {
  id: '9',
  title: 'fairness across tenants',
  async run(ctx) {
    const s = ctx.settings;
    const add = ctx.report.section('9 fairness');
    const backlog = s.fairBacklog;
    // FIFO alone first: A's throughput as it was before fair scheduling, the baseline of the others.
    const fifoAlone = await run(ctx, 'fifo-alone', 'fifo', false, backlog);
    const alone = await run(ctx, 'alone', 'fair', false, backlog);
    const fair = await run(ctx, 'fair', 'fair', true, backlog);
    const fifo = await run(ctx, 'fifo', 'fifo', true, backlog);
    const bTarget = s.lingerMs + 2 * fair.callMs;
    const drop = 1 - fair.aDocsPerSec / alone.aDocsPerSec;
    add({
      metric: `A alone, ${backlog} documents queued then drained, TENANT_SCHEDULING=fifo [baseline]`,
      value: fifoAlone.aDocsPerSec,
      unit: `docs/s (${fmt(fifoAlone.aBatchMean)} docs per upstream call)`,
    });
    add({
      metric: 'A alone, fair',
      value: alone.aDocsPerSec,
      unit: `docs/s (${fmt(alone.aDocsPerSec / fifoAlone.aDocsPerSec)}× fifo; ${fmt(alone.aBatchMean)} docs per upstream call)`,
    });
    add({
      metric: 'A with B sending 1 doc/s, fair',
      value: fair.aDocsPerSec,
      unit: `docs/s (${fmt(fair.aDocsPerSec / alone.aDocsPerSec)}× A alone; ${fmt(fair.aBatchMean)} docs per upstream call)`,
      target: 'drop < 10 %',
      pass: drop < 0.1,
    });
    add({
      metric: `B accepted → signed p50 behind A's backlog, fair (${fair.bLatency.length} documents)`,
      value: pct(fair.bLatency, 0.5),
      unit: `ms (p90 ${fmt(pct(fair.bLatency, 0.9))}, max ${fmt(fair.bLatency.at(-1) ?? 0)})`,
      target: `≤ ${fmt(bTarget)} ms (linger + 2 upstream calls of ${fmt(fair.callMs)} ms, as the worker timed them)`,
      pass: pct(fair.bLatency, 0.5) <= bTarget,
    });
    add({
      metric: `B accepted → signed p50 behind A's backlog, fifo (${fifo.bLatency.length} documents) [before]`,
      value: pct(fifo.bLatency, 0.5),
      unit: `ms (${fmt(pct(fifo.bLatency, 0.5) / Math.max(1, pct(fair.bLatency, 0.5)))}× fair)`,
    });
    add({ metric: 'A with B, fifo', value: fifo.aDocsPerSec, unit: `docs/s (${fmt(fifo.aDocsPerSec / fifoAlone.aDocsPerSec)}× fifo alone)` });
  },
};
