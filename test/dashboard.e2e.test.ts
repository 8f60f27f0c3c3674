/**
 * The Grafana dashboard against what signspool really exports: every metric its queries (panels
 * and template variables) use is in the Prometheus exposition of a running api + worker, with the
 * labels the queries use; each query is structurally sound (balanced brackets, known functions);
 * every panel follows the datasource, job and instance variables; every metric signspool defines has
 * a panel (or a stated reason not to); the per-tenant limit panels (429s by limit, the refused
 * share, 408s by reason) select series that this run really moved (a 429 and a 408 happen first);
 * Backlog per tenant, beside Queue depth, selects the series of a tenant whose document this run
 * leaves queued (the worker is stopped first). The run signs with two identities of a SIGNERS_FILE
 * (a local certificate and a Sign'Stash client service of the fake): the panels of the row
 * "Signing identities" follow the signer variable and select both identities' series.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '@signspool/shared/metrics';
import { auth, eventually, submit, waitForTerminal } from './harness/client.js';
import { useFakeSignstash } from './harness/fake-upstream.js';
import { issue, makeRoot, SIGNER_EXT } from './harness/pki.js';
import { rawConnect, uploadHead } from './harness/raw-http.js';
import { scrapeMetrics, startStack, TEST_METRICS_TOKEN, type Stack } from './harness/stack.js';

const root = path.resolve(import.meta.dirname, '..');
interface Datasource {
  type: string;
  uid: string;
}
interface Panel {
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  /** Absent on rows. */
  datasource?: Datasource;
  targets?: { expr: string; datasource?: Datasource }[];
}
const dashboard = JSON.parse(readFileSync(path.join(root, 'deploy/grafana/dashboards/signspool.json'), 'utf8')) as {
  panels: Panel[];
  templating: { list: { name: string; type: string; query: string | { query: string } }[] };
};
const rows = dashboard.panels.filter((p) => p.type === 'row');
const panels = dashboard.panels.filter((p) => p.type !== 'row');
const panelQueries = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
const variableQueries = dashboard.templating.list
  .filter((v) => v.type === 'query')
  .map((v) => ({ panel: `variable $${v.name}`, expr: typeof v.query === 'string' ? v.query : v.query.query }));
const queries = [...panelQueries, ...variableQueries];

/** Labels Prometheus adds to every scraped series (not in the exposition). */
const TARGET_LABELS = new Set(['job', 'instance']);

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a text exposition. */
const parseSamples = (text: string): Sample[] => {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m?.[1]) continue;
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1] ?? '', x[2] ?? '']));
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
};

/** metric name → label names seen in the samples (histogram series folded to their base name). */
const labelsByMetric = (samples: Sample[]): Map<string, Set<string>> => {
  const out = new Map<string, Set<string>>();
  for (const s of samples) {
    for (const name of [s.name, s.name.replace(/_(bucket|sum|count)$/, '')]) {
      const set = out.get(name) ?? new Set<string>();
      Object.keys(s.labels).forEach((l) => set.add(l));
      out.set(name, set);
    }
  }
  return out;
};

