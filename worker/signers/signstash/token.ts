/**
 * OAuth2 client_credentials tokens for one Sign'Stash client service: cached until shortly before
 * expiry (skew), refreshed single-flight (concurrent batches share one token request), dropped on
 * a 401 so the next caller fetches a new one. Each request is a `signstash.token` span (a child
 * of the batch call that needed it).
 */
import { trace } from '@opentelemetry/api';
import { request, type Dispatcher } from 'undici';
import { SignspoolError } from '@signspool/shared/errors';
import type { Logger } from '@signspool/shared/logger';
import { inSpan, SpanKind, SPANS } from '@signspool/shared/spans';
import { readSmallBody } from '../../http-util.js';
import { tlsFailure } from './upstream-tls.js';

export interface TokenManagerOptions {
  authUrl: string;
  clientId: string;
  clientSecret: string;
  skewMs: number;
  dispatcher: Dispatcher;
  logger: Logger;
  /** Called once per token request made (metrics). */
  onRefresh?: () => void;
}

interface CachedToken {
  value: string;
  expiresAt: number;
  /** When to fetch the next one: SIGNSTASH_TOKEN_SKEW before expiry, but never less than half the lifetime in. */
  refreshAt: number;
}

export class SignstashTokenManager {
  private current: CachedToken | undefined;
  private inflight: Promise<CachedToken> | undefined;
  refreshCount = 0;

  constructor(private readonly opts: TokenManagerOptions) {}

  /** A valid token, from cache or a (shared) refresh. */
  async getToken(signal?: AbortSignal): Promise<string> {
    const now = Date.now();
    if (this.current && now < this.current.refreshAt) return this.current.value;
    this.inflight ??= inSpan(SPANS.token, { kind: SpanKind.CLIENT, attributes: { 'server.address': hostOf(this.opts.authUrl) } }, () =>
      this.fetchToken(signal),
    ).finally(() => {
      this.inflight = undefined;
    });
    return (await this.inflight).value;
  }

  /** When the cached token expires (ms since the epoch); undefined before the first one. */
  get validUntil(): number | undefined {
    return this.current?.expiresAt;
  }

  /** Forgets `token` if it is still the cached one (the upstream rejected it). */
  invalidate(token: string): void {
    if (this.current?.value === token) this.current = undefined;
  }

  private async fetchToken(signal?: AbortSignal): Promise<CachedToken> {
    const { authUrl, clientId, clientSecret, dispatcher } = this.opts;
    this.refreshCount += 1;
    this.opts.onRefresh?.();
    const basic = Buffer.from(`${clientId}:${clientSecret}`).toString('base64');
    let res: Dispatcher.ResponseData;
    try {
      res = await request(`${authUrl}/oauth/token`, {
        method: 'POST',
        dispatcher,
        headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: 'grant_type=client_credentials',
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw transportError(err, "Sign'Stash OAuth server");
    }
    const text = await readSmallBody(res.body);
    trace.getActiveSpan()?.setAttribute('http.response.status_code', res.statusCode);
    if (res.statusCode === 401 || res.statusCode === 400 || res.statusCode === 403) {
      throw new SignspoolError('UPSTREAM_OAUTH_INVALID_CLIENT', {
        detail:
          "Sign'Stash OAuth rejected the client credentials: check SIGNSTASH_CLIENT_ID (the client service alias known in Sign'Stash) and SIGNSTASH_CLIENT_SECRET (the password defined in the Sign'Stash backoffice)",
      });
    }
    if (res.statusCode === 429 || res.statusCode >= 500) {
      throw new SignspoolError(res.statusCode === 429 ? 'UPSTREAM_RATE_LIMITED' : 'UPSTREAM_UNAVAILABLE', {
        detail: `Sign'Stash OAuth server answered ${res.statusCode}`,
      });
    }
    let parsed: { access_token?: unknown; expires_in?: unknown };
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      parsed = {};
    }
    if (res.statusCode !== 200 || typeof parsed.access_token !== 'string' || parsed.access_token === '') {
      throw new SignspoolError('UPSTREAM_BAD_RESPONSE', { detail: `Sign'Stash OAuth server answered ${res.statusCode} without an access token` });
    }
    const expiresIn = typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : 300;
    const lifetimeMs = expiresIn * 1000;
    const issuedAt = Date.now();
    const token = {
      value: parsed.access_token,
      expiresAt: issuedAt + lifetimeMs,
      refreshAt: issuedAt + lifetimeMs - Math.min(this.opts.skewMs, lifetimeMs / 2),
    };
    this.current = token;
    this.opts.logger.debug({ expiresIn }, "obtained a Sign'Stash token");
    return token;
  }
}

const hostOf = (url: string): string => {
  try {
    return new URL(url).hostname;
  } catch {
    return '';
  }
};

/** Maps an undici/socket error to the catalog. */
export const transportError = (err: unknown, what: string): SignspoolError => {
  const tls = tlsFailure(err, what);
  if (tls) return tls;
  const code = (err as { code?: string })?.code ?? '';
  const message = err instanceof Error ? err.message : String(err);
  if (/TIMEOUT/.test(code) || (err instanceof Error && err.name.includes('Timeout'))) {
    return new SignspoolError('UPSTREAM_TIMEOUT', { detail: `${what} did not answer in time (${code || (err instanceof Error && err.name)})`, cause: err });
  }
  return new SignspoolError('UPSTREAM_NETWORK', { detail: `${what} could not be reached (${code || message})`, cause: err });
};
