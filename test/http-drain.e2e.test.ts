/**
 * The api's HTTP drain (api/http/drain.ts) on a plain node:http server with clients on kept-alive
 * connections: once it starts, answers under way and requests that arrive on idle connections are
 * answered with `Connection: close`, a connection the kernel had queued is accepted and answered
 * before the listener closes, new connections are refused after, what stays idle is closed after
 * the window (a request that reached it while the process was busy is answered first), and what is
 * still busy at the deadline is closed then.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import net, { type AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpDrain } from '@signspool/api/http/drain';
import { eventually } from './harness/client.js';

interface Started {
  url: string;
  server: http.Server;
  drain: HttpDrain;
  /** Ends the answers of /slow and /stream. */
  release: () => void;
  /** Resolves once a request for `path` has reached the handler. */
  reached: (path: string) => Promise<void>;
}

const start = async (): Promise<Started> => {
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => (release = resolve));
  const arrivals = new Map<string, () => void>();
  const arrived = new Map<string, Promise<void>>();
  const reached = (path: string): Promise<void> => {
    if (!arrived.has(path)) arrived.set(path, new Promise<void>((resolve) => arrivals.set(path, resolve)));
    return arrived.get(path) ?? Promise.resolve();
  };
  const server = http.createServer((req, res) => {
    void reached(req.url ?? '');
    arrivals.get(req.url ?? '')?.();
    if (req.url === '/slow') void released.then(() => res.end('slow'));
    else if (req.url === '/stream') {
      // Headers sent (keep-alive) before the drain starts; the body ends after.
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('part');
      void released.then(() => res.end('end'));
    } else if (req.url !== '/hang') res.end('ok');
  });
  const drain = new HttpDrain(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, drain, release: () => release(), reached };
};

const agents: Agent[] = [];
const agent = (): Agent => {
  const a = new Agent({ connections: 1 });
  agents.push(a);
  return a;
};

const get = async (url: string, dispatcher: Agent): Promise<{ status: number; connection: string | undefined; body: string }> => {
  const res = await request(url, { dispatcher });
  const connection = res.headers['connection'];
  return { status: res.statusCode, connection: Array.isArray(connection) ? connection.join() : connection, body: await res.body.text() };
};

const failure = (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'answered',
    (err: unknown) => String((err as { code?: unknown }).code),
  );

