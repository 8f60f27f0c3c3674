/**
 * The state machine's facts, defined once: document and operation statuses, which document moves
 * are allowed, and which operation statuses are terminal. The Lua scripts receive them as a
 * generated include (redis-scripts.ts), so TypeScript and Lua cannot disagree.
 */

export const DOCUMENT_STATUSES = ['queued', 'signing', 'signed', 'failed', 'canceled'] as const;
export type DocumentStatus = (typeof DOCUMENT_STATUSES)[number];

export const OPERATION_STATUSES = ['queued', 'processing', 'succeeded', 'partially_failed', 'failed', 'canceled'] as const;
export type OperationStatus = (typeof OPERATION_STATUSES)[number];

export const TERMINAL_OPERATION_STATUSES = ['succeeded', 'partially_failed', 'failed', 'canceled'] as const satisfies readonly OperationStatus[];
export type TerminalOperationStatus = (typeof TERMINAL_OPERATION_STATUSES)[number];

/**
 * Document moves a worker or a cancel may make (the `transition` and `cancel` scripts).
 * `signing → signing` is a re-claim by another worker after a stall: it takes a new claim id, and
 * updates carrying the old claim are refused from then on. Nothing leaves `failed` here: a late
 * worker can never revive a document that ended.
 */
export const DOCUMENT_TRANSITIONS = {
  queued: ['signing', 'canceled', 'failed'],
  signing: ['signing', 'queued', 'signed', 'failed'],
  signed: [],
  failed: [],
  canceled: [],
} as const satisfies Record<DocumentStatus, readonly DocumentStatus[]>;

/**
 * Document moves only a tenant's retry may make (the `retry` script): a failed document goes back
 * to the queue, its error cleared. Kept apart from DOCUMENT_TRANSITIONS so no worker can make it.
 */
export const RETRY_TRANSITIONS = {
  failed: ['queued'],
} as const satisfies Partial<Record<DocumentStatus, readonly DocumentStatus[]>>;

export const isTerminal = (s: string): s is TerminalOperationStatus => (TERMINAL_OPERATION_STATUSES as readonly string[]).includes(s);
