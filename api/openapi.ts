/**
 * The OpenAPI 3.1 document of the api, built from the same zod schemas the routes validate with
 * (request fields, path parameters) and zod schemas of the responses and of the webhook event
 * (checked against real responses and real deliveries by the tests, and linted by Redocly).
 * Served at /openapi.json. Every operation lists each error code it can answer.
 */
import { z } from 'zod';
import { errorCatalog, type ErrorCode } from '@signspool/shared/errors';
import { SCOPES, type Scope } from '@signspool/shared/api-key';
import { completedEventSchema, documentViewSchema, isoDate, operationViewSchema } from '@signspool/shared/operations/view';
import { SIGNATURE_TYPES } from '@signspool/shared/queue';
import { docParamsSchema, documentsQuerySchema, listQuerySchema, operationParamsSchema } from './routes/operations.js';
import { submitFieldsSchema } from './upload/submit.js';

export const limitsSchema = z.object({
  maxFileBytes: z.number().int().describe('Largest document accepted (UPLOAD_MAX_FILE_BYTES)'),
  maxFiles: z.number().int().describe('Most documents in one request (UPLOAD_MAX_FILES)'),
  maxTotalBytes: z.number().int().describe('Most bytes of documents in one request (UPLOAD_MAX_TOTAL_BYTES)'),
  maxFields: z.number().int(),
  maxFieldBytes: z.number().int(),
  signatureTypes: z.array(z.enum(SIGNATURE_TYPES)),
  defaultSignatureType: z.enum(SIGNATURE_TYPES),
});

const circuitStateSchema = z.enum(['closed', 'open', 'half_open']);
export const adminStatsSchema = z.object({
  generatedAt: isoDate,
  queues: z.record(z.string(), z.record(z.string(), z.number().int())).describe('Job counts by state of the sign and webhook queues'),
  backlog: z.object({
    waiting: z.number().int(),
    scanned: z.number().int().describe('Waiting jobs read to count per tenant (the oldest first, at most 5000)'),
    complete: z.boolean().describe('false when more jobs wait than were scanned'),
    byTenant: z.record(z.string(), z.number().int()),
  }),
  oldestWaiting: z.object({ opId: z.string(), docId: z.string(), tenant: z.string(), acceptedAt: isoDate, ageSeconds: z.number().int() }).nullable(),
  inFlight: z.object({ documents: z.number().int().describe('Documents held by workers: in a batch bucket or in an upstream call (BullMQ active jobs)') }),
  circuit: z.object({
    state: circuitStateSchema.describe('The worst state over live workers'),
    workers: z.array(z.object({ worker: z.string(), state: circuitStateSchema.exclude(['closed']), since: isoDate })),
  }),
});

export const adminSignersSchema = z.object({
  generatedAt: isoDate,
  source: z.string().describe('The SIGNERS_FILE path, or `environment` (one identity, `default`, for every tenant)'),
  signers: z.array(
    z.object({
      name: z.string(),
      kind: z.enum(['signstash', 'local']),
      tenants: z.array(z.string()).describe("Tenants that may use it ('*': every tenant the file does not list)"),
      defaultFor: z.array(z.string()).describe('Tenants whose submissions use it when they name no signer'),
      clientId: z.string().optional().describe("Sign'Stash: the client service (the issuer)"),
      url: z.string().optional(),
      certFile: z.string().optional().describe('Local: the certificate (or PKCS#12) file'),
      signature: z.object({
        type: z.enum(SIGNATURE_TYPES),
        reason: z.string().optional(),
        location: z.string().optional(),
        applyTimestamp: z.boolean(),
      }),
      limits: z.object({ upstreamConcurrency: z.number().int(), batchMaxDocs: z.number().int(), batchMaxBytes: z.number().int() }),
      reported: z.boolean().describe('Whether a live worker published its state (false: no worker has signed with it since it started)'),
      circuit: z.object({ state: circuitStateSchema.describe('The worst state over live workers') }),
      token: z.object({ validUntil: isoDate.nullable() }).nullable().describe("Sign'Stash: when the OAuth token held by workers expires"),
      lastError: z.object({ code: z.string(), at: isoDate }).nullable().describe('The last failure of a call or a document of this identity'),
      certificate: z.object({ subject: z.string(), notAfter: isoDate }).nullable().describe('Local: the signing certificate'),
    }),
  ),
  tenants: z.record(z.string(), z.object({ allowed: z.array(z.string()), default: z.string() })),
});

