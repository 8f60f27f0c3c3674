/**
 * The `signspool` command: sign, status, download, list, cancel, retry, signers (USAGE below).
 *
 * Reads SIGNSPOOL_URL (default http://127.0.0.1:8080) and SIGNSPOOL_API_KEY (`signers`: SIGNSPOOL_ADMIN_TOKEN). Files are streamed,
 * never read whole, and checked against the server's GET /v1/limits before any byte is sent.
 * Exit codes: 0 every document signed (or the command succeeded), 1 an error (network, HTTP
 * 4xx/5xx, a file over a limit), 2 bad usage (unknown command or option, bad option value; the
 * usage is printed) or an operation that ended with documents not signed.
 */
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { request, type Dispatcher } from 'undici';
import { isTerminal, OPERATION_STATUSES } from '@signspool/shared/operations/states';
import type { OperationPage, OperationView } from '@signspool/shared/operations/view';
import { createKey } from './keys.js';
import { multipartBody, type MultipartFile } from './multipart.js';

const USAGE = `usage:
  signspool sign <files...> [--type PAdES|CAdES|XAdES] [--signer <identity>] [--reference <text>] [--webhook <url>]
                 [--idempotency-key <key>] [--wait] [--out <dir>] [--timeout <seconds>]
  signspool status <operation-id>
  signspool download <operation-id> [--out <dir>]
  signspool list [--status <status>] [--signer <identity>] [--reference <text>] [--created-after <time>] [--created-before <time>]
                 [--limit <1-100>] [--starting-after <cursor>] [--json]
  signspool cancel <operation-id>
  signspool retry <operation-id> [--all] [--idempotency-key <key>]
  signspool keys create --tenant <tenant> [--name <name>] [--scopes operations:write,operations:read,webhooks:redeliver]
  signspool signers [--json]        the signing identities and their state (operators: SIGNSPOOL_ADMIN_TOKEN)
  signspool --version | --help
environment: SIGNSPOOL_URL (default http://127.0.0.1:8080), SIGNSPOOL_API_KEY (required; signers: SIGNSPOOL_ADMIN_TOKEN instead)`;

// The root package.json: one level up from cli/main.ts, two from the build's dist/cli/main.js.
const packageJson = [new URL('../package.json', import.meta.url), new URL('../../package.json', import.meta.url)].find((u) => existsSync(u));
const VERSION = packageJson ? (JSON.parse(readFileSync(packageJson, 'utf8')) as { version: string }).version : 'unknown';

interface Limits {
  maxFileBytes: number;
  maxFiles: number;
  maxTotalBytes: number;
}

class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** Bad usage: exit 2 with the usage. */
class UsageError extends CliError {
  constructor(message: string) {
    super(`${message}\n${USAGE}`, 2);
  }
}

/** An http(s) URL, or a usage error that says what is missing (`localhost:8080` parses as scheme "localhost:"). */
const parseHttpUrl = (what: string, raw: string): URL => {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(raw)) {
    throw new UsageError(`${what} must start with http:// or https:// (got ${JSON.stringify(raw)}; did you mean http://${raw.replace(/^\/+/, '')}?)`);
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`${what} is not a valid URL: ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`${what} must be an http:// or https:// URL (got ${url.protocol})`);
  return url;
};

const parseTime = (what: string, raw: string | undefined): string | undefined => {
  if (raw === undefined) return undefined;
  const t = Date.parse(raw);
  if (Number.isNaN(t)) throw new UsageError(`${what} must be a date or time, e.g. 2026-12-01 or 2026-12-01T10:00:00Z (got ${JSON.stringify(raw)})`);
  return new Date(t).toISOString();
};

const out = (line: string): void => void process.stdout.write(`${line}\n`);
const err = (line: string): void => void process.stderr.write(`${line}\n`);

