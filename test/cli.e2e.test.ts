/** The `signspool` CLI against a running api + worker (local signer): sign, status, download, errors. */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from './harness/stack.js';

const root = path.resolve(import.meta.dirname, '..');

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
    stack = await startStack();
    dir = await mkdtemp(path.join(os.tmpdir(), 'signspool-cli-'));
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
      const v = spawnSync('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', `signed/${f}.p7s`, '-content', f, '-CAfile', path.join(stack.dir, 'local-signer/cert.pem'), '-out', '/dev/null'], { cwd: dir });
      expect(v.status, v.stderr.toString()).toBe(0);
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
});
