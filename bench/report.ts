/**
 * The benchmark's report: every row is printed as it is measured (value, baseline, ratio, target,
 * PASS/MISS) and the whole run is written to bench/results/<timestamp>.json at the end.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface Row {
  section: string;
  metric: string;
  value: number;
  unit: string;
  baseline?: number;
  ratio?: number;
  target?: string;
  pass?: boolean;
}

/** A figure as the report prints it: 3 significant digits or so. */
export const fmt = (n: number): string => (Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2));

/** The q-quantile of an ascending list (NaN when empty). */
export const pct = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

export class Report {
  readonly rows: Row[] = [];

  /** Prints the run's settings and the table header. */
  header(settingsLine: string): void {
    console.log(settingsLine);
    console.log('section | metric | value | baseline | ratio | target | result');
  }

  add(r: Row): void {
    this.rows.push(r);
    const cells = [
      r.section,
      r.metric,
      `${fmt(r.value)} ${r.unit}`,
      r.baseline === undefined ? '' : `${fmt(r.baseline)} ${r.unit}`,
      r.ratio === undefined ? '' : `${fmt(r.ratio)}×`,
      r.target ?? '',
      r.pass === undefined ? '' : r.pass ? 'PASS' : 'MISS',
    ];
    console.log(cells.join(' | '));
  }

  /** An `add` for the rows of one section (its label in the section column). */
  section(label: string): (r: Omit<Row, 'section'>) => void {
    return (r) => this.add({ section: label, ...r });
  }

  /** Writes `{meta, rows}` to `<dir>/<ISO time>[-quick].json`; returns the file's path. */
  async write(dir: string, meta: { quick: boolean; durationS: number } & Record<string, unknown>): Promise<string> {
    await mkdir(dir, { recursive: true });
    const file = path.join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}${meta.quick ? '-quick' : ''}.json`);
    await writeFile(file, JSON.stringify({ meta, rows: this.rows }, null, 2));
    return file;
  }
}
