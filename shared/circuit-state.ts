/**
 * Workers' upstream circuit states, published to Redis so the api (which holds no circuit) can
 * report them in GET /v1/admin/stats. One hash per queue prefix: field = worker id, value = state
 * and expiry. A closed circuit removes its field (no field = closed); an open or half-open one
 * expires after `ttlMs`, so a worker that died with an open circuit stops being reported.
 * A worker has one circuit per signing identity: the first hash holds the worst of them (what
 * GET /v1/admin/stats reports), a second one each identity's state (GET /v1/admin/signers).
 */
import os from 'node:os';
import type { Redis } from 'ioredis';
import { keys } from './redis/keys.js';

export type PublishedCircuitState = 'closed' | 'open' | 'half_open';

export interface WorkerCircuit {
  worker: string;
  state: Exclude<PublishedCircuitState, 'closed'>;
  since: string;
}

const key = keys.circuits;

/** This process's id in the hash: host and pid. */
export const workerIdentity = (): string => `${os.hostname()}:${process.pid}`;

/** Records a worker's state; never throws (a status report must not break the worker). */
export const publishCircuitState = async (
  redis: Redis,
  prefix: string,
  state: PublishedCircuitState,
  ttlMs: number,
  worker = workerIdentity(),
): Promise<void> => {
  try {
    if (state === 'closed') await redis.hdel(key(prefix), worker);
    else {
      const now = Date.now();
      // The hash goes by itself once no worker renews it (every worker of the prefix killed).
      await redis
        .multi()
        .hset(key(prefix), worker, JSON.stringify({ state, since: now, until: now + ttlMs }))
        .pexpire(key(prefix), ttlMs)
        .exec();
    }
  } catch {
    // Redis unavailable: the next change publishes again.
  }
};

/** Open and half-open circuits of live workers; expired entries are removed on the way. */
export const readCircuitStates = async (redis: Redis, prefix: string, now = Date.now()): Promise<WorkerCircuit[]> => {
  const all = await redis.hgetall(key(prefix));
  const out: WorkerCircuit[] = [];
  const expired: string[] = [];
  for (const [worker, raw] of Object.entries(all)) {
    let entry: { state?: unknown; since?: unknown; until?: unknown };
    try {
      entry = JSON.parse(raw) as typeof entry;
    } catch {
      expired.push(worker);
      continue;
    }
    const state = entry.state === 'open' || entry.state === 'half_open' ? entry.state : undefined;
    if (!state || typeof entry.until !== 'number' || entry.until <= now || typeof entry.since !== 'number') {
      expired.push(worker);
      continue;
    }
    out.push({ worker, state, since: new Date(entry.since).toISOString() });
  }
  if (expired.length > 0) await redis.hdel(key(prefix), ...expired);
  return out.sort((a, b) => a.worker.localeCompare(b.worker));
};

/** The state of one signing identity as a worker sees it (published for GET /v1/admin/signers). */
export interface SignerState {
  circuit: PublishedCircuitState;
  /** When the identity's OAuth token expires (ms since the epoch; Sign'Stash identities that hold one). */
  tokenValidUntil?: number;
  /** The last failure of a call or a document of this identity: its catalog code and when (ms since the epoch). */
  lastError?: { code: string; at: number };
  /** Local identities: the certificate the worker signs with. */
  certificate?: { subject: string; notAfter: number };
}

const signersKey = keys.signerStates;
const FIELD_SEP = '\u0000';

/**
 * Records what this worker knows of each identity it signs for (a heartbeat: the entry expires
 * after `ttlMs` unless published again). Never throws.
 */
export const publishSignerStates = async (
  redis: Redis,
  prefix: string,
  states: Record<string, SignerState>,
  ttlMs: number,
  worker = workerIdentity(),
): Promise<void> => {
  const until = Date.now() + ttlMs;
  const entries = Object.entries(states).flatMap(([signer, s]) => [`${signer}${FIELD_SEP}${worker}`, JSON.stringify({ ...s, until })]);
  try {
    // The hash goes by itself once no worker renews it (every worker of the prefix killed).
    if (entries.length > 0)
      await redis
        .multi()
        .hset(signersKey(prefix), ...entries)
        .pexpire(signersKey(prefix), ttlMs)
        .exec();
  } catch {
    // Redis unavailable: the next heartbeat publishes again.
  }
};

/** Removes this worker's entries of identities it no longer signs for (removed by a reload). Never throws. */
export const forgetSignerStates = async (redis: Redis, prefix: string, signers: readonly string[], worker = workerIdentity()): Promise<void> => {
  try {
    if (signers.length > 0) await redis.hdel(signersKey(prefix), ...signers.map((s) => `${s}${FIELD_SEP}${worker}`));
  } catch {
    // Redis unavailable: the entries expire.
  }
};

const severity: Record<PublishedCircuitState, number> = { closed: 0, half_open: 1, open: 2 };

/**
 * Each identity's state over the live workers: the worst circuit (open > half_open > closed), the
 * latest token expiry and the latest error; identities no live worker reported are absent (a
 * worker that never signed for one has nothing to say of it). Expired entries are removed.
 */
export const readSignerStates = async (redis: Redis, prefix: string, now = Date.now()): Promise<Record<string, SignerState>> => {
  const all = await redis.hgetall(signersKey(prefix));
  const out: Record<string, SignerState> = {};
  const expired: string[] = [];
  for (const [field, raw] of Object.entries(all)) {
    const signer = field.split(FIELD_SEP)[0] ?? '';
    let s: SignerState & { until?: unknown };
    try {
      s = JSON.parse(raw) as typeof s;
    } catch {
      expired.push(field);
      continue;
    }
    if (typeof s.until !== 'number' || s.until <= now || !(s.circuit in severity)) {
      expired.push(field);
      continue;
    }
    const seen = out[signer];
    const merged: SignerState = { circuit: seen && severity[seen.circuit] > severity[s.circuit] ? seen.circuit : s.circuit };
    const token = Math.max(seen?.tokenValidUntil ?? 0, s.tokenValidUntil ?? 0);
    if (token > 0) merged.tokenValidUntil = token;
    const lastError = [seen?.lastError, s.lastError].filter((e) => e !== undefined).sort((a, b) => b.at - a.at)[0];
    if (lastError) merged.lastError = { code: lastError.code, at: lastError.at };
    const certificate = s.certificate ?? seen?.certificate;
    if (certificate) merged.certificate = { subject: certificate.subject, notAfter: certificate.notAfter };
    out[signer] = merged;
  }
  if (expired.length > 0) await redis.hdel(signersKey(prefix), ...expired);
  return out;
};