describe('HttpDrain', () => {
  let s: Started | undefined;
  afterEach(async () => {
    s?.server.closeAllConnections();
    await Promise.all(agents.splice(0).map((a) => a.destroy()));
  });

  it('answers what arrives on open connections with Connection: close and closes the idle ones after the window', async () => {
    s = await start();
    const [late, slow, stream, idle] = [agent(), agent(), agent(), agent()];
    for (const a of [late, slow, stream, idle]) expect((await get(`${s.url}/`, a)).connection).toBe('keep-alive');
    const slowAnswer = get(`${s.url}/slow`, slow);
    const streamAnswer = get(`${s.url}/stream`, stream);
    // Both requests have reached the server (the stream's headers are sent).
    await Promise.all([s.reached('/slow'), s.reached('/stream')]);
    expect(s.drain.stopping).toBe(false);

    const drained = s.drain.drain({ windowMs: 500, deadlineMs: 10_000 });
    expect(s.drain.stopping).toBe(true);
    // No new connection once the listener is closed (a turn of the event loop later)...
    await eventually('the listener closed', () => !s?.server.listening);
    expect(await failure(get(`${s.url}/`, agent()))).toBe('ECONNREFUSED');
    // ...but a request on a connection kept alive is served, and told to close it.
    expect(await get(`${s.url}/`, late)).toEqual({ status: 200, connection: 'close', body: 'ok' });
    s.release();
    // The answer under way whose headers were not sent closes its connection too.
    expect(await slowAnswer).toEqual({ status: 200, connection: 'close', body: 'slow' });
    // The one already sent as keep-alive cannot say so: its connection, idle after it, is closed after the window.
    expect(await streamAnswer).toEqual({ status: 200, connection: 'keep-alive', body: 'partend' });
    // The idle connection is closed after the window, long before the deadline.
    expect(await drained).toBe('drained');
  });

  it('marks a pipelined answer under way too: the one queued behind an answer whose headers were sent closes its connection', async () => {
    s = await start();
    const socket = net.connect(Number(new URL(s.url).port), '127.0.0.1');
    let got = '';
    socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    // Two requests in one write: /stream's headers go out at once (keep-alive), /slow waits behind it.
    socket.write('GET /stream HTTP/1.1\r\nHost: t\r\n\r\nGET /slow HTTP/1.1\r\nHost: t\r\n\r\n');
    await Promise.all([s.reached('/stream'), s.reached('/slow')]);
    const drained = s.drain.drain({ windowMs: 500, deadlineMs: 10_000 });
    await eventually('the listener closed', () => !s?.server.listening);
    s.release();
    await closed;
    const answers = got.split(/(?=HTTP\/1\.1 )/);
    expect(answers).toHaveLength(2);
    expect(answers[0]).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*connection: keep-alive\r\n[^]*part[^]*end/i);
    // The pipelined answer's headers were not sent when the listener closed: it says close, and the connection ends after it.
    expect(answers[1]).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*connection: close\r\n[^]*slow/i);
    expect(await drained).toBe('drained');
  });

  it('answers a connection the kernel had queued when the drain started (a busy process had not accepted it yet)', async () => {
    s = await start();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'signspool-drain-'));
    try {
      const out = path.join(dir, 'answer.txt');
      const port = new URL(s.url).port;
      // This process is blocked (accepts nothing) while a client connects and sends its request.
      spawnSync('bash', ['-c', `(exec 3<>/dev/tcp/127.0.0.1/${port}; printf 'GET / HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n' >&3; cat <&3 >${out}) & sleep 0.3`], {
        stdio: 'ignore',
      });
      const drained = s.drain.drain({ windowMs: 500, deadlineMs: 10_000 });
      expect(await drained).toBe('drained');
      // Answered (a listener closed at once would have reset it); before the listener closed, so
      // kept alive: a client that reconnected instead would have met the close.
      await eventually('the answer received', async () => (await readFile(out, 'utf8')).includes('\r\n\r\nok'));
      expect(await readFile(out, 'utf8')).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*connection: keep-alive\r\n/i);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('answers a request that reached an idle connection while the process was busy when the window ended', async () => {
    s = await start();
    // The client in a thread of its own: it sends while this thread is blocked.
    const client = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const socket = require('node:net').connect(workerData.port, '127.0.0.1');
       let got = '';
       socket.on('data', (d) => { got += d.toString('latin1'); if (got.includes('\\r\\n\\r\\nok') && got.split('HTTP/1.1').length === 2) parentPort.postMessage('kept'); });
       socket.on('error', (e) => parentPort.postMessage('error ' + e.code));
       socket.on('close', () => parentPort.postMessage('closed ' + got));
       socket.write('GET / HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n');
       parentPort.on('message', () => socket.write('GET / HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n'));`,
      { eval: true, workerData: { port: Number(new URL(s.url).port) } },
    );
    const messages: string[] = [];
    const ended = new Promise<void>((resolve) =>
      client.on('message', (m: string) => {
        messages.push(m);
        if (m.startsWith('closed')) resolve();
      }),
    );
    await eventually('the first answer kept alive', () => messages.includes('kept'));
    void s.drain.drain({ windowMs: 200, deadlineMs: 10_000 });
    // Blocked past the end of the window, in a check phase: the next turn of the event loop runs the
    // window's timer before any poll phase, with the request waiting in the kernel, unread.
    setTimeout(
      () =>
        setImmediate(() => {
          client.postMessage('go');
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 400);
        }),
      50,
    );
    await ended;
    await client.terminate();
    expect(messages.filter((m) => m.startsWith('error'))).toEqual([]);
    const second = messages.find((m) => m.startsWith('closed'))?.split('HTTP/1.1')[2] ?? '';
    expect(second).toMatch(/^ 200 OK\r\n[^]*connection: close\r\n[^]*\r\n\r\nok$/i);
  });

  it('closes the connections still busy at the deadline', async () => {
    s = await start();
    const hanging = failure(get(`${s.url}/hang`, agent()));
    await s.reached('/hang');
    expect(await s.drain.drain({ windowMs: 50, deadlineMs: 300 })).toBe('deadline');
    expect(await hanging).not.toBe('answered');
  });
});
