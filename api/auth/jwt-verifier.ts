/**
 * Bearer JWTs from an identity provider, verified with `jose` against its JWKS (AUTH_JWKS_URL):
 * signature with an explicitly allowed asymmetric algorithm, `iss`, `aud`, `exp` (required) and
 * `nbf` with a small clock tolerance. The tenant comes from AUTH_TENANT_CLAIM, the scopes from
 * `scope` (space-separated, RFC 8693) or `scp` (string or array). An unknown `kid` refetches the
 * JWKS (at most once per AUTH_JWKS_COOLDOWN), so the provider can rotate keys.
 */
import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload } from 'jose';
import { isScope, isTenantId, type Scope } from '@signspool/shared/api-key';
import type { Config } from '@signspool/shared/config';

export type JwtSettings = NonNullable<Config['jwt']>;

export interface VerifiedToken {
  tenant: string;
  subject: string;
  scopes: Scope[];
}

/** Why a token was not accepted: `invalid` answers 401, `unavailable` (JWKS unreachable or answering an error) 503. */
export class TokenRejected extends Error {
  constructor(
    message: string,
    readonly kind: 'invalid' | 'unavailable',
  ) {
    super(message);
    this.name = 'TokenRejected';
  }
}

/** Whether a bearer credential has the shape of a compact JWS (three base64url parts). */
export const looksLikeJwt = (credential: string): boolean => /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(credential);

const scopesOf = (payload: JWTPayload): Scope[] => {
  const raw = payload['scope'] ?? payload['scp'];
  const list = typeof raw === 'string' ? raw.split(' ') : Array.isArray(raw) ? raw.filter((s): s is string => typeof s === 'string') : [];
  return [...new Set(list.filter(isScope))];
};

/**
 * jose throws its generic JOSEError (no subclass) only when fetching the JWKS: an answer other
 * than 200 or a body that is not JSON. Like an unreachable JWKS, that is the provider's fault.
 */
const isJwksFetchError = (err: unknown): boolean => err instanceof errors.JOSEError && err.code === errors.JOSEError.code;

const describe = (err: unknown): TokenRejected => {
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid || isJwksFetchError(err) || !(err instanceof errors.JOSEError)) {
    return new TokenRejected('the identity provider keys (AUTH_JWKS_URL) cannot be fetched now', 'unavailable');
  }
  if (err instanceof errors.JWTExpired) return new TokenRejected('the token has expired', 'invalid');
  if (err instanceof errors.JWTClaimValidationFailed) return new TokenRejected(`the token's "${err.claim}" claim is not accepted`, 'invalid');
  if (err instanceof errors.JOSEAlgNotAllowed) return new TokenRejected('the token is signed with an algorithm that is not allowed', 'invalid');
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWSSignatureVerificationFailed) {
    return new TokenRejected('the token is not signed by a key of the identity provider', 'invalid');
  }
  return new TokenRejected('the token is malformed', 'invalid');
};

export class JwtVerifier {
  private readonly jwks: ReturnType<typeof createRemoteJWKSet>;

  constructor(private readonly settings: JwtSettings) {
    this.jwks = createRemoteJWKSet(new URL(settings.jwksUrl), {
      cooldownDuration: settings.jwksCooldownMs,
      cacheMaxAge: 10 * 60_000,
      timeoutDuration: 5000,
    });
  }

  /** The tenant and scopes of a valid token; throws TokenRejected otherwise. */
  async verify(token: string): Promise<VerifiedToken> {
    const s = this.settings;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.jwks, {
        issuer: s.issuer,
        audience: s.audience,
        algorithms: s.algorithms,
        clockTolerance: Math.round(s.clockToleranceMs / 1000),
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      throw describe(err);
    }
    const tenant = payload[s.tenantClaim];
    if (typeof tenant !== 'string' || !isTenantId(tenant)) {
      throw new TokenRejected(`the token carries no usable "${s.tenantClaim}" claim (AUTH_TENANT_CLAIM)`, 'invalid');
    }
    return { tenant, subject: payload.sub ?? '', scopes: scopesOf(payload) };
  }
}
