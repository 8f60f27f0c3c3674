/**
 * Who is calling: `Authorization: Bearer <credential>`, an API key (known only by its sha256,
 * compared in constant time against every configured hash) or, when AUTH_JWKS_URL is set, a JWT
 * from the identity provider (api/auth/jwt-verifier.ts). Either gives a tenant and scopes; each route
 * needs one scope (operationScope), and a credential without it is answered 403.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Request, RequestHandler, Response } from 'express';
import { generateApiKey, hashApiKey, SCOPES, type ApiKeyEntry, type Scope } from '@signspool/shared/api-key';
import { SignspoolError } from '@signspool/shared/errors';
import { ApiKeys, keyEntryOf, parseApiKeysFile } from './api-keys.js';
import { JwtVerifier, looksLikeJwt, TokenRejected, type JwtSettings } from './jwt-verifier.js';

export { generateApiKey, hashApiKey, keyEntryOf };

/** The credential of `Authorization: Bearer <credential>`, or undefined. */
export const bearerCredential = (header: string | undefined): string | undefined => /^Bearer\s+(\S{1,8192})$/i.exec(header ?? '')?.[1];

/** The credential of a request when it is short enough to be an API key (longer ones can only be JWTs). */
export const apiKeyCredential = (credential: string | undefined): string | undefined => (credential && credential.length <= 512 ? credential : undefined);

export interface Principal {
  tenant: string;
  via: 'api-key' | 'jwt';
  /** The key's name, or the token's subject (for logs). */
  name: string;
  scopes: readonly Scope[];
}

declare module 'express-serve-static-core' {
  interface Request {
    tenant?: string;
    principal?: Principal;
  }
}

const REALM = 'Bearer realm="signspool"';
const quoted = (s: string): string => s.replace(/["\\]/g, '');

/** RFC 6750 §3: the challenge names the error (and the scope) so clients can tell what to fix. */
const challenge = (res: Response, error?: 'invalid_token' | 'insufficient_scope', description?: string, scope?: Scope): void => {
  const parts = [REALM];
  if (error) parts.push(`error="${error}"`);
  if (description) parts.push(`error_description="${quoted(description)}"`);
  if (scope) parts.push(`scope="${scope}"`);
  res.setHeader('WWW-Authenticate', parts.join(', '));
};

export interface AuthOptions {
  /** The API keys' entries, or their lookup (ApiKeys.lookup, shared with the status read's fast path). */
  keys: readonly ApiKeyEntry[] | ((key: string) => ApiKeyEntry | undefined);
  /** Bearer JWTs are accepted only when set. */
  jwt?: JwtSettings | undefined;
}

/** Authenticates the request and sets req.tenant and req.principal; 401 (503 when the JWKS is unreachable) otherwise. */
export const authenticate = (opts: AuthOptions): RequestHandler => {
  const verifier = opts.jwt ? new JwtVerifier(opts.jwt) : undefined;
  const how = verifier ? 'send Authorization: Bearer <api key or access token>' : 'send Authorization: Bearer <api key>';
  const lookup = typeof opts.keys === 'function' ? opts.keys : new ApiKeys(opts.keys).lookup;
  return (req, res, next) => {
    const credential = bearerCredential(req.headers.authorization);
    const keyText = apiKeyCredential(credential);
    const key = keyText === undefined ? undefined : lookup(keyText);
    if (key) {
      req.tenant = key.tenant;
      req.principal = { tenant: key.tenant, via: 'api-key', name: key.name, scopes: key.scopes };
      next();
      return;
    }
    if (!credential || !verifier || !looksLikeJwt(credential)) {
      challenge(res, credential ? 'invalid_token' : undefined);
      next(new SignspoolError('UNAUTHORIZED', { detail: credential ? 'the API key is not valid' : how }));
      return;
    }
    verifier.verify(credential).then(
      (token) => {
        req.tenant = token.tenant;
        req.principal = { tenant: token.tenant, via: 'jwt', name: token.subject, scopes: token.scopes };
        next();
      },
      (err: unknown) => {
        if (err instanceof TokenRejected && err.kind === 'invalid') {
          challenge(res, 'invalid_token', err.message);
          next(new SignspoolError('UNAUTHORIZED', { detail: err.message }));
        } else {
          next(new SignspoolError('SERVICE_UNAVAILABLE', { detail: err instanceof Error ? err.message : 'tokens cannot be verified now', retryAfterMs: 5000 }));
        }
      },
    );
  };
};

/** The scope each /v1/operations route needs (paths relative to the router's mount point). */
export const operationScope = (req: Request): Scope => {
  if (req.method === 'GET' || req.method === 'HEAD') return 'operations:read';
  if (req.method === 'POST' && /^\/[^/]+\/webhook\/redeliver\/?$/.test(req.path)) return 'webhooks:redeliver';
  return 'operations:write';
};

/** 403 INSUFFICIENT_SCOPE unless the authenticated principal holds the scope the route needs. */
export const requireScope =
  (scopeOf: (req: Request) => Scope): RequestHandler =>
  (req, res, next) => {
    const needed = scopeOf(req);
    if (req.principal?.scopes.includes(needed)) {
      next();
      return;
    }
    challenge(res, 'insufficient_scope', `this request needs the ${needed} scope`, needed);
    next(new SignspoolError('INSUFFICIENT_SCOPE', { detail: `this request needs the ${needed} scope`, extensions: { requiredScope: needed } }));
  };

export interface ResolvedKeys {
  entries: ApiKeyEntry[];
  /** Set only when a key was generated by this call: print it once, never log it. */
  generatedKey?: string;
  file?: string;
}

/**
 * API_KEYS when configured; otherwise the hash kept in <dataDir>/api-keys, generating a key for
 * tenant `default` on first start.
 */
export const resolveApiKeys = async (configured: ApiKeyEntry[] | undefined, dataDir: string): Promise<ResolvedKeys> => {
  if (configured && configured.length > 0) return { entries: configured };
  const file = path.join(dataDir, 'api-keys');
  try {
    const entries = parseApiKeysFile(await readFile(file, 'utf8'), file);
    if (entries.length > 0) return { entries, file };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const key = generateApiKey();
  await mkdir(dataDir, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `# tenant[/name]:sha256(api key)[:scopes] — generated on first start\ndefault/first:${hashApiKey(key)}\n`, { mode: 0o600 });
  await rename(tmp, file);
  return { entries: [{ tenant: 'default', name: 'first', hash: hashApiKey(key), scopes: [...SCOPES] }], generatedKey: key, file };
};
