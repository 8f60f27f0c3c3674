/**
 * What the api logs when it refuses a request: an expected refusal (4xx, 507 spool full, 503
 * Redis unreachable) is one line without a stack, 4xx at info and 5xx at warn, a repeated 5xx
 * refusal once per window; only an unexpected error is logged at error with its stack.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { OperationStore } from '@signspool/shared/operations/store';
import { spawnRedisServer, type RunningRedisServer } from '../bin/redis-server.js';
import { captureLogs } from './harness/log-capture.js';
import { auth, submit } from './harness/client.js';
import { startStack, type Stack } from './harness/stack.js';

const ERROR = 50;
const WARN = 40;
const INFO = 30;

describe('refusal logs', () => {
  let dir: string;
  let redis: RunningRedisServer;
  const stacks: Stack[] = [];
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'signspool-refusal-logs-'));
    redis = await spawnRedisServer({ dir: path.join(dir, 'redis') });
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await Promise.all(stacks.splice(0).map((s) => s.stop()));
  });
  afterAll(async () => {
    await redis?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const apiWithLogs = async (env: Record<string, string> = {}) => {
    const { lines, logger } = captureLogs();
    const s = await startStack({ env: { REDIS_URL: redis.url, ...env }, worker: false, logger });
    stacks.push(s);
    return { s, refusals: () => lines.filter((l) => l['msg'] === 'request refused' || l['msg'] === 'request failed') };
  };
  const withStack = (lines: Record<string, unknown>[]) => lines.filter((l) => JSON.stringify(l).includes('"stack"'));

  it('logs 4xx refusals at info, one line each, without a stack', async () => {
    const { s, refusals } = await apiWithLogs();
    expect((await fetch(`${s.apiUrl}/v1/operations/op_missing`, { headers: auth(s.keys.acme) })).status).toBe(404);
    expect((await fetch(`${s.apiUrl}/v1/operations`, { method: 'POST', headers: auth(s.keys.acme), body: 'x' })).status).toBe(415);
    expect((await fetch(`${s.apiUrl}/v1/operations/op_missing`)).status).toBe(401);
    expect(refusals().map((l) => [l['level'], l['status']])).toEqual([
      [INFO, 404],
      [INFO, 415],
      [INFO, 401],
    ]);
    expect(withStack(refusals())).toEqual([]);
  });

  it('logs a full spool (507) once at warn for a run of refusals, without a stack', async () => {
    const { s, refusals } = await apiWithLogs({ SPOOL_MIN_FREE_BYTES: '1000000GiB' });
    for (let i = 0; i < 5; i++) expect((await submit(s.apiUrl, s.keys.acme, [{ name: 'a.txt', content: 'no room' }])).status).toBe(507);
    expect(refusals().map((l) => [l['level'], l['code']])).toEqual([[WARN, 'INSUFFICIENT_STORAGE']]);
    expect(withStack(refusals())).toEqual([]);
  });

  it('logs Redis unreachable (503) once at warn for a run of refusals, without a stack', async () => {
    const { s, refusals } = await apiWithLogs();
    const port = redis.port;
    await redis.stop('SIGKILL');
    try {
      for (let i = 0; i < 5; i++) expect((await fetch(`${s.apiUrl}/v1/operations`, { headers: auth(s.keys.acme) })).status).toBe(503);
    } finally {
      redis = await spawnRedisServer({ dir: path.join(dir, 'redis'), port });
    }
    expect(refusals().map((l) => [l['level'], l['code']])).toEqual([[WARN, 'SERVICE_UNAVAILABLE']]);
    expect(withStack(refusals())).toEqual([]);
  });

  it('logs an unexpected error at error with its stack', async () => {
    const { s, refusals } = await apiWithLogs();
    vi.spyOn(OperationStore.prototype, 'list').mockRejectedValue(new TypeError('unexpected'));
    expect((await fetch(`${s.apiUrl}/v1/operations`, { headers: auth(s.keys.acme) })).status).toBe(500);
    expect(refusals().map((l) => [l['level'], l['code']])).toEqual([[ERROR, 'INTERNAL']]);
    expect(withStack(refusals())).toHaveLength(1);
  });
});
