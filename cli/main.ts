/**
 * The `signspool` command.
 *
 *   signspool sign <files...> [--type PAdES|CAdES|XAdES] [--reference R] [--wait] [--out <dir>] [--timeout <s>]
 *   signspool status <operation-id>
 *   signspool download <operation-id> [--out <dir>]
 *   signspool keys create --tenant <t> [--name <n>] [--scopes <s,s>]   (offline: prints a new API key once)
 *
 * Reads SIGNSPOOL_URL (default http://127.0.0.1:8080) and SIGNSPOOL_API_KEY. Files are streamed,
 * never read whole. Exit codes: 0 every document signed (or the command succeeded), 1 an error
 * (network, HTTP 4xx/5xx, bad usage), 2 the operation ended with documents not signed.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { request, type Dispatcher } from 'undici';
import { isTerminal } from '@signspool/shared/operation-states';
import { createKey } from './keys.js';
import { multipartBody, type MultipartFile } from './multipart.js';

const USAGE = `usage:
  signspool sign <files...> [--type PAdES|CAdES|XAdES] [--reference <text>] [--wait] [--out <dir>] [--timeout <seconds>]
  signspool status <operation-id>
  signspool download <operation-id> [--out <dir>]
  signspool keys create --tenant <tenant> [--name <name>] [--scopes operations:write,operations:read,webhooks:redeliver]
environment: SIGNSPOOL_URL (default http://127.0.0.1:8080), SIGNSPOOL_API_KEY (required)`;

interface Operation {
  id: string;
  status: string;
  documents: { id: string; name: string; status: string; size: number; error?: { code: string; message: string }; signed?: { fileName: string; href: string; size: number } }[];
}

class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

const out = (line: string): void => void process.stdout.write(`${line}\n`);
const err = (line: string): void => void process.stderr.write(`${line}\n`);

const human = (n: number): string => (n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KB` : `${n} B`);

/** A progress bar on stderr: redrawn in place on a terminal, a few lines otherwise. */
const progress = (total: number) => {
  let sent = 0;
  let lastPct = -1;
  const tty = process.stderr.isTTY;
  return {
    add(n: number) {
      sent += n;
      const pct = total ? Math.floor((sent / total) * 100) : 100;
      if (pct === lastPct || (!tty && pct % 25 !== 0)) return;
      lastPct = pct;
      const width = 30;
      const bar = '#'.repeat(Math.round((pct / 100) * width)).padEnd(width, '.');
      const line = `uploading [${bar}] ${String(pct).padStart(3)}% ${human(sent)} / ${human(total)}`;
      if (tty) process.stderr.write(`\r${line}`);
      else err(line);
    },
    done() {
      if (tty) process.stderr.write('\n');
    },
  };
};

class Client {
  constructor(
    readonly base: string,
    private readonly key: string,
  ) {}

  private async call(method: Dispatcher.HttpMethod, p: string, opts: { headers?: Record<string, string>; body?: Dispatcher.DispatchOptions['body'] } = {}) {
    let res: Dispatcher.ResponseData;
    try {
      res = await request(`${this.base}${p}`, { method, headers: { authorization: `Bearer ${this.key}`, ...opts.headers }, body: opts.body ?? null });
    } catch (e) {
      throw new CliError(`cannot reach ${this.base}: ${(e as { code?: string }).code ?? (e as Error).message}`);
    }
    if (res.statusCode >= 400) {
      const text = await res.body.text().catch(() => '');
      let detail = text.slice(0, 300);
      try {
        const p = JSON.parse(text) as { title?: string; detail?: string; code?: string };
        detail = `${p.detail ?? p.title ?? ''} (${p.code ?? res.statusCode})`;
      } catch {
        // not problem+json
      }
      throw new CliError(`${method} ${p} failed with HTTP ${res.statusCode}: ${detail}`);
    }
    return res;
  }

  async json<T>(method: Dispatcher.HttpMethod, p: string, opts: { headers?: Record<string, string>; body?: Dispatcher.DispatchOptions['body'] } = {}): Promise<{ body: T; headers: Dispatcher.ResponseData['headers'] }> {
    const res = await this.call(method, p, opts);
    return { body: (await res.body.json()) as T, headers: res.headers };
  }

  async submit(files: MultipartFile[], fields: Record<string, string>): Promise<Operation> {
    let sent = (_n: number): void => undefined;
    const mp = multipartBody(files, fields, (n) => sent(n));
    const bar = progress(mp.length);
    sent = (n) => bar.add(n);
    try {
      const { body } = await this.json<Operation>('POST', '/v1/operations', { headers: { 'content-type': mp.contentType, 'content-length': String(mp.length) }, body: mp.body() });
      return body;
    } finally {
      bar.done();
    }
  }