/** RFC 9457: members beyond these are extensions (e.g. `limit`, `documentStatus`). */
export const problemSchema = z.looseObject({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  code: z.enum(Object.keys(errorCatalog) as [ErrorCode, ...ErrorCode[]]),
  retryable: z.boolean(),
  instance: z.string().optional(),
});

const json = (schema: z.ZodType) => z.toJSONSchema(schema, { target: 'draft-2020-12', unrepresentable: 'any' });

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

const problem = (description: string, codes: ErrorCode[]) => ({
  description: `${description} (codes: ${codes.join(', ')})`,
  content: { 'application/problem+json': { schema: ref('Problem') } },
});

const retryAfter = { 'Retry-After': { $ref: '#/components/headers/RetryAfter' } };

const ok = (description: string, schemaName: string) => ({ description, content: { 'application/json': { schema: ref(schemaName) } } });

const queryParams = (schema: z.ZodObject) =>
  Object.entries(schema.shape).map(([name, s]) => ({ name, in: 'query', required: false, schema: json(s as z.ZodType) }));

const pageOf = (item: Record<string, unknown>) => ({
  type: 'object',
  required: ['data', 'has_more', 'next_cursor'],
  properties: {
    data: { type: 'array', items: item },
    has_more: { type: 'boolean' },
    next_cursor: { type: ['string', 'null'], description: 'Pass as starting_after for the next page' },
  },
});

/** A 429: Retry-After and the IETF RateLimit fields name the limit (api/rate-limits.ts). */
const limited = (description: string, codes: ErrorCode[]) => ({
  ...problem(description, codes),
  headers: {
    ...retryAfter,
    'RateLimit-Policy': {
      schema: { type: 'string' },
      description: 'The limit, e.g. `"requests";q=1000;w=1` or `"reads";q=10000;w=1` (draft-ietf-httpapi-ratelimit-headers)',
    },
    RateLimit: { schema: { type: 'string' }, description: 'What is left of it, e.g. `"requests";r=0;t=1`' },
  },
});

/** Each route's scope: 403 names it, and both schemes list it. */
const scoped = (scope: Scope) => ({ security: [{ bearer: [scope] }, { jwt: [scope] }], 'x-required-scope': scope });

const forbidden = (scope: Scope) => ({
  403: problem(`The credential lacks the ${scope} scope (WWW-Authenticate: error="insufficient_scope")`, ['INSUFFICIENT_SCOPE']),
});

const pathParams = (schema: z.ZodObject) =>
  Object.entries(schema.shape).map(([name, s]) => ({ name, in: 'path', required: true, schema: json(s as z.ZodType) }));

/** Answered by every route behind an API key or token. */
const common = {
  401: problem('Missing or invalid API key or token (WWW-Authenticate: Bearer, RFC 6750)', ['UNAUTHORIZED']),
  429: limited(
    "Over the tenant's requests per second (RATE_LIMIT_REQUESTS; reads: RATE_LIMIT_READS), or its requests in progress on this api process (HTTP_TENANT_MAX_CONNECTIONS)",
    ['RATE_LIMITED', 'TOO_MANY_CONNECTIONS'],
  ),
  503: { ...problem('Redis or the spool is unavailable', ['SERVICE_UNAVAILABLE']), headers: retryAfter },
  500: problem('Internal error', ['INTERNAL']),
};

const admin = {
  401: problem('Missing or invalid admin token (ADMIN_TOKEN)', ['UNAUTHORIZED']),
  404: problem('ADMIN_TOKEN is not configured: the admin routes do not exist', ['ROUTE_NOT_FOUND']),
  503: { ...problem('Redis is unavailable', ['SERVICE_UNAVAILABLE']), headers: retryAfter },
  500: problem('Internal error', ['INTERNAL']),
};

