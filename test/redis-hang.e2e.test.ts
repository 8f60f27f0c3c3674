/**
 * A hung Redis (a real redis-server stopped with SIGSTOP: connections stay open, nothing answers)
 * must not hang the api: POST, GET status and download answer 503 with Retry-After within a few
 * seconds (REDIS_COMMAND_TIMEOUT), as for a dead Redis, and so do uploads waiting for a slot.
 * Workers wait; after SIGCONT every acknowledged document ends signed and new submissions go
 * through. An upload whose commit Redis runs only after SIGCONT (its client got the 503) does not
 * stand: a proxy in front of the server stops it just as that commit is sent.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadLua } from '@signspool/shared/redis/scripts';
import { spawnRedisServer, type RunningRedisServer } from '../bin/redis-server.js';
import { auth, eventually, getOperation, submit, waitForTerminal } from './harness/client.js';
import { captureLogs } from './harness/log-capture.js';
import { rawConnect, uploadHead } from './harness/raw-http.js';
import { startStack, type Stack } from './harness/stack.js';
import { startTriggerProxy, type TriggerProxy } from './harness/trigger-proxy.js';

/** Each request during the hang must be answered within this bound (REDIS_COMMAND_TIMEOUT is 1 s). */
const ANSWER_BOUND_MS = 5000;

const uploadForm = (name: string, content: string): FormData => {
  const f = new FormData();
  f.append('file', new Blob([content]), name);
  return f;
};

describe('a hung Redis', () => {
  let dir: string;
  let redis: RunningRedisServer;
  let proxy: TriggerProxy;
  let stack: Stack;
  const logs = captureLogs();
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'signspool-redis-hang-'));
    redis = await spawnRedisServer({ dir: path.join(dir, 'redis'), appendOnly: true });
    proxy = await startTriggerProxy(redis.port);
    stack = await startStack({
      logger: logs.logger,
      env: {
        REDIS_URL: proxy.url,
        REDIS_COMMAND_TIMEOUT: '1s',
        BATCH_LINGER: '20ms',
        // One upload of a tenant read at a time, and no limit that asks Redis before the slot: the
        // others wait for it, as a busy tenant's do.
        UPLOAD_CONCURRENCY: '2',
        RATE_LIMIT_REQUESTS: '0',
        RATE_LIMIT_UPLOAD_BYTES: '0',
        BACKLOG_MAX_DOCUMENTS: '0',
      },
    });
  });
  afterAll(async () => {
    redis?.process.kill('SIGCONT');
    await stack?.stop();
    await proxy?.close();
    await redis?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** Once the api has seen Redis answer again (until then it refuses uploads at once). */
  const recovered = (): Promise<void> => eventually('the api sees Redis answer', () => stack.api?.redisAvailable === true, 10_000);

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
    await recovered();
    for (const p of pending) expect((await waitForTerminal(stack.apiUrl, stack.keys.globex, p.body.id, 60_000)).status).toBe('succeeded');
    const after = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'after.txt', content: 'after the hang' }]);
    expect(after.status).toBe(202);
    expect((await waitForTerminal(stack.apiUrl, stack.keys.acme, after.body.id, 60_000)).status).toBe('succeeded');
  });

  it('answers uploads waiting for a slot 503 + Retry-After within the bound, not one after another', async () => {
    redis.process.kill('SIGSTOP');
    let answers: [number, boolean, boolean][];
    let refused: [number | undefined, boolean, string | undefined];
    try {
      answers = await Promise.all(
        Array.from({ length: 6 }, async (_, i) => {
          const started = Date.now();
          const res = await fetch(`${stack.apiUrl}/v1/operations`, {
            method: 'POST',
            headers: auth(stack.keys.acme),
            body: uploadForm(`waiting-${i}.txt`, `waiting ${i}`),
            signal: AbortSignal.timeout(30_000),
          }).catch(() => undefined);
          return [res?.status ?? 0, res?.headers.get('retry-after') != null, Date.now() - started < ANSWER_BOUND_MS] as [number, boolean, boolean];
        }),
      );
      // Refused at once now, before its body is read: a small body still being sent is read and
      // dropped, not cut off by a closed connection (its client would see EPIPE, not the answer).
      const body = Buffer.alloc(20 * 1024, 'x');
      const conn = rawConnect(stack.apiUrl, [uploadHead(stack.keys.acme, 'b0undary', body.length), body.subarray(0, 1024)]);
      const answer = await conn.response;
      conn.socket.end(body.subarray(1024));
      refused = [answer?.status, answer?.headers['retry-after'] !== undefined, answer?.headers['connection']];
      conn.socket.destroy();
    } finally {
      redis.process.kill('SIGCONT');
    }
    expect(answers).toEqual(Array.from({ length: 6 }, () => [503, true, true]));
    expect(refused).toEqual([503, true, 'keep-alive']);
    await recovered();
  });

  it('does not let a commit Redis runs after its upload was answered 503 stand; the Idempotency-Key is free for the retry', async () => {
    // The commit's script is loaded (EVALSHA from here on): the proxy stops Redis as its sha goes by.
    const warm = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'warm.txt', content: 'loads the scripts' }]);
    await waitForTerminal(stack.apiUrl, stack.keys.acme, warm.body.id);
    const commitSha = createHash('sha1').update(loadLua('accepted')).digest('hex');
    const stopped = proxy.arm(commitSha, () => redis.process.kill('SIGSTOP'));
    const key = { 'idempotency-key': 'hung-at-commit-1' };
    const logsFrom = logs.lines.length;
    let first: [number, boolean, boolean];
    try {
      const started = Date.now();
      const res = await fetch(`${stack.apiUrl}/v1/operations`, {
        method: 'POST',
        headers: { ...auth(stack.keys.acme), ...key },
        body: uploadForm('stalled.txt', 'committed while Redis was stopped'),
        signal: AbortSignal.timeout(30_000),
      }).catch(() => undefined);
      first = [res?.status ?? 0, res?.headers.get('retry-after') != null, Date.now() - started < ANSWER_BOUND_MS];
      await stopped;
    } finally {
      redis.process.kill('SIGCONT');
    }
    expect(first).toEqual([503, true, true]);
    // Once Redis answers the api finishes undoing it: the commit it ran late did not stand.
    const notAccepted = logs.lines.slice(logsFrom).find((l) => l['msg'] === 'submission not accepted; undone once Redis answers');
    const opId = String(notAccepted?.['opId']);
    const settled = (): Record<string, unknown> | undefined =>
      logs.lines.find((l) => l['msg'] === 'undid a failed submission once Redis answered' && l['opId'] === opId);
    await eventually('the undo of the stalled submission ends', () => settled() !== undefined, 20_000);
    expect(settled()?.['outcome']).not.toBe('committed');
    expect((await getOperation(stack.apiUrl, stack.keys.acme, opId)).status).toBe(404);
    await recovered();
    // The client's retry with the same key is a new submission (not a replay), and it is signed.
    const retried = await fetch(`${stack.apiUrl}/v1/operations`, {
      method: 'POST',
      headers: { ...auth(stack.keys.acme), ...key },
      body: uploadForm('stalled.txt', 'committed while Redis was stopped'),
    });
    expect([retried.status, retried.headers.get('idempotent-replayed')]).toEqual([202, null]);
    const op = (await retried.json()) as { id: string };
    expect(op.id).not.toBe(opId);
    expect((await waitForTerminal(stack.apiUrl, stack.keys.acme, op.id, 60_000)).status).toBe('succeeded');
  });
});
