/**
 * The error catalog: every error signspool reports, to an API caller or on a document, has a
 * stable `code`, an HTTP status, a `retryable` flag and a problem+json `type` URI (RFC 9457).
 * Codes never change meaning once published; add new ones instead.
 */

export const PROBLEM_TYPE_BASE = 'https://signspool.dev/problems/';

interface CatalogEntry {
  readonly status: number;
  readonly retryable: boolean;
  readonly title: string;
}

const entry = (status: number, retryable: boolean, title: string): CatalogEntry => ({ status, retryable, title });

export const errorCatalog = {
  // --- API: request errors -------------------------------------------------------------------
  UNAUTHORIZED: entry(401, false, 'Missing or invalid API key or token'),
  INSUFFICIENT_SCOPE: entry(403, false, 'The credential lacks the scope this request needs'),
  CROSS_SITE_REQUEST: entry(403, false, 'A request from another site may not change anything'),
  ADMIN_READ_ONLY: entry(403, false, 'The queue board is read-only (ADMIN_QUEUES_WRITABLE=false)'),
  NOT_FOUND: entry(404, false, 'Not found'),
  ROUTE_NOT_FOUND: entry(404, false, 'No such route'),
  METHOD_NOT_ALLOWED: entry(405, false, 'Method not allowed'),
  VALIDATION_FAILED: entry(400, false, 'The request is not valid'),
  UNSUPPORTED_MEDIA_TYPE: entry(415, false, 'The request must be multipart/form-data'),
  NO_FILES: entry(400, false, 'The request carries no file part'),
  UPLOAD_ABORTED: entry(400, false, 'The upload was aborted or malformed'),
  FILE_TOO_LARGE: entry(413, false, 'A file exceeds the per-file size limit'),
  TOO_MANY_FILES: entry(413, false, 'The request carries more files than allowed'),
  REQUEST_TOO_LARGE: entry(413, false, 'The request exceeds the total size limit'),
  TOO_MANY_FIELDS: entry(413, false, 'The request carries too many or too large form fields'),
  DOCUMENT_NOT_SIGNED: entry(409, false, 'The document has no signed result (yet)'),
  OPERATION_TERMINAL: entry(409, false, 'The operation has already ended'),
  OPERATION_NOT_TERMINAL: entry(409, false, 'The operation has not ended yet'),
  NOTHING_TO_RETRY: entry(409, false, 'The operation has no document that can be retried'),
  DOCUMENT_NOT_PDF: entry(422, false, 'The document submitted for a PAdES signature is not a PDF'),
  DOCUMENT_NOT_XML: entry(422, false, 'The document submitted for a XAdES signature is not well-formed XML'),
  IDEMPOTENCY_KEY_IN_USE: entry(409, true, 'A request with this Idempotency-Key is still in progress'),
  IDEMPOTENCY_KEY_MISMATCH: entry(422, false, 'This Idempotency-Key was used for a different request'),
  WEBHOOK_URL_REFUSED: entry(422, false, 'The webhook URL is not an allowed target'),
  WEBHOOK_SECRET_MISSING: entry(422, false, 'The tenant has no webhook signing secret, so a webhook could not be signed'),
  EMPTY_FILE: entry(400, false, 'A file part carries no bytes'),
  UPLOAD_TIMEOUT: entry(408, true, 'The upload stalled or was too slow'),
  RATE_LIMITED: entry(429, true, 'Too many requests or uploaded bytes for this tenant'),
  BACKLOG_FULL: entry(429, true, "The tenant's documents waiting to be signed reached its quota"),
  TOO_MANY_CONNECTIONS: entry(429, true, 'The tenant holds as many open requests on this api process as it may'),
  UPLOADS_BUSY: entry(503, true, 'The upload waited too long for its turn to be read; nothing was kept'),
  MALFORMED_REQUEST: entry(400, false, 'The HTTP request is malformed'),
  HEADERS_TOO_LARGE: entry(431, false, 'The request headers are too large'),
  INSUFFICIENT_STORAGE: entry(507, true, 'The spool has not enough free space for this upload'),
  SERVICE_UNAVAILABLE: entry(503, true, 'A dependency (Redis or the spool) is unavailable'),
  INTERNAL: entry(500, true, 'Internal error'),
  SIGNER_UNKNOWN: entry(422, false, 'No signing identity has this name'),
  SIGNER_NOT_ALLOWED: entry(422, false, 'The tenant may not use this signing identity, or has none'),

  // --- Documents: outcomes recorded on a failed document -------------------------------------
  CANCELED: entry(409, false, 'The document was canceled before it was sent for signing'),
  SPOOL_FILE_MISSING: entry(500, false, 'The uploaded file is missing from the spool'),
  SPOOL_FILE_CORRUPT: entry(500, false, 'The uploaded file no longer matches its sha256'),
  DOCUMENT_STALLED: entry(500, false, 'The document was abandoned by workers too many times'),
  SIGNATURE_TYPE_UNSUPPORTED: entry(422, false, 'The configured signer does not support this signature type'),
  SIGNER_FAILED: entry(500, false, 'The local signer failed'),
  SPOOL_FULL: entry(507, true, "The worker's spool is full: the document waits in the queue until space is freed"),
  DOCUMENT_NOT_SIGNABLE: entry(422, false, 'The local signer cannot sign this document in the requested format (e.g. an encrypted PDF)'),
  TSA_UNAVAILABLE: entry(503, true, 'The time-stamp authority could not be reached or answered with a server error'),
  TSA_REJECTED: entry(502, false, 'The time-stamp authority refused the request'),
  TSA_BAD_RESPONSE: entry(502, true, 'The time-stamp authority answered with a reply signspool cannot use'),
  SIGNER_REMOVED: entry(422, false, 'The signing identity of the document was removed from the configuration before the document was signed'),

  // --- Upstream (Sign'Stash) ------------------------------------------------------------------
  UPSTREAM_OAUTH_INVALID_CLIENT: entry(502, false, "Sign'Stash OAuth rejected the client credentials"),
  UPSTREAM_TOKEN_INVALID: entry(502, true, "Sign'Stash rejected the OAuth token"),
  UPSTREAM_CLIENT_SERVICE_INACTIVE: entry(502, false, "The Sign'Stash client service is not active"),
  UPSTREAM_CERTIFICATE_NOT_PROVISIONED: entry(502, false, "No valid certificate is provisioned for the Sign'Stash client service"),
  UPSTREAM_DOCUMENT_REJECTED: entry(502, false, "Sign'Stash rejected the document"),
  UPSTREAM_REJECTED: entry(502, false, "Sign'Stash rejected the request"),
  UPSTREAM_RATE_LIMITED: entry(503, true, "Sign'Stash is rate limiting"),
  UPSTREAM_UNAVAILABLE: entry(503, true, "Sign'Stash answered with a server error"),
  UPSTREAM_NETWORK: entry(503, true, "Sign'Stash could not be reached"),
  UPSTREAM_TLS: entry(502, false, "The TLS connection to Sign'Stash failed verification"),
  UPSTREAM_TIMEOUT: entry(504, true, "Sign'Stash did not answer in time"),
  UPSTREAM_BAD_RESPONSE: entry(502, true, "Sign'Stash answered with a response signspool cannot read"),
} as const satisfies Record<string, CatalogEntry>;

