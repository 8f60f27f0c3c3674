/**
 * A bad SIGNERS_FILE stops start (issue 22): the real `bin/start.ts` exits 1 with one line naming
 * the file, the identity and the field, and no secret, before it starts anything.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'signers-start-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const run = (env: Record<string, string>): Promise<{ code: number | null; stderr: string; stdout: string }> =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'bin/start.ts'), 'all'], {
      cwd: root,
      env: { ...process.env, DATA_DIR: dir, PORT: '0', LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.once('exit', (code) => resolve({ code, stderr, stdout }));
  });

describe('start with a bad SIGNERS_FILE', () => {
  it('exits 1 with one line naming the file, identity and field, and nothing started', async () => {
    const file = path.join(dir, 'signers.yaml');
    const secret = path.join(dir, 'acme-pt.secret');
    await writeFile(secret, 'a-secret-that-must-not-show\n');
    await writeFile(
      file,
      [
        'signers:',
        '  acme-pt:',
        '    kind: signstash',
        '    url: https://proxy.example/ws',
        '    authUrl: https://auth.example/oauth2',
        '    clientId: acme-pt',
        `    clientSecretFile: ${secret}`,
        `    caFile: ${path.join(dir, 'missing-ca.pem')}`,
        'tenants:',
        "  '*': { signers: [acme-pt] }",
        '',
      ].join('\n'),
    );
    const result = await run({ SIGNERS_FILE: file });
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n')).toEqual([
      `signspool: SIGNERS_FILE ${file}: signers.acme-pt.caFile: cannot read ${path.join(dir, 'missing-ca.pem')} (ENOENT)`,
    ]);
    expect(result.stdout).toBe('');
    expect(`${result.stdout}${result.stderr}`).not.toContain('a-secret-that-must-not-show');
  });
});
