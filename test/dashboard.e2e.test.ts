/**
 * The Grafana dashboard against what signspool really exports: every metric its queries (panels
 * and template variables) use is in the Prometheus exposition of a running api + worker, with the
 * labels the queries use; each query is structurally sound (balanced brackets, known functions);
 * every panel follows the datasource, job and instance variables.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { submit, waitForTerminal } from './harness/client.js';
import { startStack, type Stack } from './harness/stack.js';

const root = path.resolve(import.meta.dirname, '..');
interface Datasource {
  type: string;
  uid: string;
}
const dashboard = JSON.parse(readFileSync(path.join(root, 'deploy/grafana/dashboards/signspool.json'), 'utf8')) as {
  panels: { title: string; datasource: Datasource; targets: { expr: string; datasource?: Datasource }[] }[];
  templating: { list: { name: string; type: string; query: string | { query: string } }[] };
};
const panelQueries = dashboard.panels.flatMap((p) => p.targets.map((t) => ({ panel: p.title, expr: t.expr })));
const variableQueries = dashboard.templating.list
  .filter((v) => v.type === 'query')
  .map((v) => ({ panel: `variable $${v.name}`, expr: typeof v.query === 'string' ? v.query : v.query.query }));
const queries = [...panelQueries, ...variableQueries];

/** Labels Prometheus adds to every scraped series (not in the exposition). */
const TARGET_LABELS = new Set(['job', 'instance']);

/** metric name → label names seen in a text exposition (histogram series folded to their base name). */
const parseExposition = (text: string): Map<string, Set<string>> => {
  const out = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s/.exec(line);
    if (!m?.[1]) continue;
    const labels = [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)].map((x) => x[1] ?? '');
    for (const name of [m[1], m[1].replace(/_(bucket|sum|count)$/, '')]) {
      const set = out.get(name) ?? new Set<string>();
      labels.forEach((l) => set.add(l));
      out.set(name, set);
    }
  }
  return out;
};

const FUNCTIONS = new Set(['sum', 'max', 'min', 'avg', 'rate', 'increase', 'histogram_quantile', 'by', 'without', 'count', 'label_values']);

describe('Grafana dashboard', () => {
  let stack: Stack;
  let exposition: Map<string, Set<string>>;

  beforeAll(async () => {
    stack = await startStack();
    // Exercise the pipeline once so every labelled series exists.
    const res = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'm.txt', content: 'metrics' }]);
    await waitForTerminal(stack.apiUrl, stack.keys.acme, res.body.id);
    exposition = parseExposition(await (await fetch(`${stack.apiUrl}/metrics`)).text());
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('has panels for throughput, batching, latency, queues, upstream, webhooks and spool', () => {
    const titles = dashboard.panels.map((p) => p.title.toLowerCase()).join(' | ');
    for (const word of ['signed', 'per batch', 'flush', 'fill', 'latency', 'queue depth', 'upstream', 'webhook', 'spool', 'circuit', 'paused', 'resent']) expect(titles).toContain(word);
  });

  it('has datasource, job and instance variables that every panel and query follows', () => {
    expect(dashboard.templating.list.map((v) => `${v.name}:${v.type}`)).toEqual(['datasource:datasource', 'job:query', 'instance:query']);
    for (const p of dashboard.panels) {
      expect(p.datasource.uid, p.title).toBe('${datasource}');
      for (const t of p.targets) {
        expect(t.datasource?.uid ?? '${datasource}', p.title).toBe('${datasource}');
        for (const [selector] of t.expr.matchAll(/signspool_[a-z0-9_]+(\{[^}]*\})?/g)) {
          expect(selector, p.title).toContain('job=~"$job"');
          expect(selector, p.title).toContain('instance=~"$instance"');
        }
      }
    }
  });

  it.each(queries)('$panel: $expr', ({ expr }) => {
    // Balanced brackets.
    let depth = 0;
    for (const ch of expr) {
      depth += ch === '(' || ch === '{' || ch === '[' ? 1 : ch === ')' || ch === '}' || ch === ']' ? -1 : 0;
      expect(depth).toBeGreaterThanOrEqual(0);
    }
    expect(depth).toBe(0);
    // Only known functions.
    for (const [, fn] of expr.matchAll(/([a-z_]+)\s*\(/g)) expect(FUNCTIONS.has(fn ?? ''), fn).toBe(true);
    // Every metric exists, with every label its matchers and groupings use.
    const metrics = [...expr.matchAll(/(signspool_[a-z0-9_]+)(\{[^}]*\})?/g)];
    // label_values(metric, label) asks for a label the metric must carry (or one Prometheus adds).
    for (const [, metric, label] of expr.matchAll(/label_values\((signspool_[a-z0-9_]+)(?:\{[^}]*\})?,\s*([a-z_]+)\)/g)) {
      expect(exposition.get(metric ?? '')?.has(label ?? '') || TARGET_LABELS.has(label ?? ''), `${metric} has label ${label}`).toBe(true);
    }
    expect(metrics.length).toBeGreaterThan(0);
    for (const [, name, matchers] of metrics) {
      const base = (name ?? '').replace(/_bucket$/, '');
      expect(exposition.has(name ?? ''), `${name} is exported`).toBe(true);
      const labels = exposition.get(name ?? '') ?? exposition.get(base) ?? new Set();
      for (const [, label] of (matchers ?? '').matchAll(/([a-z_]+)\s*=/g)) expect(labels.has(label ?? '') || TARGET_LABELS.has(label ?? ''), `${name} has label ${label}`).toBe(true);
      for (const [, group] of expr.matchAll(/by \(([^)]*)\)/g)) {
        for (const label of (group ?? '').split(',').map((l) => l.trim())) {
          if (label === 'le' && /_bucket$/.test(name ?? '')) continue;
          if (!/_bucket$/.test(name ?? '') && label === 'le') continue;
          expect(labels.has(label) || label === 'le' || TARGET_LABELS.has(label), `${name} has label ${label}`).toBe(true);
        }
      }
    }
  });
});
