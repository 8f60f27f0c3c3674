/**
 * The queue contract between api (producer) and worker (consumer): queue names, the job-name
 * union and the zod schema of each job's data. Job data carries ids, never bytes or paths (the
 * consumer derives spool paths from the ids);
 * the consumer re-validates every payload with the same schema.
 */
import { z } from 'zod';
import { DEFAULT_SIGNER, SIGNER_NAME_PATTERN } from './signers/identities.js';

export const SIGNATURE_TYPES = ['PAdES', 'CAdES', 'XAdES'] as const;
export const signatureTypeSchema = z.enum(SIGNATURE_TYPES);
export type SignatureType = z.infer<typeof signatureTypeSchema>;

export const QUEUES = {
  sign: 'sign',
  webhook: 'webhook',
} as const;
export type QueueName = (typeof QUEUES)[keyof typeof QUEUES];

const idSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);

/**
 * The W3C trace context of the span that produced a job (shared/spans.ts), so the consumer's spans
 * join or link its trace. Optional: absent when tracing is off, and in jobs queued before it existed.
 */
export const traceCarrierSchema = z.object({
  traceparent: z.string().regex(/^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$/),
  tracestate: z.string().max(512).optional(),
});
export type TraceCarrier = z.infer<typeof traceCarrierSchema>;

export const signDocumentJobSchema = z.object({
  opId: idSchema,
  docId: idSchema,
  tenant: z.string().min(1).max(64),
  signatureType: signatureTypeSchema,
  name: z.string().min(1).max(255),
  contentType: z.string().min(1).max(255),
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  acceptedAt: z.number().int().positive(),
  /**
   * The signing identity (shared/signers): required of new jobs; a job queued before identities
   * existed has none and is read as `default` (the identity of the environment), so a backlog survives the upgrade.
   */
  signer: z.string().regex(SIGNER_NAME_PATTERN).default(DEFAULT_SIGNER),
  /** The upload's trace: the batch span joins or links it. */
  trace: traceCarrierSchema.optional(),
});
export type SignDocumentJob = z.infer<typeof signDocumentJobSchema>;

export const deliverWebhookJobSchema = z.object({
  opId: idSchema,
  tenant: z.string().min(1).max(64),
  /** Standard Webhooks `webhook-id`: the same for every retry of one delivery. */
  deliveryId: idSchema,
  reason: z.enum(['completed', 'redeliver']),
  /** The operation's trace: the delivery span joins it. */
  trace: traceCarrierSchema.optional(),
});
export type DeliverWebhookJob = z.infer<typeof deliverWebhookJobSchema>;

/** Every job name, per queue, with the schema of its data. Producer and consumer share this map. */
export const JOBS = {
  'sign-document': { queue: QUEUES.sign, schema: signDocumentJobSchema },
  'deliver-webhook': { queue: QUEUES.webhook, schema: deliverWebhookJobSchema },
} as const;
export type JobName = keyof typeof JOBS;
export type JobData<N extends JobName> = z.infer<(typeof JOBS)[N]['schema']>;

export const jobNamesOf = (queue: QueueName): JobName[] => (Object.keys(JOBS) as JobName[]).filter((name) => JOBS[name].queue === queue);

/** The retry schedule's backoff type name (the worker implements it). */
export const WEBHOOK_BACKOFF = 'webhook-schedule';

/**
 * Enqueues the delivery of `operation.completed`. The job id makes the first delivery of an
 * operation unique even if several processes see it end; a redelivery gets a new id. A delivered
 * job is removed at once (its attempts are in the operation's delivery log, which expires with the
 * record); a job that used up its attempts stays 7 days for operators to inspect.
 */
export const enqueueWebhook = async (
  queue: { add: (name: 'deliver-webhook', data: DeliverWebhookJob, opts: Record<string, unknown>) => Promise<unknown> },
  job: DeliverWebhookJob,
  attempts: number,
): Promise<void> => {
  await queue.add('deliver-webhook', deliverWebhookJobSchema.parse(job), {
    jobId: job.deliveryId,
    attempts,
    backoff: { type: WEBHOOK_BACKOFF },
    removeOnComplete: true,
    removeOnFail: { age: 7 * 24 * 3600 },
  });
};

/** The delivery id of `operation.completed` for the operation's `round`-th end (0: first, n: after the n-th retry). */
export const completedDeliveryId = (opId: string, round = 0): string => `msg_${opId.replace(/^op_/, '')}${round === 0 ? '' : `_r${round}`}`;

/** A document's sign job id: its id, and the retry round after a retry, so a document is enqueued at most once per round. */
export const signJobId = (docId: string, round = 0): string => (round === 0 ? docId : `${docId}-r${round}`);

/**
 * Checks, at start, that every job name of `queue` has exactly one handler and that no handler
 * names an unknown job. Throws with the offending names.
 */
export const assertHandlers = (queue: QueueName, handlers: readonly string[]): void => {
  const expected = jobNamesOf(queue);
  const counts = new Map<string, number>();
  for (const h of handlers) counts.set(h, (counts.get(h) ?? 0) + 1);
  const missing = expected.filter((n) => !counts.has(n));
  const duplicated = [...counts].filter(([, c]) => c > 1).map(([n]) => n);
  const unknown = [...counts.keys()].filter((n) => !expected.includes(n as JobName));
  if (missing.length || duplicated.length || unknown.length) {
    throw new Error(
      `queue ${queue}: job handlers do not match the job names (missing: ${missing.join(',') || '-'}; duplicated: ${duplicated.join(',') || '-'}; unknown: ${unknown.join(',') || '-'})`,
    );
  }
};

export const parseJobData = <N extends JobName>(name: N, data: unknown): JobData<N> => JOBS[name].schema.parse(data) as JobData<N>;
