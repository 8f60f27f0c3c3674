/**
 * The api process stopped with SIGTERM while clients keep sending over their kept-alive
 * connections (issue 26): long polls (woken by the stop), uploads and reads back to back, and a
 * client whose connection is idle when the stop starts and that sends one request during it.
 * Every request gets an HTTP answer (2xx, or 503 with Retry-After), none is reset; once the api no
 * longer listens, a new connection is refused (the only failure a client may see). The answers
 * the stop causes carry `Connection: close`, /readyz answers 503, and no connection is left for
 * the deadline to close.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Agent, FormData, request } from 'undici';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateApiKey, hashApiKey } from '@signspool/api/auth/auth';
import { auth, eventually, submit } from './harness/client.js';
import { startService, type ServiceProcess } from './harness/processes.js';
import { testPrefix } from './harness/stack.js';

interface Outcome {
  client: string;
  path: string;
  /** A long poll (`Prefer: wait`): only the stop can answer it (the operation stays queued). */
  longPoll: boolean;
  status?: number;
  retryAfter?: string | undefined;
  connection?: string | undefined;
  keepAlive?: string | undefined;
  /** The failure's code (ECONNREFUSED, UND_ERR_SOCKET, ECONNRESET...). */
  error?: string;
}

const header = (headers: Record<string, string | string[] | undefined>, name: string): string | undefined => {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
};

