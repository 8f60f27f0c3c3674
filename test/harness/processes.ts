/**
 * Runs signspool roles as real processes (`node --import tsx bin/start.ts <role>`, or the built
 * `dist/bin/start.js` with `dist`), as a user would, for tests that cross process boundaries (and
 * kill processes).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { freePort } from '../../bin/redis-server.js';
import { API_NODE_FLAGS } from '@signspool/api/node-flags';
import { WORKER_NODE_FLAGS } from '@signspool/worker/node-flags';

const root = path.resolve(import.meta.dirname, '../..');

export interface ServiceProcess {
  role: 'api' | 'worker' | 'all';
  url: string;
  /** Where this process serves /metrics: the api's METRICS_PORT (a free port unless `env` sets it), the worker's port. */
  metricsUrl: string;
  child: ChildProcess;
  output: () => string;
  /** Sends `signal` and resolves with the exit code (or the signal name). */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

export const startService = async (
  role: 'api' | 'worker' | 'all',
  env: Record<string, string>,
  opts: { readyTimeoutMs?: number; nodeArgs?: string[]; port?: number; dist?: boolean; ulimitFiles?: number } = {},
): Promise<ServiceProcess> => {
  // Generous: on the shared 2-core machine under load a cold start (tsx compiling every module) took over 20 s.
  const readyTimeoutMs = opts.readyTimeoutMs ?? 60_000;
  // Port 0 unless the caller names one (a restart on the same URL): the process binds a free port
  // itself and its start line says which, so no other process can take a port picked here before
  // the child binds it. Without that line (a pretty log, or LOG_LEVEL above info) ports are picked here.
  const fromStartLine = opts.port === undefined && env['LOG_FORMAT'] !== 'pretty' && ['trace', 'debug', 'info', undefined].includes(env['LOG_LEVEL']);
  const port = opts.port ?? (fromStartLine ? 0 : await freePort());
  // The api's /metrics on a port of its own (the default 9465 would clash between tests running at once).
  const metricsPort = role === 'worker' ? port : (env['METRICS_PORT'] ?? String(fromStartLine ? 0 : await freePort()));
  const portEnv = role === 'worker' ? { WORKER_METRICS_PORT: String(port) } : { PORT: String(port), METRICS_PORT: String(metricsPort) };
  // The flags the launchers (package.json, compose) give a process that runs the api, the worker, or both.
  const roleArgs = role === 'api' ? API_NODE_FLAGS : role === 'worker' ? WORKER_NODE_FLAGS : [...WORKER_NODE_FLAGS, ...API_NODE_FLAGS];
  const entry = opts.dist ? [path.join(root, 'dist/bin/start.js')] : ['--import', 'tsx', path.join(root, 'bin/start.ts')];
  const args = [...roleArgs, ...(opts.nodeArgs ?? []), ...entry, role];
  // With `ulimitFiles`, the process starts under that descriptor limit (soft and hard), as `ulimit -n` in a shell.
  const [command, argv] =
    opts.ulimitFiles === undefined ? [process.execPath, args] : ['bash', ['-c', `ulimit -n ${opts.ulimitFiles} && exec "$0" "$@"`, process.execPath, ...args]];
  const child = spawn(command, argv, {
    cwd: root,
    // A worker keeps the test runner's priority (tests judge behaviour, not the scheduler's favour;
    // niced workers beside a parallel suite only ran slower): a test or the bench sets WORKER_NICE.
    env: { ...process.env, LOG_LEVEL: 'info', WORKER_NICE: '0', ...env, ...portEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (d: Buffer): void => {
    out = (out + d.toString()).slice(-200_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  let url = fromStartLine ? undefined : `http://127.0.0.1:${port}`;
  let metricsUrl = metricsPort === 'api' || role === 'worker' ? undefined : `http://127.0.0.1:${metricsPort}/metrics`;
  const deadline = Date.now() + readyTimeoutMs;
  let readyUrl: string;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${role} exited during start:\n${out.slice(-2000)}`);
    if (url === undefined) {
      const line = startLine(out);
      if (line !== undefined) {
        metricsUrl = line.metrics;
        url = role === 'worker' ? line.metrics.replace(/\/metrics$/, '') : line.api;
      }
    }
    const ok =
      url !== undefined &&
      (await fetch(`${url}/readyz`).then(
        (r) => r.ok,
        () => false,
      ));
    if (ok && url !== undefined) {
      readyUrl = url;
      break;
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${role} not ready after ${readyTimeoutMs} ms:\n${out.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    role,
    url: readyUrl,
    metricsUrl: metricsUrl ?? `${readyUrl}/metrics`,
    child,
    output: () => out,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
};

/** The URLs in a process's "signspool started" log line (bin/start.ts's banner), once it is written. */
const startLine = (out: string): { api: string; metrics: string } | undefined => {
  // Whole lines only: the last piece may still be arriving.
  for (const text of out.split('\n').slice(0, -1)) {
    if (!text.includes('"signspool started"')) continue;
    let entry: unknown;
    try {
      entry = JSON.parse(text);
    } catch {
      continue;
    }
    if (typeof entry !== 'object' || entry === null) continue;
    const { api, metrics } = entry as { api?: unknown; metrics?: unknown };
    if (typeof metrics !== 'string') continue;
    return { api: typeof api === 'string' ? api : '', metrics };
  }
  return undefined;
};
