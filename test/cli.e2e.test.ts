/**
 * The `signspool` CLI against a running api + worker (local signer): sign, status, download,
 * cancel, limits, usage errors; `list` and `retry` against a stub that answers their contract.
 */
import { execFile } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth, getOperation } from './harness/client.js';
import { startStack, type Stack } from './harness/stack.js';
import { cmsVerify } from './harness/verify.js';

const root = path.resolve(import.meta.dirname, '..');
const SECRET = 'whsec_' + Buffer.from('cli-webhook-secret-0123456789').toString('base64');

const cli = (args: string[], env: Record<string, string>, cwd: string): Promise<{ code: number; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    execFile(process.execPath, [path.join(root, 'bin/signspool.mjs'), ...args], { cwd, env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });

describe('signspool CLI', () => {
  let stack: Stack;
  let dir: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'signspool-cli-'));
    stack = await startStack({ env: { WEBHOOK_SECRETS: `acme:${SECRET}`, WEBHOOK_ALLOW_HTTP: 'true', WEBHOOK_ALLOW: '127.0.0.1:*' } });
    env = { SIGNSPOOL_URL: stack.apiUrl, SIGNSPOOL_API_KEY: stack.keys.acme };
    await writeFile(path.join(dir, 'a.txt'), 'alpha\n');
    await writeFile(path.join(dir, 'b.xml'), '<b/>\n');
  });
  afterAll(async () => {
    await stack?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('signs files, waits, downloads and summarises; the results verify', async () => {
    const r = await cli(['sign', 'a.txt', 'b.xml', '--wait', '--out', 'signed', '--reference', 'cli-run'], env, dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/uploading \[#+\] 100%/);
    expect(r.stdout).toMatch(/operation op_[0-9a-f]+: succeeded/);
    expect(r.stdout).toMatch(/a\.txt .* signed → signed\/a\.txt\.p7s/);
    expect((await readdir(path.join(dir, 'signed'))).sort()).toEqual(['a.txt.p7s', 'b.xml.p7s']);
    for (const f of ['a.txt', 'b.xml']) {
      const v = cmsVerify(path.join(dir, 'signed', `${f}.p7s`), path.join(stack.dir, 'local-signer/cert.pem'), path.join(dir, f));
      expect(v.status, v.out).toBe(0);
    }
    const id = /operation (op_[0-9a-f]+)/.exec(r.stdout)?.[1] ?? '';
    const status = await cli(['status', id], env, dir);
    expect([status.code, /succeeded/.test(status.stdout)]).toEqual([0, true]);
    const dl = await cli(['download', id, '--out', 'again'], env, dir);
    expect(dl.code, dl.stderr).toBe(0);
    expect((await readdir(path.join(dir, 'again'))).sort()).toEqual(['a.txt.p7s', 'b.xml.p7s']);
  });

  it('prints the operation id without --wait', async () => {
    const r = await cli(['sign', 'a.txt'], env, dir);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^op_[0-9a-f]{32}$/);
  });

  it('exits 2 when a document is not signed', async () => {
    await writeFile(path.join(dir, 'broken.pdf'), '%PDF-1.7\nno cross-reference section\n%%EOF\n');
    const r = await cli(['sign', 'broken.pdf', '--type', 'PAdES', '--wait'], env, dir);
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/failed DOCUMENT_NOT_SIGNABLE/);
  });

  it('exits 1 with a clear message on errors', async () => {
    const badKey = await cli(['status', 'op_00000000000000000000000000000000'], { ...env, SIGNSPOOL_API_KEY: 'ssk_wrong' }, dir);
    expect(badKey.code).toBe(1);
    expect(badKey.stderr).toMatch(/HTTP 401: .*UNAUTHORIZED/);
    const down = await cli(['status', 'op_x'], { ...env, SIGNSPOOL_URL: 'http://127.0.0.1:9' }, dir);
    expect([down.code, /cannot reach/.test(down.stderr)]).toEqual([1, true]);
    const missing = await cli(['sign', 'nope.pdf'], env, dir);
    expect([missing.code, /not a file: nope\.pdf/.test(missing.stderr)]).toEqual([1, true]);
    const noKey = await cli(['status', 'op_x'], { SIGNSPOOL_URL: stack.apiUrl, SIGNSPOOL_API_KEY: '' }, dir);
    expect([noKey.code, /SIGNSPOOL_API_KEY/.test(noKey.stderr)]).toEqual([1, true]);
  });
  it('sends --webhook and --idempotency-key; a repeated key gives the same operation', async () => {
    const args = ['sign', 'a.txt', '--webhook', 'http://127.0.0.1:9/hook', '--idempotency-key', 'cli-key-1'];
    const first = await cli(args, env, dir);
    expect(first.code, first.stderr).toBe(0);
    const again = await cli(args, env, dir);
    expect(again.code, again.stderr).toBe(0);
    const id = first.stdout.trim();
    expect(again.stdout.trim()).toBe(id);
    const op = await getOperation(stack.apiUrl, stack.keys.acme, id);
    expect((op.body['webhook'] as { url: string }).url).toBe('http://127.0.0.1:9/hook');
  });

  it('prints its version', async () => {
    const r = await cli(['--version'], {}, dir);
    expect([r.code, r.stdout.trim()]).toEqual([0, 'signspool 0.1.0']);
  });

  it('exits 2 with the usage on an unknown command, an unknown option or a bad option value', async () => {
    const cases: [string[], RegExp][] = [
      [['frobnicate'], /unknown command "frobnicate"/],
      [[], /no command given/],
      [['sign', 'a.txt', '--colour'], /unknown option --colour/],
      [['sign', 'a.txt', '--type', 'PDF'], /--type must be PAdES, CAdES or XAdES \(got "PDF"\)/],
      [['sign', 'a.txt', '--timeout', 'soon'], /--timeout must be a number of seconds/],
      [
        ['sign', 'a.txt', '--webhook', 'hooks.example.com/x'],
        /--webhook must start with http:\/\/ or https:\/\/ .*did you mean http:\/\/hooks\.example\.com\/x/,
      ],
      [['list', '--limit', '500'], /--limit must be a whole number from 1 to 100/],
      [['list', '--status', 'done'], /--status must be one of queued, processing/],
      [['list', '--created-after', 'yesterday-ish'], /--created-after must be a date or time/],
      [['cancel'], /cancel needs an operation id/],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(args, env, dir)));
    for (const [i, [args, message]] of cases.entries()) {
      const r = results[i] ?? { code: -1, stderr: '' };
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.stderr, args.join(' ')).toMatch(/usage:\n {2}signspool sign/);
    }
  });

  it('explains a SIGNSPOOL_URL without a scheme', async () => {
    const r = await cli(['status', 'op_x'], { ...env, SIGNSPOOL_URL: stack.apiUrl.replace(/^http:\/\//, '') }, dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/SIGNSPOOL_URL must start with http:\/\/ or https:\/\/ \(got "127\.0\.0\.1:\d+"; did you mean http:\/\/127\.0\.0\.1:\d+\?\)/);
  });
});

describe('signspool CLI against an api without a worker', () => {
  let stack: Stack;
  let dir: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    stack = await startStack({ worker: false, env: { UPLOAD_MAX_FILE_BYTES: '1KiB', UPLOAD_MAX_TOTAL_BYTES: '2KiB' } });
    dir = await mkdtemp(path.join(os.tmpdir(), 'signspool-cli-'));
    env = { SIGNSPOOL_URL: stack.apiUrl, SIGNSPOOL_API_KEY: stack.keys.acme };
    await writeFile(path.join(dir, 'small.txt'), 'small\n');
    await writeFile(path.join(dir, 'big.bin'), Buffer.alloc(1025, 1));
  });
  afterAll(async () => {
    await stack?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a file over the per-file limit before uploading it (GET /v1/limits)', async () => {
    const limits = await fetch(`${stack.apiUrl}/v1/limits`, { headers: auth(stack.keys.acme) });
    expect(await limits.json()).toMatchObject({ maxFileBytes: 1024, maxTotalBytes: 2048 });
    const r = await cli(['sign', 'small.txt', 'big.bin'], env, dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/big\.bin is 1\.0 KiB: the server accepts files of at most 1\.0 KiB \(1024 bytes\); nothing was uploaded/);
    expect(r.stderr).not.toMatch(/uploading/);
    // The api saw no upload at all.
    expect(await (await fetch(stack.metricsUrl)).text()).not.toMatch(/signspool_http_request_duration_seconds_count\{method="POST"/);
  });

  it('cancels an operation, then says it has ended', async () => {
    const signed = await cli(['sign', 'small.txt'], env, dir);
    expect(signed.code, signed.stderr).toBe(0);
    const id = signed.stdout.trim();
    const r = await cli(['cancel', id], env, dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`operation ${id}: canceled`));
    expect(r.stdout).toMatch(/small\.txt .* canceled CANCELED/);
    const again = await cli(['cancel', id], env, dir);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/HTTP 409: .*OPERATION_TERMINAL/);
  });
});

