/**
 * The two sizes of the chaos suite: `full` (`npm run chaos`) and `short` (inside `npm test`).
 * Environment overrides: CHAOS_DOCS, CHAOS_RATE (documents/s), CHAOS_WORKERS, CHAOS_RETENTION_MS,
 * CHAOS_SETTLE_MS, CHAOS_LOG_DIR (keeps every process's output); scenario durations: CHAOS_OUTAGE_MS, CHAOS_REDIS_DOWN_MS, CHAOS_REDIS_HUNG_MS.
 */
import type { ChaosSettings } from './driver.js';

const num = (name: string, def: number): number => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(raw)}`);
  return n;
};

export const chaosSettings = (size: 'full' | 'short'): ChaosSettings => {
  const full = size === 'full';
  // Retention must outlast the time between an operation's end and the driver seeing it (it
  // downloads at once); the janitor's grace stays above an upload's duration.
  // The short form's 15 s keeps `npm test` short; scenarios that restart the api keep 30 s (the api
  // may be unreachable that long on a busy machine).
  const retentionMs = num('CHAOS_RETENTION_MS', full ? 30_000 : 15_000);
  return {
    docs: num('CHAOS_DOCS', full ? 400 : 60),
    docsPerOp: 2,
    docsPerSec: num('CHAOS_RATE', full ? 20 : 12),
    workers: num('CHAOS_WORKERS', 2),
    retentionMs,
    janitorIntervalMs: 1000,
    orphanGraceMs: retentionMs,
    settleTimeoutMs: num('CHAOS_SETTLE_MS', full ? 180_000 : 60_000),
    appendFsync: 'everysec',
    fake: { perRequestMs: 500, bytesPerSec: 500e6 },
    env: {},
  };
};
