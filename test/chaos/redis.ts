/**
 * The chaos suite's own redis-server: AOF on, with the fsync policy a scenario asks for
 * (`everysec` as in production, or `always`, which DURABILITY=strict needs on Redis < 7.2), and
 * able to die (SIGKILL or SIGTERM) and come back on the same port from the same AOF.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { freePort, isPortOpen } from '../../bin/redis-server.js';

export type AppendFsync = 'everysec' | 'always';

export class ChaosRedis {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  port = 0;

  constructor(
    private readonly dir: string,
    readonly appendFsync: AppendFsync,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    if (!this.port) this.port = await freePort();
    // The settings of bin/redis-server.ts (what `npm start` and the tests spawn), with the fsync policy open.
    const args = [
      '--port',
      String(this.port),
      '--bind',
      '127.0.0.1',
      '--dir',
      this.dir,
      '--save',
      '',
      '--appendonly',
      'yes',
      '--appendfsync',
      this.appendFsync,
    ];
    args.push('--maxmemory-policy', 'noeviction', '--hash-max-listpack-value', '1024', '--daemonize', 'no', '--loglevel', 'warning');
    const child = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    this.child = child;
    this.exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`redis-server exited: ${stderr.trim()}`);
      if (await isPortOpen(this.port)) return;
      if (Date.now() > deadline) throw new Error('redis-server did not open its port within 15 s');
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Freezes it (SIGSTOP): connections stay open and every command hangs, as with a hung host. */
  pause(): void {
    if (this.running) this.child?.kill('SIGSTOP');
  }

  /** Thaws it (SIGCONT) after `pause`. */
  resume(): void {
    if (this.running) this.child?.kill('SIGCONT');
  }

  /** Stops it with `signal` (SIGKILL: no AOF flush beyond what the fsync policy did). */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.running) this.child?.kill(signal);
    await this.exited;
  }
}
