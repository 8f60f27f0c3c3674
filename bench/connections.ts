/**
 * `npm run bench:connections [-- --hostile 20000 --ulimit 4096 --procs 4]`: the api as a real
 * process under `ulimit -n <ulimit>`, attacked by <hostile> connections held open from <procs>
 * processes (half strangers trickling a request head, half uploads of tenant a sending a head and
 * 5 bytes: bench/hostile-connections.ts). Prints the latency of /healthz and of tenant b's small
 * uploads before and during the attack, what the api kept open (its descriptors) and closed, and
 * MISS where a target is missed (no error; p99 under 1 s).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { generateApiKey, hashApiKey } from '@signspool/api/auth/auth';
import { freePort, spawnRedisServer } from '../bin/redis-server.js';
import { startService } from '../test/harness/processes.js';
import { pct } from './report.js';
import { root } from './stack.js';

const { values } = parseArgs({
  options: { hostile: { type: 'string', default: '20000' }, ulimit: { type: 'string', default: '4096' }, procs: { type: 'string', default: '4' } },
});
const HOSTILE = Number(values.hostile);
const ULIMIT = Number(values.ulimit);
const PROCS = Number(values.procs);

interface Probe {
  healthz: number[];
  upload: number[];
  errors: string[];
}

/** 40 rounds of GET /healthz then one small upload of tenant b, one after the other. */
const probe = async (url: string, key: string): Promise<Probe> => {
  const out: Probe = { healthz: [], upload: [], errors: [] };
  for (let i = 0; i < 40; i++) {
    let t0 = performance.now();
    let stage = 'healthz';
    try {
      const r = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(10_000) });
      await r.text();
      if (r.status !== 200) out.errors.push(`healthz ${r.status}`);
      out.healthz.push(performance.now() - t0);
      const form = new FormData();
      form.append('file', new Blob([`tenant b ${i}`]), `b${i}.txt`);
      t0 = performance.now();
      stage = 'upload';
      const u = await fetch(`${url}/v1/operations`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}` },
        body: form,
        signal: AbortSignal.timeout(10_000),
      });
      await u.text();
      if (u.status !== 202) out.errors.push(`upload ${u.status}`);
      out.upload.push(performance.now() - t0);
    } catch (err) {
      out.errors.push(`${stage} ${err instanceof Error ? `${err.message}${err.cause instanceof Error ? `: ${err.cause.message}` : ''}` : String(err)}`);
    }
  }
  return out;
};

const line = (label: string, ms: number[], errors: number): string => {
  const s = [...ms].sort((a, b) => a - b);
  const f = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(1)} ms` : '—').padStart(10);
  const ok = errors === 0 && pct(s, 0.99) < 1000;
  return `${label.padEnd(26)}${f(pct(s, 0.5))}${f(pct(s, 0.99))}${f(s.at(-1) ?? NaN)}${String(errors).padStart(8)}   ${ok ? 'ok' : 'MISS'}`;
};

const hostileProcess = (url: string, count: number, key: string): Promise<{ child: ChildProcess; opened: { opened: number; failed: number } }> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'bench/hostile-connections.ts')], {
      cwd: root,
      env: { ...process.env, URL: url, COUNT: String(count), KEY: key },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    child.stdout?.once('data', (d: Buffer) =>
      resolve({ child, opened: JSON.parse(d.toString().split('\n')[0] ?? '{}') as { opened: number; failed: number } }),
    );
    child.once('exit', (code) => reject(new Error(`hostile process exited ${code}`)));
  });

const stopHostile = (child: ChildProcess): Promise<{ closedByApi: number }> =>
  new Promise((resolve) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.removeAllListeners('exit');
    child.once('exit', () => resolve(JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { closedByApi: number }));
    child.kill('SIGTERM');
  });

const main = async (): Promise<void> => {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'signspool-bench-connections-'));
  const redis = await spawnRedisServer({ dir: path.join(tmp, 'redis') });
  const keys = { a: generateApiKey(), b: generateApiKey() };
  const metricsPort = await freePort();
  const api = await startService(
    'api',
    {
      REDIS_URL: redis.url,
      DATA_DIR: path.join(tmp, 'data'),
      API_KEYS: `a:${hashApiKey(keys.a)},b:${hashApiKey(keys.b)}`,
      METRICS_PORT: String(metricsPort),
      SPOOL_MIN_FREE_BYTES: '16MiB',
      LOG_LEVEL: 'info',
    },
    { ulimitFiles: ULIMIT },
  );
  const hostiles: ChildProcess[] = [];
  try {
    const caps = api
      .output()
      .split('\n')
      .map((l) => {
        try {
          return JSON.parse(l) as { msg?: string; total?: number; anonymous?: number; perTenant?: number };
        } catch {
          return {};
        }
      })
      .find((l) => l.msg === 'connection limits');
    console.log(
      `bench:connections  api under ulimit -n ${ULIMIT}; caps: ${caps?.total} connections, ${caps?.anonymous} anonymous, ${caps?.perTenant} per tenant (derived from the descriptor limit)`,
    );
    await probe(api.url, keys.b); // warm-up (tsx compiles the upload path)
    const baseline = await probe(api.url, keys.b);

    const t0 = performance.now();
    const started = await Promise.all(Array.from({ length: PROCS }, () => hostileProcess(api.url, Math.ceil(HOSTILE / PROCS), keys.a)));
    hostiles.push(...started.map((s) => s.child));
    const opened = started.reduce((n, s) => n + s.opened.opened, 0);
    const failed = started.reduce((n, s) => n + s.opened.failed, 0);
    console.log(
      `hostile connections: ${opened} opened from ${PROCS} processes in ${((performance.now() - t0) / 1000).toFixed(1)} s, ${failed} refused at connect`,
    );
    const during = await probe(api.url, keys.b);
    const fds = (await readdir(`/proc/${api.child.pid}/fd`)).length;
    const rss = Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${api.child.pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const closed = started.length ? await Promise.all(hostiles.map(stopHostile)) : [];
    hostiles.length = 0;
    console.log(
      `the api while attacked: ${fds} descriptors open (limit ${ULIMIT}), rss ${rss.toFixed(0)} MiB; hostile connections the attackers saw closed by then: ${closed.reduce((n, c) => n + (c.closedByApi ?? 0), 0)}`,
    );
    for (const l of metrics.split('\n').filter((m) => /^signspool_http_connections/.test(m))) console.log(`  ${l}`);
    console.log(`${''.padEnd(26)}${'p50'.padStart(10)}${'p99'.padStart(10)}${'max'.padStart(10)}${'errors'.padStart(8)}   target: no error, p99 < 1 s`);
    console.log(line('/healthz, no attack', baseline.healthz, baseline.errors.filter((e) => !e.startsWith('upload')).length));
    console.log(line('/healthz, attacked', during.healthz, during.errors.filter((e) => !e.startsWith('upload')).length));
    console.log(line('tenant b upload, no attack', baseline.upload, baseline.errors.filter((e) => e.startsWith('upload')).length));
    console.log(line('tenant b upload, attacked', during.upload, during.errors.filter((e) => e.startsWith('upload')).length));
    if (during.errors.length > 0) console.log(`errors while attacked: ${[...new Set(during.errors)].join('; ')}`);
  } finally {
    for (const h of hostiles) h.kill('SIGKILL');
    await api.stop();
    await redis.stop();
    await rm(tmp, { recursive: true, force: true });
  }
};

await main();
