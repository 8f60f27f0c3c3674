/**
 * Checks made before start spawns anything or generates a key: the ports it will listen on are
 * free and the directories it writes to are writable. Each failure is a StartError whose message
 * is the one line the user sees.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';

export class StartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartError';
  }
}

/** Binds host:port once and releases it; port 0 (any free port) always passes. */
export const assertPortFree = async (host: string, port: number, variable: string): Promise<void> => {
  if (port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => {
      const why =
        err.code === 'EADDRINUSE'
          ? 'is already in use'
          : err.code === 'EACCES'
            ? 'needs privileges this user does not have'
            : `cannot be bound (${err.code ?? err.message})`;
      reject(new StartError(`${variable}=${port}: ${host}:${port} ${why}`));
    });
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve()));
  });
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