  /** Long-polls with Prefer: wait; falls back to polling with backoff if the server ignores it. */
  async wait(id: string, timeoutMs: number): Promise<Operation> {
    const deadline = Date.now() + timeoutMs;
    let delay = 500;
    for (;;) {
      const left = Math.max(1, Math.min(30, Math.ceil((deadline - Date.now()) / 1000)));
      const { body, headers } = await this.json<Operation>('GET', `/v1/operations/${id}`, { headers: { prefer: `wait=${left}` } });
      if (isTerminal(body.status)) return body;
      if (Date.now() >= deadline) throw new CliError(`operation ${id} is still ${body.status} after ${Math.round(timeoutMs / 1000)} s`);
      if (!headers['preference-applied']) {
        const retryAfter = Number(headers['retry-after'] ?? 0) * 1000;
        await new Promise((r) => setTimeout(r, Math.max(delay, retryAfter)));
        delay = Math.min(delay * 2, 10_000);
      }
    }
  }

  async download(op: Operation, dir: string): Promise<Map<string, string>> {
    await mkdir(dir, { recursive: true });
    const written = new Map<string, string>();
    for (const d of op.documents) {
      if (d.status !== 'signed' || !d.signed) continue;
      const res = await this.call('GET', d.signed.href);
      const target = path.join(dir, path.basename(d.signed.fileName) || d.id);
      await pipeline(res.body, createWriteStream(target));
      written.set(d.id, target);
    }
    return written;
  }
}

const summary = (op: Operation, files = new Map<string, string>()): void => {
  out(`operation ${op.id}: ${op.status}`);
  for (const d of op.documents) {
    const where = files.get(d.id);
    const what = d.status === 'signed' ? (where ? `signed → ${where}` : 'signed') : `${d.status}${d.error ? ` ${d.error.code}: ${d.error.message}` : ''}`;
    out(`  ${d.name}  ${human(d.size)}  ${what}`);
  }
};

const exitFor = (op: Operation): number => (op.documents.every((d) => d.status === 'signed') ? 0 : 2);

export const main = async (argv: string[]): Promise<number> => {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      type: { type: 'string' },
      reference: { type: 'string' },
      wait: { type: 'boolean', default: false },
      out: { type: 'string' },
      timeout: { type: 'string', default: '600' },
      help: { type: 'boolean', short: 'h', default: false },
      tenant: { type: 'string' },
      name: { type: 'string' },
      scopes: { type: 'string' },
    },
  });
  const [command, ...args] = positionals;
  if (values.help || !command) {
    out(USAGE);
    return values.help ? 0 : 1;
  }
  if (command === 'keys') {
    if (args[0] !== 'create' || !values.tenant) throw new CliError(`keys create needs --tenant\n${USAGE}`);
    const made = createKey(values.tenant, values.name, values.scopes);
    if (typeof made === 'string') throw new CliError(made);
    out(made.text);
    return 0;
  }
  const key = process.env['SIGNSPOOL_API_KEY'];
  if (!key) throw new CliError('SIGNSPOOL_API_KEY is not set');
  const client = new Client((process.env['SIGNSPOOL_URL'] ?? 'http://127.0.0.1:8080').replace(/\/$/, ''), key);
  const timeoutMs = Number(values.timeout) * 1000;
  switch (command) {
    case 'sign': {
      if (args.length === 0) throw new CliError(`sign needs at least one file\n${USAGE}`);
      if (values.type && !['PAdES', 'CAdES', 'XAdES'].includes(values.type)) throw new CliError('--type must be PAdES, CAdES or XAdES');
      const files: MultipartFile[] = [];
      for (const f of args) {
        const st = await stat(f).catch(() => undefined);
        if (!st?.isFile()) throw new CliError(`not a file: ${f}`);
        files.push({ name: path.basename(f), path: f, size: st.size });
      }
      const fields: Record<string, string> = {};
      if (values.type) fields['signatureType'] = values.type;
      if (values.reference) fields['externalReference'] = values.reference;
      const accepted = await client.submit(files, fields);
      err(`accepted: operation ${accepted.id} (${accepted.documents.length} documents)`);
      if (!values.wait && !values.out) {
        out(accepted.id);
        return 0;
      }
      const done = await client.wait(accepted.id, timeoutMs);
      const written = values.out ? await client.download(done, values.out) : undefined;
      summary(done, written);
      return exitFor(done);
    }
    case 'status': {
      const id = args[0];
      if (!id) throw new CliError(`status needs an operation id\n${USAGE}`);
      const { body } = await client.json<Operation>('GET', `/v1/operations/${encodeURIComponent(id)}`);
      summary(body);
      return 0;
    }
    case 'download': {
      const id = args[0];
      if (!id) throw new CliError(`download needs an operation id\n${USAGE}`);
      const { body } = await client.json<Operation>('GET', `/v1/operations/${encodeURIComponent(id)}`);
      const written = await client.download(body, values.out ?? '.');
      summary(body, written);
      return isTerminal(body.status) ? exitFor(body) : 2;
    }
    default:
      throw new CliError(`unknown command ${command}\n${USAGE}`);
  }
};

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    err(`signspool: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(e instanceof CliError ? e.exitCode : 1);
  },
);
