/**
 * The api's keys, and their reload without a restart. `lookup(key)` finds a presented key's entry;
 * a key that matched is remembered by its text (hashed once, not per request) until the keys
 * change. `reload()` reads the keys' file again — API_KEYS_FILE, or `<DATA_DIR>/api-keys` when
 * neither API_KEYS nor API_KEYS_FILE is set — and takes it only when it is valid as a whole and
 * lists at least one key: a bad file keeps the running keys and says why in one log line (and
 * signspool_config_reload_total{config="api_keys",outcome="failure"}). Keys set inline in API_KEYS
 * cannot change without a restart; a reload says so. bin/start.ts reloads on SIGHUP.
 */
import { timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hashApiKey, parseApiKeyEntry, parseApiKeyList, type ApiKeyEntry } from '@signspool/shared/api-key';
import type { Logger } from '@signspool/shared/logger';
import { configLoaded, configReloaded, type ReloadMetrics } from '@signspool/shared/metrics';

/** Finds the entry of a presented key; undefined when none matches. Always checks every entry. */
export const keyEntryOf = (entries: readonly ApiKeyEntry[], key: string): ApiKeyEntry | undefined => {
  const presented = Buffer.from(hashApiKey(key), 'hex');
  let found: ApiKeyEntry | undefined;
  for (const e of entries) {
    const expected = Buffer.from(e.hash, 'hex');
    if (expected.length === presented.length && timingSafeEqual(expected, presented) && found === undefined) found = e;
  }
  return found;
};

/** The entries of `<DATA_DIR>/api-keys`: one per line, `#` comments; throws naming the file on a bad line. */
export const parseApiKeysFile = (text: string, file: string): ApiKeyEntry[] =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const entry = parseApiKeyEntry(l);
      if (typeof entry === 'string') throw new Error(`${file}: malformed line (${entry})`);
      return entry;
    });

/** Where the keys came from: a file that a reload reads again (its syntax), or the environment. */
export type ApiKeySource = { kind: 'environment' } | { kind: 'file'; path: string; syntax: 'API_KEYS_FILE' | 'data-dir' };

export interface ApiKeysReloadDeps {
  source: ApiKeySource;
  logger: Logger;
  metrics?: ReloadMetrics | undefined;
}

export type ApiKeysReloadResult = { ok: true; added: string[]; removed: string[]; changed: string[] } | { ok: false; error: string };

/** The name a log line gives a key: never its hash. */
const nameOf = (e: ApiKeyEntry): string => `${e.tenant}/${e.name}`;

/** The entries a reload reads, or why it cannot take them (one line, naming the file, never a value). */
const readEntries = (source: Extract<ApiKeySource, { kind: 'file' }>): ApiKeyEntry[] | string => {
  let text: string;
  try {
    text = readFileSync(source.path, 'utf8');
  } catch (err) {
    return `${source.path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
  }
  let entries: ApiKeyEntry[] | string;
  try {
    // API_KEYS_FILE holds what API_KEYS would (the start reads it the same way); the data-dir file has a line per key.
    entries = source.syntax === 'API_KEYS_FILE' ? parseApiKeyList(text.trim()) : parseApiKeysFile(text, source.path);
  } catch (err) {
    return err instanceof Error ? err.message : `${source.path}: malformed`;
  }
  if (typeof entries === 'string') return `${source.path}: ${entries}`;
  // Taking an empty file would refuse every client at once; stopping the api says that more plainly.
  if (entries.length === 0) return `${source.path}: lists no key (every client would be refused)`;
  return entries;
};

export class ApiKeys {
  private current: readonly ApiKeyEntry[];
  private found = new Map<string, ApiKeyEntry>();

  constructor(
    entries: readonly ApiKeyEntry[],
    private readonly reloadDeps?: ApiKeysReloadDeps,
  ) {
    this.current = entries;
    if (reloadDeps?.source.kind === 'file') configLoaded(reloadDeps.metrics, 'api_keys');
  }

  /** The entries in force now. */
  get entries(): readonly ApiKeyEntry[] {
    return this.current;
  }

  /** The entry of a presented key, or undefined. Unknown keys are checked against every entry each time. */
  readonly lookup = (key: string): ApiKeyEntry | undefined => {
    let entry = this.found.get(key);
    if (entry === undefined) {
      entry = keyEntryOf(this.current, key);
      if (entry !== undefined) this.found.set(key, entry);
    }
    return entry;
  };

  /** Reads the keys' file again and takes it when valid; `trigger` names what asked (for the log line). */
  reload(trigger: 'signal' | 'call' = 'call'): ApiKeysReloadResult {
    const deps = this.reloadDeps;
    if (deps?.source.kind !== 'file') {
      deps?.logger.info({ trigger }, 'API keys not reloaded: they are set in API_KEYS, which only a restart changes (API_KEYS_FILE can be reloaded)');
      return { ok: true, added: [], removed: [], changed: [] };
    }
    const { logger, metrics } = deps;
    const next = readEntries(deps.source);
    if (typeof next === 'string') {
      configReloaded(metrics, 'api_keys', false);
      logger.error({ reason: next, trigger }, 'API keys not reloaded: keeping the running keys');
      return { ok: false, error: next };
    }
    const before = new Map(this.current.map((e) => [e.hash, e]));
    const after = new Map(next.map((e) => [e.hash, e]));
    const added = next.filter((e) => !before.has(e.hash)).map(nameOf);
    const removed = this.current.filter((e) => !after.has(e.hash)).map(nameOf);
    const changed = next.filter((e) => {
      const old = before.get(e.hash);
      return old !== undefined && (old.tenant !== e.tenant || old.name !== e.name || old.scopes.join('+') !== e.scopes.join('+'));
    });
    this.current = next;
    // Remembered matches may name a removed key or old scopes: forgotten with the old entries.
    this.found = new Map();
    configReloaded(metrics, 'api_keys', true);
    logger.info({ keys: next.length, added, removed, changed: changed.map(nameOf), trigger }, 'API keys reloaded');
    return { ok: true, added, removed, changed: changed.map(nameOf) };
  }
}