/** A stand-in for GET /v1/operations and POST /v1/operations/:id/retry, answering their contract. */
const startStub = async () => {
  const requests: { method: string; url: string; headers: http.IncomingHttpHeaders }[] = [];
  const op = (id: string, status: string) => ({
    id,
    status,
    createdAt: '2026-12-01T10:00:00.000Z',
    externalReference: 'ref-1',
    documents: [{ id: 'doc_1', name: 'a.pdf', status: status === 'queued' ? 'queued' : 'signed', size: 10 }],
  });
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    const url = new URL(req.url ?? '/', 'http://stub');
    res.setHeader('content-type', 'application/json');
    if (req.method === 'GET' && url.pathname === '/v1/operations') {
      const second = url.searchParams.get('starting_after') === 'cur_2';
      res.end(
        JSON.stringify(
          second
            ? { data: [op('op_3', 'failed')], has_more: false, next_cursor: null }
            : { data: [op('op_1', 'succeeded'), op('op_2', 'queued')], has_more: true, next_cursor: 'cur_2' },
        ),
      );
    } else if (req.method === 'POST' && url.pathname === '/v1/operations/op_9/retry') {
      res.statusCode = 202;
      res.end(JSON.stringify(op('op_9', 'queued')));
    } else if (req.method === 'POST' && url.pathname === '/v1/operations/op_8/retry') {
      res.statusCode = 409;
      res.setHeader('content-type', 'application/problem+json');
      res.end(
        JSON.stringify({
          type: 'x',
          title: 'Nothing to retry',
          status: 409,
          detail: 'no document failed with a retryable code',
          code: 'NOTHING_TO_RETRY',
          retryable: false,
        }),
      );
    } else {
      res.statusCode = 404;
      res.end('{}');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
};

describe('signspool list and retry (contract stub)', () => {
  let stub: Awaited<ReturnType<typeof startStub>>;
  let env: Record<string, string>;
  beforeAll(async () => {
    stub = await startStub();
    env = { SIGNSPOOL_URL: stub.url, SIGNSPOOL_API_KEY: 'ssk_stub' };
  });
  afterAll(async () => {
    await stub?.close();
  });

  it('list sends the filters as the contract names them and prints one line per operation', async () => {
    const r = await cli(
      ['list', '--status', 'succeeded', '--reference', 'ref 1', '--created-after', '2026-12-01', '--created-before', '2026-12-02T00:00:00Z', '--limit', '2'],
      env,
      root,
    );
    expect(r.code, r.stderr).toBe(0);
    const sent = new URL(stub.requests.at(-1)?.url ?? '', 'http://stub');
    expect(sent.pathname).toBe('/v1/operations');
    expect(Object.fromEntries(sent.searchParams)).toEqual({
      status: 'succeeded',
      externalReference: 'ref 1',
      created_after: '2026-12-01T00:00:00.000Z',
      created_before: '2026-12-02T00:00:00.000Z',
      limit: '2',
    });
    expect(stub.requests.at(-1)?.headers.authorization).toBe('Bearer ssk_stub');
    expect(r.stdout.trim().split('\n')).toEqual([
      expect.stringMatching(/^op_1 +succeeded +2026-12-01T10:00:00.000Z +1 docs +ref-1$/),
      expect.stringMatching(/^op_2 +queued /),
    ]);
    expect(r.stderr).toMatch(/more: signspool list --starting-after cur_2/);
    const next = await cli(['list', '--starting-after', 'cur_2', '--json'], env, root);
    expect(next.code).toBe(0);
    expect(new URL(stub.requests.at(-1)?.url ?? '', 'http://stub').searchParams.get('starting_after')).toBe('cur_2');
    expect(JSON.parse(next.stdout)).toMatchObject({ data: [{ id: 'op_3' }], has_more: false, next_cursor: null });
  });

  it('retry posts to /retry (with ?all=true and Idempotency-Key when asked) and reports a refusal', async () => {
    const r = await cli(['retry', 'op_9', '--all', '--idempotency-key', 'again-1'], env, root);
    expect(r.code, r.stderr).toBe(0);
    expect(stub.requests.at(-1)).toMatchObject({ method: 'POST', url: '/v1/operations/op_9/retry?all=true', headers: { 'idempotency-key': 'again-1' } });
    expect(r.stdout).toMatch(/operation op_9: queued/);
    const plain = await cli(['retry', 'op_9'], env, root);
    expect(plain.code).toBe(0);
    expect(stub.requests.at(-1)?.url).toBe('/v1/operations/op_9/retry');
    const refused = await cli(['retry', 'op_8'], env, root);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/HTTP 409: no document failed with a retryable code \(NOTHING_TO_RETRY\)/);
  });
});
