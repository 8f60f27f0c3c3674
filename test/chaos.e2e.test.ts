/**
 * The chaos suite's short form (`npm run chaos` runs every scenario at full size): three scenarios
 * with few documents, each with real processes (api, workers, its own redis-server
 * with AOF) and the fake upstream, asserting the targets of issue 12 on every column. A scenario listed in
 * PENDING_FIXES is still run and printed, and every column not listed for it is still asserted.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { runScenario, type ScenarioResult } from './chaos/driver.js';
import { scenarioNamed } from './chaos/scenarios/index.js';
import { chaosSettings } from './chaos/settings.js';
import { formatTable } from './chaos/table.js';

type Column = 'lost' | 'wrong' | 'failed' | 'stuck' | 'unverified' | 'http5xx' | 'ghost' | 'filesLeft' | 'keysLeft';
const COLUMNS: Column[] = ['lost', 'wrong', 'failed', 'stuck', 'unverified', 'http5xx', 'ghost', 'filesLeft', 'keysLeft'];

/**
 * Columns that miss their target until the fixes of issue 12 land (empty this as they do):
 * - worker-sigkill-x3: a SIGKILLed worker's spares stay in tmp/ (defect 7);
 * - redis-down: routes answer 500 while Redis is down, and a failed POST leaves its idempotency
 *   key and failed jobs behind (defect 3);
 * - upstream-outage: documents fail UPSTREAM_UNAVAILABLE instead of waiting (circuit breaker),
 *   and their failed jobs outlive RETENTION.
 */
export const PENDING_FIXES: Record<string, Column[]> = {};

const SHORT = ['worker-sigkill-x3', 'redis-down', 'upstream-outage'];
process.env['CHAOS_OUTAGE_MS'] ??= '20000';
process.env['CHAOS_REDIS_DOWN_MS'] ??= '6000';

// One after the other: side by side, three stacks starting at once did not get ready within 90 s on the shared machine.
describe('chaos (short form): every acknowledged document gets one correct answer', () => {
  const rows: ScenarioResult[] = [];
  const settings = chaosSettings('short');
  afterAll(() => {
    if (rows.length) console.log(`chaos (short)\n${formatTable(rows)}`);
  });

  for (const name of SHORT) {
    it(`${name}: targets met${PENDING_FIXES[name] ? ` (pending fixes: ${PENDING_FIXES[name].join(', ')})` : ''}`, { timeout: 300_000 }, async () => {
      const row = await runScenario(scenarioNamed(name), settings, () => undefined);
      rows.push(row);
      expect(row.result, row.notes.join('\n')).not.toBe('ERROR');
      expect(row.acknowledged).toBeGreaterThan(0);
      const pending = PENDING_FIXES[name] ?? [];
      const asserted = Object.fromEntries(COLUMNS.filter((c) => !pending.includes(c)).map((c) => [c, row[c]]));
      expect(asserted, row.notes.join('\n')).toEqual(Object.fromEntries(Object.keys(asserted).map((c) => [c, 0])));
    });
  }
});
