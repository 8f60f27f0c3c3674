/**
 * A local RFC 3161 time-stamp authority for tests: an HTTP server (port 0) that answers each
 * application/timestamp-query by running `openssl ts -reply` with a TSA certificate made in the
 * test. `fail` makes it answer an HTTP status instead (for the error mapping).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { issue, makeRoot, TSA_EXT, type Issued } from './pki.js';

const run = promisify(execFile);

export class LocalTsa {
  private server: http.Server | undefined;
  readonly root: Issued;
  readonly tsa: Issued;
  private readonly config: string;
  url = '';
  requests = 0;
  /** HTTP status to answer with instead of a time-stamp (0: answer normally). */
  fail = 0;

  constructor(private readonly dir: string) {
    this.root = makeRoot(dir, 'tsa-root');
    this.tsa = issue(dir, this.root, 'tsa', 'ec', TSA_EXT);
    this.config = path.join(dir, 'tsa.cnf');
  }

  async start(): Promise<string> {
    await writeFile(path.join(this.dir, 'tsaserial'), '01\n');
    await writeFile(
      this.config,
      [
        '[tsa]',
        'default_tsa = tsa1',
        '[tsa1]',
        `serial = ${path.join(this.dir, 'tsaserial')}`,
        `signer_cert = ${this.tsa.cert}`,
        `signer_key = ${this.tsa.key}`,
        'signer_digest = sha256',
        'default_policy = 1.2.3.4.1',
        'digests = sha256',
        'ess_cert_id_alg = sha256',
        'accuracy = secs:1',
        'ordering = no',
        'tsa_name = no',
        'ess_cert_id_chain = no',
        '',
      ].join('\n'),
    );
    this.server = http.createServer((req, res) => {
      void this.answer(req, res).catch(() => {
        res.writeHead(500).end();
      });
    });
    const server = this.server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/tsa`;
    return this.url;
  }

  private async answer(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const parts: Buffer[] = [];
    for await (const c of req) parts.push(c as Buffer);
    this.requests += 1;
    if (this.fail) {
      res.writeHead(this.fail).end();
      return;
    }
    const id = randomBytes(6).toString('hex');
    const query = path.join(this.dir, `q-${id}.tsq`);
    const reply = path.join(this.dir, `r-${id}.tsr`);
    await writeFile(query, Buffer.concat(parts));
    try {
      await run('openssl', ['ts', '-reply', '-config', this.config, '-queryfile', query, '-out', reply]);
      const body = await readFile(reply);
      res.writeHead(200, { 'content-type': 'application/timestamp-reply', 'content-length': String(body.length) }).end(body);
    } finally {
      await rm(query, { force: true });
      await rm(reply, { force: true });
    }
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    await new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    });
  }
}