export type ErrorCode = keyof typeof errorCatalog;

/**
 * What a caller or operator should do about each code, for docs/errors.md (`npm run docs`; a unit
 * test fails when the file is stale). Beside the catalog so that a new code cannot be added without it.
 */
export const ERROR_ACTIONS: { readonly [K in ErrorCode]: string } = {
  UNAUTHORIZED: 'Send `Authorization: Bearer <API key or access token>`; `WWW-Authenticate` says what was wrong with the one sent.',
  INSUFFICIENT_SCOPE: 'Use a credential holding `requiredScope` (an API key entry lists its scopes; a JWT its `scope`/`scp`).',
  CROSS_SITE_REQUEST: 'Change queues from the Bull Board page itself (same origin), or send a JSON body from a script; another site cannot.',
  ADMIN_READ_ONLY: 'The board is read-only by default: set `ADMIN_QUEUES_WRITABLE=true` to retry, promote, clean or remove jobs from it.',
  NOT_FOUND: "Check the id; another tenant's operation, and one past its `RETENTION`, is not found either.",
  ROUTE_NOT_FOUND: 'Check the path against `GET /openapi.json`.',
  METHOD_NOT_ALLOWED: 'Use a method the route accepts (`GET /openapi.json` lists them).',
  VALIDATION_FAILED: 'Fix the field named in `detail` and send again.',
  UNSUPPORTED_MEDIA_TYPE: 'Send `multipart/form-data` with one `file` part per document.',
  NO_FILES: 'Add at least one `file` part.',
  UPLOAD_ABORTED: 'Send the request again; nothing of it was kept.',
  FILE_TOO_LARGE: 'Send files under `limit` bytes (`GET /v1/limits`; the operator sets `UPLOAD_MAX_FILE_BYTES`).',
  TOO_MANY_FILES: 'Split the documents over several requests (`GET /v1/limits`: `maxFiles`).',
  REQUEST_TOO_LARGE: 'Split the documents over several requests (`GET /v1/limits`: `maxTotalBytes`).',
  TOO_MANY_FIELDS: 'Send fewer or shorter form fields (`UPLOAD_MAX_FIELDS`, `UPLOAD_MAX_FIELD_BYTES`).',
  DOCUMENT_NOT_SIGNED: 'Wait for the operation to end (`Prefer: wait`), then download the documents whose status is `signed`.',
  OPERATION_TERMINAL: 'Nothing to cancel: the operation has ended; read its result.',
  OPERATION_NOT_TERMINAL: 'Wait for the operation to end (`Prefer: wait`), then retry.',
  NOTHING_TO_RETRY: 'No failed document can be queued again (`?all=true` includes every failed one whose upload is still kept).',
  DOCUMENT_NOT_PDF: 'Send a PDF for PAdES, or choose another `signatureType` (the `document` member says which file).',
  DOCUMENT_NOT_XML: 'Send well-formed UTF-8 XML for XAdES, or choose another `signatureType` (the `document` member says which file).',
  IDEMPOTENCY_KEY_IN_USE: 'The first request with this key is still uploading: retry after `Retry-After`.',
  IDEMPOTENCY_KEY_MISMATCH: 'Use a new `Idempotency-Key` for a different request.',
  WEBHOOK_URL_REFUSED: 'Use an `https` URL to a public address, or have the operator admit it with `WEBHOOK_ALLOW` (`detail` gives the reason).',
  WEBHOOK_SECRET_MISSING: 'The operator sets `WEBHOOK_SECRETS=<tenant>:whsec_…` (or `WEBHOOK_SECRETS_FILE`) and restarts; or send without `webhookUrl`.',
  EMPTY_FILE: 'Remove the empty file part (`part` says which).',
  UPLOAD_TIMEOUT: 'Send the request again from a faster or steadier connection (`UPLOAD_IDLE_TIMEOUT`, `UPLOAD_MIN_RATE`).',
  RATE_LIMITED: 'Slow down: retry after `Retry-After` (`RateLimit-Policy` says which limit; `TENANT_LIMITS` raises it).',
  BACKLOG_FULL: 'Wait for documents to be signed and retry after `Retry-After` (`BACKLOG_MAX_DOCUMENTS`, `TENANT_LIMITS`).',
  TOO_MANY_CONNECTIONS: 'Hold fewer requests open at once (uploads, long polls, downloads); retry after `Retry-After` (`HTTP_TENANT_MAX_CONNECTIONS`).',
  UPLOADS_BUSY: 'Send the upload again after `Retry-After`; the api was reading as many uploads as it may (`UPLOAD_CONCURRENCY`, `UPLOAD_QUEUE_TIMEOUT`).',
  MALFORMED_REQUEST: "Fix the client's HTTP framing (`Content-Length` with `chunked`, a bad chunk).",
  HEADERS_TOO_LARGE: 'Send smaller request headers (at most 16 KiB).',
  INSUFFICIENT_STORAGE: 'Retry after `Retry-After`; the operator frees spool space (`SPOOL_MIN_FREE_BYTES`).',
  SERVICE_UNAVAILABLE: 'Retry after `Retry-After`; the operator checks Redis, the spool and `/readyz`.',
  INTERNAL: 'Retry; if it persists, the operator looks up the request in the logs.',
  SIGNER_UNKNOWN: 'Name a signing identity the service has (the operator lists them in `SIGNERS_FILE`).',
  SIGNER_NOT_ALLOWED: 'Name an identity this tenant may use, or have the operator grant one in `SIGNERS_FILE`.',
  SIGNER_REMOVED: 'Submit the document again with an identity that exists now.',
  CANCELED: 'Nothing: the document was canceled on request.',
  SPOOL_FILE_MISSING: 'Submit the document again; the operator checks what removed files from the spool.',
  SPOOL_FILE_CORRUPT: 'Submit the document again; the operator checks what altered files in the spool.',
  DOCUMENT_STALLED: 'Submit the document again; the operator checks why workers died while holding it (`JOB_MAX_STALLED`).',
  SIGNATURE_TYPE_UNSUPPORTED: 'Choose a signature type the configured signer supports.',
  SIGNER_FAILED: "Retry the operation (`POST /v1/operations/:id/retry?all=true`); the operator checks the worker's log.",
  SPOOL_FULL: "Nothing: the document waits in the queue; the operator frees space on the worker's spool.",
  DOCUMENT_NOT_SIGNABLE: 'Send a document the signer can sign (e.g. an unencrypted PDF), or another signature type.',
  TSA_UNAVAILABLE: 'Retried automatically; when final, the operator checks `TSA_URL` and retries the operation.',
  TSA_REJECTED: 'The operator checks the TSA account or policy behind `TSA_URL`.',
  TSA_BAD_RESPONSE: 'The operator checks the TSA behind `TSA_URL`; retry the operation.',
  UPSTREAM_OAUTH_INVALID_CLIENT: 'The operator fixes `SIGNSTASH_CLIENT_ID` / `SIGNSTASH_CLIENT_SECRET`, then retries with `?all=true`.',
  UPSTREAM_TOKEN_INVALID: "Retried automatically with a new token; when final, the operator checks the Sign'Stash client service.",
  UPSTREAM_CLIENT_SERVICE_INACTIVE: "The operator activates the client service in the Sign'Stash backoffice, then retries with `?all=true`.",
  UPSTREAM_CERTIFICATE_NOT_PROVISIONED: "The operator provisions a certificate in the Sign'Stash backoffice, then retries with `?all=true`.",
  UPSTREAM_DOCUMENT_REJECTED: 'Fix this document (the message says why) and submit it again; the rest of its batch is signed.',
  UPSTREAM_REJECTED: "The operator checks the request against Sign'Stash (settings such as `SIGNSTASH_REASON`); retry with `?all=true`.",
  UPSTREAM_RATE_LIMITED: 'Retried automatically after `Retry-After`; when final, retry the operation later.',
  UPSTREAM_UNAVAILABLE: "Retried automatically; when final, retry the operation once Sign'Stash is back.",
  UPSTREAM_NETWORK: 'Retried automatically; when final, the operator checks the network path to `SIGNSTASH_URL`.',
  UPSTREAM_TLS: 'The operator fixes `SIGNSTASH_CA_FILE` or the client certificate (`SIGNSTASH_CLIENT_CERT_FILE`), then retries with `?all=true`.',
  UPSTREAM_TIMEOUT: 'Retried automatically; when final, the operator checks the upstream or raises `SIGNSTASH_HEADERS_TIMEOUT`.',
  UPSTREAM_BAD_RESPONSE: "Retried automatically; when final, the operator reports the upstream's answer (in the worker's log).",
};

