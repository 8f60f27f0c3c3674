/**
 * API keys as configured: `tenant[/name]:sha256hex[:scope+scope]`. Only the sha256 of a key is
 * ever configured or stored; a tenant may hold several named keys (rotation without downtime:
 * add the new key's entry, move clients over, remove the old entry). Without scopes an entry has
 * every scope. The same entry syntax is used by API_KEYS and the `<DATA_DIR>/api-keys` file.
 */
import { createHash, randomBytes } from 'node:crypto';

/** Every scope a credential can carry, and what it grants. */
export const SCOPES = ['operations:write', 'operations:read', 'webhooks:redeliver'] as const;
export type Scope = (typeof SCOPES)[number];

export const isScope = (s: string): s is Scope => (SCOPES as readonly string[]).includes(s);

export interface ApiKeyEntry {
  tenant: string;
  /** Shown in logs; unique per tenant. Defaults to `key-<first 8 hex of the hash>`. */
  name: string;
  /** sha256 of the key, hex lowercase. */
  hash: string;
  scopes: readonly Scope[];
}

const TENANT = /^[A-Za-z0-9_-]{1,64}$/;
const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const ENTRY = /^([^/:]+)(?:\/([^:]+))?:([0-9a-fA-F]{64})(?::(.+))?$/;

export const hashApiKey = (key: string): string => createHash('sha256').update(key, 'utf8').digest('hex');

export const generateApiKey = (): string => `ssk_${randomBytes(32).toString('base64url')}`;

export const isTenantId = (s: string): boolean => TENANT.test(s);
export const isKeyName = (s: string): boolean => NAME.test(s);

/** Parses one entry; returns an error message (never echoing the entry) when it is malformed. */
export const parseApiKeyEntry = (raw: string): ApiKeyEntry | string => {
  const m = ENTRY.exec(raw);
  const [, tenant, name, hash, scopeList] = m ?? [];
  if (!tenant || !hash) return 'entries must be tenant[/name]:sha256hex-of-key[:scope+scope]';
  if (!TENANT.test(tenant)) return 'a tenant is 1-64 letters, digits, _ or -';
  if (name !== undefined && !NAME.test(name)) return 'a key name is 1-64 letters, digits, _ . or -';
  const scopes = scopeList === undefined ? [...SCOPES] : scopeList.split('+');
  const unknown = scopes.find((s) => !isScope(s));
  if (unknown !== undefined || scopes.length === 0) return `scopes are ${SCOPES.join(', ')} joined with +`;
  return { tenant, name: name ?? `key-${hash.slice(0, 8).toLowerCase()}`, hash: hash.toLowerCase(), scopes: scopes.filter(isScope) };
};

/** Parses a list of entries (commas or whitespace between them); an error message on the first bad one or a duplicate. */
export const parseApiKeyList = (raw: string): ApiKeyEntry[] | string => {
  const entries: ApiKeyEntry[] = [];
  for (const part of raw.split(/[,\s]+/).filter(Boolean)) {
    const e = parseApiKeyEntry(part);
    if (typeof e === 'string') return e;
    if (entries.some((o) => o.hash === e.hash)) return 'the same key hash is listed twice';
    if (entries.some((o) => o.tenant === e.tenant && o.name === e.name)) return `tenant ${e.tenant} has two keys named ${e.name}`;
    entries.push(e);
  }
  return entries;
};

/** The entry to configure for a key (scopes written only when not all of them). */
export const formatApiKeyEntry = (tenant: string, name: string, hash: string, scopes: readonly Scope[]): string => {
  const all = SCOPES.every((s) => scopes.includes(s));
  return `${tenant}/${name}:${hash}${all ? '' : `:${scopes.join('+')}`}`;
};
