/** Starting and stopping a node:http server, for the small servers beside the api (metrics, worker probes). */
import type http from 'node:http';
import type { AddressInfo } from 'node:net';

/** Listens on `host:port` (0: any free port); resolves with a URL a local client can use. */
export const listen = async (server: http.Server, port: number, host: string): Promise<string> => {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const bound = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return `http://${bound === '0.0.0.0' || bound === '[::]' ? '127.0.0.1' : bound}:${addr.port}`;
};

/** Closes the server and every connection it holds. */
export const closeServer = (server: http.Server | undefined): Promise<void> =>
  new Promise<void>((resolve) => {
    if (!server) return resolve();
    server.close(() => resolve());
    server.closeAllConnections();
  });