const header = (name: string, description: string, schema: Record<string, unknown>) => ({ name, in: 'header', required: true, description, schema });

export const TAGS = [
  { name: 'operations', description: 'Submit documents, follow an operation, cancel it, download signed documents' },
  { name: 'webhooks', description: 'The `operation.completed` event (Standard Webhooks) and its redelivery' },
  { name: 'limits', description: 'The limits of this deployment, for clients that check before they upload' },
  { name: 'admin', description: 'Operators only: `Authorization: Bearer <ADMIN_TOKEN>`; absent (404) unless ADMIN_TOKEN is set' },
  { name: 'service', description: 'Probes, metrics and this reference; no credentials' },
];

export interface OpenApiOptions {
  serverUrl?: string | undefined;
  /** Whether /metrics is served on the api's port (not with METRICS_PORT). */
  metricsHere?: boolean;
  /** Whether bearer JWTs are accepted (AUTH_JWKS_URL). */
  jwt?: boolean;
}

export const buildOpenApi = ({ serverUrl, metricsHere = true, jwt = false }: OpenApiOptions = {}) => {
  const fields = json(submitFieldsSchema) as { properties?: Record<string, unknown> };
  return {
    openapi: '3.1.0',
    info: {
      title: 'signspool',
      version: '1',
      description:
        "Asynchronous document signing: submit documents, they are signed in batches through Sign'Stash, poll (or long-poll with `Prefer: wait=N`) or receive a Standard Webhooks `operation.completed` event, then download the signed results. Every error is application/problem+json (RFC 9457) with a stable `code`.",
      contact: { name: 'signspool maintainers', url: 'https://signspool.dev/' },
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [serverUrl ? { url: serverUrl, description: 'This deployment (PUBLIC_URL)' } : { url: '/', description: 'The host serving this document' }],
    tags: TAGS,
    security: [{ bearer: [] }, { jwt: [] }],
    components: {
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: `API key: Authorization: Bearer <key>. Each key has scopes (${SCOPES.join(', ')}; all by default).`,
        },
        jwt: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: `Access token from the identity provider (AUTH_JWKS_URL${jwt ? '' : ', not configured on this server'}): Authorization: Bearer <JWT>, tenant from AUTH_TENANT_CLAIM, scopes from the scope or scp claim (${SCOPES.join(', ')}).`,
        },
        admin: { type: 'http', scheme: 'bearer', description: 'Operators: Authorization: Bearer <ADMIN_TOKEN> (Basic with the token as password also works)' },
      },
      headers: {
        RetryAfter: { description: 'Seconds to wait before retrying', schema: { type: 'integer' } },
      },
      schemas: {
        Operation: json(operationViewSchema),
        Problem: json(problemSchema),
        OperationCompletedEvent: json(completedEventSchema),
        Limits: json(limitsSchema),
        AdminStats: json(adminStatsSchema),
        AdminSigners: json(adminSignersSchema),
      },
    },
    paths: {
      '/v1/operations': {
        post: {
          operationId: 'submitOperation',
          tags: ['operations'],
          summary: 'Submit documents for signing',
          ...scoped('operations:write'),
          parameters: [
            {
              name: 'Idempotency-Key',
              in: 'header',
              required: false,
              schema: { type: 'string', maxLength: 255 },
              description: 'Makes retries safe (per tenant, kept IDEMPOTENCY_TTL)',
            },
          ],
          requestBody: {
            required: true,
            content: {
              'multipart/form-data': {
                schema: {
                  type: 'object',
                  required: ['file'],
                  properties: { file: { type: 'array', items: { type: 'string', format: 'binary' } }, ...(fields.properties ?? {}) },
                },
              },
            },
          },
          responses: {
            202: {
              description: 'Accepted: durable on disk and in the queue',
              headers: { Location: { schema: { type: 'string' } } },
              content: { 'application/json': { schema: ref('Operation') } },
            },
            400: problem('Invalid request (fields, a `signer` field after the files, Idempotency-Key, multipart body)', [
              'VALIDATION_FAILED',
              'NO_FILES',
              'EMPTY_FILE',
              'UPLOAD_ABORTED',
              'MALFORMED_REQUEST',
            ]),
            ...forbidden('operations:write'),
            408: problem('The upload stalled (UPLOAD_IDLE_TIMEOUT) or crawled (UPLOAD_MIN_RATE); nothing was kept', ['UPLOAD_TIMEOUT']),
            409: { ...problem('Idempotency-Key in use', ['IDEMPOTENCY_KEY_IN_USE']), headers: retryAfter },
            413: problem('Over a limit (see GET /v1/limits)', ['FILE_TOO_LARGE', 'TOO_MANY_FILES', 'REQUEST_TOO_LARGE', 'TOO_MANY_FIELDS']),
            415: problem('Not multipart/form-data', ['UNSUPPORTED_MEDIA_TYPE']),
            422: problem(
              'Idempotency-Key used for another request, a webhook URL that is not an allowed target or for a tenant without a webhook signing secret, a document that cannot take the signature type (PAdES: not a PDF; XAdES: not well-formed UTF-8 XML; the problem names it in `document`, 1-based), or a signing identity that does not exist or that the tenant may not use (refused before any document is kept)',
              [
                'IDEMPOTENCY_KEY_MISMATCH',
                'WEBHOOK_URL_REFUSED',
                'WEBHOOK_SECRET_MISSING',
                'DOCUMENT_NOT_PDF',
                'DOCUMENT_NOT_XML',
                'SIGNER_UNKNOWN',
                'SIGNER_NOT_ALLOWED',
              ],
            ),
            ...common,
            429: limited(
              'Over a limit of the tenant: requests per second, uploaded bytes per second, documents waiting (BACKLOG_MAX_DOCUMENTS), requests in progress (HTTP_TENANT_MAX_CONNECTIONS)',
              ['RATE_LIMITED', 'BACKLOG_FULL', 'TOO_MANY_CONNECTIONS'],
            ),
            431: problem('Request headers too large', ['HEADERS_TOO_LARGE']),
            503: {
              ...problem('Redis or the spool is unavailable, or the upload waited UPLOAD_QUEUE_TIMEOUT for its turn to be read (nothing was kept)', [
                'SERVICE_UNAVAILABLE',
                'UPLOADS_BUSY',
              ]),
              headers: retryAfter,
            },
            507: { ...problem('Spool full', ['INSUFFICIENT_STORAGE']), headers: retryAfter },
          },
        },
        get: {
          operationId: 'listOperations',
          tags: ['operations'],
          summary: "The tenant's operations, newest first, a page at a time",
          ...scoped('operations:read'),
          parameters: queryParams(listQuerySchema),
          responses: {
            200: { description: 'One page', content: { 'application/json': { schema: pageOf(ref('Operation')) } } },
            400: problem('Bad filter or cursor', ['VALIDATION_FAILED']),
            ...forbidden('operations:read'),
            ...common,
          },
        },
      },
      '/v1/operations/{id}/documents': {
        get: {
          operationId: 'listDocuments',
          tags: ['operations'],
          summary: "An operation's documents, a page at a time",
          ...scoped('operations:read'),
          parameters: [...pathParams(operationParamsSchema), ...queryParams(documentsQuerySchema)],
          responses: {
            200: { description: 'One page', content: { 'application/json': { schema: pageOf(json(documentViewSchema)) } } },
            400: problem('Bad cursor', ['VALIDATION_FAILED']),
            ...forbidden('operations:read'),
            404: problem('No such operation', ['NOT_FOUND']),
            ...common,
          },
        },
      },
      '/v1/operations/{id}/retry': {
        post: {
          operationId: 'retryOperation',
          tags: ['operations'],
          summary: 'Re-queue failed documents of an ended operation',
          description:
            'Documents failed with a retryable code, or (`all=true`, once the cause is fixed) every failed document whose upload is kept. The operation runs again and its webhook fires again when it ends.',
          ...scoped('operations:write'),
          parameters: [...pathParams(operationParamsSchema), { name: 'all', in: 'query', required: false, schema: { type: 'boolean', default: false } }],
          responses: {
            202: ok('The operation, running again', 'Operation'),
            ...forbidden('operations:write'),
            404: problem('No such operation', ['NOT_FOUND']),
            409: problem('Not ended, or nothing to retry', ['OPERATION_NOT_TERMINAL', 'NOTHING_TO_RETRY']),
            ...common,
          },
        },
      },
      '/v1/operations/{id}': {
        get: {
          operationId: 'getOperation',
          tags: ['operations'],
          summary: 'Status and per-document results',
          ...scoped('operations:read'),
          parameters: [
            ...pathParams(operationParamsSchema),
            {
              name: 'Prefer',
              in: 'header',
              required: false,
              schema: { type: 'string', examples: ['wait=30'] },
              description: 'RFC 7240 wait=N (≤ 60 s): answer when the operation ends',
            },
          ],
          responses: {
            200: ok('The operation', 'Operation'),
            ...forbidden('operations:read'),
            404: problem('No such operation (or another tenant’s)', ['NOT_FOUND']),
            ...common,
          },
        },
        delete: {
          operationId: 'cancelOperation',
          tags: ['operations'],
          summary: 'Cancel documents not yet sent for signing',
          ...scoped('operations:write'),
          parameters: pathParams(operationParamsSchema),
          responses: {
            200: ok('The operation after cancellation', 'Operation'),
            ...forbidden('operations:write'),
            404: problem('No such operation', ['NOT_FOUND']),
            409: problem('Already ended', ['OPERATION_TERMINAL']),
            ...common,
          },
        },
      },
      '/v1/operations/{id}/documents/{docId}': {
        get: {
          operationId: 'downloadDocument',
          tags: ['operations'],
          summary: 'The signed document',
          ...scoped('operations:read'),
          parameters: pathParams(docParamsSchema),
          responses: {
            200: {
              description: 'Signed bytes (Content-Disposition: attachment)',
              content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } },
            },
            ...forbidden('operations:read'),
            404: problem('No such document, or no longer kept', ['NOT_FOUND']),
            409: problem('Not signed (yet)', ['DOCUMENT_NOT_SIGNED']),
            ...common,
          },
        },
      },
      '/v1/operations/{id}/webhook/redeliver': {
        post: {
          operationId: 'redeliverWebhook',
          tags: ['webhooks'],
          summary: 'Queue a new delivery of the operation.completed webhook (enables an endpoint disabled by 410 again)',
          ...scoped('webhooks:redeliver'),
          parameters: pathParams(operationParamsSchema),
          responses: {
            202: {
              description: 'Queued',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    properties: { deliveryId: { type: 'string' }, links: { type: 'object', properties: { operation: { type: 'string' } } } },
                  },
                },
              },
            },
            400: problem('No webhook endpoint', ['VALIDATION_FAILED']),
            ...forbidden('webhooks:redeliver'),
            404: problem('No such operation', ['NOT_FOUND']),
            409: problem('Not ended yet', ['OPERATION_NOT_TERMINAL']),
            ...common,
            429: limited('Over the requests per second, or the redeliveries of this operation per hour (REDELIVERY_LIMIT)', ['RATE_LIMITED']),
          },
        },
      },
      '/v1/limits': {
        get: {
          operationId: 'getLimits',
          tags: ['limits'],
          summary: 'Upload limits of this deployment',
          description: 'A client can refuse a file over `maxFileBytes` before sending it (the `signspool` CLI does).',
          ...scoped('operations:read'),
          responses: { 200: ok('The limits', 'Limits'), 401: common[401], ...forbidden('operations:read'), 500: common[500] },
        },
      },
      '/v1/admin/stats': {
        get: {
          operationId: 'getAdminStats',
          tags: ['admin'],
          summary: 'Backlog per tenant, oldest waiting document, documents in flight, circuit states',
          security: [{ admin: [] }],
          responses: { 200: ok('Queue statistics, read from Redis', 'AdminStats'), ...admin },
        },
      },
      '/v1/admin/signers': {
        get: {
          operationId: 'getAdminSigners',
          tags: ['admin'],
          summary: 'Each signing identity: kind, tenants, circuit state, token valid-until, last error, certificate (no secret)',
          security: [{ admin: [] }],
          responses: { 200: ok('The signing identities and their state as workers report it', 'AdminSigners'), ...admin },
        },
      },
      '/healthz': {
        get: { operationId: 'health', tags: ['service'], summary: 'Process alive', security: [], responses: { 200: { description: 'Alive' } } },
      },
      '/readyz': {
        get: {
          operationId: 'ready',
          tags: ['service'],
          summary: 'Redis reachable, spool writable with free space',
          security: [],
          responses: { 200: { description: 'Ready' }, 503: problem('Not ready', ['SERVICE_UNAVAILABLE']) },
        },
      },
      ...(metricsHere
        ? {
            '/metrics': {
              get: {
                operationId: 'metrics',
                tags: ['service'],
                summary: 'Prometheus metrics (Authorization: Bearer <METRICS_TOKEN> when set; on METRICS_PORT instead when set)',
                security: [],
                responses: {
                  200: { description: 'Text exposition', content: { 'text/plain': { schema: { type: 'string' } } } },
                  401: problem('METRICS_TOKEN is set and was not sent', ['UNAUTHORIZED']),
                },
              },
            },
          }
        : {}),
      '/docs': {
        get: {
          operationId: 'docs',
          tags: ['service'],
          summary: 'This reference, as a page',
          security: [],
          responses: { 200: { description: 'HTML', content: { 'text/html': { schema: { type: 'string' } } } } },
        },
      },
      '/docs/init.js': {
        get: {
          operationId: 'docsScript',
          tags: ['service'],
          summary: "The page's start script (no inline script: the page's CSP allows scripts from this origin only)",
          security: [],
          responses: { 200: { description: 'JavaScript', content: { 'text/javascript': { schema: { type: 'string' } } } } },
        },
      },
      '/openapi.json': {
        get: {
          operationId: 'openapi',
          tags: ['service'],
          summary: 'This document',
          security: [],
          responses: { 200: { description: 'OpenAPI 3.1', content: { 'application/json': { schema: { type: 'object' } } } } },
        },
      },
    },
    webhooks: {
      'operation.completed': {
        post: {
          operationId: 'operationCompleted',
          tags: ['webhooks'],
          summary: 'An operation ended (succeeded, partially_failed, failed or canceled)',
          description:
            'POSTed to the operation’s `webhookUrl` (or the tenant’s WEBHOOK_ENDPOINTS entry), signed per Standard Webhooks: verify `webhook-signature` over `webhook-id.webhook-timestamp.body` with the tenant’s `whsec_` secret. Only 2xx counts; 410 Gone disables the endpoint; anything else is retried on WEBHOOK_SCHEDULE with the same `webhook-id`.',
          security: [],
          parameters: [
            header('webhook-id', 'Delivery id: the same for every retry of one delivery (deduplicate on it)', {
              type: 'string',
              pattern: '^msg_[A-Za-z0-9_-]+$',
            }),
            header('webhook-timestamp', 'Unix seconds when this attempt was signed (reject old ones)', { type: 'string', pattern: '^[0-9]+$' }),
            header('webhook-signature', 'Space-separated `v1,<base64 HMAC-SHA256>` entries, one per active secret of the tenant', {
              type: 'string',
              pattern: '^v1,[A-Za-z0-9+/=]+( v1,[A-Za-z0-9+/=]+)*$',
            }),
          ],
          requestBody: { required: true, content: { 'application/json': { schema: ref('OperationCompletedEvent') } } },
          responses: {
            200: { description: 'Any 2xx acknowledges the delivery' },
            410: { description: 'Gone: the endpoint is disabled for this tenant and URL until a redelivery is requested' },
          },
        },
      },
    },
  };
};
