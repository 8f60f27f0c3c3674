/**
 * Every setting of signspool, parsed once with zod at start. A bad or missing value stops start
 * with one line naming the variable and what is wrong. Secrets may come from `<NAME>_FILE`.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { parseApiKeyList, type ApiKeyEntry } from './api-key.js';
import { signatureTypeSchema } from './queue.js';
import { parseWebhookSecretList, type WebhookSecretEntry } from './webhooks/secrets.js';
import { parseAllowEntry } from './webhooks/target.js';
import { parseBytes, parseDuration } from './units.js';
import { loadSigningIdentities, SignersFileError } from './signers/file.js';
import type { LocalSignerSettings, SignstashSettings } from './signers/identities.js';

export { parseBytes, parseDuration } from './units.js';

/** The nice value a `worker` role process lowers itself to unless WORKER_NICE says otherwise. */
export const DEFAULT_WORKER_NICE = 10;

const int = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int('must be a whole number').min(min).max(max).default(def);

const duration = (def: string, minMs = 0) =>
  z
    .string()
    .default(def)
    .transform((raw, ctx) => {
      const ms = parseDuration(raw);
      if (ms === undefined || ms < minMs) {
        ctx.addIssue({ code: 'custom', message: `must be a duration such as 500ms, 30s, 24h (at least ${minMs} ms)` });
        return z.NEVER;
      }
      return ms;
    });

/** A duration with no default (undefined when unset or empty). */
const optionalDuration = (minMs = 0) =>
  z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === '') return undefined;
      const ms = parseDuration(raw.trim());
      if (ms === undefined || ms < minMs) {
        ctx.addIssue({ code: 'custom', message: `must be a duration such as 500ms, 30s, 24h (at least ${minMs} ms)` });
        return z.NEVER;
      }
      return ms;
    });

const bytes = (def: string, min = 0) =>
  z
    .string()
    .default(def)
    .transform((raw, ctx) => {
      const n = parseBytes(raw);
      if (n === undefined || n < min) {
        ctx.addIssue({ code: 'custom', message: `must be a size such as 1048576, 20MiB, 1GB (at least ${min} bytes)` });
        return z.NEVER;
      }
      return n;
    });

