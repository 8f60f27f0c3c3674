/**
 * `signspool keys create`: a new API key, printed once with the API_KEYS entry (its sha256, never
 * the key) that the operator adds beside the tenant's current keys. Rotation: add the new entry,
 * move clients to the new key, then remove the old entry. Nothing is sent anywhere.
 */
import { formatApiKeyEntry, generateApiKey, hashApiKey, isKeyName, isScope, isTenantId, SCOPES, type Scope } from '@signspool/shared/api-key';

export const createKey = (tenant: string, name: string | undefined, scopeList: string | undefined): { key: string; entry: string; text: string } | string => {
  if (!isTenantId(tenant)) return '--tenant must be 1-64 letters, digits, _ or -';
  const keyName = name ?? `key-${new Date().toISOString().slice(0, 10)}`;
  if (!isKeyName(keyName)) return '--name must be 1-64 letters, digits, _ . or -';
  const scopes = scopeList === undefined ? [...SCOPES] : scopeList.split(/[,+\s]+/).filter(Boolean);
  const unknown = scopes.find((s) => !isScope(s));
  if (unknown !== undefined || scopes.length === 0) return `--scopes takes ${SCOPES.join(', ')} (comma-separated); got ${JSON.stringify(unknown ?? '')}`;
  const key = generateApiKey();
  const entry = formatApiKeyEntry(tenant, keyName, hashApiKey(key), scopes as Scope[]);
  const text = [
    `API key for tenant ${tenant} (name ${keyName}, scopes ${scopes.join(' ')}), shown once, keep it now:`,
    '',
    `  ${key}`,
    '',
    'Add this entry to API_KEYS (comma-separated; keep the entry of the key it replaces until its clients have moved),',
    'or as a line of <DATA_DIR>/api-keys when API_KEYS is not set, then restart the api:',
    '',
    `  ${entry}`,
  ].join('\n');
  return { key, entry, text };
};
