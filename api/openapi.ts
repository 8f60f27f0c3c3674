/**
 * The OpenAPI 3.1 document of the api, built from the same zod schemas the routes validate with
 * (request fields, path parameters) and zod schemas of the responses (checked against real
 * responses by the tests). Served at /openapi.json.
 */
import { z } from 'zod';
import { errorCatalog, type ErrorCode } from '@signspool/shared/errors';
import { SCOPES, type Scope } from '@signspool/shared/api-key';
import { DOCUMENT_STATUSES, OPERATION_STATUSES } from '@signspool/shared/operation-states';
import { docParamsSchema, documentsQuerySchema, listQuerySchema, operationParamsSchema, submitFieldsSchema } from './routes/operations.js';

const isoDate = z.string().describe('RFC 3339 timestamp');

export const documentViewSchema = z.object({
  id: z.string(),
  name: z.string(),
  contentType: z.string(),
  size: z.number().int(),
  sha256: z.string(),
  status: z.enum(DOCUMENT_STATUSES),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  signed: z
    .object({ size: z.number().int(), sha256: z.string(), contentType: z.string(), fileName: z.string(), signedAt: isoDate, href: z.string() })
    .optional(),
});

export const operationViewSchema = z.object({
  id: z.string(),
  status: z.enum(OPERATION_STATUSES),
  signatureType: z.enum(['PAdES', 'CAdES', 'XAdES']),
  externalReference: z.string().nullable(),
  createdAt: isoDate,
  updatedAt: isoDate,
  completedAt: isoDate.nullable(),
  counts: z.record(z.string(), z.number().int()),
  documents: z.array(documentViewSchema),
  webhook: z
    .object({
      url: z.string(),
      deliveries: z.array(
        z.object({
          deliveryId: z.string(),
          attempt: z.number().int(),
          at: isoDate,
          url: z.string(),
          status: z.number().int().nullable(),
          latencyMs: z.number(),
          outcome: z.enum(['delivered', 'failed', 'refused', 'disabled']),
          error: z.string().optional(),
        }),
      ),
    })
    .nullable(),
  links: z.object({ self: z.string() }),
});

export const problemSchema = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  code: z.enum(Object.keys(errorCatalog) as [ErrorCode, ...ErrorCode[]]),
  retryable: z.boolean(),
  instance: z.string().optional(),
});

const json = (schema: z.ZodType) => z.toJSONSchema(schema, { target: 'draft-2020-12', unrepresentable: 'any' });

const problem = (description: string, codes: ErrorCode[]) => ({
  description: `${description} (codes: ${codes.join(', ')})`,
  content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
});

const queryParams = (schema: z.ZodObject) =>
  Object.entries(schema.shape).map(([name, s]) => ({ name, in: 'query', required: false, schema: json(s as z.ZodType) }));

const pageOf = (item: Record<string, unknown>) => ({
  type: 'object',
  required: ['data', 'has_more', 'next_cursor'],
  properties: { data: { type: 'array', items: item }, has_more: { type: 'boolean' }, next_cursor: { type: ['string', 'null'], description: 'Pass as starting_after for the next page' } },
});

const pathParams = (schema: z.ZodObject) =>
  Object.entries(schema.shape).map(([name, s]) => ({ name, in: 'path', required: true, schema: json(s as z.ZodType) }));

/** A 429: Retry-After and the IETF RateLimit fields name the limit (api/rate-limits.ts). */
const limited = (description: string, codes: ErrorCode[]) => ({
  ...problem(description, codes),
  headers: {
    'Retry-After': { schema: { type: 'integer' }, description: 'Seconds to wait' },
    'RateLimit-Policy': { schema: { type: 'string' }, description: 'The limit, e.g. `"requests";q=100;w=1` (draft-ietf-httpapi-ratelimit-headers)' },
    RateLimit: { schema: { type: 'string' }, description: 'What is left of it, e.g. `"requests";r=0;t=1`' },
  },
});

const common = {
  401: problem('Missing or invalid API key or token (WWW-Authenticate: Bearer, RFC 6750)', ['UNAUTHORIZED']),
  429: limited("Over the tenant's requests per second (RATE_LIMIT_REQUESTS)", ['RATE_LIMITED']),
  503: problem('Redis or the spool is unavailable', ['SERVICE_UNAVAILABLE']),
  500: problem('Internal error', ['INTERNAL']),
};

/** Each route's scope: 403 names it, and both schemes list it. */
const scoped = (scope: Scope) => ({
  security: [{ bearer: [scope] }, { jwt: [scope] }],
  'x-required-scope': scope,
});

