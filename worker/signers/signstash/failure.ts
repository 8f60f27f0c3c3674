/**
 * How a non-200 answer of Sign'Stash's sign endpoint, or a document's error entry in a 200 answer,
 * maps to the error catalog (one table for both). The status and the upstream's error code decide; the message text only refines an answer that carries no code
 * (a document's name may appear in a message and must never decide a batch's fate).
 */
import type { Dispatcher } from 'undici';
import { SignspoolError } from '@signspool/shared/errors';
import { parseRetryAfter, readSmallBody } from '../../http-util.js';

const ERROR_BODY_LIMIT = 64 * 1024;

/**
 * What the upstream answered when it was not a 200, or what one entry of a 200 answer's
 * documentList said instead of signed content (then `status` is the entry's own, if it has one).
 */
export interface UpstreamFailure {
  status: number | undefined;
  retryAfterMs: number | undefined;
  errorCode: string | undefined;
  message: string | undefined;
  externalReference: string | undefined;
}

const retryAfterOf = (f: UpstreamFailure): { retryAfterMs?: number } => (f.retryAfterMs === undefined ? {} : { retryAfterMs: f.retryAfterMs });
const inactive = (said: string): SignspoolError =>
  new SignspoolError('UPSTREAM_CLIENT_SERVICE_INACTIVE', {
    detail: `The Sign'Stash client service or issuer is not active: an issuer operator must check its status in the Sign'Stash backoffice${said}`,
  });
const noCertificate = (said: string): SignspoolError =>
  new SignspoolError('UPSTREAM_CERTIFICATE_NOT_PROVISIONED', {
    detail: `The Sign'Stash client service has no valid digital certificate: an issuer operator must configure one in the Sign'Stash backoffice${said}`,
  });
const rateLimited = (f: UpstreamFailure, said: string): SignspoolError =>
  new SignspoolError('UPSTREAM_RATE_LIMITED', {
    detail: `Sign'Stash is rate limiting${f.status === undefined ? '' : ` (${f.status})`}${said}`,
    ...retryAfterOf(f),
  });
const unavailable = (f: UpstreamFailure, said: string): SignspoolError =>
  new SignspoolError('UPSTREAM_UNAVAILABLE', { detail: `Sign'Stash answered ${f.status ?? 'with a server error'}${said}`, ...retryAfterOf(f) });

/** The upstream's error codes that decide on their own, whatever the status (and for a document's entry, which has none). */
const BY_CODE: Record<string, (f: UpstreamFailure, said: string) => SignspoolError> = {
  INVALID_DOCUMENT: (f, said) =>
    new SignspoolError('UPSTREAM_DOCUMENT_REJECTED', {
      detail: `Sign'Stash rejected the document${said}`,
      extensions: f.externalReference === undefined ? {} : { externalReference: f.externalReference },
    }),
  CLIENT_SERVICE_NOT_ACTIVE: (_f, said) => inactive(said),
  CERTIFICATE_NOT_PROVISIONED: (_f, said) => noCertificate(said),
  TOO_MANY_REQUESTS: rateLimited,
  UNAVAILABLE: unavailable,
  SERVICE_UNAVAILABLE: unavailable,
  INTERNAL: unavailable,
  INTERNAL_ERROR: unavailable,
};

/**
 * Maps a non-200 answer of the sign endpoint (401 is handled by the caller), or a document's error
 * entry in a 200 answer, to the catalog: one table for both.
 */
export const mapFailure = (f: UpstreamFailure): SignspoolError => {
  const upstream = [f.errorCode, f.message].filter(Boolean).join(': ');
  const said = upstream ? ` (Sign'Stash said: ${upstream.slice(0, 300)})` : '';
  const code = (f.errorCode ?? '').toUpperCase();
  const byCode = BY_CODE[code];
  if (byCode) return byCode(f, said);
  if (f.status === 429) return rateLimited(f, said);
  if (f.status !== undefined && f.status >= 500) return unavailable(f, said);
  // No error code and no document named: the message may say which account problem it is.
  if (code === '' && f.message !== undefined) {
    if (/\b(client service|issuer)\b.*\bnot (in ?)?active\b/i.test(f.message)) return inactive(said);
    if (/\bcertificate\b.*\b(not provisioned|missing|expired|revoked)\b/i.test(f.message)) return noCertificate(said);
  }
  if (f.status === undefined) return new SignspoolError('UPSTREAM_REJECTED', { detail: `Sign'Stash refused to sign this document${said}` });
  return new SignspoolError('UPSTREAM_REJECTED', { detail: `Sign'Stash rejected the request with ${f.status}${said}` });
};

/** Reads the (small) error body of a non-200 answer. */
export const readFailure = async (res: Dispatcher.ResponseData): Promise<UpstreamFailure> => {
  const text = await readSmallBody(res.body, ERROR_BODY_LIMIT).catch(() => '');
  let json: { errorCode?: unknown; errorMessage?: unknown; message?: unknown; error?: unknown; externalReference?: unknown } = {};
  try {
    json = JSON.parse(text) as typeof json;
  } catch {
    // not JSON
  }
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  return {
    status: res.statusCode,
    retryAfterMs: parseRetryAfter(res.headers['retry-after']),
    errorCode: str(json.errorCode) ?? str(json.error),
    message: str(json.errorMessage) ?? str(json.message) ?? (text && !text.startsWith('{') ? text.slice(0, 200) : undefined),
    externalReference: str(json.externalReference),
  };
};
