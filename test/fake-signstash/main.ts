/** `npm run fake-signstash`: the fake Sign'Stash, standalone (docker-compose, manual trials). */
import path from 'node:path';
import { missingWorkerNodeFlags } from '@signspool/worker/node-flags';
import { FakeSignstash } from './server.js';

const env = process.env;
const fake = new FakeSignstash({
  host: env['FAKE_SIGNSTASH_HOST'] ?? '127.0.0.1',
  port: Number(env['FAKE_SIGNSTASH_PORT'] ?? 8090),
  clientId: env['FAKE_SIGNSTASH_CLIENT_ID'] ?? 'signspool',
  clientSecret: env['FAKE_SIGNSTASH_CLIENT_SECRET'] ?? 'signspool-secret',
  perRequestMs: Number(env['FAKE_SIGNSTASH_LATENCY_MS'] ?? 100),
  bytesPerSec: Number(env['FAKE_SIGNSTASH_BYTES_PER_SEC'] ?? 50e6),
  tokenTtlS: Number(env['FAKE_SIGNSTASH_TOKEN_TTL_S'] ?? 86399),
  // Real signatures by default, so a demo's files pass pdfsig/xmlsec1/openssl; the benchmarks ask for 'trailer'.
  signatures: env['FAKE_SIGNSTASH_SIGNATURES'] === 'trailer' ? 'trailer' : 'real',
  certificateDir: env['FAKE_SIGNSTASH_DATA_DIR'] ?? path.resolve('data', 'fake-signstash'),
});

const missing = missingWorkerNodeFlags();
if (missing.length > 0) console.warn(`fake Sign'Stash: started without ${missing.join(' ')} (see worker/node-flags.ts): expect more GC under load`);
await fake.start();
console.log(`fake Sign'Stash listening: SIGNSTASH_URL=${fake.businessUrl} SIGNSTASH_AUTH_URL=${fake.authUrl}`);
if (env['FAKE_SIGNSTASH_SIGNATURES'] !== 'trailer') console.log(`signing for real: verify with the certificate at ${fake.url}/_fake/certificate`);
const stop = (): void => {
  void fake.stop().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