const human = (n: number): string => (n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);

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

  async json<T>(
    method: Dispatcher.HttpMethod,
    p: string,
    opts: { headers?: Record<string, string>; body?: Dispatcher.DispatchOptions['body'] } = {},
  ): Promise<{ body: T; headers: Dispatcher.ResponseData['headers'] }> {
    const res = await this.call(method, p, opts);
    return { body: (await res.body.json()) as T, headers: res.headers };
  }

  /** The server's upload limits; undefined from a server without GET /v1/limits. */
  async limits(): Promise<Limits | undefined> {
    try {
      return (await this.json<Limits>('GET', '/v1/limits')).body;
    } catch (e) {
      if (e instanceof CliError && / HTTP 404: /.test(e.message)) return undefined;
      throw e;
    }
  }

  async submit(files: MultipartFile[], fields: Record<string, string>, headers: Record<string, string> = {}): Promise<OperationView> {
    let sent = (_n: number): void => undefined;
    const mp = multipartBody(files, fields, (n) => sent(n));
    const bar = progress(mp.length);
    sent = (n) => bar.add(n);
    try {
      const { body } = await this.json<OperationView>('POST', '/v1/operations', {
        headers: { ...headers, 'content-type': mp.contentType, 'content-length': String(mp.length) },
        body: mp.body(),
      });
      return body;
    } finally {
      bar.done();
    }
  }

  /** Long-polls with Prefer: wait; falls back to polling with backoff if the server ignores it. */
  async wait(id: string, timeoutMs: number): Promise<OperationView> {
    const deadline = Date.now() + timeoutMs;
    let delay = 500;
    for (;;) {
      const left = Math.max(1, Math.min(30, Math.ceil((deadline - Date.now()) / 1000)));
      const { body, headers } = await this.json<OperationView>('GET', `/v1/operations/${id}`, { headers: { prefer: `wait=${left}` } });
      if (isTerminal(body.status)) return body;
      if (Date.now() >= deadline) throw new CliError(`operation ${id} is still ${body.status} after ${Math.round(timeoutMs / 1000)} s`);
      if (!headers['preference-applied']) {
        const retryAfter = Number(headers['retry-after'] ?? 0) * 1000;
        await new Promise((r) => setTimeout(r, Math.max(delay, retryAfter)));
        delay = Math.min(delay * 2, 10_000);
      }
    }
  }

  async download(op: OperationView, dir: string): Promise<Map<string, string>> {
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

const summary = (op: OperationView, files = new Map<string, string>()): void => {
  out(`operation ${op.id}: ${op.status}`);
  for (const d of op.documents) {
    const where = files.get(d.id);
    const what = d.status === 'signed' ? (where ? `signed → ${where}` : 'signed') : `${d.status}${d.error ? ` ${d.error.code}: ${d.error.message}` : ''}`;
    out(`  ${d.name}  ${human(d.size)}  ${what}`);
  }
};

/** GET /v1/admin/signers (api/routes/admin-signers.ts): what the CLI prints of it. */
interface SignersView {
  source: string;
  signers: {
    name: string;
    kind: string;
    tenants: string[];
    reported: boolean;
    circuit: { state: string };
    token: { validUntil: string | null } | null;
    lastError: { code: string; at: string } | null;
    certificate: { subject: string; notAfter: string } | null;
  }[];
}

const printSigners = (view: SignersView): void => {
  out(`signing identities from ${view.source}`);
  for (const s of view.signers) {
    out(`${s.name}  ${s.kind}  circuit ${s.reported ? s.circuit.state : 'closed (no worker has used it yet)'}  tenants ${s.tenants.join(',') || '-'}`);
    if (s.token) out(`  token valid until ${s.token.validUntil ?? '-'}`);
    if (s.certificate) out(`  certificate ${s.certificate.subject}, expires ${s.certificate.notAfter}`);
    if (s.lastError) out(`  last error ${s.lastError.code} at ${s.lastError.at}`);
  }
};

const exitFor = (op: OperationView): number => (op.documents.every((d) => d.status === 'signed') ? 0 : 2);

/** Refuses, before any byte is sent, files the server would refuse for their size or number. */
const checkLimits = (files: MultipartFile[], limits: Limits | undefined): void => {
  if (!limits) return;
  for (const f of files) {
    if (f.size > limits.maxFileBytes)
      throw new CliError(
        `${f.path} is ${human(f.size)}: the server accepts files of at most ${human(limits.maxFileBytes)} (${limits.maxFileBytes} bytes); nothing was uploaded`,
      );
  }
  if (files.length > limits.maxFiles)
    throw new CliError(`${files.length} files: the server accepts at most ${limits.maxFiles} per operation; nothing was uploaded`);
  const total = files.reduce((n, f) => n + f.size, 0);
  if (total > limits.maxTotalBytes)
    throw new CliError(`the files total ${human(total)}: the server accepts at most ${human(limits.maxTotalBytes)} per operation; nothing was uploaded`);
};

const OPTIONS = {
  type: { type: 'string' },
  signer: { type: 'string' },
  reference: { type: 'string' },
  webhook: { type: 'string' },
  'idempotency-key': { type: 'string' },
  wait: { type: 'boolean', default: false },
  out: { type: 'string' },
  timeout: { type: 'string', default: '600' },
  status: { type: 'string' },
  'created-after': { type: 'string' },
  'created-before': { type: 'string' },
  limit: { type: 'string' },
  'starting-after': { type: 'string' },
  json: { type: 'boolean', default: false },
  all: { type: 'boolean', default: false },
  version: { type: 'boolean', short: 'V', default: false },
  help: { type: 'boolean', short: 'h', default: false },
  tenant: { type: 'string' },
  name: { type: 'string' },
  scopes: { type: 'string' },
} as const;

const parse = (argv: string[]) => {
  try {
    return parseArgs({ args: argv, allowPositionals: true, options: OPTIONS });
  } catch (e) {
    // Unknown option, missing value, value given to a flag.
    const message = e instanceof Error ? e.message : String(e);
    const unknown = (e as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /'([^']+)'/.exec(message)?.[1] : undefined;
    throw new UsageError(unknown ? `unknown option ${unknown}` : message);
  }
};

