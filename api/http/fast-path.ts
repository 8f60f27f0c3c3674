/**
 * What the request listener's fast paths (read/fast-status.ts, upload/fast-upload.ts) share: the
 * pieces of express's chain they use, and the check that a request is theirs to answer — an API
 * key holding the route's scope, for a tenant under its connection cap. Anything else is left to
 * express, which answers it (401, 403, 429) as before.
 */
import type { IncomingMessage } from 'node:http';
import type { ApiKeyEntry, Scope } from '@signspool/shared/api-key';
import type { Metrics } from '@signspool/shared/metrics';
import { apiKeyCredential, bearerCredential } from '../auth/auth.js';
import type { ConnectionLimits } from './connection-limits.js';
import type { ErrorAnswers } from './problem.js';

export interface FastPathDeps {
  /** The API key lookup express's authentication uses (ApiKeys.lookup, auth/api-keys.ts). */
  apiKey: (key: string) => ApiKeyEntry | undefined;
  connections?: ConnectionLimits | undefined;
  metrics: Metrics;
  errors: ErrorAnswers;
  /** The headers every answer carries (security-headers.ts). */
  headers: readonly (readonly [string, string])[];
  /** The Keep-Alive value of every answer (keep-alive.ts). */
  keepAlive: string;
}

/** The key's entry when `req` carries an API key with `scope` and its tenant may hold one more connection; else undefined (express's). */
export const fastPathKey = (req: IncomingMessage, deps: FastPathDeps, scope: Scope): ApiKeyEntry | undefined => {
  const key = apiKeyCredential(bearerCredential(req.headers.authorization));
  const entry = key === undefined ? undefined : deps.apiKey(key);
  if (!entry?.scopes.includes(scope)) return undefined;
  return deps.connections && !deps.connections.mayHold(req.socket, entry.tenant) ? undefined : entry;
};
