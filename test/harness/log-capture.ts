/** A logger whose JSON lines land in an array, for tests that read what was logged. */
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '@signspool/shared/logger';

export const captureLogs = (): { lines: Record<string, unknown>[]; logger: Logger } => {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, logger: createLogger({ level: 'info' }, sink) };
};
