// scratch: api alone, then worker alone, CPU per document
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { Agent, request } from 'undici';
import { generateApiKey, hashApiKey } from '@signspool/api/auth';
import { freePort, spawnRedisServer } from '@signspool/shared/redis-server';
import { startService } from '../../test/harness/processes.js';

const cpu = async (pid?: number) => {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { u: Number(f[11]) / 100, s: Number(f[12]) / 100 };
};
const N = Number(process.env['N'] ?? 2000);
const LAT = process.env['LAT'] ?? '0';
const nodeArgs = process.env['PROF'] ? ['--cpu-prof', `--cpu-prof-dir=${process.env['PROF']}`] : [];
const tmp = await mkdtemp(path.join(os.tmpdir(), 'parts-'));
const rs = await spawnRedisServer({ dir: path.join(tmp, 'redis') });
const port = await freePort();
const fake = spawn(process.execPath, ['--import', 'tsx', 'test/fake-signstash/main.ts'], {
  env: { ...process.env, FAKE_SIGNSTASH_PORT: String(port), FAKE_SIGNSTASH_LATENCY_MS: LAT, FAKE_SIGNSTASH_BYTES_PER_SEC: process.env['BPS'] ?? '1e12' },
  stdio: 'ignore',
});
const fakeUrl = `http://127.0.0.1:${port}`;
for (;;) { if (await fetch(`${fakeUrl}/_fake/stats`).then((r) => r.ok, () => false)) break; await new Promise((r) => setTimeout(r, 50)); }
const key = generateApiKey();
const prefix = 'p' + randomBytes(3).toString('hex');
const env = {
  REDIS_URL: rs.url, QUEUE_PREFIX: prefix, DATA_DIR: tmp, API_KEYS: `bench:${hashApiKey(key)}`, LOG_LEVEL: 'warn',
  SIGNER: 'signstash', SIGNSTASH_URL: `${fakeUrl}/signstash/einvoice-integration-client-ws`, SIGNSTASH_AUTH_URL: `${fakeUrl}/oauth2/authorization-server`,
  SIGNSTASH_CLIENT_ID: 'signspool', SIGNSTASH_CLIENT_SECRET: 'signspool-secret', UPSTREAM_CONCURRENCY: '4', BATCH_MAX_DOCS: '50', BATCH_LINGER: '250ms',
  SPOOL_MIN_FREE_BYTES: '64MiB',
};
const doc = randomBytes(200 * 1024);
const api = await startService('api', env, { nodeArgs }); console.log('api pid', api.child.pid);
const agent = new Agent({ connections: 128 });
const c0 = await cpu(api.child.pid); const b0 = process.cpuUsage(); 
let t0 = performance.now(); let next = 0;
await Promise.all(Array.from({ length: 64 }, async () => {
  while (next < N) {
    const i = next++;
    const boundary = `b${i}x${randomBytes(4).toString('hex')}`;
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="d${i}.pdf"\r\ncontent-type: application/pdf\r\n\r\n`), doc,
      Buffer.from(`\r\n--${boundary}\r\ncontent-disposition: form-data; name="signatureType"\r\n\r\nPAdES\r\n--${boundary}--\r\n`),
    ]);
    const r = await request(`${api.url}/v1/operations`, { method: 'POST', dispatcher: agent, headers: { authorization: `Bearer ${key}`, 'content-type': `multipart/form-data; boundary=${boundary}` }, body });
    await r.body.text();
    if (r.statusCode !== 202) throw new Error(String(r.statusCode));
  }
}));
let s = (performance.now() - t0) / 1000;
const c1 = await cpu(api.child.pid); const b1 = process.cpuUsage(b0);
console.log(`api alone: ${(N / s).toFixed(0)} docs/s; api user ${(((c1.u - c0.u) / N) * 1000).toFixed(2)} ms/doc sys ${(((c1.s - c0.s) / N) * 1000).toFixed(2)} ms/doc; client ${((b1.user + b1.system) / 1e3 / N).toFixed(2)} ms/doc`);
await api.stop();
const q = new Queue('sign', { connection: new Redis(rs.url, { maxRetriesPerRequest: null }), prefix });
const worker = await startService('worker', env, { nodeArgs }); console.log('worker pid', worker.child.pid, 'fake pid', fake.pid);
const w0 = await cpu(worker.child.pid); const f0 = await cpu(fake.pid);
t0 = performance.now();
for (;;) {
  const c = await q.getJobCounts('wait', 'active', 'prioritized', 'delayed');
  if (Object.values(c).every((v) => v === 0)) break;
  await new Promise((r) => setTimeout(r, 20));
}
s = (performance.now() - t0) / 1000;
const w1 = await cpu(worker.child.pid); const f1 = await cpu(fake.pid);
console.log(`worker alone: ${(N / s).toFixed(0)} docs/s; worker user ${(((w1.u - w0.u) / N) * 1000).toFixed(2)} ms/doc sys ${(((w1.s - w0.s) / N) * 1000).toFixed(2)}; fake user ${(((f1.u - f0.u) / N) * 1000).toFixed(2)} sys ${(((f1.s - f0.s) / N) * 1000).toFixed(2)} ms/doc`);
await worker.stop(); await q.close(); await agent.close(); fake.kill(); await rs.stop(); await rm(tmp, { recursive: true, force: true });
process.exit(0);
