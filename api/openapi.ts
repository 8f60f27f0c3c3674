/**
 * The OpenAPI 3.1 document of the api, built from the same zod schemas the routes validate with
 * (request fields, path parameters) and zod schemas of the responses (checked against real
 * responses by the tests). Served at /openapi.json.
 */
import { z } from 'zod';
import { errorCatalog, type ErrorCode } from '@signspool/shared/errors';
import { DOCUMENT_STATUSES, OPERATION_STATUSES } from '@signspool/shared/operations';
import { docParamsSchema, operationParamsSchema, submitFieldsSchema } from './routes/operations.js';

const isoDate = z.string().describe('RFC 3339 timestamp');

export const documentViewSchema = z.object({
  id: z.string(),
  name: z.string(),
  contentType: z.string(),
  size: z.number().int(),
  sha256: z.string(),
  status: z.enum(DOCUMENT_STATUSES),
  error: z
    .object({ code: z.string(), message: z.string() })
    .describe(
      'Why the document failed: a code of the catalog, e.g. DOCUMENT_NOT_SIGNABLE (the local signer cannot add this signature, e.g. an encrypted PDF), TSA_UNAVAILABLE / TSA_REJECTED / TSA_BAD_RESPONSE (time-stamp authority), SPOOL_FILE_CORRUPT, UPSTREAM_*',
    )
    .optional(),
  signed: z
    .object({
      size: z.number().int(),
      sha256: z.string(),
      contentType: z.string().describe('application/pdf (PAdES), application/xml (XAdES), application/pkcs7-signature (CAdES detached, .p7s) or application/pkcs7-mime (CAdES attached, .p7m)'),
      fileName: z.string(),
      signedAt: isoDate,
      href: z.string(),
    })
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

const pathParams = (schema: z.ZodObject) =>
  Object.entries(schema.shape).map(([name, s]) => ({ name, in: 'path', required: true, schema: json(s as z.ZodType) }));

const common = {
  401: problem('Missing or invalid API key', ['UNAUTHORIZED']),
  503: problem('Redis or the spool is unavailable', ['SERVICE_UNAVAILABLE']),
  500: problem('Internal error', ['INTERNAL']),
};

export const buildOpenApi = (serverUrl?: string) => {
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
    security: [{ bearer: [] }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'API key: Authorization: Bearer <key>' } },
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
            400: problem('Invalid request', ['VALIDATION_FAILED', 'NO_FILES', 'UPLOAD_ABORTED']),
            409: problem('Idempotency-Key in use', ['IDEMPOTENCY_KEY_IN_USE']),
            413: problem('Over a limit', ['FILE_TOO_LARGE', 'TOO_MANY_FILES', 'REQUEST_TOO_LARGE', 'TOO_MANY_FIELDS']),
            415: problem('Not multipart/form-data', ['UNSUPPORTED_MEDIA_TYPE']),
            422: problem(
              'Idempotency-Key used for another request, or a document that cannot take the signature type (PAdES: not a PDF; XAdES: not well-formed UTF-8 XML; the problem names it in `document`, 1-based)',
              ['IDEMPOTENCY_KEY_MISMATCH', 'DOCUMENT_NOT_PDF', 'DOCUMENT_NOT_XML'],
            ),
            507: problem('Spool full', ['INSUFFICIENT_STORAGE']),
            ...common,
          },
        },
      },
      '/v1/operations/{id}': {
        get: {
          operationId: 'getOperation',
          summary: 'Status and per-document results',
          parameters: [
            ...pathParams(operationParamsSchema),
            { name: 'Prefer', in: 'header', required: false, schema: { type: 'string', example: 'wait=30' }, description: 'RFC 7240 wait=N (≤ 60 s): answer when the operation ends' },
          ],
          responses: {
            200: { description: 'The operation', content: { 'application/json': { schema: { $ref: '#/components/schemas/Operation' } } } },
            404: problem('No such operation (or another tenant’s)', ['NOT_FOUND']),
            ...common,
          },
        },
        delete: {
          operationId: 'cancelOperation',
          summary: 'Cancel documents not yet sent for signing',
          parameters: pathParams(operationParamsSchema),
          responses: {
            200: { description: 'The operation after cancellation', content: { 'application/json': { schema: { $ref: '#/components/schemas/Operation' } } } },
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
          parameters: pathParams(docParamsSchema),
          responses: {
            200: { description: 'Signed bytes (Content-Disposition: attachment)', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
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
          parameters: pathParams(operationParamsSchema),
          responses: {
            202: { description: 'Queued', content: { 'application/json': { schema: { type: 'object', properties: { deliveryId: { type: 'string' } } } } } },
            400: problem('No webhook endpoint', ['VALIDATION_FAILED']),
            404: problem('No such operation', ['NOT_FOUND']),
            409: problem('Not ended yet', ['OPERATION_NOT_TERMINAL']),
            ...common,
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
      '/metrics': { get: { operationId: 'metrics', summary: 'Prometheus metrics', security: [], responses: { 200: { description: 'Text exposition' } } } },
      '/docs': { get: { operationId: 'docs', summary: 'This reference, as a page', security: [], responses: { 200: { description: 'HTML' } } } },
      '/openapi.json': { get: { operationId: 'openapi', summary: 'This document', security: [], responses: { 200: { description: 'OpenAPI 3.1' } } } },
    },
  };
};
