/**
 * A hostile client for `npm run bench:connections`: opens COUNT connections to URL and holds them
 * open, half trickling a request head one header line a second (strangers), half sending an upload
 * head of tenant KEY and 5 bytes, then nothing. Prints one JSON line when they are all opened
 * (connected or refused) and another on SIGTERM: how many the api had closed.
 */
import net from 'node:net';

const url = new URL(process.env['URL'] ?? '');
const count = Number(process.env['COUNT'] ?? 0);
const key = process.env['KEY'] ?? '';
const sockets: net.Socket[] = [];
let failed = 0;
let closedByApi = 0;

const head = (i: number): string =>
  i % 2 === 0
    ? 'POST /v1/operations HTTP/1.1\r\nhost: localhost\r\n'
    : `POST /v1/operations HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer ${key}\r\ncontent-type: multipart/form-data; boundary=b\r\ncontent-length: 1048576\r\n\r\n--b\r\n`;

const open = (i: number): Promise<void> =>
  new Promise((resolve) => {
    const s = net.connect({ host: url.hostname, port: Number(url.port), allowHalfOpen: true });
    s.on('error', () => undefined);
    s.once('connect', () => {
      s.write(head(i));
      sockets.push(s);
      resolve();
    });
    s.once('end', () => closedByApi++);
    s.once('close', (hadError) => {
      if (!s.readableEnded && hadError) closedByApi++;
    });
    s.once('error', () => {
      failed++;
      resolve();
    });
  });

const main = async (): Promise<void> => {
  // In waves of 500, so the listen backlog is not what refuses them.
  for (let i = 0; i < count; i += 500) await Promise.all(Array.from({ length: Math.min(500, count - i) }, (_, j) => open(i + j)));
  let n = 0;
  setInterval(() => {
    n++;
    for (const [i, s] of sockets.entries()) if (i % 2 === 0 && s.writable) s.write(`x-trickle-${n}: 1\r\n`);
  }, 1000);
  console.log(JSON.stringify({ opened: sockets.length, failed }));
};

process.on('SIGTERM', () => {
  console.log(JSON.stringify({ opened: sockets.length, failed, closedByApi }));
  for (const s of sockets) s.destroy();
  process.exit(0);
});

void main();
