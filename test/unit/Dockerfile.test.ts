/**
 * The Dockerfile cannot be built here (no Docker engine): its structure is checked instead. The
 * runtime stage is a supported Node LTS, installs production dependencies only, takes nothing
 * from the build stage but dist/, runs as a non-root user, and starts node in exec form (so
 * `docker stop` sends SIGTERM to node itself, not to a shell or npx).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  from: string;
  name: string | undefined;
  body: Instruction[];
}

/** Instructions with continuation lines joined and comments dropped, grouped by stage; ARG defaults substituted. */
const parseDockerfile = (text: string): Stage[] => {
  const joined = text.replace(/\\\n/g, ' ');
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const raw of joined.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!m?.[1] || m[2] === undefined) continue;
    const op = m[1].toUpperCase();
    const rest = m[2].replace(/\$\{(\w+)\}|\$(\w+)/g, (all, a?: string, b?: string) => args[a ?? b ?? ''] ?? all);
    if (op === 'ARG' && stages.length === 0) {
      const [k, v] = rest.split('=');
      if (k && v !== undefined) args[k] = v;
    } else if (op === 'FROM') {
      const [from, as, name] = rest.split(/\s+/);
      stages.push({ from: from ?? '', name: as?.toUpperCase() === 'AS' ? name : undefined, body: [] });
    } else {
      stages.at(-1)?.body.push({ op, args: rest });
    }
  }
  return stages;
};

const stages = parseDockerfile(readFileSync(path.join(root, 'Dockerfile'), 'utf8'));
const runtime = stages.at(-1);
const ops = (stage: Stage | undefined, op: string): string[] => (stage?.body ?? []).filter((i) => i.op === op).map((i) => i.args);

describe('Dockerfile', () => {
  it('builds in one stage and runs on a supported Node LTS in the last', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const s of stages) expect(s.from).toMatch(/^node:(22|24)(\.\d+)*(-[a-z]+)*(-slim)?$/);
    const build = stages.find((s) => s.name === 'build');
    expect(ops(build, 'RUN').some((r) => /npm ci\b/.test(r) && !r.includes('--omit=dev'))).toBe(true);
    expect(ops(build, 'RUN')).toContain('npm run build');
  });

  it('installs production dependencies only in the runtime stage, and copies no sources', () => {
    const runs = ops(runtime, 'RUN');
    expect(runs.some((r) => /npm ci\b.*--omit=dev/.test(r))).toBe(true);
    expect(runs.some((r) => /npm (ci|install)\b/.test(r) && !r.includes('--omit=dev'))).toBe(false);
    for (const copy of ops(runtime, 'COPY')) {
      const parts = copy.split(/\s+/);
      const from = parts.find((p) => p.startsWith('--from='));
      const sources = parts.filter((p) => !p.startsWith('--')).slice(0, -1);
      if (from) expect(sources, copy).toEqual(['/app/dist']);
      else for (const src of sources) expect(src, copy).toMatch(/(^|\/)package(-lock)?\.json$|^bin\/signspool\.mjs$/);
    }
  });

  it('installs nothing the running service does not load: no typescript, no gRPC, no test-only package', () => {
    // What `npm ci` with the runtime stage's --omit flags installs, read from the lockfile's flags.
    const install = ops(runtime, 'RUN').find((r) => /npm ci\b/.test(r)) ?? '';
    const omitted = new Set([...install.matchAll(/--omit=(\w+)/g)].map((m) => m[1]));
    const lock = JSON.parse(readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean; optional?: boolean; devOptional?: boolean }>;
    };
    const installed = Object.entries(lock.packages)
      .filter(([name]) => name.startsWith('node_modules/'))
      .filter(([, p]) => !(p.dev && omitted.has('dev')) && !(p.optional && omitted.has('optional')))
      .filter(([, p]) => !(p.devOptional && omitted.has('dev') && omitted.has('optional')))
      .map(([name]) => name.slice(name.lastIndexOf('node_modules/') + 'node_modules/'.length));
    expect(installed.length).toBeGreaterThan(50);
    for (const unwanted of ['typescript', '@grpc/grpc-js', '@opentelemetry/sdk-node', 'pdf-lib', 'vitest', 'esbuild'])
      expect(installed, unwanted).not.toContain(unwanted);
    // What tracing loads when it is on (bin/tracing.ts) is there.
    for (const wanted of ['@opentelemetry/sdk-trace-node', '@opentelemetry/exporter-trace-otlp-proto', '@opentelemetry/resources'])
      expect(installed).toContain(wanted);
  });

  it('runs as a non-root user', () => {
    const user = ops(runtime, 'USER').at(-1);
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user?.split(':')[0]);
  });

  it('starts node in exec form on the built service', () => {
    const cmd = JSON.parse(ops(runtime, 'CMD').at(-1) ?? 'null') as unknown;
    expect(Array.isArray(cmd)).toBe(true);
    const argv = cmd as string[];
    expect(argv[0]).toBe('node');
    expect(argv).toContain('dist/bin/start.js');
    expect(ops(runtime, 'ENTRYPOINT')).toEqual([]);
  });

  it('copies files that exist', () => {
    for (const s of stages) {
      for (const copy of ops(s, 'COPY')) {
        if (copy.includes('--from=')) continue;
        for (const src of copy.split(/\s+/).slice(0, -1)) expect(existsSync(path.join(root, src)), src).toBe(true);
      }
    }
  });
});