const bool = (def: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'])
    .default(def ? 'true' : 'false')
    .transform((v) => v === 'true' || v === '1' || v === 'yes');

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

const optionalUrl = z
  .string()
  .optional()
  .transform((v, ctx) => {
    if (v === undefined || v.trim() === '') return undefined;
    try {
      const u = new URL(v.trim());
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('protocol');
      return u.toString().replace(/\/$/, '');
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be an http(s) URL' });
      return z.NEVER;
    }
  });

/**
 * REDIS_URL: `redis://` / `rediss://`, an absolute socket path, or `unix:///path` (as redis-py and
 * Sidekiq write it), turned into the path form ioredis takes. Another scheme is refused: ioredis
 * would take `unix:///x` for the default 127.0.0.1:6379 without a word.
 */
const redisUrl = optionalString.transform((v, ctx) => {
  if (v === undefined || (v.startsWith('/') && !v.startsWith('//')) || /^rediss?:\/\//i.test(v)) return v;
  const unix = /^unix:(?:\/\/)?(\/[^?#]*)(\?[^#]*)?$/i.exec(v);
  if (unix?.[1] && !unix[1].startsWith('//')) return `${unix[1]}${unix[2] ?? ''}`;
  ctx.addIssue({ code: 'custom', message: 'must be a redis:// or rediss:// URL, or a Unix socket as an absolute path or unix:///path' });
  return z.NEVER;
});

export type { ApiKeyEntry } from './api-key.js';

const apiKeys = z
  .string()
  .optional()
  .transform((raw, ctx): ApiKeyEntry[] | undefined => {
    if (raw === undefined || raw.trim() === '') return undefined;
    const entries = parseApiKeyList(raw);
    if (typeof entries === 'string') {
      ctx.addIssue({ code: 'custom', message: `${entries}, separated by commas` });
      return z.NEVER;
    }
    return entries;
  });

/** JWS algorithms a token may be signed with: asymmetric only (never `none`, never a shared secret). */
export const JWT_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

const jwtAlgorithms = z
  .string()
  .default('RS256,PS256,ES256,EdDSA')
  .transform((raw, ctx) => {
    const list = raw.split(/[,\s]+/).filter(Boolean);
    const bad = list.find((a) => !(JWT_ALGORITHMS as readonly string[]).includes(a));
    if (list.length === 0 || bad !== undefined) {
      ctx.addIssue({ code: 'custom', message: `must list algorithms among ${JWT_ALGORITHMS.join(', ')}` });
      return z.NEVER;
    }
    return list;
  });

const webhookAllow = z
  .string()
  .optional()
  .transform((v, ctx) => {
    const list = (v ?? '').split(/[,\s]+/).filter(Boolean);
    if (list.some((e) => parseAllowEntry(e) === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'entries are host, host:port, host:*, CIDR, CIDR:port or [IPv6 CIDR]:port, separated by commas' });
      return z.NEVER;
    }
    return list;
  });

export type { WebhookSecretEntry } from './webhooks/secrets.js';

const webhookSecrets = z
  .string()
  .optional()
  .transform((raw, ctx): WebhookSecretEntry[] => {
    if (raw === undefined || raw.trim() === '') return [];
    const entries = parseWebhookSecretList(raw);
    if (typeof entries === 'string') {
      ctx.addIssue({ code: 'custom', message: entries });
      return z.NEVER;
    }
    return entries;
  });

const webhookEndpoints = z
  .string()
  .optional()
  .transform((raw, ctx): Record<string, string> => {
    const out: Record<string, string> = {};
    if (raw === undefined || raw.trim() === '') return out;
    for (const part of raw.split(/[,\s]+/).filter(Boolean)) {
      const i = part.indexOf('=');
      const tenant = part.slice(0, i);
      const url = part.slice(i + 1);
      try {
        const u = new URL(url);
        if (i <= 0 || (u.protocol !== 'https:' && u.protocol !== 'http:') || u.username !== '' || u.password !== '') throw new Error('bad');
        out[tenant] = u.toString();
      } catch {
        ctx.addIssue({ code: 'custom', message: 'entries must be tenant=https://host/path (no credentials in the URL), separated by commas' });
        return z.NEVER;
      }
    }
    return out;
  });

export interface RedisSentinelSettings {
  sentinels: { host: string; port: number }[];
  /** The primary's name as the sentinels know it (`sentinel monitor <name> …`). */
  name: string;
  password: string | undefined;
}

const hostPortList = z
  .string()
  .optional()
  .transform((raw, ctx): { host: string; port: number }[] | undefined => {
    if (raw === undefined || raw.trim() === '') return undefined;
    const out: { host: string; port: number }[] = [];
    for (const part of raw.split(/[,\s]+/).filter(Boolean)) {
      const m = /^(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d{1,5})$/.exec(part);
      const port = Number(m?.[2]);
      if (!m?.[1] || !(port > 0 && port < 65536)) {
        ctx.addIssue({ code: 'custom', message: 'entries must be host:port, separated by commas' });
        return z.NEVER;
      }
      out.push({ host: m[1].replace(/^\[|\]$/g, ''), port });
    }
    return out;
  });

/** Per-tenant limits; 0 means no limit. */
export interface TenantLimits {
  /** Requests that change something (uploads, cancels, redeliveries) per second. */
  requestsPerSecond: number;
  /** Reads (status, long-polls, listings, downloads) per second: counted apart from uploads. */
  readsPerSecond: number;
  uploadBytesPerSecond: number;
  backlogDocuments: number;
  redeliveriesPerHour: number;
}

/** A tenant's overrides of the default limits (TENANT_LIMITS). */
export type TenantLimitOverrides = { [K in keyof TenantLimits]?: number | undefined };

const limitValue = z.union([
  z.number().int().min(0),
  z.string().transform((v, ctx) => parseBytes(v) ?? (ctx.addIssue({ code: 'custom', message: 'must be a number or a size' }), z.NEVER)),
]);

const tenantLimits = z
  .string()
  .optional()
  .transform((raw, ctx): Record<string, TenantLimitOverrides> => {
    if (raw === undefined || raw.trim() === '') return {};
    const schema = z.record(
      z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
      z
        .object({
          requestsPerSecond: limitValue,
          readsPerSecond: limitValue,
          uploadBytesPerSecond: limitValue,
          backlogDocuments: limitValue,
          redeliveriesPerHour: limitValue,
        })
        .partial()
        .strict(),
    );
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      parsed = undefined;
    }
    const r = schema.safeParse(parsed);
    if (!r.success) {
      ctx.addIssue({
        code: 'custom',
        message:
          'must be JSON: {"<tenant>": {"requestsPerSecond": n, "readsPerSecond": n, "uploadBytesPerSecond": n|"50MB", "backlogDocuments": n, "redeliveriesPerHour": n}}',
      });
      return z.NEVER;
    }
    return r.data;
  });

/** OTEL_EXPORTER_OTLP_HEADERS: `name=value,…`, values percent-encoded (as the OpenTelemetry specification has it). */
const otlpHeaders = z
  .string()
  .optional()
  .transform((raw, ctx): Record<string, string> => {
    const out: Record<string, string> = {};
    if (raw === undefined || raw.trim() === '') return out;
    for (const part of raw.split(',')) {
      const i = part.indexOf('=');
      const name = part.slice(0, i).trim();
      let value: string | undefined;
      try {
        value = decodeURIComponent(part.slice(i + 1).trim());
      } catch {
        value = undefined;
      }
      if (i <= 0 || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) || value === undefined || /[\r\n]/.test(value)) {
        ctx.addIssue({ code: 'custom', message: 'entries must be name=value (value percent-encoded), separated by commas' });
        return z.NEVER;
      }
      out[name.toLowerCase()] = value;
    }
    return out;
  });

const durationList = (def: string) =>
  z
    .string()
    .default(def)
    .transform((raw, ctx) => {
      const list = raw.split(',').map((p) => parseDuration(p));
      if (list.length === 0 || list.some((v) => v === undefined)) {
        ctx.addIssue({ code: 'custom', message: 'must be a comma-separated list of durations, e.g. 0,5s,5m,30m' });
        return z.NEVER;
      }
      return list as number[];
    });

/** The api's /metrics: its own port (default 9465, beside the worker's 9464), or `api` for the api's public port (then METRICS_TOKEN is required). */
const metricsPort = z
  .string()
  .default('9465')
  .transform((raw, ctx): number | 'api' => {
    const v = raw.trim().toLowerCase();
    if (v === 'api') return 'api';
    const n = Number(v);
    if (!/^\d{1,5}$/.test(v) || n > 65535) {
      ctx.addIssue({ code: 'custom', message: 'must be a port (0-65535) or "api" (the api\'s own port, with METRICS_TOKEN)' });
      return z.NEVER;
    }
    return n;
  });

const envSchema = z
  .object({
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    LOG_FORMAT: z.enum(['json', 'pretty']).default('json'),

    REDIS_URL: redisUrl,
    REDIS_CONNECT_TIMEOUT: duration('30s'),
    REDIS_COMMAND_TIMEOUT: duration('2s', 100),
    REDIS_SENTINELS: hostPortList,
    REDIS_SENTINEL_NAME: optionalString,
    REDIS_SENTINEL_PASSWORD: optionalString,
    QUEUE_PREFIX: z
      .string()
      .regex(/^[A-Za-z0-9:{}_-]{1,64}$/, 'letters, digits, : { } _ - only')
      .default('signspool'),

    DATA_DIR: z.string().min(1).default('./data'),
    SPOOL_DIR: optionalString,
    SPOOL_MIN_FREE_BYTES: bytes('256MiB'),

    HOST: z.string().min(1).default('127.0.0.1'),
    PORT: int(8080, 0, 65535),
    HTTP_BACKLOG: int(4096, 1, 65535),
    HTTP_HEADERS_TIMEOUT: duration('60s', 1000),
    HTTP_KEEPALIVE_TIMEOUT: duration('5s', 100),
    HTTP_DRAIN_WINDOW: optionalDuration(0),
    WORKER_METRICS_PORT: int(9464, 0, 65535),
    WORKER_NICE: int(DEFAULT_WORKER_NICE, 0, 19),
    PUBLIC_URL: optionalUrl,
    TRUST_PROXY: bool(false),
    API_KEYS: apiKeys,
    API_KEYS_FILE: optionalString,
    AUTH_JWKS_URL: optionalUrl,
    AUTH_ISSUER: optionalString,
    AUTH_AUDIENCE: optionalString,
    AUTH_TENANT_CLAIM: z.string().min(1).default('tenant'),
    AUTH_ALGORITHMS: jwtAlgorithms,
    AUTH_CLOCK_TOLERANCE: duration('30s'),
    AUTH_JWKS_COOLDOWN: duration('30s'),
    METRICS_PORT: metricsPort,
    METRICS_TOKEN: optionalString,
    METRICS_TENANT_SERIES: int(20, 0, 1000),
    DOCS_PUBLIC: bool(true),
    ADMIN_TOKEN: z
      .string()
      .optional()
      .transform((v, ctx) => {
        if (v === undefined || v.trim() === '') return undefined;
        if (!/^[\x21-\x7e]{24,512}$/.test(v.trim())) {
          ctx.addIssue({ code: 'custom', message: 'must be 24 to 512 printable characters without spaces' });
          return z.NEVER;
        }
        return v.trim();
      }),
    ADMIN_QUEUES_WRITABLE: bool(false),

    UPLOAD_MAX_FILE_BYTES: bytes('25MiB', 1),
    UPLOAD_MAX_FILES: int(100, 1, 10_000),
    UPLOAD_CONCURRENCY: int(16, 1, 100_000),
    UPLOAD_MAX_TOTAL_BYTES: bytes('1280MiB', 1),
    UPLOAD_MAX_FIELDS: int(20, 0, 1000),
    UPLOAD_MAX_FIELD_BYTES: bytes('4KiB', 1),
    UPLOAD_TENANT_SHARE: z.coerce.number().gt(0, 'must be more than 0').max(1, 'must be at most 1').default(0.5),
    UPLOAD_IDLE_TIMEOUT: duration('30s', 100),
    UPLOAD_MIN_RATE: bytes('1KiB'),
    UPLOAD_MIN_RATE_WINDOW: duration('30s', 100),
    UPLOAD_QUEUE_TIMEOUT: duration('30s', 100),
    HTTP_MAX_CONNECTIONS: z.coerce.number().int('must be a whole number').min(2).max(1_000_000).optional(),
    HTTP_MAX_ANONYMOUS_CONNECTIONS: z.coerce.number().int('must be a whole number').min(1).max(1_000_000).optional(),
    HTTP_TENANT_MAX_CONNECTIONS: z.coerce.number().int('must be a whole number').min(0).max(1_000_000).optional(),

    // Defaults fit one tenant: never below what one api process serves (about 1 ms of CPU per
    // 200 KB upload, well under 0.2 ms per status read, 230 MB/s of ingest on a 2-core machine).
    RATE_LIMIT_REQUESTS: int(1000),
    RATE_LIMIT_READS: int(10_000),
    RATE_LIMIT_UPLOAD_BYTES: bytes('1GiB'),
    BACKLOG_MAX_DOCUMENTS: int(100_000),
    REDELIVERY_LIMIT: int(10),
    LONG_POLL_TENANT_MAX: int(100, 0, 1_000_000),
    TENANT_LIMITS: tenantLimits,

    SIGNERS_FILE: optionalString,
    SIGNERS_FILE_WATCH: bool(false),
    SIGNER: z.enum(['local', 'signstash']).default('local'),
    DEFAULT_SIGNATURE_TYPE: signatureTypeSchema.optional(),
    SIGNSTASH_URL: optionalUrl,
    SIGNSTASH_AUTH_URL: optionalUrl,
    SIGNSTASH_CLIENT_ID: optionalString,
    SIGNSTASH_CLIENT_SECRET: optionalString,
    SIGNSTASH_TOKEN_SKEW: duration('60s'),
    SIGNSTASH_CONNECT_TIMEOUT: duration('10s', 1),
    SIGNSTASH_HEADERS_TIMEOUT: duration('120s', 1),
    SIGNSTASH_BODY_TIMEOUT: duration('300s', 1),
    SIGNSTASH_APPLY_TIMESTAMP: bool(false),
    SIGNSTASH_REASON: optionalString,
    SIGNSTASH_LOCATION: optionalString,
    SIGNSTASH_CA_FILE: optionalString,
    SIGNSTASH_CLIENT_CERT_FILE: optionalString,
    SIGNSTASH_CLIENT_KEY_FILE: optionalString,
    LOCAL_SIGNER_KEY_FILE: optionalString,
    LOCAL_SIGNER_CERT_FILE: optionalString,
    LOCAL_SIGNER_P12_FILE: optionalString,
    LOCAL_SIGNER_P12_PASSWORD: optionalString,
    LOCAL_SIGNER_CADES_ATTACHED: bool(false),
    TSA_URL: optionalUrl,
    TSA_TIMEOUT: duration('10s', 1),
    TSA_CONCURRENCY: int(4, 1, 256),

    BATCH_MAX_DOCS: int(50, 1, 10_000),
    BATCH_MAX_BYTES: bytes('128MiB', 1),
    BATCH_LINGER: duration('250ms'),
    TENANT_SCHEDULING: z.enum(['fair', 'fifo']).default('fair'),
    TENANT_QUANTUM: int(0, 0, 1_000_000),
    UPSTREAM_CONCURRENCY: int(4, 1, 256),
    UPSTREAM_MAX_ATTEMPTS: int(6, 1, 100),
    UPSTREAM_BACKOFF_BASE: duration('1s'),
    UPSTREAM_BACKOFF_MAX: duration('60s'),
    DURABILITY: z.enum(['everysec', 'strict']).default('everysec'),
    DURABILITY_TIMEOUT: duration('5s', 1),
    REDIS_MIN_REPLICAS: int(0, 0, 16),
    UPSTREAM_BREAKER_THRESHOLD: int(5, 1, 1000),
    UPSTREAM_BREAKER_COOLDOWN: duration('30s', 100),
    JOB_LOCK_DURATION: duration('60s', 5000),
    JOB_MAX_STALLED: int(5, 0, 1000),

    WEBHOOK_SECRETS: webhookSecrets,
    WEBHOOK_ENDPOINTS: webhookEndpoints,
    WEBHOOK_ALLOW: webhookAllow,
    WEBHOOK_ALLOW_HTTP: bool(false),
    WEBHOOK_TIMEOUT: duration('15s', 1),
    WEBHOOK_SCHEDULE: durationList('0,5s,5m,30m,2h,5h,10h,14h,20h,24h'),
    WEBHOOK_CONCURRENCY: int(32, 1, 1000),

    RETENTION: duration('24h', 1000),
    IDEMPOTENCY_TTL: duration('24h', 1000),
    JANITOR_INTERVAL: duration('5m', 100),
    ORPHAN_GRACE: duration('1h', 0),
    SHUTDOWN_TIMEOUT: duration('25s', 100),

    OTEL_EXPORTER_OTLP_ENDPOINT: optionalUrl,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: optionalUrl,
    OTEL_EXPORTER_OTLP_PROTOCOL: z.enum(['http/protobuf', 'http/json'], 'must be http/protobuf or http/json').default('http/protobuf'),
    OTEL_EXPORTER_OTLP_HEADERS: otlpHeaders,
    OTEL_SERVICE_NAME: optionalString,
  })
  .superRefine((c, ctx) => {
    if (c.SIGNER === 'signstash') {
      for (const key of ['SIGNSTASH_URL', 'SIGNSTASH_AUTH_URL', 'SIGNSTASH_CLIENT_ID', 'SIGNSTASH_CLIENT_SECRET'] as const) {
        if (c[key] === undefined) ctx.addIssue({ code: 'custom', path: [key], message: 'is required when SIGNER=signstash' });
      }
    }
    if ((c.REDIS_SENTINELS === undefined) !== (c.REDIS_SENTINEL_NAME === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['REDIS_SENTINEL_NAME'], message: 'REDIS_SENTINELS and REDIS_SENTINEL_NAME go together' });
    }
    if ((c.LOCAL_SIGNER_KEY_FILE === undefined) !== (c.LOCAL_SIGNER_CERT_FILE === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['LOCAL_SIGNER_CERT_FILE'], message: 'LOCAL_SIGNER_KEY_FILE and LOCAL_SIGNER_CERT_FILE go together' });
    }
    if ((c.SIGNSTASH_CLIENT_CERT_FILE === undefined) !== (c.SIGNSTASH_CLIENT_KEY_FILE === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['SIGNSTASH_CLIENT_KEY_FILE'], message: 'SIGNSTASH_CLIENT_CERT_FILE and SIGNSTASH_CLIENT_KEY_FILE go together' });
    }
    if (c.AUTH_JWKS_URL !== undefined) {
      for (const key of ['AUTH_ISSUER', 'AUTH_AUDIENCE'] as const) {
        if (c[key] === undefined) ctx.addIssue({ code: 'custom', path: [key], message: 'is required when AUTH_JWKS_URL is set' });
      }
    }
    if (c.METRICS_PORT === 'api' && c.METRICS_TOKEN === undefined) {
      ctx.addIssue({ code: 'custom', path: ['METRICS_PORT'], message: 'METRICS_PORT=api serves /metrics on the public port: set METRICS_TOKEN too' });
    }
    if (c.METRICS_PORT !== 0 && c.METRICS_PORT === c.PORT) {
      ctx.addIssue({ code: 'custom', path: ['METRICS_PORT'], message: 'must differ from PORT (METRICS_PORT=api serves /metrics on the api port)' });
    }
    if (c.METRICS_TOKEN !== undefined && c.METRICS_TOKEN.length < 16) {
      ctx.addIssue({ code: 'custom', path: ['METRICS_TOKEN'], message: 'must be at least 16 characters' });
    }
    if (c.LOCAL_SIGNER_P12_FILE !== undefined && c.LOCAL_SIGNER_KEY_FILE !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['LOCAL_SIGNER_P12_FILE'],
        message: 'set either LOCAL_SIGNER_P12_FILE or LOCAL_SIGNER_KEY_FILE/LOCAL_SIGNER_CERT_FILE, not both',
      });
    }
    if (c.UPLOAD_MAX_FILE_BYTES > c.UPLOAD_MAX_TOTAL_BYTES) {
      ctx.addIssue({ code: 'custom', path: ['UPLOAD_MAX_FILE_BYTES'], message: 'must not exceed UPLOAD_MAX_TOTAL_BYTES' });
    }
    if (c.UPSTREAM_BACKOFF_BASE > c.UPSTREAM_BACKOFF_MAX) {
      ctx.addIssue({ code: 'custom', path: ['UPSTREAM_BACKOFF_BASE'], message: 'must not exceed UPSTREAM_BACKOFF_MAX' });
    }
  });

