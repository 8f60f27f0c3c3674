/**
 * What a new user meets on a first start (`node dist/bin/start.js all`, the compiled service that
 * `npm start` runs): an API key and a webhook signing secret printed once, webhooks that work with
 * that secret at once, and a Redis that cannot keep what is acknowledged named in the summary.
 * And a webhookUrl for a tenant without a secret refused before the files behind it are read.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawnRedisServer } from '../bin/redis-server.js';
import { eventually, submit, waitForTerminal } from './harness/client.js';
import { incomingFiles, rawConnect, uploadHead } from './harness/raw-http.js';
import { startStack, type Stack } from './harness/stack.js';
import { startReceiver, type Receiver } from './harness/webhook-receiver.js';

const root = path.resolve(import.meta.dirname, '..');
const hasRedisServer = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;

interface Started {
  url: string;
  /** Everything written so far (complete once stop() has resolved). */
  readonly stdout: string;
  readonly stderr: string;
  stop(): Promise<void>;
}

const dirs: string[] = [];
const tempDir = async (): Promise<string> => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signspool-first-'));
  dirs.push(dir);
  return dir;
};

/**
 * Starts the compiled service and resolves once its stdout matches `until` (LOG_FORMAT=pretty
 * prints the summary without a terminal; the summary's last line is `durable`).
 */
