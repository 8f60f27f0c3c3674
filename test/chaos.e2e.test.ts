/**
 * The chaos suite's short form (`npm run chaos` runs every scenario at full size): the fast
 * scenarios with few documents, each with real processes (api, workers, its own redis-server with
 * AOF) and the fake upstream, asserting every target column of the row (and the scenario's own
 * checks). A scenario whose fix has not landed yet is listed in KNOWN_MISSES with the columns it
 * misses: those columns are asserted to still miss (so the entry fails the run once the fix lands
 * and must be removed), every other column is asserted as usual, and the misses are printed loudly.
 */
import { afterAll, describe, it } from 'vitest';
import { runScenario, targetFigures, type ScenarioResult } from './chaos/driver.js';
import { scenarioNamed } from './chaos/scenarios/index.js';
import { chaosSettings } from './chaos/settings.js';
import { formatTable } from './chaos/table.js';

/**
 * Target labels (TARGETS in chaos/driver.ts, or a scenario check's label) that miss until the
 * named fix lands, for some scenarios ('*': every one). Each listed label MUST miss (and by at
 * most `atMost` when given: more than that is a new miss): when it meets its target, the test
 * fails until the entry is removed.
 */
interface KnownMiss {
  scenarios: string[] | '*';
  labels: string[];
  until: string;
  atMost?: number;
}

export const KNOWN_MISSES: KnownMiss[] = [];

/** The known misses of one scenario: label → what it waits for and by how much it may miss (undefined: any). */
const knownMissesOf = (scenario: string): Map<string, { until: string[]; atMost: number | undefined }> => {
  const out = new Map<string, { until: string[]; atMost: number | undefined }>();
  for (const k of KNOWN_MISSES) {
    if (k.scenarios !== '*' && !k.scenarios.includes(scenario)) continue;
    for (const label of k.labels) {
      const seen = out.get(label);
      const atMost = k.atMost === undefined || (seen && seen.atMost === undefined) ? undefined : (seen?.atMost ?? 0) + k.atMost;
      out.set(label, { until: [...(seen?.until ?? []), k.until], atMost });
    }
  }
  return out;
};

/** The fast scenarios; the slow ones (long outages, tmpfs spools, SIGTERM rollouts) run only under `npm run chaos`. */
export const SHORT = [
  'worker-sigkill-x3',
  'redis-down',
  'redis-hung',
  'upstream-outage',
  'upstream-partial-malformed',
  'upstream-hang-past-timeouts',
  'api-sigkill-mid-upload',
  'webhooks-receiver-500-killed',
];
process.env['CHAOS_OUTAGE_MS'] ??= '20000';
process.env['CHAOS_REDIS_DOWN_MS'] ??= '6000';
process.env['CHAOS_REDIS_HUNG_MS'] ??= '8000';

/** Two scenarios at a time (three stacks starting at once did not get ready within 90 s on the shared 2-core machine). */
const LANES = 2;
let free = LANES;
const waiting: (() => void)[] = [];
const lane = async <T>(run: () => Promise<T>): Promise<T> => {
  if (free === 0) await new Promise<void>((resolve) => waiting.push(resolve));
  else free -= 1;
  try {
    return await run();
  } finally {
    const next = waiting.shift();
    if (next) next();
    else free += 1;
  }
};

describe.concurrent('chaos (short form): every acknowledged document gets one correct answer', () => {
  const rows: ScenarioResult[] = [];
  const loud: string[] = [];
  const settings = chaosSettings('short');
  afterAll(() => {
    rows.sort((a, b) => SHORT.indexOf(a.scenario) - SHORT.indexOf(b.scenario));
    if (rows.length) console.log(`chaos (short)\n${formatTable(rows)}`);
    if (loud.length) console.warn(`\n!!! chaos: KNOWN MISSES (targets not met, listed in KNOWN_MISSES of test/chaos.e2e.test.ts):\n${loud.join('\n')}\n`);
  });

  for (const name of SHORT) {
    const known = knownMissesOf(name);
    const title = known.size ? ` (KNOWN MISSES: ${[...known.keys()].join(', ')})` : '';
    it(`${name}: targets met${title}`, { timeout: 900_000 }, async ({ expect }) => {
      const row = await lane(() => runScenario(scenarioNamed(name), settings, () => undefined));
      rows.push(row);
      expect(row.result, row.notes.join('\n')).not.toBe('ERROR');
      expect(row.acknowledged).toBeGreaterThan(0);
      const figures = targetFigures(row);
      for (const [label, k] of known) {
        expect(figures, `KNOWN_MISSES names "${label}", which ${name} has no such target`).toHaveProperty([label]);
        loud.push(`${name}: ${label} ${figures[label] ?? '?'} (until ${k.until.join('; and ')})`);
      }
      const met = [...known.keys()].filter((label) => figures[label] === 0);
      expect(met, `${name}: now meets its target; remove it from KNOWN_MISSES`).toEqual([]);
      const beyond = [...known]
        .filter(([label, k]) => k.atMost !== undefined && (figures[label] ?? 0) > k.atMost)
        .map(([label]) => `${label} ${figures[label]}`);
      expect(beyond, `${name}: misses by more than KNOWN_MISSES explains\n${row.notes.join('\n')}`).toEqual([]);
      const asserted = Object.fromEntries(Object.entries(figures).filter(([label]) => !known.has(label)));
      expect(asserted, row.notes.join('\n')).toEqual(Object.fromEntries(Object.keys(asserted).map((c) => [c, 0])));
    });
  }
});