/** The variables of the schema above, by name. */
export type ConfigVariable = keyof typeof envSchema.shape;

/** Sections of docs/configuration.md, in their order there. */
export const CONFIG_GROUPS = [
  'Redis and the spool',
  'HTTP',
  'Authentication',
  'Metrics, docs and admin',
  'Uploads',
  'Tenant limits',
  'Signer',
  "Sign'Stash",
  'Local signer',
  'Batching and scheduling',
  'Upstream calls and durability',
  'Webhooks',
  'Retention and shutdown',
  'Logs and runtime',
  'Tracing',
] as const;

interface VariableDoc {
  readonly group: (typeof CONFIG_GROUPS)[number];
  /** What it does, for docs/configuration.md (markdown, one line). */
  readonly meaning: string;
  /** The default as a person should read it, when the schema's own default does not say it all. */
  readonly default?: string;
}

/**
 * The documentation of every variable, beside the schema so that a new variable cannot be added
 * without it (the type requires an entry per variable). `npm run docs` writes docs/configuration.md
 * from it, the schema's defaults and SECRET_VARIABLES; a unit test fails when the file is stale.
 */
export const CONFIG_DOCS: { readonly [K in ConfigVariable]: VariableDoc } = {
  REDIS_URL: {
    group: 'Redis and the spool',
    default: '`redis://127.0.0.1:6379` (`npm start`: else a `redis-server` of its own, on the Unix socket `DATA_DIR/redis/redis.sock`)',
    meaning:
      'Redis (BullMQ queues and records): a `redis://` URL, or a Unix socket as an absolute path or a `unix://` URL (`/run/redis/redis.sock`, `unix:///run/redis/redis.sock`; options as a query: `?password=…&db=2`); with Sentinel only its password and db are used',
  },
  REDIS_CONNECT_TIMEOUT: {
    group: 'Redis and the spool',
    meaning: 'at start, how long to retry an unreachable Redis (with backoff), and to wait for a connection to become ready, before exiting 1',
  },
  REDIS_COMMAND_TIMEOUT: {
    group: 'Redis and the spool',
    meaning:
      'api: a Redis command that gets no answer in this time fails, and its request is answered `503` with `Retry-After` as when Redis is down (a hung Redis, e.g. stopped or swapping, never hangs requests); with `DURABILITY=strict` at least `DURABILITY_TIMEOUT` + 1 s. Workers wait for Redis instead',
  },
  REDIS_SENTINELS: {
    group: 'Redis and the spool',
    meaning: '`host:port,…` of Redis Sentinels (with `REDIS_SENTINEL_NAME`): the service follows failovers (see [operations.md](operations.md#scale-out))',
  },
  REDIS_SENTINEL_NAME: { group: 'Redis and the spool', meaning: "the primary's name as the sentinels know it (`sentinel monitor <name> …`)" },
  REDIS_SENTINEL_PASSWORD: { group: 'Redis and the spool', meaning: "password of the sentinels themselves (the data nodes' password goes in `REDIS_URL`)" },
  QUEUE_PREFIX: { group: 'Redis and the spool', meaning: 'key prefix (use a `{hash-tag}` on Redis Cluster)' },
  DURABILITY: {
    group: 'Redis and the spool',
    meaning:
      '`strict`: no `202` and no retired upload before Redis has the write on disk, and start refused against a Redis without AOF (see [reliability.md](reliability.md))',
  },
  DURABILITY_TIMEOUT: {
    group: 'Redis and the spool',
    meaning: 'with `DURABILITY=strict`: how long a write waits for Redis to confirm it on disk (`WAITAOF`/`WAIT`) before the request answers `503`',
  },
  REDIS_MIN_REPLICAS: {
    group: 'Redis and the spool',
    meaning: 'with `DURABILITY=strict`: replicas that must have a write before it is acknowledged (`WAIT`/`WAITAOF`)',
  },
  DATA_DIR: { group: 'Redis and the spool', meaning: "data directory: generated API keys, the development certificate, the spool, `npm start`'s own Redis" },
  SPOOL_DIR: { group: 'Redis and the spool', default: '`$DATA_DIR/spool`', meaning: 'spool directory (shared by api and workers)' },
  SPOOL_MIN_FREE_BYTES: {
    group: 'Redis and the spool',
    meaning:
      "the worker's floor: below it workers stop pulling and `/readyz` fails. The api refuses uploads (`507`) earlier, while this plus one batch of results (`min(BATCH_MAX_BYTES, BATCH_MAX_DOCS × UPLOAD_MAX_FILE_BYTES)` + 32 KiB a document) is still free, so what it accepted can always be signed (see [reliability.md](reliability.md))",
  },

  HOST: { group: 'HTTP', default: '`127.0.0.1` (image: `0.0.0.0`)', meaning: 'api listen address (also of `METRICS_PORT` and `WORKER_METRICS_PORT`)' },
  PORT: { group: 'HTTP', meaning: 'api port' },
  HTTP_BACKLOG: {
    group: 'HTTP',
    meaning: "connections the api's listening socket queues (capped by `net.core.somaxconn`; see [performance.md](performance.md))",
  },
  HTTP_HEADERS_TIMEOUT: {
    group: 'HTTP',
    meaning:
      "api: a request's headers must all arrive within this time, else its connection is closed; a body has no overall timeout (1 GB uploads over slow links): `UPLOAD_IDLE_TIMEOUT` bounds its silences",
  },
  HTTP_KEEPALIVE_TIMEOUT: {
    group: 'HTTP',
    meaning:
      "api: how long clients may keep an idle keep-alive connection (sent as `Keep-Alive: timeout=`); the api closes it only after twice this, so a request sent near the deadline never meets the close. Behind a load balancer, longer than the balancer's own idle timeout",
  },
  HTTP_DRAIN_WINDOW: {
    group: 'HTTP',
    default: 'twice `HTTP_KEEPALIVE_TIMEOUT` (when an idle connection closes anyway), at most half of `SHUTDOWN_TIMEOUT`',
    meaning:
      'api, on SIGTERM: how long a kept-alive connection left idle stays open for a request on its way (answered with `Connection: close`) before it is closed; a client that honours the announced keep-alive timeout has closed it by then (docs/operations.md#stopping-the-api)',
  },
  TRUST_PROXY: { group: 'HTTP', meaning: 'trust `X-Forwarded-*` headers from a reverse proxy in front of the api (express `trust proxy`)' },
  PUBLIC_URL: { group: 'HTTP', meaning: "base URL used for links in webhook events and in the OpenAPI document's `servers`" },
  WORKER_METRICS_PORT: { group: 'HTTP', meaning: 'worker `/metrics`, `/healthz`, `/readyz` (worker role)' },
  HTTP_MAX_CONNECTIONS: {
    group: 'HTTP',
    default: '¾ of the descriptor limit − 64, at most 10000',
    meaning:
      'connections one api process keeps open; past it the holder with the most (a tenant, or all anonymous connections together) loses its oldest (see [security.md](security.md#what-tenants-and-strangers-can-do-to-each-other))',
  },
  HTTP_MAX_ANONYMOUS_CONNECTIONS: {
    group: 'HTTP',
    default: '¼ of `HTTP_MAX_CONNECTIONS`, at most 1000',
    meaning: 'connections whose request is not authenticated yet (head still arriving) or that are idle between requests; past it the oldest is closed',
  },
  HTTP_TENANT_MAX_CONNECTIONS: {
    group: 'HTTP',
    default: '¼ of `HTTP_MAX_CONNECTIONS`, at most 1000',
    meaning: 'requests one tenant may have in progress on one api process (uploads, long polls, downloads); past it `429 TOO_MANY_CONNECTIONS` (`0`: no cap)',
  },

  API_KEYS: {
    group: 'Authentication',
    default: 'generated on first start',
    meaning:
      '`tenant[/name]:sha256hex-of-key[:scope+scope],...` (see [security.md](security.md#api-keys-and-rotation)); unset, `<DATA_DIR>/api-keys` is read (and read again on `SIGHUP`)',
  },
  API_KEYS_FILE: {
    group: 'Authentication',
    meaning:
      'a file holding what `API_KEYS` would (instead of it); `SIGHUP` reads it again, so keys are added or revoked without a restart (a bad file keeps the running keys)',
  },
  AUTH_JWKS_URL: { group: 'Authentication', meaning: 'accept bearer JWTs verified against this JWKS; needs `AUTH_ISSUER` and `AUTH_AUDIENCE`' },
  AUTH_ISSUER: { group: 'Authentication', meaning: 'required `iss` of a JWT' },
  AUTH_AUDIENCE: { group: 'Authentication', meaning: "a value a JWT's `aud` must contain" },
  AUTH_TENANT_CLAIM: { group: 'Authentication', meaning: 'the JWT claim that names the tenant' },
  AUTH_ALGORITHMS: { group: 'Authentication', meaning: 'allowed JWS algorithms (asymmetric only)' },
  AUTH_CLOCK_TOLERANCE: { group: 'Authentication', meaning: "leeway on a JWT's `exp`/`nbf`" },
  AUTH_JWKS_COOLDOWN: { group: 'Authentication', meaning: 'least time between JWKS refetches for an unknown `kid`' },

  METRICS_PORT: {
    group: 'Metrics, docs and admin',
    meaning:
      "the port of the api's `/metrics` (never the api's own `PORT`; 9465 beside the worker's 9464); `api` serves it on `PORT` instead, and then requires `METRICS_TOKEN`",
  },
  METRICS_TOKEN: {
    group: 'Metrics, docs and admin',
    meaning:
      '`/metrics` (api and worker) needs `Authorization: Bearer <token>` (at least 16 characters); tenant names appear on `/metrics` only with it (else `tenant="_other"` sums every backlog)',
  },
  METRICS_TENANT_SERIES: {
    group: 'Metrics, docs and admin',
    meaning:
      'tenants with a series of their own in the api\'s `signspool_tenant_backlog_documents` (the largest backlogs; the rest summed as `tenant="_other"`, so at most this + 1 series); `0` turns the metric off (0–1000)',
  },
  DOCS_PUBLIC: { group: 'Metrics, docs and admin', meaning: 'serve `/docs` and `/openapi.json`; `false` removes them' },
  ADMIN_TOKEN: {
    group: 'Metrics, docs and admin',
    default: '— (admin routes off)',
    meaning: 'bearer token of `GET /v1/admin/stats` and `/admin/queues` (24–512 printable characters); unset, those routes answer `404`',
  },
  ADMIN_QUEUES_WRITABLE: {
    group: 'Metrics, docs and admin',
    meaning:
      'let the Bull Board at `/admin/queues` change queues (retry, promote, clean, add, empty, obliterate, edit job data, pause); `false`: read-only, every change answers `403 ADMIN_READ_ONLY`',
  },

  UPLOAD_MAX_FILE_BYTES: { group: 'Uploads', meaning: 'largest file (`413 FILE_TOO_LARGE`)' },
  UPLOAD_MAX_FILES: { group: 'Uploads', meaning: 'files per request (`413 TOO_MANY_FILES`)' },
  UPLOAD_MAX_TOTAL_BYTES: { group: 'Uploads', meaning: "bytes per request (`413 REQUEST_TOO_LARGE`; the seeds' extreme case is 50 × 20 MB)" },
  UPLOAD_MAX_FIELDS: { group: 'Uploads', meaning: 'form fields per request' },
  UPLOAD_MAX_FIELD_BYTES: { group: 'Uploads', meaning: 'size of one form field' },
  UPLOAD_CONCURRENCY: {
    group: 'Uploads',
    meaning:
      'upload bodies one api process reads at once; later ones wait their turn, their bytes held back by TCP (`signspool_uploads{state="waiting"}`; why 16: see [performance.md](performance.md))',
  },
  UPLOAD_TENANT_SHARE: {
    group: 'Uploads',
    meaning:
      "share of `UPLOAD_CONCURRENCY` one tenant's uploads may hold (at least one slot); a tenant with no upload being read is admitted at once even when every slot is taken; a freed slot goes to the waiting tenant with the fewest uploads being read",
  },
  UPLOAD_IDLE_TIMEOUT: { group: 'Uploads', meaning: 'an upload being read that sends nothing for this long ends with `408 UPLOAD_TIMEOUT`' },
  UPLOAD_MIN_RATE: {
    group: 'Uploads',
    meaning: 'an upload being read that sends less than this many bytes/s over `UPLOAD_MIN_RATE_WINDOW` ends with `408` (`0` turns the check off)',
  },
  UPLOAD_MIN_RATE_WINDOW: { group: 'Uploads', meaning: 'the window of `UPLOAD_MIN_RATE`' },
  UPLOAD_QUEUE_TIMEOUT: {
    group: 'Uploads',
    meaning: 'how long an upload may wait for its turn to be read; then `503 UPLOADS_BUSY` with `Retry-After: 5`, nothing kept',
  },

  RATE_LIMIT_REQUESTS: {
    group: 'Tenant limits',
    meaning: 'requests that change something (uploads, cancels, redeliveries) per second per tenant on `/v1/operations` (`0`: no limit)',
  },
  RATE_LIMIT_READS: {
    group: 'Tenant limits',
    meaning: 'reads (status, long-polls, listings, downloads) per second per tenant, counted apart from the requests above (`0`: no limit)',
  },
  RATE_LIMIT_UPLOAD_BYTES: { group: 'Tenant limits', meaning: 'uploaded bytes per second per tenant, averaged over 10 s (`0`: no limit)' },
  BACKLOG_MAX_DOCUMENTS: { group: 'Tenant limits', meaning: 'documents per tenant accepted and not ended yet (`0`: no limit)' },
  REDELIVERY_LIMIT: { group: 'Tenant limits', meaning: 'webhook redeliveries per operation and hour (`0`: no limit)' },
  LONG_POLL_TENANT_MAX: {
    group: 'Tenant limits',
    meaning:
      '`Prefer: wait` requests one tenant may hold open at once per api process; past it the status is answered at once, without `Preference-Applied` (`0`: no cap)',
  },
  TENANT_LIMITS: {
    group: 'Tenant limits',
    meaning:
      'per-tenant overrides, JSON: `{"acme": {"requestsPerSecond": 500, "readsPerSecond": 2000, "uploadBytesPerSecond": "1GB", "backlogDocuments": 1000000, "redeliveriesPerHour": 0}}`',
  },

  SIGNERS_FILE: {
    group: 'Signer',
    meaning:
      'YAML file of signing identities and which tenant may use which ([signing-identities.md](signing-identities.md)); `SIGHUP` reloads it. Without it, `SIGNER` and the variables below define one identity, `default`, for every tenant',
  },
  SIGNERS_FILE_WATCH: {
    group: 'Signer',
    meaning:
      'also reload `SIGNERS_FILE` when it, or a file it names, changes (the directories are watched: a Kubernetes secret or config map update is seen); `SIGHUP` works either way',
  },
  SIGNER: { group: 'Signer', meaning: '`local` (in-process) or `signstash` (see [signers.md](signers.md))' },
  DEFAULT_SIGNATURE_TYPE: { group: 'Signer', default: '`CAdES` (local) / `PAdES` (signstash)', meaning: 'when a submission names none' },

  SIGNSTASH_URL: { group: "Sign'Stash", meaning: "the proxy client's base URL (required with `SIGNER=signstash`)" },
  SIGNSTASH_AUTH_URL: { group: "Sign'Stash", meaning: 'the OAuth authorization server (required with `SIGNER=signstash`)' },
  SIGNSTASH_CLIENT_ID: { group: "Sign'Stash", meaning: 'the client service alias (required with `SIGNER=signstash`)' },
  SIGNSTASH_CLIENT_SECRET: { group: "Sign'Stash", meaning: 'the client secret (required with `SIGNER=signstash`)' },
  SIGNSTASH_TOKEN_SKEW: { group: "Sign'Stash", meaning: 'refresh the OAuth token this long before it expires (at most half its lifetime)' },
  SIGNSTASH_CONNECT_TIMEOUT: { group: "Sign'Stash", meaning: 'upstream connect timeout' },
  SIGNSTASH_HEADERS_TIMEOUT: {
    group: "Sign'Stash",
    meaning: "from the request's last byte to the answer's headers (the upstream signs the whole batch first)",
  },
  SIGNSTASH_BODY_TIMEOUT: { group: "Sign'Stash", meaning: 'longest silence inside the answer' },
  SIGNSTASH_APPLY_TIMESTAMP: { group: "Sign'Stash", meaning: "ask Sign'Stash to add a timestamp to each signature (`signatureInfo.applyTimestamp`)" },
  SIGNSTASH_REASON: { group: "Sign'Stash", meaning: 'reason written into each signature (`signatureInfo.reason`)' },
  SIGNSTASH_LOCATION: { group: "Sign'Stash", meaning: 'location written into each signature (`signatureInfo.location`)' },
  SIGNSTASH_CA_FILE: { group: "Sign'Stash", meaning: "PEM CA added to the system's for the upstream (TLS verification is always on)" },
  SIGNSTASH_CLIENT_CERT_FILE: { group: "Sign'Stash", meaning: 'PEM client certificate for mTLS to the proxy (with `SIGNSTASH_CLIENT_KEY_FILE`)' },
  SIGNSTASH_CLIENT_KEY_FILE: { group: "Sign'Stash", meaning: 'PEM key of the client certificate' },

  LOCAL_SIGNER_KEY_FILE: {
    group: 'Local signer',
    default: 'generated dev certificate',
    meaning: 'key of the local signer (PEM; with `LOCAL_SIGNER_CERT_FILE`)',
  },
  LOCAL_SIGNER_CERT_FILE: {
    group: 'Local signer',
    default: 'generated dev certificate',
    meaning: 'certificate of the local signer (PEM; the file may carry the chain after it)',
  },
  LOCAL_SIGNER_P12_FILE: { group: 'Local signer', meaning: "the local signer's key, certificate and chain from a PKCS#12 file instead" },
  LOCAL_SIGNER_P12_PASSWORD: { group: 'Local signer', meaning: "the PKCS#12 file's password" },
  LOCAL_SIGNER_CADES_ATTACHED: { group: 'Local signer', meaning: 'CAdES with the document inside (`.p7m`) instead of detached (`.p7s`)' },
  TSA_URL: { group: 'Local signer', meaning: 'RFC 3161 time-stamp authority: the local signer makes B-T signatures (a time-stamp over each signature value)' },
  TSA_TIMEOUT: { group: 'Local signer', meaning: 'per time-stamp request' },
  TSA_CONCURRENCY: { group: 'Local signer', meaning: 'time-stamp requests in flight on the one connection (documents signed at once while waiting)' },

  BATCH_MAX_DOCS: {
    group: 'Batching and scheduling',
    meaning: 'a batch is sent when it holds this many documents (see [design.md](design.md#the-batching-rule))',
  },
  BATCH_MAX_BYTES: { group: 'Batching and scheduling', meaning: '… or when the next document would push it past this many bytes' },
  BATCH_LINGER: { group: 'Batching and scheduling', meaning: '… or when its oldest document has waited this long and an upstream slot is free' },
  TENANT_SCHEDULING: {
    group: 'Batching and scheduling',
    meaning: '`fair`: tenants are served round-robin, a round each (see [design.md](design.md#fair-scheduling-across-tenants)); `fifo`: in order of arrival',
  },
  TENANT_QUANTUM: {
    group: 'Batching and scheduling',
    default: '`0` (= `BATCH_MAX_DOCS`)',
    meaning:
      "a tenant's round: document units it is served before the next tenant's turn (a document over `BATCH_MAX_BYTES ÷ BATCH_MAX_DOCS` counts as several)",
  },

  UPSTREAM_CONCURRENCY: { group: 'Upstream calls and durability', meaning: 'batches in flight per worker' },
  UPSTREAM_MAX_ATTEMPTS: {
    group: 'Upstream calls and durability',
    meaning: 'attempts of a retryable upstream failure (attempts made while the circuit is open do not count)',
  },
  UPSTREAM_BACKOFF_BASE: { group: 'Upstream calls and durability', meaning: 'first retry delay (capped exponential backoff with jitter)' },
  UPSTREAM_BACKOFF_MAX: { group: 'Upstream calls and durability', meaning: 'longest retry delay' },
  UPSTREAM_BREAKER_THRESHOLD: {
    group: 'Upstream calls and durability',
    meaning: "consecutive failed batches (5xx, network, timeout) that open a worker's circuit",
  },
  UPSTREAM_BREAKER_COOLDOWN: { group: 'Upstream calls and durability', meaning: 'how long an open circuit stays open before a one-document probe' },
  JOB_LOCK_DURATION: { group: 'Upstream calls and durability', meaning: 'BullMQ job lock (extended while held)' },
  JOB_MAX_STALLED: { group: 'Upstream calls and durability', meaning: 'times a document may be abandoned by a dead worker before it fails `DOCUMENT_STALLED`' },

  WEBHOOK_SECRETS: {
    group: 'Webhooks',
    default: '`<DATA_DIR>/webhook-secrets` (generated for `default`)',
    meaning:
      '`tenant:whsec_…[|whsec_…]`, newest first; every listed secret signs (rotation). Unset, the secrets in `<DATA_DIR>/webhook-secrets` are used; with `API_KEYS` unset too, the api generates one there for tenant `default` on first start and prints it once',
  },
  WEBHOOK_ENDPOINTS: { group: 'Webhooks', meaning: 'default endpoint per tenant: `tenant=https://…`' },
  WEBHOOK_ALLOW: {
    group: 'Webhooks',
    meaning:
      'SSRF exceptions: `host`, `host:port`, `host:*`, `CIDR`, `CIDR:port`, `[IPv6 CIDR]:port` (no port = 80 and 443 only; see [security.md](security.md#webhook-targets-ssrf))',
  },
  WEBHOOK_ALLOW_HTTP: { group: 'Webhooks', meaning: 'allow plain `http` webhook targets' },
  WEBHOOK_TIMEOUT: { group: 'Webhooks', meaning: 'delivery timeout' },
  WEBHOOK_SCHEDULE: { group: 'Webhooks', meaning: 'delay before each delivery attempt (±10 % jitter; `Retry-After` is honoured)' },
  WEBHOOK_CONCURRENCY: {
    group: 'Webhooks',
    meaning: 'parallel deliveries per worker (shared fairly per tenant and endpoint: see [operations.md](operations.md#webhook-delivery))',
  },

  RETENTION: { group: 'Retention and shutdown', meaning: 'signed files and records are kept this long after an operation ends' },
  IDEMPOTENCY_TTL: { group: 'Retention and shutdown', meaning: 'how long an `Idempotency-Key` is remembered' },
  JANITOR_INTERVAL: { group: 'Retention and shutdown', meaning: 'how often the janitor cleans the spool of files with no record' },
  ORPHAN_GRACE: {
    group: 'Retention and shutdown',
    meaning:
      'age of a file with no record before the janitor removes it; also how long the Idempotency-Key of an upload that got no answer (its api died, or Redis failed) stays reserved (a retry with it gets 409 until then)',
  },
  SHUTDOWN_TIMEOUT: { group: 'Retention and shutdown', meaning: 'deadline for draining in-flight uploads and batches on SIGTERM' },

  LOG_LEVEL: { group: 'Logs and runtime', meaning: 'pino level; secrets, tokens and document content are redacted' },
  LOG_FORMAT: { group: 'Logs and runtime', meaning: '`pretty` prints one readable line per log entry (for a terminal)' },
  NODE_ENV: { group: 'Logs and runtime', meaning: '`development`, `production` or `test` (checked at start)' },
  WORKER_NICE: {
    group: 'Logs and runtime',
    meaning:
      "CPU priority (nice) a `worker` role process lowers itself to at start, so that on a full CPU the api's uploads and reads are served before batches; `0` keeps the priority it was started with. Not applied in `all` mode (one process)",
  },

  OTEL_EXPORTER_OTLP_ENDPOINT: {
    group: 'Tracing',
    default: '— (tracing off)',
    meaning: 'OTLP/HTTP collector base URL (spans go to `<base>/v1/traces`); turns tracing on (see [operations.md](operations.md#tracing))',
  },
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: {
    group: 'Tracing',
    default: '— (tracing off)',
    meaning: 'the traces URL itself (taken as it is, and preferred); turns tracing on',
  },
  OTEL_EXPORTER_OTLP_PROTOCOL: { group: 'Tracing', meaning: '`http/protobuf` or `http/json` (gRPC is not offered)' },
  OTEL_EXPORTER_OTLP_HEADERS: {
    group: 'Tracing',
    meaning: "headers sent with every export, `name=value,…` with percent-encoded values (e.g. a vendor's key: `api-key=…`)",
  },
  OTEL_SERVICE_NAME: {
    group: 'Tracing',
    default: '`signspool-api` / `signspool-worker` / `signspool` (`all`)',
    meaning: "`service.name` of the process's spans",
  },
};