const startService = (env: Record<string, string>, until: RegExp): Promise<Started> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['dist/bin/start.js', 'all'], {
      cwd: root,
      env: { ...process.env, PORT: '0', LOG_FORMAT: 'pretty', LOG_LEVEL: 'warn', SHUTDOWN_TIMEOUT: '5s', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let settled = false;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const started: Started = {
      url: '',
      get stdout() {
        return stdout;
      },
      get stderr() {
        return stderr;
      },
      stop: async () => {
        child.kill('SIGTERM');
        await exited;
      },
    };
    const timer = setTimeout(() => void started.stop().then(() => reject(new Error(`no ${String(until)} after 60 s:\n${stdout}\n${stderr}`))), 60_000);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const url = /^ {2}api {6}(\S+)$/m.exec(stdout)?.[1];
      if (!settled && url && until.test(stdout)) {
        settled = true;
        clearTimeout(timer);
        started.url = url;
        resolve(started);
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    void exited.then(() => {
      clearTimeout(timer);
      if (!settled) reject(new Error(`exited before ${String(until)}:\n${stdout}\n${stderr}`));
    });
  });

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});
afterAll(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe.skipIf(!hasRedisServer)('first start', () => {
  it('prints an API key and a webhook secret once; a webhook to the default tenant is delivered, signed with that secret', async () => {
    const dir = await tempDir();
    const redis = await spawnRedisServer({ dir: path.join(dir, 'redis'), appendOnly: true });
    stops.push(() => redis.stop());
    const hook: Receiver = await startReceiver();
    stops.push(() => hook.close());
    const env = { DATA_DIR: path.join(dir, 'data'), REDIS_URL: redis.url, WEBHOOK_ALLOW: '127.0.0.1:*', WEBHOOK_ALLOW_HTTP: 'true' };

    const first = await startService(env, /Webhook receivers verify deliveries with it/);
    stops.push(first.stop);
    const key = /^ {2}(ssk_\S+)$/m.exec(first.stdout)?.[1] ?? '';
    const secret = /^ {2}(whsec_\S+)$/m.exec(first.stdout)?.[1] ?? '';
    expect(key).not.toBe('');
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{40,}={0,2}$/);
    expect(first.stdout).toMatch(/^ {2}durable {2}yes/m);
    // Kept for the next start, readable by its owner only, and never logged.
    const file = path.join(dir, 'data', 'webhook-secrets');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readFile(file, 'utf8')).toContain(`default:${secret}`);
    expect(first.stderr).not.toContain(secret);

    const accepted = await submit(first.url, key, [{ name: 'a.txt', content: 'hello' }], { webhookUrl: hook.url() });
    expect(accepted.status).toBe(202);
    await waitForTerminal(first.url, key, accepted.body.id);
    await eventually('the webhook delivery', () => hook.received.length > 0, 30_000);
    const delivery = hook.received[0];
    const event = new Webhook(secret).verify(delivery?.body ?? '', delivery?.headers as Record<string, string>) as { data: { id: string } };
    expect(event.data.id).toBe(accepted.body.id);
    await first.stop();

    // The next start keeps the secret and prints neither it nor a key (all its output read: it has exited).
    const second = await startService(env, /^ {2}durable .*$/m);
    stops.push(second.stop);
    await second.stop();
    expect(second.stdout).not.toContain('whsec_');
    expect(second.stdout).not.toContain('ssk_');
    expect(await readFile(file, 'utf8')).toContain(`default:${secret}`);
  });

  it('names a Redis without AOF in the summary and on stderr; DURABILITY=strict refuses to start on it', async () => {
    const dir = await tempDir();
    const redis = await spawnRedisServer({ dir: path.join(dir, 'redis'), appendOnly: false });
    stops.push(() => redis.stop());
    const env = { DATA_DIR: path.join(dir, 'data'), REDIS_URL: redis.url };

    const run = await startService(env, /^ {2}durable .*$/m);
    stops.push(run.stop);
    expect(run.stdout).toMatch(/^ {2}durable {2}NO: acknowledged documents can be lost/m);
    // Everything it wrote, once it has exited (stdout and stderr are separate pipes).
    await run.stop();
    expect(run.stderr).toContain(`WARNING: the Redis at ${redis.url} cannot keep what signspool acknowledges`);
    expect(run.stderr).toContain('appendonly is off');
    expect(run.stderr).toContain('docs/operations.md#redis');

    const strict = spawnSync(process.execPath, ['dist/bin/start.js', 'all'], {
      cwd: root,
      env: { ...process.env, ...env, PORT: '0', DURABILITY: 'strict', LOG_LEVEL: 'silent' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(strict.status).toBe(1);
    expect(strict.stderr.trim().split('\n').at(-1)).toMatch(/^signspool: failed to start: DURABILITY=strict cannot be honoured: appendonly is off/);
  });
});

describe('a webhookUrl for a tenant without a signing secret', () => {
  let stack: Stack;
  beforeAll(async () => {
    // acme has no secret; globex has a default endpoint but no secret either.
    stack = await startStack({ worker: false, env: { WEBHOOK_ENDPOINTS: 'globex=https://hooks.example.com/signspool' } });
  });
  afterAll(() => stack.stop());

  it('is refused before the file behind it is read, naming WEBHOOK_SECRETS', async () => {
    const boundary = 'b0undary';
    const field = `--${boundary}\r\ncontent-disposition: form-data; name="webhookUrl"\r\n\r\nhttps://hooks.example.com/x\r\n`;
    const fileHead = `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="big.bin"\r\n\r\n`;
    // Announces 20 MB and sends a few KB of it: only an answer before the body can come back.
    const conn = rawConnect(stack.apiUrl, [uploadHead(stack.keys.acme, boundary, 20_000_000), field, fileHead, 'x'.repeat(4096)]);
    const res = await conn.response;
    conn.socket.destroy();
    expect(res?.status).toBe(422);
    const problem = JSON.parse(res?.body ?? '{}') as { code?: string; detail?: string };
    expect(problem.code).toBe('WEBHOOK_SECRET_MISSING');
    expect(problem.detail).toContain('WEBHOOK_SECRETS=acme:whsec_');
    await eventually('no file kept', async () => (await incomingFiles(stack.config.spoolDir)).length === 0);
  });

  it("is refused before the body when it is the tenant's default endpoint", async () => {
    const conn = rawConnect(stack.apiUrl, [uploadHead(stack.keys.globex, 'b', 20_000_000)]);
    const res = await conn.response;
    conn.socket.destroy();
    expect(res?.status).toBe(422);
    expect((JSON.parse(res?.body ?? '{}') as { code?: string }).code).toBe('WEBHOOK_SECRET_MISSING');
  });

  it('does not concern a submission without webhookUrl', async () => {
    const accepted = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'a.txt', content: 'hello' }]);
    expect(accepted.status).toBe(202);
  });
});
