/**
 * The baseline of `npm run bench:api`: a bare `node:http` server doing the least an upload needs
 * (the multipart body written to a new file and fsynced, its directory fsynced, a small JSON
 * answer) and answering a status read with a small JSON document. No framework, no parsing of
 * the multipart framing, no hashing, no Redis. Listens on PORT, stores under DIR.
 */
import { open } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { SpoolWriteStream } from '@signspool/shared/spool/file-io';

const dir = process.env['DIR'] ?? '.';
// The directory is fsynced through a descriptor kept open, as signspool's spool does.
const dirHandle = await open(dir, 'r');
let n = 0;
const server = http.createServer((req, res) => {
  void (async () => {
    if (req.method === 'POST') {
      const file = path.join(dir, `u${n++}`);
      await pipeline(req, new SpoolWriteStream(file, 'wx'));
      await dirHandle.sync();
      const body = JSON.stringify({ id: path.basename(file), status: 'queued' });
      res.writeHead(202, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    } else {
      req.resume();
      const body = JSON.stringify({ id: req.url, status: 'queued', documents: [{ id: 'doc', status: 'queued' }] });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    }
  })().catch(() => res.destroy());
});
server.listen(Number(process.env['PORT'] ?? 0), '127.0.0.1', () => process.send?.('ready'));
process.once('SIGTERM', () => {
  server.close();
  void dirHandle.close().finally(() => process.exit(0));
});
