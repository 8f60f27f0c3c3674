/**
 * docker-compose.yml cannot run here (no Docker engine): validate its structure instead —
 * services, shared spool volume, healthchecks on /readyz, Redis durability flags, and that every
 * file it mounts or builds from exists.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '@signspool/shared/config';
import { API_NODE_FLAGS } from '@signspool/api/node-flags';
import { WORKER_NODE_FLAGS } from '@signspool/worker/node-flags';

interface Service {
  build?: unknown;
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }> | string[];
  secrets?: string[];
  stop_grace_period?: string;
  ports?: string[];
}

const root = path.resolve(import.meta.dirname, '../..');
const compose = parse(readFileSync(path.join(root, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
  secrets: Record<string, { file: string }>;
};

describe('docker-compose.yml', () => {
  it('has the services of the stack', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['api', 'fake-signstash', 'grafana', 'prometheus', 'redis', 'worker']);
  });

  it('runs Redis durable and without eviction', () => {
    const cmd = compose.services['redis']?.command?.join(' ') ?? '';
    expect(cmd).toContain('--appendonly yes');
    expect(cmd).toContain('--appendfsync everysec');
    expect(cmd).toContain('--maxmemory-policy noeviction');
    expect(cmd).toContain('--hash-max-listpack-value 1024');
    expect(compose.services['redis']?.volumes?.some((v) => v.endsWith(':/data'))).toBe(true);
  });

  it('shares one spool volume between api and worker, and checks readiness', () => {
    const api = compose.services['api'];
    const worker = compose.services['worker'];
    const spoolOf = (s: Service | undefined) => s?.volumes?.find((v) => v.endsWith(`:${s.environment?.['SPOOL_DIR']}`));
    expect(spoolOf(api)).toBeDefined();
    expect(spoolOf(api)?.split(':')[0]).toBe(spoolOf(worker)?.split(':')[0]);
    expect(compose.volumes).toHaveProperty(spoolOf(api)?.split(':')[0] ?? '-');
    expect(api?.healthcheck?.test.join(' ')).toContain('/readyz');
    expect(worker?.healthcheck?.test.join(' ')).toContain(`:${worker?.environment?.['WORKER_METRICS_PORT']}/readyz`);
    // Workers scale: no fixed container name or host port.
    expect(worker).not.toHaveProperty('container_name');
    expect(worker).not.toHaveProperty('ports');
  });

  it('adds Jaeger with docker-compose.tracing.yml, and api and worker export to its OTLP port', () => {
    const tracing = parse(readFileSync(path.join(root, 'docker-compose.tracing.yml'), 'utf8')) as { services: Record<string, Service> };
    expect(tracing.services['jaeger']?.image).toMatch(/^jaegertracing\/all-in-one:\d/);
    for (const name of ['api', 'worker']) {
      // Compose merges an overlay's environment into the service's.
      const env = { ...compose.services[name]?.environment, ...tracing.services[name]?.environment };
      env['SIGNSTASH_CLIENT_SECRET_FILE'] = path.join(root, compose.secrets['signstash_client_secret']?.file ?? '-');
      expect(loadConfig(env).tracing.tracesUrl, name).toBe('http://jaeger:4318/v1/traces');
      expect(tracing.services[name]?.depends_on, name).toHaveProperty('jaeger');
    }
  });

  it("keeps the api's /metrics off its published port, where Prometheus scrapes it", () => {
    const api = compose.services['api'];
    const env = { ...api?.environment, SIGNSTASH_CLIENT_SECRET_FILE: path.join(root, compose.secrets['signstash_client_secret']?.file ?? '-') };
    const config = loadConfig(env);
    expect(config.metrics.port).toBeDefined();
    expect(config.metrics.port).not.toBe(config.port);
    // Published: the api port only.
    expect(api?.ports?.map((p) => p.split(':').at(-1))).toEqual([String(config.port)]);
    const prometheus = parse(readFileSync(path.join(root, 'deploy/prometheus/prometheus.yml'), 'utf8')) as {
      scrape_configs: { job_name: string; static_configs?: { targets: string[] }[] }[];
    };
    const targets = prometheus.scrape_configs.find((j) => j.job_name === 'signspool-api')?.static_configs?.[0]?.targets;
    expect(targets).toEqual([`api:${config.metrics.port}`]);
  });

  it('gives api and worker a configuration that parses', () => {
    for (const name of ['api', 'worker']) {
      const env = { ...compose.services[name]?.environment };
      // The secret file is a docker secret: read it from the repo for this check.
      env['SIGNSTASH_CLIENT_SECRET_FILE'] = path.join(root, compose.secrets['signstash_client_secret']?.file ?? '-');
      expect(() => loadConfig(env), name).not.toThrow();
    }
  });

  it("starts every process that runs the worker, and the fake Sign'Stash, with the worker's node flags", () => {
    const scripts = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    const launchers: Record<string, [string, string]> = {
      'compose worker': [compose.services['worker']?.command?.join(' ') ?? '', 'dist/bin/start.js'],
      'npm start': [scripts['start'] ?? '', 'dist/bin/start.js'],
      'npm run start:worker': [scripts['start:worker'] ?? '', 'dist/bin/start.js'],
      'npm run dev': [scripts['dev'] ?? '', 'bin/start.ts'],
      'compose fake-signstash': [compose.services['fake-signstash']?.command?.join(' ') ?? '', 'dist/test/fake-signstash/main.js'],
      'npm run fake-signstash': [scripts['fake-signstash'] ?? '', 'test/fake-signstash/main.ts'],
    };
    for (const [name, [command, script]] of Object.entries(launchers)) {
      for (const flag of WORKER_NODE_FLAGS) expect(command.split(' '), name).toContain(flag);
      // Node flags go before the script (after it they would be the script's arguments).
      expect(command.indexOf(WORKER_NODE_FLAGS[0]), name).toBeLessThan(command.indexOf(script));
    }
  });

  it("starts every process that runs the api with the api's node flags", () => {
    const scripts = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    const image = readFileSync(path.join(root, 'Dockerfile'), 'utf8').match(/^CMD (\[.*\])$/m)?.[1] ?? '[]';
    const launchers: Record<string, [string, string]> = {
      'compose api': [compose.services['api']?.command?.join(' ') ?? '', 'dist/bin/start.js'],
      'the image (all)': [(JSON.parse(image) as string[]).join(' '), 'dist/bin/start.js'],
      'npm start': [scripts['start'] ?? '', 'dist/bin/start.js'],
      'npm run start:api': [scripts['start:api'] ?? '', 'dist/bin/start.js'],
      'npm run dev': [scripts['dev'] ?? '', 'bin/start.ts'],
    };
    for (const [name, [command, script]] of Object.entries(launchers)) {
      for (const flag of API_NODE_FLAGS) {
        expect(command.split(' '), name).toContain(flag);
        expect(command.indexOf(flag), name).toBeLessThan(command.indexOf(script));
      }
    }
  });

  it('runs node itself, in exec form, on the built entry points (SIGTERM reaches it, no tsx at run time)', () => {
    const built = readFileSync(path.join(root, 'scripts/build.mjs'), 'utf8');
    for (const name of ['api', 'worker', 'fake-signstash']) {
      const command = compose.services[name]?.command;
      // A list (exec form), not a string that a shell would run as PID 1.
      expect(Array.isArray(command), name).toBe(true);
      expect(command?.[0], name).toBe('node');
      expect(command?.join(' '), name).not.toMatch(/tsx|npx|npm/);
      const script = command?.find((a) => a.startsWith('dist/')) ?? '-';
      // dist/<entry>.js is built from the entry `'<entry>': '<entry>.ts'` of scripts/build.mjs.
      const entry = script.replace(/^dist\//, '').replace(/\.js$/, '');
      expect(built, name).toContain(`'${entry}': '${entry}.ts'`);
      expect(existsSync(path.join(root, `${entry}.ts`)), name).toBe(true);
    }
  });

  it('gives api and worker more time to stop than their drain takes', () => {
    const timeout = loadConfig({}).shutdownTimeoutMs;
    for (const name of ['api', 'worker']) {
      const grace = /^(\d+)s$/.exec(compose.services[name]?.stop_grace_period ?? '');
      expect(Number(grace?.[1]) * 1000, name).toBeGreaterThan(timeout);
    }
  });

  it('references files that exist', () => {
    expect(existsSync(path.join(root, 'Dockerfile'))).toBe(true);
    for (const service of Object.values(compose.services)) {
      for (const v of service.volumes ?? []) {
        const host = v.split(':')[0] ?? '';
        if (host.startsWith('./')) expect(existsSync(path.join(root, host)), v).toBe(true);
      }
    }
    for (const s of Object.values(compose.secrets)) expect(existsSync(path.join(root, s.file))).toBe(true);
  });
});