/** The schema's default of a variable as written in the environment (e.g. `30s`), or undefined when it has none. */
export const configVariableDefault = (name: ConfigVariable): string | undefined => {
  // A default sits in a ZodDefault, possibly as the input of a pipe (a transform).
  let def: z.core.$ZodTypeDef = envSchema.shape[name]._zod.def;
  while (def.type === 'pipe') def = (def as z.core.$ZodPipeDef).in._zod.def;
  if (def.type !== 'default') return undefined;
  const value: unknown = (def as z.core.$ZodDefaultDef).defaultValue;
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? String(value) : undefined;
};

/** The settings as the code uses them: built from the parsed variables, typed by the schema. */
const configSchema = envSchema.transform((c) => {
  const dataDir = path.resolve(c.DATA_DIR);
  return {
    env: c.NODE_ENV,
    logLevel: c.LOG_LEVEL,
    logFormat: c.LOG_FORMAT,
    redisUrl: c.REDIS_URL,
    durability: { mode: c.DURABILITY, minReplicas: c.REDIS_MIN_REPLICAS, timeoutMs: c.DURABILITY_TIMEOUT },
    redisConnectTimeoutMs: c.REDIS_CONNECT_TIMEOUT,
    redisCommandTimeoutMs: c.DURABILITY === 'strict' ? Math.max(c.REDIS_COMMAND_TIMEOUT, c.DURABILITY_TIMEOUT + 1000) : c.REDIS_COMMAND_TIMEOUT,
    redisSentinel:
      c.REDIS_SENTINELS && c.REDIS_SENTINEL_NAME
        ? ({ sentinels: c.REDIS_SENTINELS, name: c.REDIS_SENTINEL_NAME, password: c.REDIS_SENTINEL_PASSWORD } satisfies RedisSentinelSettings)
        : undefined,
    queuePrefix: c.QUEUE_PREFIX,
    dataDir,
    spoolDir: path.resolve(c.SPOOL_DIR ?? path.join(dataDir, 'spool')),
    spoolMinFreeBytes: c.SPOOL_MIN_FREE_BYTES,
    host: c.HOST,
    port: c.PORT,
    httpBacklog: c.HTTP_BACKLOG,
    httpHeadersTimeoutMs: c.HTTP_HEADERS_TIMEOUT,
    httpKeepAliveTimeoutMs: c.HTTP_KEEPALIVE_TIMEOUT,
    /** Undefined: the api's drain derives it (api/http/drain.ts). */
    httpDrainWindowMs: c.HTTP_DRAIN_WINDOW,
    workerMetricsPort: c.WORKER_METRICS_PORT,
    workerNice: c.WORKER_NICE,
    publicUrl: c.PUBLIC_URL,
    trustProxy: c.TRUST_PROXY,
    apiKeys: c.API_KEYS,
    /** The file API_KEYS was read from (SIGHUP reads it again: api/auth/api-keys.ts). */
    apiKeysFile: c.API_KEYS_FILE,
    /** Bearer JWTs beside API keys: set when AUTH_JWKS_URL is. */
    jwt:
      c.AUTH_JWKS_URL === undefined
        ? undefined
        : {
            jwksUrl: c.AUTH_JWKS_URL,
            issuer: c.AUTH_ISSUER ?? '',
            audience: c.AUTH_AUDIENCE ?? '',
            tenantClaim: c.AUTH_TENANT_CLAIM,
            algorithms: c.AUTH_ALGORITHMS,
            clockToleranceMs: c.AUTH_CLOCK_TOLERANCE,
            jwksCooldownMs: c.AUTH_JWKS_COOLDOWN,
          },
    /**
     * The api's /metrics: on its own port (undefined: on the api's port, METRICS_PORT=api), behind a bearer
     * token when set; `tenantSeries`: tenants with a series of their own in signspool_tenant_backlog_documents
     * (0: none; tenant names are exported only to scrapers that send the token).
     */
    metrics: { port: c.METRICS_PORT === 'api' ? undefined : c.METRICS_PORT, token: c.METRICS_TOKEN, tenantSeries: c.METRICS_TENANT_SERIES },
    docsPublic: c.DOCS_PUBLIC,
    /** Bearer token of /v1/admin/* and /admin/queues; those routes do not exist without it. */
    adminToken: c.ADMIN_TOKEN,
    /** Whether the Bull Board may change queues (else read-only). */
    adminQueuesWritable: c.ADMIN_QUEUES_WRITABLE,
    upload: {
      maxFileBytes: c.UPLOAD_MAX_FILE_BYTES,
      maxFiles: c.UPLOAD_MAX_FILES,
      maxTotalBytes: c.UPLOAD_MAX_TOTAL_BYTES,
      maxFields: c.UPLOAD_MAX_FIELDS,
      maxFieldBytes: c.UPLOAD_MAX_FIELD_BYTES,
      concurrency: c.UPLOAD_CONCURRENCY,
      tenantShare: c.UPLOAD_TENANT_SHARE,
      idleTimeoutMs: c.UPLOAD_IDLE_TIMEOUT,
      minBytesPerSecond: c.UPLOAD_MIN_RATE,
      minRateWindowMs: c.UPLOAD_MIN_RATE_WINDOW,
      queueTimeoutMs: c.UPLOAD_QUEUE_TIMEOUT,
    },
    /** Connection caps of one api process; an unset one is derived from the descriptor limit at start (connection-limits.ts). */
    connections: { total: c.HTTP_MAX_CONNECTIONS, anonymous: c.HTTP_MAX_ANONYMOUS_CONNECTIONS, perTenant: c.HTTP_TENANT_MAX_CONNECTIONS },
    limits: {
      defaults: {
        requestsPerSecond: c.RATE_LIMIT_REQUESTS,
        readsPerSecond: c.RATE_LIMIT_READS,
        uploadBytesPerSecond: c.RATE_LIMIT_UPLOAD_BYTES,
        backlogDocuments: c.BACKLOG_MAX_DOCUMENTS,
        redeliveriesPerHour: c.REDELIVERY_LIMIT,
      } satisfies TenantLimits,
      tenants: c.TENANT_LIMITS,
      /** `Prefer: wait` requests one tenant may hold open per api process; more are answered at once (0: no cap). */
      longPollsPerTenant: c.LONG_POLL_TENANT_MAX,
    },
    /** The signing identities' file (shared/signers/file.ts); without it, one identity `default` from SIGNER and the variables below. */
    signersFile: c.SIGNERS_FILE === undefined ? undefined : path.resolve(c.SIGNERS_FILE),
    /** Reload SIGNERS_FILE when it or a file it names changes (shared/signers/registry.ts). */
    signersWatch: c.SIGNERS_FILE_WATCH,
    signer: c.SIGNER,
    defaultSignatureType: c.DEFAULT_SIGNATURE_TYPE ?? (c.SIGNER === 'local' ? 'CAdES' : 'PAdES'),
    /** DEFAULT_SIGNATURE_TYPE as set (identities of SIGNERS_FILE default to it, else to their kind's type). */
    explicitSignatureType: c.DEFAULT_SIGNATURE_TYPE,
    signstash: {
      url: c.SIGNSTASH_URL ?? '',
      authUrl: c.SIGNSTASH_AUTH_URL ?? '',
      clientId: c.SIGNSTASH_CLIENT_ID ?? '',
      clientSecret: c.SIGNSTASH_CLIENT_SECRET ?? '',
      tokenSkewMs: c.SIGNSTASH_TOKEN_SKEW,
      connectTimeoutMs: c.SIGNSTASH_CONNECT_TIMEOUT,
      headersTimeoutMs: c.SIGNSTASH_HEADERS_TIMEOUT,
      bodyTimeoutMs: c.SIGNSTASH_BODY_TIMEOUT,
      applyTimestamp: c.SIGNSTASH_APPLY_TIMESTAMP,
      reason: c.SIGNSTASH_REASON,
      location: c.SIGNSTASH_LOCATION,
      ...(c.SIGNSTASH_CA_FILE === undefined ? {} : { caFile: c.SIGNSTASH_CA_FILE }),
      ...(c.SIGNSTASH_CLIENT_CERT_FILE === undefined ? {} : { clientCertFile: c.SIGNSTASH_CLIENT_CERT_FILE }),
      ...(c.SIGNSTASH_CLIENT_KEY_FILE === undefined ? {} : { clientKeyFile: c.SIGNSTASH_CLIENT_KEY_FILE }),
    } satisfies SignstashSettings as SignstashSettings,
    localSigner: {
      keyFile: c.LOCAL_SIGNER_KEY_FILE,
      certFile: c.LOCAL_SIGNER_CERT_FILE,
      p12File: c.LOCAL_SIGNER_P12_FILE,
      p12Password: c.LOCAL_SIGNER_P12_PASSWORD,
      cadesAttached: c.LOCAL_SIGNER_CADES_ATTACHED,
      tsa: c.TSA_URL === undefined ? undefined : { url: c.TSA_URL, timeoutMs: c.TSA_TIMEOUT, concurrency: c.TSA_CONCURRENCY },
    } satisfies LocalSignerSettings as LocalSignerSettings,
    batch: { maxDocs: c.BATCH_MAX_DOCS, maxBytes: c.BATCH_MAX_BYTES, lingerMs: c.BATCH_LINGER },
    scheduling: { mode: c.TENANT_SCHEDULING, quantum: c.TENANT_QUANTUM || c.BATCH_MAX_DOCS },
    upstream: {
      concurrency: c.UPSTREAM_CONCURRENCY,
      maxAttempts: c.UPSTREAM_MAX_ATTEMPTS,
      backoffBaseMs: c.UPSTREAM_BACKOFF_BASE,
      backoffMaxMs: c.UPSTREAM_BACKOFF_MAX,
      breakerThreshold: c.UPSTREAM_BREAKER_THRESHOLD,
      breakerCooldownMs: c.UPSTREAM_BREAKER_COOLDOWN,
    },
    jobs: { lockDurationMs: c.JOB_LOCK_DURATION, maxStalled: c.JOB_MAX_STALLED },
    webhooks: {
      secrets: c.WEBHOOK_SECRETS,
      endpoints: c.WEBHOOK_ENDPOINTS,
      allow: c.WEBHOOK_ALLOW,
      allowHttp: c.WEBHOOK_ALLOW_HTTP,
      timeoutMs: c.WEBHOOK_TIMEOUT,
      /** Delay before each attempt; the first is normally 0 (immediately). */
      scheduleMs: c.WEBHOOK_SCHEDULE,
      concurrency: c.WEBHOOK_CONCURRENCY,
    },
    retentionMs: c.RETENTION,
    idempotencyTtlMs: c.IDEMPOTENCY_TTL,
    janitorIntervalMs: c.JANITOR_INTERVAL,
    orphanGraceMs: c.ORPHAN_GRACE,
    shutdownTimeoutMs: c.SHUTDOWN_TIMEOUT,
    /** OpenTelemetry tracing (bin/tracing.ts): on when an OTLP endpoint is set. */
    tracing: {
      /** Where spans are sent: the traces endpoint as given, or <OTEL_EXPORTER_OTLP_ENDPOINT>/v1/traces. */
      tracesUrl:
        c.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? (c.OTEL_EXPORTER_OTLP_ENDPOINT === undefined ? undefined : `${c.OTEL_EXPORTER_OTLP_ENDPOINT}/v1/traces`),
      protocol: c.OTEL_EXPORTER_OTLP_PROTOCOL,
      headers: c.OTEL_EXPORTER_OTLP_HEADERS,
      serviceName: c.OTEL_SERVICE_NAME,
    },
  };
});