/** The samples of `name` that a selector's matchers (`{a="x", b=~"y|z"}`) pick; job and instance are Prometheus's, not the exposition's. */
const select = (samples: Sample[], name: string, matchers: string): Sample[] => {
  const ms = [...matchers.matchAll(/([a-z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"/g)].filter(([, label]) => !TARGET_LABELS.has(label ?? ''));
  return samples.filter(
    (s) =>
      s.name === name &&
      ms.every(([, label = '', op, value = '']) => {
        const actual = s.labels[label] ?? '';
        const re = new RegExp(`^(?:${value})$`);
        return op === '=' ? actual === value : op === '!=' ? actual !== value : op === '=~' ? re.test(actual) : !re.test(actual);
      }),
  );
};

/** The panels under a row (down to the next row). */
const panelsInRow = (title: string): Panel[] => {
  const row = rows.find((r) => r.title === title);
  if (!row) return [];
  const next = Math.min(...rows.filter((r) => r.gridPos.y > row.gridPos.y).map((r) => r.gridPos.y));
  return panels.filter((p) => p.gridPos.y > row.gridPos.y && p.gridPos.y < next);
};

/** Metrics signspool defines that no panel shows, and why. */
const UNPANELLED: Record<string, string> = {
  signspool_batch_bytes: 'Batch fill ratio shows batch sizes against the tighter of BATCH_MAX_DOCS and BATCH_MAX_BYTES',
  signspool_bucket_wait_seconds: 'part of End-to-end latency, bounded by BATCH_LINGER',
};

/** The per-tenant limit panels: what each must show, and a series of it this run moved (beforeAll). */
const LIMIT_PANELS = [
  {
    panel: 'refusals / s by limit',
    metric: 'signspool_rate_limit_decisions_total',
    matcher: 'outcome="limited"',
    by: 'limit',
    moved: { limit: 'requests', outcome: 'limited' },
  },
  {
    panel: 'share of limit checks refused',
    metric: 'signspool_rate_limit_decisions_total',
    matcher: 'outcome="limited"',
    by: 'limit',
    moved: { limit: 'requests', outcome: 'limited' },
  },
  { panel: '408', metric: 'signspool_upload_timeouts_total', matcher: '', by: 'reason', moved: { reason: 'idle' } },
];
const LIMITS_ROW = 'Limits and uploads';

/** The per-tenant backlog panel, beside Queue depth: max (every api reports the same hash) by tenant. */
const BACKLOG_PANEL = { title: 'Backlog per tenant', beside: 'Queue depth by state', metric: 'signspool_tenant_backlog_documents', tenant: 'acme' };

/** The per-identity panels: what each shows by signer, and a series of each identity this run moved. */
const SIGNERS_ROW = 'Signing identities ($signer)';
const SIGNER_PANELS = [
  { panel: 'batches', metric: 'signspool_signer_batches_total', moved: [{ signer: 'local-a' }, { signer: 'stash-b' }] },
  {
    panel: 'documents',
    metric: 'signspool_signer_documents_total',
    moved: [
      { signer: 'local-a', outcome: 'signed' },
      { signer: 'stash-b', outcome: 'signed' },
    ],
  },
  { panel: 'documents', metric: 'signspool_documents_accepted_total', moved: [{ signer: 'local-a' }, { signer: 'stash-b' }] },
  {
    panel: 'circuit',
    metric: 'signspool_signer_circuit',
    moved: [
      { signer: 'local-a', state: 'closed' },
      { signer: 'stash-b', state: 'closed' },
    ],
  },
  { panel: 'certificate expiry', metric: 'signspool_signer_certificate_expiry_timestamp_seconds', moved: [{ signer: 'local-a' }] },
  { panel: 'upstream request duration', metric: 'signspool_upstream_request_duration_seconds_count', moved: [{ signer: 'stash-b' }] },
];

const FUNCTIONS = new Set(['sum', 'max', 'min', 'avg', 'rate', 'increase', 'histogram_quantile', 'by', 'without', 'count', 'label_values', 'clamp_min']);

describe('Grafana dashboard', () => {
  let stack: Stack;
  let samples: Sample[];
  let exposition: Map<string, Set<string>>;
  let dir: string;
  const fake = useFakeSignstash({ clients: [{ clientId: 'stash-b', clientSecret: 'stash-b-secret' }] });

  beforeAll(async () => {
    // Two identities: acme signs with a local certificate by default, and with Sign'Stash when it says so.
    dir = await mkdtemp(path.join(os.tmpdir(), 'dashboard-'));
    const cert = issue(dir, makeRoot(dir), 'local-a', 'ec', SIGNER_EXT);
    await writeFile(path.join(dir, 'stash-b.secret'), 'stash-b-secret');
    const signersFile = path.join(dir, 'signers.json');
    await writeFile(
      signersFile,
      JSON.stringify({
        signers: {
          'local-a': { kind: 'local', keyFile: cert.key, certFile: cert.cert },
          'stash-b': {
            kind: 'signstash',
            url: fake().businessUrl,
            authUrl: fake().authUrl,
            clientId: 'stash-b',
            clientSecretFile: path.join(dir, 'stash-b.secret'),
          },
        },
        tenants: { '*': { signers: ['local-a', 'stash-b'], default: 'local-a' } },
      }),
    );
    // globex may make one request per second; an upload that sends nothing for 1 s ends with 408.
    // With METRICS_TOKEN: tenant names are exported only to scrapers that send it.
    stack = await startStack({
      env: {
        TENANT_LIMITS: JSON.stringify({ globex: { requestsPerSecond: 1 } }),
        UPLOAD_IDLE_TIMEOUT: '1s',
        METRICS_TOKEN: TEST_METRICS_TOKEN,
        SIGNERS_FILE: signersFile,
      },
    });
    // Exercise the pipeline once per identity so every labelled series exists.
    for (const fields of [{}, { signer: 'stash-b', signatureType: 'CAdES' }]) {
      const res = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'm.txt', content: 'metrics' }], fields);
      const done = await waitForTerminal(stack.apiUrl, stack.keys.acme, res.body.id);
      expect(done.status, JSON.stringify(fields)).toBe('succeeded');
    }
    // A request refused by the requests limit (a DELETE: reads are counted apart).
    await eventually('globex is answered 429', async () => {
      const r = await fetch(`${stack.apiUrl}/v1/operations/op_${'0'.repeat(32)}`, { method: 'DELETE', headers: auth(stack.keys.globex) });
      await r.arrayBuffer();
      return r.status === 429;
    });
    // An upload that stalls: 408 (idle).
    const stalled = rawConnect(stack.apiUrl, [
      uploadHead(stack.keys.acme, 'stall', 1000),
      '--stall\r\ncontent-disposition: form-data; name="file"; filename="s.bin"\r\n\r\n',
      'x',
    ]);
    const answer = await stalled.response;
    stalled.socket.destroy();
    expect(answer?.status).toBe(408);
    // A document left queued (no worker any more): acme has a backlog while the exposition is read.
    await stack.worker?.stop();
    expect((await submit(stack.apiUrl, stack.keys.acme, [{ name: 'queued.txt', content: 'queued' }])).status).toBe(202);
    samples = parseSamples(await (await scrapeMetrics(stack)).text());
    exposition = labelsByMetric(samples);
  });
  afterAll(async () => {
    await stack?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('has panels for throughput, batching, latency, queues, upstream, webhooks and spool', () => {
    const titles = dashboard.panels.map((p) => p.title.toLowerCase()).join(' | ');
    for (const word of [
      'accepted',
      'signed',
      'per batch',
      'flush',
      'fill',
      'latency',
      'queue depth',
      'upstream',
      'webhook',
      'spool',
      'circuit',
      'paused',
      'resent',
    ])
      expect(titles).toContain(word);
  });

  it('has datasource, job and instance variables that every panel and query follows', () => {
    expect(dashboard.templating.list.map((v) => `${v.name}:${v.type}`)).toEqual(['datasource:datasource', 'job:query', 'instance:query', 'signer:query']);
    for (const p of panels) {
      expect(p.datasource?.uid, p.title).toBe('${datasource}');
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets ?? []) {
        expect(t.datasource?.uid ?? '${datasource}', p.title).toBe('${datasource}');
        for (const [selector] of t.expr.matchAll(/signspool_[a-z0-9_]+(\{[^}]*\})?/g)) {
          expect(selector, p.title).toContain('job=~"$job"');
          expect(selector, p.title).toContain('instance=~"$instance"');
        }
      }
    }
  });

  it('has a panel for every metric signspool defines, but those UNPANELLED says why not', () => {
    const defined = createMetrics({ defaultMetrics: false })
      .registry.getMetricsAsArray()
      .map((m) => m.name);
    const shown = new Set(panelQueries.flatMap(({ expr }) => [...expr.matchAll(/signspool_[a-z0-9_]+/g)].map(([m]) => m.replace(/_(bucket|sum|count)$/, ''))));
    for (const name of defined) expect(shown.has(name) !== name in UNPANELLED, `${name}: a panel shows it, or UNPANELLED says why not (not both)`).toBe(true);
    for (const name of Object.keys(UNPANELLED)) expect(defined, name).toContain(name);
  });

  it.each(LIMIT_PANELS)(`row "${LIMITS_ROW}" has "$panel": $metric{$matcher} by ($by), and this run moved it`, ({ panel, metric, matcher, by, moved }) => {
    const p = panelsInRow(LIMITS_ROW).find((x) => x.title.toLowerCase().includes(panel));
    expect(p, `a panel titled "…${panel}…" under the row "${LIMITS_ROW}"`).toBeDefined();
    const exprs = (p?.targets ?? [])
      .map((t) => t.expr)
      .filter((e) => e.includes(metric) && e.includes(matcher) && new RegExp(`by \\([^)]*\\b${by}\\b`).test(e));
    expect(exprs, `${p?.title}: a query of ${metric}{${matcher}} by (${by})`).not.toHaveLength(0);
    // The series the query selects include the one this run moved, above zero.
    for (const expr of exprs) {
      const [, selector = ''] = new RegExp(`${metric}(\\{[^}]*\\})`).exec(expr) ?? [];
      const picked = select(samples, metric, selector).filter((s) => Object.entries(moved).every(([l, v]) => s.labels[l] === v));
      expect(
        picked.some((s) => s.value > 0),
        `${expr} selects ${JSON.stringify(moved)} > 0`,
      ).toBe(true);
    }
  });

  it.each(SIGNER_PANELS)(
    'row "Signing identities" has "$panel": $metric by (signer), following the signer variable, selecting each identity this run used',
    ({ panel, metric, moved }) => {
      const p = panelsInRow(SIGNERS_ROW).find(
        (x) => x.title.toLowerCase().includes(panel) && (x.targets ?? []).some((t) => t.expr.includes(metric.replace(/_count$/, ''))),
      );
      expect(p, `a panel titled "…${panel}…" under the row "${SIGNERS_ROW}" showing ${metric}`).toBeDefined();
      const base = metric.replace(/_count$/, '');
      const exprs = (p?.targets ?? []).map((t) => t.expr).filter((e) => e.includes(base));
      for (const expr of exprs) {
        expect(expr).toMatch(/by \([^)]*\bsigner\b/);
        const [, selector = ''] = new RegExp(`${base}(?:_bucket)?(\\{[^}]*\\})`).exec(expr) ?? [];
        expect(selector, expr).toContain('signer=~"$signer"');
        for (const labels of moved) {
          const picked = select(samples, metric, selector.replace('signer=~"$signer"', 'signer=~".*"')).filter((s) =>
            Object.entries(labels).every(([l, v]) => s.labels[l] === v),
          );
          expect(
            picked.some((s) => s.value > 0),
            `${expr} selects ${JSON.stringify(labels)} > 0`,
          ).toBe(true);
        }
      }
    },
  );

  it('shows token refreshes per identity, and reloads of the signers file', () => {
    const token = panels.find((p) => (p.targets ?? []).some((t) => t.expr.includes('signspool_token_refreshes_total')));
    expect(token?.targets?.[0]?.expr).toMatch(/sum by \(signer\) \(increase\(signspool_token_refreshes_total\{signer=~"\$signer"/);
    expect(select(samples, 'signspool_token_refreshes_total', '').some((s) => s.labels['signer'] === 'stash-b' && s.value > 0)).toBe(true);
    const reloads = panelsInRow(SIGNERS_ROW).find((p) => p.title.toLowerCase().includes('reload'));
    expect(reloads?.targets?.map((t) => t.expr).join(' ')).toMatch(/signspool_config_last_reload_successful[\s\S]*signspool_config_reload_total/);
    expect(select(samples, 'signspool_config_last_reload_successful', '').map((s) => s.value)).toContain(1);
  });

  it(`has "${BACKLOG_PANEL.title}" beside "${BACKLOG_PANEL.beside}": max by (tenant) of ${BACKLOG_PANEL.metric}, selecting a queued tenant`, () => {
    const p = panels.find((x) => x.title === BACKLOG_PANEL.title);
    const beside = panels.find((x) => x.title === BACKLOG_PANEL.beside);
    expect(p, `a panel titled "${BACKLOG_PANEL.title}"`).toBeDefined();
    expect(p?.gridPos.y, `on the same grid row as ${BACKLOG_PANEL.beside}`).toBe(beside?.gridPos.y);
    const exprs = (p?.targets ?? []).map((t) => t.expr);
    expect(exprs).toHaveLength(1);
    const [expr = ''] = exprs;
    expect(expr).toMatch(new RegExp(`^max by \\(tenant\\) \\(${BACKLOG_PANEL.metric}\\{[^}]*\\}\\)$`));
    // The series it selects include the tenant whose document this run left queued, above zero.
    const [, selector = ''] = new RegExp(`${BACKLOG_PANEL.metric}(\\{[^}]*\\})`).exec(expr) ?? [];
    const picked = select(samples, BACKLOG_PANEL.metric, selector).filter((s) => s.labels['tenant'] === BACKLOG_PANEL.tenant);
    expect(
      picked.map((s) => s.value),
      `${expr} selects tenant="${BACKLOG_PANEL.tenant}" > 0`,
    ).toEqual([1]);
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
      for (const [, label] of (matchers ?? '').matchAll(/([a-z_]+)\s*=/g))
        expect(labels.has(label ?? '') || TARGET_LABELS.has(label ?? ''), `${name} has label ${label}`).toBe(true);
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
