/**
 * Reads every service process's output (stdout and stderr, line by line, all of it) and its exit,
 * and keeps what should never happen: an exit nobody asked for, a SIGTERM that did not end in a
 * clean exit (code 0), an unhandled promise rejection (bin/shutdown.ts logs it), an uncaught
 * exception (Node prints the stack and its version line, then exits) and a pino `fatal` line.
 * Error-level log lines are counted too (log noise), without a target.
 */
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import type { ServiceProcess } from '../harness/processes.js';

export type ProcessFaultKind = 'unexpected exit' | 'unclean stop' | 'unhandled rejection' | 'uncaught exception' | 'fatal log';

export interface ProcessFault {
  kind: ProcessFaultKind;
  role: string;
  pid: number | undefined;
  detail: string;
}

/** What one output line says: a fault, an error-level log line, or nothing of interest. */
export const classifyLine = (line: string): ProcessFaultKind | 'error log' | undefined => {
  const text = line.trim();
  if (!text) return undefined;
  if (text.startsWith('{')) {
    let entry: { level?: unknown; msg?: unknown };
    try {
      entry = JSON.parse(text) as typeof entry;
    } catch {
      return undefined;
    }
    if (entry.msg === 'unhandled promise rejection') return 'unhandled rejection';
    if (typeof entry.level === 'number' && entry.level >= 60) return 'fatal log';
    if (typeof entry.level === 'number' && entry.level >= 50) return 'error log';
    return undefined;
  }
  // Node's report of an uncaught exception ends with its version line; an unhandled rejection
  // without a handler prints ERR_UNHANDLED_REJECTION.
  if (/^Node\.js v\d+\.\d+/.test(text)) return 'uncaught exception';
  if (/ERR_UNHANDLED_REJECTION|^\[UnhandledPromiseRejection/.test(text)) return 'unhandled rejection';
  return undefined;
};

export class ProcessWatch {
  readonly faults: ProcessFault[] = [];
  errorLines = 0;
  /** A few error-level lines (their `msg`), to see what the noise is. */
  readonly errorExamples = new Map<string, number>();
  private readonly expected = new Map<ServiceProcess, NodeJS.Signals>();

  /** `logDir`: every process's output is also written there, one file per process (`<label>-<role>-<pid>.log`). */
  constructor(private readonly logDir?: { dir: string; label: string }) {}

  /** Follows `p` from now on (its earlier output was read by the harness while it started). */
  watch(p: ServiceProcess): void {
    const pid = p.child.pid;
    const copy = this.logDir ? createWriteStream(path.join(this.logDir.dir, `${this.logDir.label}-${p.role}-${pid ?? 'x'}.log`)) : undefined;
    if (copy) p.child.once('exit', () => copy.end());
    const onText = (stream: NodeJS.ReadableStream | null): void => {
      let rest = '';
      stream?.on('data', (d: Buffer) => {
        copy?.write(d);
        const lines = (rest + d.toString()).split('\n');
        rest = lines.pop() ?? '';
        for (const l of lines) this.line(p, l);
      });
      stream?.on('end', () => rest && this.line(p, rest));
    };
    onText(p.child.stdout);
    onText(p.child.stderr);
    p.child.once('exit', (code, signal) => {
      const asked = this.expected.get(p);
      if (asked === undefined) this.faults.push({ kind: 'unexpected exit', role: p.role, pid, detail: `exit ${code ?? signal ?? '?'}` });
      else if (asked === 'SIGTERM' && code !== 0)
        this.faults.push({ kind: 'unclean stop', role: p.role, pid, detail: `SIGTERM ended in exit ${code ?? signal ?? '?'}` });
    });
  }

  /** Stops `p` with `signal`, as asked (its exit is then expected). */
  stop(p: ServiceProcess, signal: NodeJS.Signals): Promise<number | string> {
    if (!this.expected.has(p)) this.expected.set(p, signal);
    return p.stop(signal);
  }

  private line(p: ServiceProcess, line: string): void {
    const kind = classifyLine(line);
    if (kind === undefined) return;
    if (kind === 'error log') {
      this.errorLines += 1;
      const msg = /"msg":"([^"]{0,120})/.exec(line)?.[1] ?? line.slice(0, 120);
      if (this.errorExamples.size < 10 || this.errorExamples.has(msg)) this.errorExamples.set(msg, (this.errorExamples.get(msg) ?? 0) + 1);
      return;
    }
    this.faults.push({ kind, role: p.role, pid: p.child.pid, detail: line.trim().slice(0, 300) });
  }
}
