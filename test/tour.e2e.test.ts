/**
 * The tour, as printed: every fenced block marked `sh tour` in README.md and
 * docs/getting-started.md runs in one bash session (`set -e`), exactly as written but for the
 * `ssk_...` placeholder, replaced by the key `npm start` printed. As a new user would: `npm start`
 * in the repository with nothing configured (so it spawns its own redis-server and generates a
 * key), a second shell in the same folder, `npm link` into a private npm prefix. The repository
 * is seen through a scratch folder of symlinks, so `data/` and the downloaded files stay there;
 * both run in a private network namespace, where 127.0.0.1:8080 and :6379 are free (root only:
 * skipped elsewhere, like test/start.e2e.test.ts). The docs cannot drift from the code unnoticed.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..');
const KEY_PLACEHOLDER = 'ssk_...';
const privateNet = spawnSync('unshare', ['--net', 'true']).status === 0;
const tools = ['pdfsig', 'xmlsec1', 'openssl', 'jq', 'curl', 'redis-server'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);

/** The bodies of the ```sh tour blocks of a markdown file, in order. */
export const tourBlocks = (markdown: string): string[] => [...markdown.matchAll(/^```sh tour\n([\s\S]*?)^```$/gm)].map((m) => m[1] ?? '');

describe.skipIf(!privateNet || tools.length > 0)(`the tour as printed${tools.length > 0 ? ` (missing: ${tools.join(', ')})` : ''}`, () => {
  let dir: string;
  let repo: string;
  let holder: ChildProcess;
  let service: ChildProcess | undefined;
  let serviceOut = '';
  const inNet = (): string[] => ['nsenter', `--net=/proc/${holder.pid}/ns/net`];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'signspool-tour-'));
    // The repository as a newcomer's clone: everything linked, but data/ and examples/ of its own
    // (node_modules stays out: `npm link` must find nothing to change there).
    repo = path.join(dir, 'signspool');
    await mkdir(repo);
    for (const entry of await readdir(root)) {
      if (['data', 'examples', 'node_modules', '.git'].includes(entry)) continue;
      await symlink(path.join(root, entry), path.join(repo, entry));
    }
    await cp(path.join(root, 'examples'), path.join(repo, 'examples'), { recursive: true, filter: (f) => !/\.(signed\.|p7s$)/.test(f) });
    // A network namespace with only loopback, kept by a process that sleeps.
    holder = spawn('unshare', ['--net', 'sh', '-c', 'ip link set lo up && exec sleep 3600'], { stdio: 'ignore' });
    for (let i = 0; ; i++) {
      const up = spawnSync('nsenter', [`--net=/proc/${holder.pid}/ns/net`, 'ip', '-o', 'link', 'show', 'lo'], { encoding: 'utf8' });
      if (/state UNKNOWN|LOWER_UP/.test(up.stdout) && /UP/.test(up.stdout)) break;
      if (i > 100) throw new Error(`loopback not up in the namespace: ${up.stdout}${up.stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  afterAll(async () => {
    if (service?.exitCode === null) {
      const exited = new Promise((r) => service?.once('exit', r));
      service.kill('SIGTERM');
      await exited;
    }
    holder?.kill('SIGKILL');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('runs every tour block of README.md and docs/getting-started.md against npm start', { timeout: 300_000 }, async () => {
    const readme = await readFile(path.join(root, 'README.md'), 'utf8');
    const guide = await readFile(path.join(root, 'docs/getting-started.md'), 'utf8');
    const readmeTour = tourBlocks(readme);
    expect(readmeTour.length).toBeGreaterThan(0);
    // The guide repeats the README's tour, then goes on: each block runs once.
    const blocks = [...readmeTour, ...tourBlocks(guide).filter((b) => !readmeTour.includes(b))];
    expect(blocks.length).toBeGreaterThan(readmeTour.length);
    expect(blocks.join('\n')).toContain(KEY_PLACEHOLDER);

    // The first terminal: `npm start`, nothing configured.
    const env: Record<string, string> = Object.fromEntries(
      Object.entries(process.env).filter(
        (e): e is [string, string] => e[1] !== undefined && !/^(REDIS_|API_KEYS|DATA_DIR|SPOOL_DIR|PORT|HOST|WEBHOOK_|SIGNSPOOL_|LOG_)/.test(e[0]),
      ),
    );
    service = spawn(inNet()[0] ?? 'nsenter', [...inNet().slice(1), 'npm', 'start'], { cwd: repo, env, stdio: ['ignore', 'pipe', 'pipe'] });
    service.stdout?.on('data', (d: Buffer) => (serviceOut += d.toString()));
    service.stderr?.on('data', (d: Buffer) => (serviceOut += d.toString()));
    const key = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`npm start printed no key in 90 s:\n${serviceOut.slice(-3000)}`)), 90_000);
      const check = (): void => {
        const k = /^ {2}(ssk_\S+)$/m.exec(serviceOut)?.[1];
        if (k) {
          clearTimeout(timer);
          resolve(k);
        }
      };
      service?.stdout?.on('data', check);
      service?.once('exit', () => reject(new Error(`npm start exited:\n${serviceOut.slice(-3000)}`)));
    });
    expect(serviceOut).not.toMatch(/WARNING: the Redis/);

    // The second terminal: the tour, line for line, in a fresh npm global prefix.
    const global = path.join(dir, 'npm-global');
    const script = blocks.join('\n').replaceAll(KEY_PLACEHOLDER, key);
    const tour = spawnSync(inNet()[0] ?? 'nsenter', [...inNet().slice(1), 'bash', '-e', '-o', 'pipefail', '-x', '-c', script], {
      cwd: repo,
      env: { ...env, npm_config_prefix: global, PATH: `${path.join(global, 'bin')}:${env['PATH'] ?? ''}` },
      encoding: 'utf8',
      timeout: 240_000,
    });
    const output = `${tour.stdout}\n${tour.stderr}`;
    expect(tour.status, output.slice(-4000)).toBe(0);
    // Each checker judged a signature it did not make.
    expect(output).toContain('Signature Validation: Signature is Valid.');
    expect(output).toMatch(/^OK$/m);
    expect(output).toContain('CMS Verification successful');
    // Every result was written beside its original, which is unchanged.
    const examples = await readdir(path.join(repo, 'examples'));
    expect(examples).toEqual(expect.arrayContaining(['invoice.signed.pdf', 'invoice.signed.xml', 'big.pdf.p7s', 'big.signed.pdf']));
    for (const original of ['invoice.pdf', 'invoice.xml', 'big.pdf'])
      expect(await readFile(path.join(repo, 'examples', original))).toEqual(await readFile(path.join(root, 'examples', original)));
  });
});