const forbidden = (scope: Scope) => ({ 403: problem(`The credential lacks the ${scope} scope (WWW-Authenticate: error="insufficient_scope")`, ['INSUFFICIENT_SCOPE']) });

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
    },
    ...(serverUrl ? { servers: [{ url: serverUrl }] } : {}),
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
      },
      schemas: {
        Operation: json(operationViewSchema),
        Problem: json(problemSchema),
        ErrorCodes: { type: 'string', enum: Object.keys(errorCatalog), description: 'Every code of the error catalog' },
      },
    },
    paths: {
      '/v1/operations': {
        post: {
          operationId: 'submitOperation',
          summary: 'Submit documents for signing',
          ...scoped('operations:write'),
          parameters: [
            { name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string', maxLength: 255 }, description: 'Makes retries safe (per tenant, kept IDEMPOTENCY_TTL)' },
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
              content: { 'application/json': { schema: { $ref: '#/components/schemas/Operation' } } },
            },
            400: problem('Invalid request', ['VALIDATION_FAILED', 'NO_FILES', 'EMPTY_FILE', 'UPLOAD_ABORTED', 'MALFORMED_REQUEST']),
            408: problem('The upload stalled (UPLOAD_IDLE_TIMEOUT) or crawled (UPLOAD_MIN_RATE); nothing was kept', ['UPLOAD_TIMEOUT']),
            409: problem('Idempotency-Key in use', ['IDEMPOTENCY_KEY_IN_USE']),
            413: problem('Over a limit', ['FILE_TOO_LARGE', 'TOO_MANY_FILES', 'REQUEST_TOO_LARGE', 'TOO_MANY_FIELDS']),
            ...forbidden('operations:write'),
            415: problem('Not multipart/form-data', ['UNSUPPORTED_MEDIA_TYPE']),
            422: problem('Idempotency-Key used for another request, or a webhook URL that is not an allowed target', ['IDEMPOTENCY_KEY_MISMATCH', 'WEBHOOK_URL_REFUSED']),
            ...common,
            429: limited("Over a limit of the tenant: requests per second, uploaded bytes per second, documents waiting (BACKLOG_MAX_DOCUMENTS)", ['RATE_LIMITED', 'BACKLOG_FULL']),
            431: problem('Request headers too large', ['HEADERS_TOO_LARGE']),
            507: problem('Spool full', ['INSUFFICIENT_STORAGE']),
          },
        },
        get: {
          operationId: 'listOperations',
          summary: "The tenant's operations, newest first, a page at a time",
          ...scoped('operations:read'),
          parameters: queryParams(listQuerySchema),
          responses: {
            200: { description: 'One page', content: { 'application/json': { schema: pageOf({ $ref: '#/components/schemas/Operation' }) } } },
            400: problem('Bad filter or cursor', ['VALIDATION_FAILED']),
            ...forbidden('operations:read'),
            ...common,
          },
        },
      },
      '/v1/operations/{id}/documents': {
        get: {
          operationId: 'listDocuments',
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
          summary: 'Re-queue failed documents of an ended operation',
          description: 'Documents failed with a retryable code, or (`all=true`, once the cause is fixed) every failed document whose upload is kept. The operation runs again and its webhook fires again when it ends.',
          ...scoped('operations:write'),
          parameters: [...pathParams(operationParamsSchema), { name: 'all', in: 'query', required: false, schema: { type: 'boolean' } }],
          responses: {
            202: { description: 'The operation, running again', content: { 'application/json': { schema: { $ref: '#/components/schemas/Operation' } } } },
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
          summary: 'Status and per-document results',
          ...scoped('operations:read'),
          parameters: [
            ...pathParams(operationParamsSchema),
            { name: 'Prefer', in: 'header', required: false, schema: { type: 'string', example: 'wait=30' }, description: 'RFC 7240 wait=N (≤ 60 s): answer when the operation ends' },
          ],
          responses: {
            200: { description: 'The operation', content: { 'application/json': { schema: { $ref: '#/components/schemas/Operation' } } } },
            ...forbidden('operations:read'),
            404: problem('No such operation (or another tenant’s)', ['NOT_FOUND']),
            ...common,
          },
        },
        delete: {
          operationId: 'cancelOperation',
          summary: 'Cancel documents not yet sent for signing',
          ...scoped('operations:write'),
          parameters: pathParams(operationParamsSchema),
          responses: {
            200: { description: 'The operation after cancellation', content: { 'application/json': { schema: { $ref: '#/components/schemas/Operation' } } } },
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
          summary: 'The signed document',
          ...scoped('operations:read'),
          parameters: pathParams(docParamsSchema),
          responses: {
            200: { description: 'Signed bytes (Content-Disposition: attachment)', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
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
          summary: 'Queue a new delivery of the operation.completed webhook',
          ...scoped('webhooks:redeliver'),
          parameters: pathParams(operationParamsSchema),
          responses: {
            202: { description: 'Queued', content: { 'application/json': { schema: { type: 'object', properties: { deliveryId: { type: 'string' } } } } } },
            400: problem('No webhook endpoint', ['VALIDATION_FAILED']),
            ...forbidden('webhooks:redeliver'),
            404: problem('No such operation', ['NOT_FOUND']),
            409: problem('Not ended yet', ['OPERATION_NOT_TERMINAL']),
            ...common,
            429: limited('Over the requests per second, or the redeliveries of this operation per hour (REDELIVERY_LIMIT)', ['RATE_LIMITED']),
          },
        },
      },
      '/healthz': { get: { operationId: 'health', summary: 'Process alive', security: [], responses: { 200: { description: 'Alive' } } } },
      '/readyz': {
        get: {
          operationId: 'ready',
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
                summary: 'Prometheus metrics (Authorization: Bearer <METRICS_TOKEN> when set; on METRICS_PORT instead when set)',
                security: [],
                responses: { 200: { description: 'Text exposition' }, 401: problem('METRICS_TOKEN is set and was not sent', ['UNAUTHORIZED']) },
              },
            },
          }
        : {}),
      '/docs': { get: { operationId: 'docs', summary: 'This reference, as a page', security: [], responses: { 200: { description: 'HTML' } } } },
      '/docs/init.js': { get: { operationId: 'docsScript', summary: "The page's start script (no inline script: the page's CSP allows scripts from this origin only)", security: [], responses: { 200: { description: 'JavaScript' } } } },
      '/openapi.json': { get: { operationId: 'openapi', summary: 'This document', security: [], responses: { 200: { description: 'OpenAPI 3.1' } } } },
    },
  };
};
