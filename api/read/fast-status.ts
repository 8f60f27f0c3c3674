/**
 * The plain status read, `GET /v1/operations/<id>` with an API key, answered in the server's
 * request listener below express: express's matching, layers and response helpers cost more than
 * the read itself. It answers what the express route answers — the same headers, the tenant's
 * connection held, the reads window, the record, problem+json errors from the same catalog, the
 * same duration metric — with the pieces that route uses. Anything else goes on to express, which
 * answers it as before: another method or path, a query string, `Prefer`, conditional requests,
 * a body, a JWT or an unknown key, a key without the read scope, a tenant at its connection cap.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiKeyEntry } from '@signspool/shared/config';
import type { Metrics } from '@signspool/shared/metrics';
import { apiKeyCredential, bearerCredential } from '../auth/auth.js';
import type { ConnectionLimits } from '../http/connection-limits.js';
import { observeDuration } from '../http/duration.js';
import { dropIfHalfClosed } from '../http/half-close.js';
import { endJson } from '../http/json.js';
import type { ErrorAnswers } from '../http/problem.js';
import { OPERATION_ID, readOwnedOperation, retryAfterOf, statusView, type StatusReadDeps } from './status.js';

const PATH = new RegExp(`^/v1/operations/(${OPERATION_ID.source.slice(1, -1)})$`);
/** The route label of an answer; an error's is the route's own path, as express's error handler sees it (its mount point left). */
const ROUTE = '/v1/operations/:id';
const ERROR_ROUTE = { path: '/:id' };

export interface FastStatusDeps extends StatusReadDeps {
  /** The API key lookup express's authentication uses (auth.ts apiKeyLookup). */
  apiKey: (key: string) => ApiKeyEntry | undefined;
  connections?: ConnectionLimits | undefined;
  metrics: Metrics;
  errors: ErrorAnswers;
  /** The headers every answer carries (security-headers.ts). */
  headers: readonly (readonly [string, string])[];
}

export class FastStatusReads {
  /** Status reads answered here (tests: which path answered). */
  served = 0;

  constructor(private readonly deps: FastStatusDeps) {}

  /** Answers a plain status read (true), or leaves the request to express untouched (false). */
  serve(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'GET') return false;
    const url = req.url ?? '';
    const id = PATH.exec(url)?.[1];
    const h = req.headers;
    if (id === undefined || h.prefer !== undefined || h['if-none-match'] !== undefined || h['if-modified-since'] !== undefined) return false;
    if (h['content-length'] !== undefined || h['transfer-encoding'] !== undefined) return false;
    const key = apiKeyCredential(bearerCredential(h.authorization));
    const entry = key === undefined ? undefined : this.deps.apiKey(key);
    if (!entry?.scopes.includes('operations:read')) return false;
    const { connections } = this.deps;
    if (connections && !connections.mayHold(req.socket, entry.tenant)) return false;
    this.served++;
    // In express's order: security headers, the duration, a half-closed reader dropped, no-store, the connection held.
    for (const [name, value] of this.deps.headers) res.setHeader(name, value);
    let route = ROUTE;
    observeDuration(this.deps.metrics, 'GET', res, () => route);
    if (dropIfHalfClosed(req, res)) return true;
    res.setHeader('Cache-Control', 'no-store');
    connections?.holdUntilAnswered(req.socket, entry.tenant, res);
    this.answer(res, entry.tenant, id).catch((err: unknown) => {
      route = ERROR_ROUTE.path;
      this.deps.errors.answer(err, { method: 'GET', route: ERROR_ROUTE }, res, url);
    });
    return true;
  }

  private async answer(res: ServerResponse, tenant: string, id: string): Promise<void> {
    const op = await readOwnedOperation(this.deps, tenant, id, res);
    const retryAfter = retryAfterOf(op);
    if (retryAfter !== undefined) res.setHeader('Retry-After', retryAfter);
    endJson(res, JSON.stringify(await statusView(this.deps.store, op)));
  }
}
