/**
 * Section 11, webhook slots shared fairly (issue 25.3's scenario): tenant A ends 80 operations whose
 * endpoint never answers, then tenant B ends 10 whose endpoint answers 204, with the defaults
 * (WEBHOOK_TIMEOUT 15 s, WEBHOOK_CONCURRENCY 32). An api and a webhook dispatcher in this process,
 * operations ended by DELETE (no worker). Target: each of B's webhooks within 2 s of its DELETE;
 * the baseline is what FIFO with the former 8 slots gave B (A's 80 requests, 8 at a time, 15 s each).
 */
import { mkdtemp } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import { Redis } from 'ioredis';
import { generateApiKey, hashApiKey } from '@signspool/api/auth/auth';
import { ApiServer } from '@signspool/api/server';
import { loadConfig } from '@signspool/shared/config';
import { createLogger } from '@signspool/shared/logger';
import { createMetrics } from '@signspool/shared/metrics';
import { OperationStore } from '@signspool/shared/operations/store';
import { WebhookDispatcher } from '@signspool/worker/webhooks/dispatcher';
import { pct } from '../report.js';
import type { BenchContext, Section } from '../section.js';
import { stackEnv } from '../stack.js';

const A_OPERATIONS = 80;
const B_OPERATIONS = 10;
const SECRET = 'whsec_' + Buffer.from('bench-webhook-secret-0123456789').toString('base64');
/** What B waited before: A's deliveries ahead of it, 8 at a time, each held 15 s. */
const FIFO_BASELINE_MS = Math.ceil(A_OPERATIONS / 8) * 15_000;

/** A receiver: `hang` reads each request and never answers; otherwise 204. Records when each path arrived. */
const receiver = async (hang: boolean) => {
  const sockets = new Set<Socket>();
  const arrived = new Map<string, number>();
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      arrived.set(req.url ?? '', performance.now());
      if (!hang) res.writeHead(204).end();
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: (p: string) => `http://127.0.0.1:${(server.address() as AddressInfo).port}${p}`,
    arrived,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
};

const run = async (ctx: BenchContext) => {
  const e = ctx.env;
  const dir = await mkdtemp(path.join(ctx.tmp, 'webhooks-'));
  const bKey = generateApiKey();
  const config = loadConfig({
    ...stackEnv(ctx.settings, e, dir, {
      API_KEYS: `bench:${hashApiKey(e.key)},other:${hashApiKey(bKey)}`,
      WEBHOOK_SECRETS: `bench:${SECRET},other:${SECRET}`,
      WEBHOOK_ALLOW: '127.0.0.1:*',
      WEBHOOK_ALLOW_HTTP: 'true',
      RATE_LIMIT_REQUESTS: '0',
    }),
    PORT: '0',
    METRICS_PORT: '0',
    LOG_LEVEL: 'silent',
  });
  const logger = createLogger({ level: config.logLevel });
  const api = new ApiServer({ config, logger, metrics: createMetrics({ defaultMetrics: false }), apiKeys: config.apiKeys ?? [] });
  const url = await api.start();
  const redis = new Redis(e.redisUrl, { maxRetriesPerRequest: null });
  const store = new OperationStore(redis, { prefix: config.queuePrefix, retentionMs: config.retentionMs });
  const dispatcher = new WebhookDispatcher({ config, redis, store, metrics: createMetrics({ defaultMetrics: false }), logger });
  await dispatcher.start();
  const hung = await receiver(true);
  const ok = await receiver(false);
  /** Submits one operation and ends it; returns when its DELETE was sent. */
  const endOne = async (key: string, webhookUrl: string): Promise<number> => {
    const form = new FormData();
    form.append('webhookUrl', webhookUrl);
    form.append('file', new Blob(['webhook bench']), 'w.txt');
    const headers = { authorization: `Bearer ${key}` };
    const r = await fetch(`${url}/v1/operations`, { method: 'POST', headers, body: form });
    if (r.status !== 202) throw new Error(`webhook bench submit ${r.status}`);
    const { id } = (await r.json()) as { id: string };
    const ended = performance.now();
    const d = await fetch(`${url}/v1/operations/${id}`, { method: 'DELETE', headers });
    if (d.status !== 200) throw new Error(`webhook bench cancel ${d.status}`);
    return ended;
  };
  try {
    for (let i = 0; i < A_OPERATIONS; i++) await endOne(e.key, hung.url(`/a${i}`));
    const ended = new Map<string, number>();
    for (let i = 0; i < B_OPERATIONS; i++) ended.set(`/b${i}`, await endOne(bKey, ok.url(`/b${i}`)));
    const deadline = performance.now() + FIFO_BASELINE_MS + 30_000;
    while (ok.arrived.size < B_OPERATIONS && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const delays = [...ended].map(([p, at]) => (ok.arrived.get(p) ?? Infinity) - at).sort((a, b) => a - b);
    return { delays, hungHeld: hung.arrived.size };
  } finally {
    await hung.close();
    await dispatcher.stop();
    await ok.close();
    await redis.quit();
    await api.stop();
  }
};

export const webhookFairnessSection: Section<void> = {
  id: '11',
  title: 'webhook fairness',
  async run(ctx) {
    const add = ctx.report.section('11 webhooks');
    const r = await run(ctx);
    const worst = r.delays.at(-1) ?? Infinity;
    add({ metric: `B's webhook after its operation ended, p50 (A: ${A_OPERATIONS} to a hung endpoint)`, value: pct(r.delays, 0.5), unit: 'ms' });
    add({
      metric: `B's webhook after its operation ended, max of ${B_OPERATIONS}`,
      value: worst,
      unit: 'ms',
      baseline: FIFO_BASELINE_MS,
      ratio: worst / FIFO_BASELINE_MS,
      target: '< 2000 ms',
      pass: worst < 2000,
    });
    add({
      metric: "requests the hung endpoint holds (of 32 slots; A's endpoint share is 8)",
      value: r.hungHeld,
      unit: 'requests',
      target: '≤ 8',
      pass: r.hungHeld <= 8,
    });
  },
};
