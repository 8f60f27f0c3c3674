/**
 * Section 6, the cost of waiting: 500 `Prefer: wait` requests parked on an api (in this process, as
 * in test/long-poll.e2e.test.ts, so its event loop can be measured) keep neither Redis nor the
 * event loop busy, and each wakes promptly when its operation ends (DELETE; no worker runs).
 */
import { mkdtemp } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import { Agent, request } from 'undici';
import { ApiServer } from '@signspool/api/server';
import { loadConfig } from '@signspool/shared/config';
import { createLogger } from '@signspool/shared/logger';
import { createMetrics } from '@signspool/shared/metrics';
import { pct } from '../report.js';
import type { BenchContext, Section } from '../section.js';
import { stackEnv } from '../stack.js';

const WAITERS = 500;

const longPoll = async (ctx: BenchContext) => {
  const e = ctx.env;
  const dir = await mkdtemp(path.join(ctx.tmp, 'long-poll-'));
  const config = loadConfig({ ...stackEnv(ctx.settings, e, dir, {}), PORT: '0', LOG_LEVEL: 'silent' });
  const api = new ApiServer({
    config,
    logger: createLogger({ level: config.logLevel }),
    metrics: createMetrics({ defaultMetrics: false }),
    apiKeys: config.apiKeys ?? [],
  });
  const url = await api.start();
  const redis = new Redis(e.redisUrl);
  const agent = new Agent({ connections: WAITERS + 10 });
  const headers = { authorization: `Bearer ${e.key}` };
  try {
    const ids: string[] = [];
    for (let i = 0; i < WAITERS; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, WAITERS - i) }, async (_, j) => {
          const form = new FormData();
          form.append('file', new Blob([`w${i + j}`]), `w${i + j}.txt`);
          const r = await fetch(`${url}/v1/operations`, { method: 'POST', headers, body: form });
          if (r.status !== 202) throw new Error(`long-poll submit ${r.status}`);
          return ((await r.json()) as { id: string }).id;
        }),
      );
      ids.push(...batch);
    }
    const woke = new Map<string, number>();
    const waiting = ids.map((id) =>
      request(`${url}/v1/operations/${id}`, { dispatcher: agent, headers: { ...headers, prefer: 'wait=60' } }).then(async (r) => {
        woke.set(id, performance.now());
        await r.body.dump();
        return r.statusCode;
      }),
    );
    for (let i = 0; api.waitingRequests < WAITERS; i++) {
      if (i > 600) throw new Error(`only ${api.waitingRequests} of ${WAITERS} requests waiting after 30 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
    // One quiet second with every waiter parked.
    const commandsProcessed = async (): Promise<number> => Number(/total_commands_processed:(\d+)/.exec(await redis.info('stats'))?.[1] ?? 0);
    const commandsBefore = await commandsProcessed();
    const elu0 = performance.eventLoopUtilization();
    await new Promise((r) => setTimeout(r, 1000));
    const elu = performance.eventLoopUtilization(elu0).utilization;
    const commands = (await commandsProcessed()) - commandsBefore - 1; // minus our own INFO
    // End every operation; wake-up counted from the moment the DELETE that ends it is sent (an upper bound).
    const ended = new Map<string, number>();
    for (const id of ids) {
      ended.set(id, performance.now());
      const r = await fetch(`${url}/v1/operations/${id}`, { method: 'DELETE', headers });
      if (r.status !== 200) throw new Error(`long-poll cancel ${r.status}`);
    }
    const statuses = await Promise.all(waiting);
    if (!statuses.every((s) => s === 200)) throw new Error('a waiter did not answer 200');
    const wake = ids.map((id) => (woke.get(id) ?? Infinity) - (ended.get(id) ?? 0)).sort((a, b) => a - b);
    return { commands, elu, wake };
  } finally {
    await agent.close();
    await redis.quit();
    await api.stop();
  }
};

export const longPollSection: Section<void> = {
  id: '6',
  title: 'long-poll',
  async run(ctx) {
    const add = ctx.report.section('6 long-poll');
    const lp = await longPoll(ctx);
    add({ metric: `Redis commands in 1 s with ${WAITERS} waiters parked`, value: lp.commands, unit: 'commands', target: '≤ 5', pass: lp.commands <= 5 });
    add({
      metric: `event-loop utilisation of the api (and its clients) with ${WAITERS} waiters parked`,
      value: lp.elu * 100,
      unit: '%',
      target: '< 20 %',
      pass: lp.elu < 0.2,
    });
    add({ metric: 'wake-up after the DELETE that ends the operation, p50', value: pct(lp.wake, 0.5), unit: 'ms' });
    add({
      metric: 'wake-up after the DELETE that ends the operation, p99',
      value: pct(lp.wake, 0.99),
      unit: 'ms',
      target: '< 200 ms',
      pass: pct(lp.wake, 0.99) < 200,
    });
  },
};
