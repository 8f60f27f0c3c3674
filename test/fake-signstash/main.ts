/**
 * `npm run fake-signstash`: the fake Sign'Stash, standalone (docker-compose, manual trials).
 * FAKE_SIGNSTASH_CLIENTS declares several client services, `id:secret` separated by commas
 * (a secret may contain ':' but not ','), each with a development certificate of its own
 * (GET /_fake/certificate?client=<id>); without it, one client service from
 * FAKE_SIGNSTASH_CLIENT_ID/FAKE_SIGNSTASH_CLIENT_SECRET. States change at runtime with
 * POST /_fake/clients/<id> {"state":"inactive"|"no-certificate"|"active","secret":"..."}.
 */
import path from 'node:path';
import { missingWorkerNodeFlags } from '@signspool/worker/node-flags';
import { FakeSignstash, type FakeClientOptions } from './server.js';

const env = process.env;

const parseClients = (text: string): FakeClientOptions[] =>
  text
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
    .map((entry) => {
      const colon = entry.indexOf(':');
      if (colon <= 0 || colon === entry.length - 1) {
        console.error(`FAKE_SIGNSTASH_CLIENTS: "${entry.slice(0, Math.max(colon, 0))}..." is not clientId:secret`);
        process.exit(2);
      }
      return { clientId: entry.slice(0, colon), clientSecret: entry.slice(colon + 1) };
    });

const clients = env['FAKE_SIGNSTASH_CLIENTS'] ? parseClients(env['FAKE_SIGNSTASH_CLIENTS']) : undefined;
const fake = new FakeSignstash({
  ...(clients ? { clients } : {}),
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
console.log(
  `client services: ${fake
    .clientViews()
    .map((c) => c.clientId)
    .join(', ')}`,
);
if (env['FAKE_SIGNSTASH_SIGNATURES'] !== 'trailer')
  console.log(`signing for real: verify with the certificate at ${fake.url}/_fake/certificate?client=<clientId>`);
const stop = (): void => {
  void fake.stop().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
