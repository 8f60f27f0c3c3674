/**
 * Half-closed readers (api/http/half-close.ts) on a bare node:http server: a bodyless request whose
 * client closes its side before the answer is dropped, a request with a body is still answered, and
 * a kept-alive connection is watched by one listener, not one more per request.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allowHalfOpen, dropIfHalfClosed } from '@signspool/api/http/half-close';

describe('half-closed readers', () => {
  let server: http.Server;
  let port = 0;
  /** Per request: the 'end' listeners dropIfHalfClosed added to its connection. */
  const added: number[] = [];
  /** Requests to /hold wait here for the test to answer them. */
  const held: http.ServerResponse[] = [];
  let arrived: () => void = () => undefined;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const before = req.socket.listenerCount('end');
      if (dropIfHalfClosed(req, res)) return;
      added.push(req.socket.listenerCount('end') - before);
      req.resume();
      req.on('end', () => {
        if (req.url === '/hold') {
          held.push(res);
          arrived();
        } else res.end('ok');
      });
    });
    allowHalfOpen(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  /** A kept-alive connection that may half-close; what it received, and when the server closed it. */
  const connect = () => {
    const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    let received = '';
    let onData: () => void = () => undefined;
    socket.on('data', (d: Buffer) => {
      received += d.toString('latin1');
      onData();
    });
    const closed = new Promise<string>((resolve) => socket.once('close', () => resolve(received)));
    const answers = (n: number): Promise<void> =>
      new Promise((resolve) => {
        onData = () => {
          if (received.split('HTTP/1.1 200').length - 1 >= n && received.endsWith('ok')) resolve();
        };
        onData();
      });
    return { socket, closed, answers };
  };
  const holdArrives = (): Promise<void> => new Promise((resolve) => (arrived = resolve));

  it('adds no listener per request on a kept-alive connection', async () => {
    added.length = 0;
    const c = connect();
    for (let i = 1; i <= 3; i++) {
      c.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      await c.answers(i);
    }
    expect(added).toEqual([0, 0, 0]);
    c.socket.end();
    await c.closed;
  });

  it('drops a bodyless request whose client half-closes before its answer', async () => {
    const c = connect();
    const arrives = holdArrives();
    c.socket.write('GET /hold HTTP/1.1\r\nHost: x\r\n\r\n');
    await arrives;
    c.socket.end();
    // Closed by the server, no answer sent.
    expect(await c.closed).toBe('');
    expect(held.pop()?.destroyed).toBe(true);
  });

  it('answers a request with a body after its client half-closed, also after an answered read on the connection', async () => {
    const c = connect();
    c.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await c.answers(1);
    const arrives = holdArrives();
    c.socket.write('POST /hold HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi');
    await arrives;
    c.socket.end();
    held.pop()?.end('ok');
    expect(await c.closed).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*ok[\s\S]*HTTP\/1\.1 200 OK[\s\S]*ok$/);
  });
});
