/** Keep-alive: clients are told N seconds, and a connection reused just past N (a client whose loop lagged) is still answered. */
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { keepAlive, keepAliveHeader } from '@signspool/api/http/keep-alive';

describe('keepAlive', () => {
  let server: http.Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
  });

  it('advertises HTTP_KEEPALIVE_TIMEOUT and answers a request sent on the connection after it', async () => {
    server = http.createServer((_req, res) => res.setHeader('Keep-Alive', keepAliveHeader(1000)).end('ok'));
    keepAlive(server, 1000);
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const socket = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
    await once(socket, 'connect');
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString()));
    const answers = () => received.split('HTTP/1.1 200').length - 1;
    const ask = async (n: number) => {
      socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      while (answers() < n && !socket.readableEnded) await once(socket, 'data');
    };
    try {
      await ask(1);
      expect(received).toMatch(/\r\nKeep-Alive: timeout=1\r\n/i);
      // Idle past the advertised second and the second Node adds itself (a client whose event loop lagged), then reused.
      await new Promise((resolve) => setTimeout(resolve, 2500));
      await Promise.race([ask(2), once(socket, 'end')]);
      expect(answers()).toBe(2);
    } finally {
      socket.destroy();
    }
  });
});