export const isRetryable = (code: string): boolean => (errorCatalog as Record<string, CatalogEntry | undefined>)[code]?.retryable ?? false;

/** Document failures where the document itself is at fault: retrying cannot help, so its upload is removed at once. */
export const DOCUMENT_FAULTS: ReadonlySet<string> = new Set(['UPSTREAM_DOCUMENT_REJECTED', 'SPOOL_FILE_MISSING', 'SPOOL_FILE_CORRUPT']);

export const isErrorCode = (value: string): value is ErrorCode => Object.hasOwn(errorCatalog, value);

export const problemType = (code: ErrorCode): string => `${PROBLEM_TYPE_BASE}${code.toLowerCase().replaceAll('_', '-')}`;

export interface SignspoolErrorOptions {
  /** Human-readable explanation specific to this occurrence (safe to show to the caller). */
  detail?: string;
  /** Milliseconds the upstream asked us to wait (Retry-After). */
  retryAfterMs?: number;
  /** Extra problem+json members (e.g. the limit that was exceeded). */
  extensions?: Record<string, unknown>;
  cause?: unknown;
}

/** The one error class of signspool: everything thrown across a module boundary is one of these. */
export class SignspoolError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly type: string;
  readonly title: string;
  readonly detail: string;
  readonly retryAfterMs: number | undefined;
  readonly extensions: Record<string, unknown>;

  constructor(code: ErrorCode, options: SignspoolErrorOptions = {}) {
    const meta = errorCatalog[code];
    super(options.detail ?? meta.title, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SignspoolError';
    this.code = code;
    this.status = meta.status;
    this.retryable = meta.retryable;
    this.type = problemType(code);
    this.title = meta.title;
    this.detail = options.detail ?? meta.title;
    this.retryAfterMs = options.retryAfterMs;
    this.extensions = options.extensions ?? {};
  }

  /** RFC 9457 problem details; never includes a stack or an internal path. */
  toProblem(instance?: string): ProblemDetails {
    return {
      type: this.type,
      title: this.title,
      status: this.status,
      detail: this.detail,
      code: this.code,
      retryable: this.retryable,
      ...(instance === undefined ? {} : { instance }),
      ...this.extensions,
    };
  }
}

export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  retryable: boolean;
  instance?: string;
  [extension: string]: unknown;
}

export const isSignspoolError = (err: unknown): err is SignspoolError => err instanceof SignspoolError;

/** Wraps anything thrown into a SignspoolError, keeping the original as `cause` (for logs only). */
export const toSignspoolError = (err: unknown, fallback: ErrorCode = 'INTERNAL'): SignspoolError =>
  isSignspoolError(err) ? err : new SignspoolError(fallback, { cause: err });
