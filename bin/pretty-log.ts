/**
 * LOG_FORMAT=pretty: a pino destination that turns each JSON line into one line for a terminal,
 * `HH:MM:SS.mmm LEVEL name: message key=value …` (JSON stays the default, for log collectors).
 * It sees lines after redaction, so it prints nothing pino would not.
 */
import { Writable } from 'node:stream';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO ', 40: 'WARN ', 50: 'ERROR', 60: 'FATAL' };
const COLORS: Record<number, string> = { 10: '90', 20: '36', 30: '32', 40: '33', 50: '31', 60: '35' };
const OMIT = new Set(['level', 'time', 'msg', 'pid', 'name', 'hostname']);

const value = (v: unknown): string => (typeof v === 'string' ? (/[\s"=]/.test(v) ? JSON.stringify(v) : v) : JSON.stringify(v));

export const formatPrettyLine = (line: string, color: boolean): string => {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const level = typeof entry['level'] === 'number' ? entry['level'] : 30;
  const time = typeof entry['time'] === 'string' ? entry['time'].slice(11, 23) : '';
  const name = typeof entry['name'] === 'string' ? `${entry['name']}: ` : '';
  const label = LEVELS[level] ?? String(level);
  const tag = color ? `\u001b[${COLORS[level] ?? '0'}m${label}\u001b[0m` : label;
  const fields = Object.entries(entry)
    .filter(([k]) => !OMIT.has(k))
    .map(([k, v]) => `${k}=${value(v)}`)
    .join(' ');
  return `${time} ${tag} ${name}${String(entry['msg'] ?? '')}${fields ? ` ${fields}` : ''}`;
};

/** A destination for createLogger that writes pretty lines to `out` (stdout by default). */
export const prettyDestination = (out: { write(text: string): unknown; isTTY?: boolean } = process.stdout): Writable =>
  new Writable({
    decodeStrings: false,
    write(chunk: string | Buffer, _enc, done) {
      const text = chunk.toString();
      const lines = text
        .split('\n')
        .filter(Boolean)
        .map((l) => formatPrettyLine(l, out.isTTY === true));
      // stdout is synchronous on Linux for files and pipes: nothing waits in this stream's buffer.
      out.write(`${lines.join('\n')}\n`);
      done();
    },
  });
