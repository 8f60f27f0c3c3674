/**
 * `npm run chaos`: every scenario (or `--only a,b`) at the full size, one after the other; prints
 * the table, writes test/chaos/results/<timestamp>.json, and exits non-zero if a target is missed.
 * `--short` runs the short size (the one `npm test` uses).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runScenario, type ScenarioResult } from './driver.js';
import { SCENARIOS, scenarioNamed } from './scenarios/index.js';
import { chaosSettings } from './settings.js';
import { formatTable } from './table.js';

const args = process.argv.slice(2);
const onlyArg = args.indexOf('--only');
const only = onlyArg >= 0 ? (args[onlyArg + 1] ?? '').split(',').filter(Boolean) : [];
const size = args.includes('--short') ? 'short' : 'full';
const scenarios = only.length ? only.map(scenarioNamed) : SCENARIOS;
const settings = chaosSettings(size);

const started = new Date();
const rows: ScenarioResult[] = [];
for (const s of scenarios) {
  console.log(`\n=== ${s.name}: ${s.title}`);
  rows.push(await runScenario(s, settings));
}
console.log(`\nchaos (${size}), ${started.toISOString()}, ${Math.round((Date.now() - started.getTime()) / 1000)} s\n`);
console.log(formatTable(rows));
const dir = path.join(import.meta.dirname, 'results');
await mkdir(dir, { recursive: true });
const file = path.join(dir, `${started.toISOString().replace(/[:.]/g, '-')}-${size}.json`);
await writeFile(file, JSON.stringify({ startedAt: started.toISOString(), size, settings, rows }, null, 2));
console.log(`\nresults: ${path.relative(process.cwd(), file)}`);
const missed = rows.filter((r) => r.result === 'FAIL' || r.result === 'ERROR');
process.exit(missed.length ? 1 : 0);
