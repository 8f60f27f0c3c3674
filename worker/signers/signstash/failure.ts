/**
 * How a non-200 answer of Sign'Stash's sign endpoint maps to the error catalog. The status and
 * the upstream's error code decide; the message text only refines an answer that carries no code
 * (a document's name may appear in a message and must never decide a batch's fate).
 */
import type { Dispatcher } from 'undici';
import { SignspoolError } from '@signspool/shared/errors';
import { parseRetryAfter, readSmallBody } from '../../http-util.js';

const ERROR_BODY_LIMIT = 64 * 1024;

/** What the upstream answered when it was not a 200. */
export interface UpstreamFailure {
  status: number;
  retryAfterMs: number | undefined;
  errorCode: string | undefined;
  message: string | undefined;
  externalReference: string | undefined;
}

const inactive = (said: string): SignspoolError =>
  new SignspoolError('UPSTREAM_CLIENT_SERVICE_INACTIVE', {
    detail: `The Sign'Stash client service or issuer is not active: an issuer operator must check its status in the Sign'Stash backoffice${said}`,
  });
const noCertificate = (said: string): SignspoolError =>
  new SignspoolError('UPSTREAM_CERTIFICATE_NOT_PROVISIONED', {
    detail: `The Sign'Stash client service has no valid digital certificate: an issuer operator must configure one in the Sign'Stash backoffice${said}`,
  });

/** Maps a non-200 answer of the sign endpoint to the catalog (401 is handled by the caller). */
export const mapFailure = (f: UpstreamFailure): SignspoolError => {
  const upstream = [f.errorCode, f.message].filter(Boolean).join(': ');
  const said = upstream ? ` (Sign'Stash said: ${upstream.slice(0, 300)})` : '';
  const code = (f.errorCode ?? '').toUpperCase();
  const retryAfter = f.retryAfterMs === undefined ? {} : { retryAfterMs: f.retryAfterMs };
  if (code === 'INVALID_DOCUMENT') {
    return new SignspoolError('UPSTREAM_DOCUMENT_REJECTED', {
      detail: `Sign'Stash rejected the document${said}`,
      extensions: f.externalReference === undefined ? {} : { externalReference: f.externalReference },
    });
  }
  if (code === 'CLIENT_SERVICE_NOT_ACTIVE') return inactive(said);
  if (code === 'CERTIFICATE_NOT_PROVISIONED') return noCertificate(said);
  if (f.status === 429) return new SignspoolError('UPSTREAM_RATE_LIMITED', { detail: `Sign'Stash is rate limiting (429)${said}`, ...retryAfter });
  if (f.status >= 500) return new SignspoolError('UPSTREAM_UNAVAILABLE', { detail: `Sign'Stash answered ${f.status}${said}`, ...retryAfter });
  // No error code and no document named: the message may say which account problem it is.
  if (code === '' && f.message !== undefined) {
    if (/\b(client service|issuer)\b.*\bnot (in ?)?active\b/i.test(f.message)) return inactive(said);
    if (/\bcertificate\b.*\b(not provisioned|missing|expired|revoked)\b/i.test(f.message)) return noCertificate(said);
  }
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