describe('api SIGTERM with clients on kept-alive connections', () => {
  let dir: string;
  let api: ServiceProcess;
  const key = generateApiKey();

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'signspool-api-sigterm-'));
    api = await startService('api', {
      REDIS_URL: inject('redisUrl'),
      QUEUE_PREFIX: testPrefix(),
      DATA_DIR: dir,
      API_KEYS: `acme:${hashApiKey(key)}`,
      SPOOL_MIN_FREE_BYTES: '1MiB',
      RATE_LIMIT_REQUESTS: '0',
      RATE_LIMIT_UPLOAD_BYTES: '0',
      // Room for the late client's request on a loaded machine (10 s by default: twice HTTP_KEEPALIVE_TIMEOUT).
      HTTP_DRAIN_WINDOW: '3s',
      SHUTDOWN_TIMEOUT: '20s',
    });
  });
  afterAll(async () => {
    await api?.stop('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it('answers every request that reaches it while it stops, each answer closing its connection', async () => {
    // No worker: the operation stays queued and its long polls wait until the stop wakes them.
    const op = await submit(api.url, key, [{ name: 'queued.txt', content: 'stays queued\n' }]);
    expect(op.status).toBe(202);
    const opPath = `/v1/operations/${op.body.id}`;

    const outcomes: Outcome[] = [];
    const answered = new Map<string, number>();
    let sigtermAt = 0;
    // The first answer that closes its connection after the SIGTERM: the stop has started.
    let stopStarted: () => void = () => undefined;
    const stopSeen = new Promise<void>((resolve) => (stopStarted = resolve));
    const agents: Agent[] = [];
    // One connection per client: each request after the first reuses it (kept alive).
    const send = async (
      client: string,
      agent: Agent,
      p: string,
      init: { method?: 'GET' | 'POST'; headers?: Record<string, string>; body?: FormData } = {},
    ): Promise<Outcome> => {
      const o: Outcome = { client, path: p, longPoll: init.headers?.['prefer'] !== undefined };
      try {
        const res = await request(`${api.url}${p}`, {
          dispatcher: agent,
          method: init.method ?? 'GET',
          headers: { ...auth(key), ...init.headers },
          ...(init.body ? { body: init.body } : {}),
        });
        await res.body.arrayBuffer();
        o.status = res.statusCode;
        o.retryAfter = header(res.headers, 'retry-after');
        o.connection = header(res.headers, 'connection');
        o.keepAlive = header(res.headers, 'keep-alive');
        answered.set(client, (answered.get(client) ?? 0) + 1);
        if (sigtermAt > 0 && o.connection === 'close') stopStarted();
      } catch (err) {
        o.error = String((err as { code?: unknown }).code ?? (err as Error).name);
      }
      outcomes.push(o);
      return o;
    };
    type Init = Parameters<typeof send>[3];
    const client = (name: string, next: (n: number) => [string, Init?]): Promise<void> => {
      const agent = new Agent({ connections: 1 });
      agents.push(agent);
      return (async () => {
        // Until a request fails: once the api is gone, a new connection is refused.
        for (let n = 0; ; n++) if ((await send(name, agent, ...next(n))).error !== undefined) return;
      })();
    };
    const upload = (): FormData => {
      const form = new FormData();
      form.append('file', new Blob([`upload ${Math.random()}`], { type: 'text/plain' }), 'u.txt');
      return form;
    };
    const loops: Promise<void>[] = [];
    // Long polls: each waits (the operation stays queued) until the stop answers it.
    for (let i = 0; i < 6; i++) loops.push(client(`poll${i}`, (n) => (n === 0 ? [opPath] : [opPath, { headers: { prefer: 'wait=30' } }])));
    // Uploads and reads back to back.
    for (let i = 0; i < 4; i++) loops.push(client(`busy${i}`, (n) => (n % 2 === 0 ? ['/v1/operations', { method: 'POST', body: upload() }] : [opPath])));
    // Idle when the stop starts; one request once the stop is seen, on the connection kept alive.
    const lateAgent = new Agent({ connections: 1 });
    const lateReader = new Agent({ connections: 1 });
    agents.push(lateAgent, lateReader);
    expect((await send('late', lateAgent, opPath)).status).toBe(200);
    expect((await send('lateRead', lateReader, opPath)).keepAlive).toBe('timeout=5');

    await eventually('every client answered (the long polls sent)', () =>
      [...Array.from({ length: 6 }, (_, i) => `poll${i}`), ...Array.from({ length: 4 }, (_, i) => `busy${i}`)].every(
        (c) => (answered.get(c) ?? 0) >= (c.startsWith('busy') ? 2 : 1),
      ),
    );
    sigtermAt = Date.now();
    const exited = api.stop('SIGTERM');
    // (Without a drain, no answer closes its connection: the request is sent once the api has exited.)
    await Promise.race([stopSeen, exited]);
    const late = await send('late', lateAgent, '/readyz');
    // A plain status read (answered below express, api/read/fast-status.ts) closes its connection too.
    const lateRead = await send('lateRead', lateReader, opPath);
    const code = await exited;
    await Promise.all(loops);
    await Promise.all(agents.map((a) => a.close()));

    expect(code).toBe(0);
    // No request went unanswered: the only failure is a refused connection once the api is gone.
    expect(outcomes.filter((o) => o.error !== undefined && o.error !== 'ECONNREFUSED')).toEqual([]);
    expect(outcomes.filter((o) => o.status === 503 && o.retryAfter === undefined)).toEqual([]);
    expect(outcomes.filter((o) => o.status !== undefined && (o.status >= 500 ? o.status !== 503 : o.status >= 300))).toEqual([]);
    // The long polls the stop woke were answered (not cut), each telling its client to close.
    const longPolls = outcomes.filter((o) => o.longPoll && o.error === undefined);
    expect(longPolls).toHaveLength(6);
    expect(longPolls.filter((o) => o.status !== 200 || o.connection !== 'close' || o.keepAlive !== undefined)).toEqual([]);
    // Readiness says 503 from the start of the stop, on a connection idle until then.
    expect(late).toMatchObject({ status: 503, retryAfter: '1', connection: 'close' });
    expect(lateRead).toMatchObject({ status: 200, connection: 'close', keepAlive: undefined });
    // An answer that closes its connection announces no keep-alive; every other one does.
    expect(outcomes.filter((o) => o.status !== undefined && (o.connection === 'close') === (o.keepAlive !== undefined))).toEqual([]);
    expect(api.output()).not.toMatch(/connections still busy at SHUTDOWN_TIMEOUT/);
  });
});
