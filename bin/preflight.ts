/**
 * Checks made before start spawns anything or generates a key: the ports it will listen on are
 * free and the directories it writes to are writable. Each failure is a StartError whose message
 * is the one line the user sees.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { isPortOpen } from './redis-server.js';

/** How long the port check waits for a connection (a silent address counts as free: its bind then tells). */
const PROBE_TIMEOUT_MS = 1000;

export class StartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartError';
  }
}

/**
 * Refuses a port something already listens on (port 0, any free port, always passes): a connection
 * to it is accepted. Not a bind: a listener held even for an instant takes the connections of the
 * clients that retry an api restarting on this port, and resets them when it lets the port go. The
 * other failures to bind (a privileged port, an address not on this machine) stop the start when
 * the server listens.
 */
export const assertPortFree = async (host: string, port: number, variable: string): Promise<void> => {
  if (port === 0) return;
  const target = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  if (await isPortOpen(port, target, PROBE_TIMEOUT_MS)) throw new StartError(`${variable}=${port}: ${host}:${port} is already in use`);
};

/** Creates `dir` if needed and writes and removes a probe file in it. */
export const assertWritableDir = async (dir: string, variable: string): Promise<void> => {
  try {
    await mkdir(dir, { recursive: true });
    const probe = path.join(dir, `.write-probe-${process.pid}`);
    await writeFile(probe, 'ok');
    await rm(probe, { force: true });
  } catch (err) {
    throw new StartError(`${variable}: ${dir} is not writable (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
};
