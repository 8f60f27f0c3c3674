/**
 * What a benchmark section is: an id (`--only <id>`), the sections it needs run before it, and a
 * function that measures and adds rows to the report. Sections are listed in bench/sections/index.ts.
 */
import type { Report } from './report.js';
import type { Settings } from './settings.js';
import type { Env } from './stack.js';

export interface BenchContext {
  settings: Settings;
  /** The run's redis-server, fake Sign'Stash and api key. */
  env: Env;
  /**
   * The run's temp dir. Directories of many small files stay in it until the run ends: on a
   * journal-less ext4 a large delete slows the next section's file creations.
   */
  tmp: string;
  report: Report;
  /** The result of a section this one `needs` (it ran earlier in this run). */
  resultOf<R>(section: Section<R>): R;
}

export interface Section<R = unknown> {
  /** What `--only` names, and the first word of the rows' section column. */
  id: string;
  title: string;
  /** Sections whose results this one reads: `--only` runs them too. */
  needs?: readonly Section<unknown>[];
  run(ctx: BenchContext): Promise<R>;
}
