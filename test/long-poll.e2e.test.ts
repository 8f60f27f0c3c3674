/**
 * 500 concurrent `Prefer: wait` requests do not poll Redis, and each is answered when its operation
 * ends, long before its deadline. Prints the figures it sees; the timing targets (event-loop
 * utilisation, wake-up p99) are in the benchmark's section 6 (`npm run bench -- --only 6`).
 */
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth, eventually, submit } from './harness/client.js';
import { startTestRedis, type TestRedis } from './harness/redis.js';
import { startStack, type Stack } from './harness/stack.js';

const WAITERS = 500;

describe('long-poll at scale', () => {
  let stack: Stack;
  let redis: Redis;
  let server: TestRedis;

  beforeAll(async () => {
    // A Redis of its own: the command count below must not include other test files' traffic.
    server = await startTestRedis();
    // One tenant holds every waiter: its requests-per-second limit and its cap of long polls are off.
    stack = await startStack({ worker: false, env: { REDIS_URL: server.url, RATE_LIMIT_REQUESTS: '0', LONG_POLL_TENANT_MAX: '0' } });
    redis = new Redis(stack.config.redisUrl ?? '');
  });
  afterAll(async () => {
    await redis?.quit();
    await stack?.stop();
    await server?.stop();
  });

  const commandsProcessed = async (): Promise<number> => Number(/total_commands_processed:(\d+)/.exec(await redis.info('stats'))?.[1] ?? 0);

  it(`holds ${WAITERS} waiters without polling Redis and wakes each when its operation ends`, async () => {
    const ids: string[] = [];
    for (let i = 0; i < WAITERS; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, WAITERS - i) }, (_, j) => submit(stack.apiUrl, stack.keys.acme, [{ name: `w${i + j}.txt`, content: `w${i + j}` }])),
      );
      ids.push(...batch.map((b) => b.body.id));
    }
    const agent = new Agent({ connections: WAITERS + 10 });
    const woke = new Map<string, number>();
    const waiting = ids.map((id) =>
      request(`${stack.apiUrl}/v1/operations/${id}`, { dispatcher: agent, headers: { ...auth(stack.keys.acme), prefer: 'wait=60' } }).then(async (r) => {
        woke.set(id, performance.now());
        return { status: r.statusCode, body: (await r.body.json()) as { status: string } };
      }),
    );
    await eventually(`${WAITERS} requests waiting`, () => (stack.api?.waitingRequests ?? 0) === WAITERS, 30_000);

    // One quiet second with every waiter parked.
    const commandsBefore = await commandsProcessed();
    const elu0 = performance.eventLoopUtilization();
    await new Promise((r) => setTimeout(r, 1000));
    const elu = performance.eventLoopUtilization(elu0).utilization;
    const commands = (await commandsProcessed()) - commandsBefore - 1; // minus our own INFO
    const rss = Math.round(process.memoryUsage().rss / 1024 / 1024);

    // End every operation; measure how long each waiter takes to answer.
    const ended = new Map<string, number>();
    for (const id of ids) {
      // Measured from the moment the DELETE that ends the operation is sent: an upper bound.
      ended.set(id, performance.now());
      const r = await fetch(`${stack.apiUrl}/v1/operations/${id}`, { method: 'DELETE', headers: auth(stack.keys.acme) });
      expect(r.status).toBe(200);
    }
    const answers = await Promise.all(waiting);
    expect(answers.every((a) => a.status === 200 && a.body.status === 'canceled')).toBe(true);
    const lat = ids.map((id) => (woke.get(id) ?? Infinity) - (ended.get(id) ?? 0)).sort((a, b) => a - b);
    const p = (q: number): number => Math.round(lat[Math.min(lat.length - 1, Math.floor(q * lat.length))] ?? Infinity);
    console.log(
      `${WAITERS} waiters parked for 1 s: ${commands} Redis commands, event-loop utilisation ${(elu * 100).toFixed(1)} %, test process RSS ${rss} MB; ` +
        `wake-up counted from the DELETE that ends the operation: p50 ${p(0.5)} ms, p99 ${p(0.99)} ms, max ${p(1)} ms`,
    );
    // One poll per waiter, even once every 10 s, would be 50 commands in that second.
    expect(commands).toBeLessThan(WAITERS / 10);
    // Woken by the end of the operation, not by the 60 s deadline.
    expect(p(1)).toBeLessThan(30_000);
    await agent.close();
  });
});
