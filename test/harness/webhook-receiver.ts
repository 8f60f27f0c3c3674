/** A webhook receiver on 127.0.0.1:0 whose answers a test scripts; it records every request. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedWebhook {
  headers: http.IncomingHttpHeaders;
  body: string;
  path: string;
  at: number;
}

type Answer = (req: http.IncomingMessage, res: http.ServerResponse) => void;

export const startReceiver = async () => {
  const received: ReceivedWebhook[] = [];
  let answers: Answer[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push({ headers: req.headers, body, path: req.url ?? '', at: Date.now() });
      const answer = answers.shift();
      if (answer) answer(req, res);
      else res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (p = '/hook') => `http://127.0.0.1:${port}${p}`,
    received,
    script: (...a: Answer[]) => (answers = a),
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
};

export type Receiver = Awaited<ReturnType<typeof startReceiver>>;