const idArg = (command: string, args: string[]): string => {
  const id = args[0];
  if (!id) throw new UsageError(`${command} needs an operation id`);
  if (args.length > 1) throw new UsageError(`${command} takes one operation id (got ${args.length} arguments)`);
  return encodeURIComponent(id);
};

const COMMANDS = ['sign', 'status', 'download', 'list', 'cancel', 'retry', 'keys', 'signers'] as const;

export const main = async (argv: string[]): Promise<number> => {
  const { values, positionals } = parse(argv);
  const [command, ...args] = positionals;
  if (values.version) {
    out(`signspool ${VERSION}`);
    return 0;
  }
  if (values.help) {
    out(USAGE);
    return 0;
  }
  if (!command) throw new UsageError('no command given');
  if (!(COMMANDS as readonly string[]).includes(command)) throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  if (command === 'keys') {
    // Offline: nothing is sent anywhere; the key is printed once with the entry to configure.
    if (args[0] !== 'create' || !values.tenant) throw new UsageError('keys create needs --tenant');
    const made = createKey(values.tenant, values.name, values.scopes);
    if (typeof made === 'string') throw new CliError(made);
    out(made.text);
    return 0;
  }
  const timeoutS = Number(values.timeout);
  if (!Number.isFinite(timeoutS) || timeoutS <= 0) throw new UsageError(`--timeout must be a number of seconds (got ${JSON.stringify(values.timeout)})`);
  if (values.type !== undefined && !['PAdES', 'CAdES', 'XAdES'].includes(values.type))
    throw new UsageError(`--type must be PAdES, CAdES or XAdES (got ${JSON.stringify(values.type)})`);
  if (values.webhook !== undefined) parseHttpUrl('--webhook', values.webhook);
  if (values.status !== undefined && !(OPERATION_STATUSES as readonly string[]).includes(values.status)) {
    throw new UsageError(`--status must be one of ${OPERATION_STATUSES.join(', ')} (got ${JSON.stringify(values.status)})`);
  }
  const limit = values.limit === undefined ? undefined : Number(values.limit);
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > 100))
    throw new UsageError(`--limit must be a whole number from 1 to 100 (got ${JSON.stringify(values.limit)})`);
  const createdAfter = parseTime('--created-after', values['created-after']);
  const createdBefore = parseTime('--created-before', values['created-before']);
  const idempotency: Record<string, string> = values['idempotency-key'] === undefined ? {} : { 'idempotency-key': values['idempotency-key'] };

  const base = parseHttpUrl('SIGNSPOOL_URL', process.env['SIGNSPOOL_URL'] ?? 'http://127.0.0.1:8080')
    .toString()
    .replace(/\/$/, '');
  if (command === 'signers') {
    if (args.length > 0) throw new UsageError(`signers takes no arguments (got ${args.join(' ')})`);
    const token = process.env['SIGNSPOOL_ADMIN_TOKEN'];
    if (!token) throw new CliError('SIGNSPOOL_ADMIN_TOKEN is not set (the admin token of the server, ADMIN_TOKEN)');
    const { body } = await new Client(base, token).json<SignersView>('GET', '/v1/admin/signers');
    if (values.json) out(JSON.stringify(body, null, 2));
    else printSigners(body);
    return 0;
  }
  const key = process.env['SIGNSPOOL_API_KEY'];
  if (!key) throw new CliError('SIGNSPOOL_API_KEY is not set');
  const client = new Client(base, key);
  switch (command) {
    case 'sign': {
      if (args.length === 0) throw new UsageError('sign needs at least one file');
      const files: MultipartFile[] = [];
      for (const f of args) {
        const st = await stat(f).catch(() => undefined);
        if (!st?.isFile()) throw new CliError(`not a file: ${f}`);
        files.push({ name: path.basename(f), path: f, size: st.size });
      }
      checkLimits(files, await client.limits());
      const fields: Record<string, string> = {};
      // Before the files: the server checks the identity before it stores any document.
      if (values.signer) fields['signer'] = values.signer;
      if (values.type) fields['signatureType'] = values.type;
      if (values.reference) fields['externalReference'] = values.reference;
      if (values.webhook) fields['webhookUrl'] = values.webhook;
      const accepted = await client.submit(files, fields, idempotency);
      err(`accepted: operation ${accepted.id} (${accepted.documents.length} documents)`);
      if (!values.wait && !values.out) {
        out(accepted.id);
        return 0;
      }
      const done = await client.wait(accepted.id, timeoutS * 1000);
      const written = values.out ? await client.download(done, values.out) : undefined;
      summary(done, written);
      return exitFor(done);
    }
    case 'status': {
      const { body } = await client.json<OperationView>('GET', `/v1/operations/${idArg(command, args)}`);
      summary(body);
      return 0;
    }
    case 'download': {
      const { body } = await client.json<OperationView>('GET', `/v1/operations/${idArg(command, args)}`);
      const written = await client.download(body, values.out ?? '.');
      summary(body, written);
      return isTerminal(body.status) ? exitFor(body) : 2;
    }
    case 'list': {
      if (args.length > 0) throw new UsageError(`list takes no arguments (got ${args.join(' ')})`);
      const query = new URLSearchParams();
      if (values.status) query.set('status', values.status);
      if (values.signer) query.set('signer', values.signer);
      if (values.reference) query.set('externalReference', values.reference);
      if (createdAfter) query.set('created_after', createdAfter);
      if (createdBefore) query.set('created_before', createdBefore);
      if (limit !== undefined) query.set('limit', String(limit));
      if (values['starting-after']) query.set('starting_after', values['starting-after']);
      const qs = query.toString();
      const { body } = await client.json<OperationPage>('GET', `/v1/operations${qs ? `?${qs}` : ''}`);
      if (values.json) {
        out(JSON.stringify(body, null, 2));
        return 0;
      }
      for (const op of body.data) {
        out(
          `${op.id}  ${op.status.padEnd(16)}  ${op.createdAt ?? ''}  ${String(op.documents.length).padStart(4)} docs  ${op.signer ?? ''}${op.externalReference ? `  ${op.externalReference}` : ''}`,
        );
      }
      if (body.data.length === 0) err('no operations');
      if (body.has_more && body.next_cursor) err(`more: signspool list --starting-after ${body.next_cursor}`);
      return 0;
    }
    case 'cancel': {
      const { body } = await client.json<OperationView>('DELETE', `/v1/operations/${idArg(command, args)}`);
      summary(body);
      return 0;
    }
    case 'retry': {
      const { body } = await client.json<OperationView>('POST', `/v1/operations/${idArg(command, args)}/retry${values.all ? '?all=true' : ''}`, {
        headers: idempotency,
      });
      summary(body);
      return 0;
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
};

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    err(`signspool: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(e instanceof CliError ? e.exitCode : 1);
  },
);