export type Config = z.output<typeof configSchema>;

/** Every environment variable signspool reads (docs/configuration.md is generated from it; deployment manifests are checked against it). */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(envSchema.shape);

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Every variable whose value may instead be read from the file named by `<NAME>_FILE`. */
export const SECRET_VARIABLES = [
  'SIGNSTASH_CLIENT_SECRET',
  'SIGNSTASH_CLIENT_ID',
  'API_KEYS',
  'REDIS_URL',
  'REDIS_SENTINEL_PASSWORD',
  'WEBHOOK_SECRETS',
  'METRICS_TOKEN',
  'ADMIN_TOKEN',
  'LOCAL_SIGNER_P12_PASSWORD',
  'OTEL_EXPORTER_OTLP_HEADERS',
] as const;

const resolveFileVariables = (env: NodeJS.ProcessEnv): Record<string, string | undefined> => {
  const out: Record<string, string | undefined> = { ...env };
  for (const name of SECRET_VARIABLES) {
    const file = env[`${name}_FILE`];
    if (file === undefined || file === '') continue;
    if (env[name] !== undefined && env[name] !== '') throw new ConfigError(`${name}: set either ${name} or ${name}_FILE, not both`);
    try {
      out[name] = readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new ConfigError(`${name}_FILE: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  return out;
};

/** Parses the environment. Throws ConfigError with one line per bad variable. */
export const loadConfig = (env: NodeJS.ProcessEnv = process.env): Config => {
  const result = configSchema.safeParse(resolveFileVariables(env));
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const name = issue.path.join('.') || 'config';
      // Never echo the value: it may be a secret.
      return `${name}: ${issue.message}`;
    });
    throw new ConfigError(`invalid configuration: ${lines.join('; ')}`);
  }
  const config = result.data;
  // A bad SIGNERS_FILE stops start with its one line (the registry loads it again, and on each reload).
  if (config.signersFile !== undefined) {
    try {
      loadSigningIdentities(config);
    } catch (err) {
      if (err instanceof SignersFileError) throw new ConfigError(err.message);
      throw err;
    }
  }
  return config;
};
