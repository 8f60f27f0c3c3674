/**
 * A hung Redis (a real redis-server stopped with SIGSTOP: connections stay open, nothing answers)
 * must not hang the api: POST, GET status and download answer 503 with Retry-After within a few
 * seconds (REDIS_COMMAND_TIMEOUT), as for a dead Redis. Workers wait; after SIGCONT every
 * acknowledged document ends signed and new submissions go through.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnRedisServer, type RunningRedisServer } from '../bin/redis-server.js';
import { auth, submit, waitForTerminal } from './harness/client.js';
import { startStack, type Stack } from './harness/stack.js';

/** Each request during the hang must be answered within this bound (REDIS_COMMAND_TIMEOUT is 1 s). */
const ANSWER_BOUND_MS = 5000;

describe('a hung Redis', () => {
  let dir: string;
  let redis: RunningRedisServer;
  let stack: Stack;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'signspool-redis-hang-'));
    redis = await spawnRedisServer({ dir: path.join(dir, 'redis'), appendOnly: true });
    stack = await startStack({ env: { REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT: '1s', BATCH_LINGER: '20ms' } });
  });
  afterAll(async () => {
    redis?.process.kill('SIGCONT');
    await stack?.stop();
    await redis?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers 503 + Retry-After within a bound while Redis is stopped, and loses nothing', async () => {
    const before = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'before.txt', content: 'signed before the hang' }]);
    const signed = await waitForTerminal(stack.apiUrl, stack.keys.acme, before.body.id);
    const opUrl = `${stack.apiUrl}/v1/operations/${before.body.id}`;
    const docUrl = `${opUrl}/documents/${signed.documents[0]?.id ?? ''}`;
    // Acknowledged just before the hang: may be anywhere between queued and signed when Redis stops.
    const pending = await Promise.all(
      Array.from({ length: 5 }, (_, i) => submit(stack.apiUrl, stack.keys.globex, [{ name: `p${i}.txt`, content: `pending ${i}` }])),
    );
    expect(pending.map((p) => p.status)).toEqual([202, 202, 202, 202, 202]);

    redis.process.kill('SIGSTOP');
    const answers: [string, number, boolean, boolean][] = [];
    try {
      const form = (): FormData => {
        const f = new FormData();
        f.append('file', new Blob(['during the hang']), 'hang.txt');
        return f;
      };
      const calls: [string, () => Promise<Response>][] = [
        [
          'POST',
          () => fetch(`${stack.apiUrl}/v1/operations`, { method: 'POST', headers: auth(stack.keys.acme), body: form(), signal: AbortSignal.timeout(20_000) }),
        ],
        ['GET operation', () => fetch(opUrl, { headers: auth(stack.keys.acme), signal: AbortSignal.timeout(20_000) })],
        ['GET document', () => fetch(docUrl, { headers: auth(stack.keys.acme), signal: AbortSignal.timeout(20_000) })],
      ];
      for (const [label, call] of calls) {
        const started = Date.now();
        const res = await call().catch(() => undefined);
        answers.push([label, res?.status ?? 0, res?.headers.get('retry-after') !== null && res !== undefined, Date.now() - started < ANSWER_BOUND_MS]);
      }
    } finally {
      redis.process.kill('SIGCONT');
    }
    expect(answers).toEqual([
      ['POST', 503, true, true],
      ['GET operation', 503, true, true],
      ['GET document', 503, true, true],
    ]);
    // Nothing lost: everything acknowledged before the hang ends signed, and the api takes new work.
    for (const p of pending) expect((await waitForTerminal(stack.apiUrl, stack.keys.globex, p.body.id, 60_000)).status).toBe('succeeded');
    const after = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'after.txt', content: 'after the hang' }]);
    expect(after.status).toBe(202);
    expect((await waitForTerminal(stack.apiUrl, stack.keys.acme, after.body.id, 60_000)).status).toBe('succeeded');
  });
});
