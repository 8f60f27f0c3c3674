/** Prints the chaos suite's results as one table row per scenario (markdown, like the bench's). */
import type { ScenarioResult } from './driver.js';

const COLUMNS: [string, (r: ScenarioResult) => string][] = [
  ['scenario', (r) => r.scenario],
  ['acked', (r) => String(r.acknowledged)],
  ['lost', (r) => String(r.lost)],
  ['wrong bytes', (r) => String(r.wrong)],
  ['failed', (r) => String(r.failed)],
  ['stuck', (r) => String(r.stuck)],
  ['unverified', (r) => String(r.unverified)],
  ['5xx (not 503/507)', (r) => String(r.http5xx)],
  ['no answer', (r) => String(r.noAnswer)],
  ['503 without Retry-After', (r) => String(r.unavailableNoRetryAfter)],
  ['crashes', (r) => String(r.crashes)],
  ['processed without 202', (r) => String(r.ghost)],
  ['files left (stop / kill)', (r) => `${r.filesLeft} / ${r.filesLeftKill}`],
  ['keys left (stop / kill)', (r) => `${r.keysLeft} / ${r.keysLeftKill}`],
  [
    'scenario checks',
    (r) =>
      Object.entries(r.checks)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ') || '-',
  ],
  ['signed >1 upstream', (r) => String(r.multiSigned)],
  ['refused / cut', (r) => `${r.refused} / ${r.cut}`],
  ['s', (r) => r.durationS.toFixed(0)],
  ['result', (r) => (r.misses.length ? `${r.result} (${r.misses.join(', ')})` : r.result)],
];

export const formatTable = (rows: ScenarioResult[]): string => {
  const skipped = (r: ScenarioResult): boolean => r.result === 'SKIP' || r.result === 'ERROR';
  const lines = [`| ${COLUMNS.map((c) => c[0]).join(' | ')} |`, `| ${COLUMNS.map(() => '---').join(' | ')} |`];
  for (const r of rows) lines.push(`| ${COLUMNS.map(([name, f]) => (skipped(r) && !['scenario', 's', 'result'].includes(name) ? '' : f(r))).join(' | ')} |`);
  const notes = rows.flatMap((r) => r.notes.map((n) => `- ${r.scenario}: ${n}`));
  return [
    ...lines,
    '',
    'Targets: lost, wrong bytes, failed, stuck, unverified, 5xx, no answer, 503 without Retry-After, crashes, processed without 202, files and keys left (after a graceful stop and at a kill) and every scenario check all 0; signed >1 upstream and refused / cut are counted without a target.',
    ...(notes.length ? ['', 'Notes:', ...notes] : []),
  ].join('\n');
};
