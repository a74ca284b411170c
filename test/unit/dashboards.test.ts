// config/grafana/pgwarden.json and config/prometheus/alerts.yaml against the metrics pgwarden
// really exports: every metric (and every label in a selector or a by/without clause) named in a
// PromQL expression is declared in src/metrics/ (the registry of a real Metrics, default process
// metrics included); when promtool is installed, `promtool check rules` accepts the rules and
// `promtool test rules` runs their unit tests (config/prometheus/alerts.test.yaml).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { parse as parseYaml } from 'yaml';
import { Bus } from '../../src/events';
import { Metrics } from '../../src/metrics/metrics';

const REPO = join(__dirname, '..', '..');
const DASHBOARD = join(REPO, 'config', 'grafana', 'pgwarden.json');
const ALERTS = join(REPO, 'config', 'prometheus', 'alerts.yaml');

/** Series name → label names, as the registry exposes them (histograms as _bucket/_sum/_count). */
function exported(): Map<string, Set<string>> {
  const metrics = new Metrics(new Bus(), { status: () => ({ backends: [], listeners: [] }) });
  try {
    const out = new Map<string, Set<string>>();
    for (const m of metrics.registry.getMetricsAsArray() as unknown as { name: string; labelNames?: string[]; constructor: { name: string } }[]) {
      const labels = new Set(m.labelNames ?? []);
      if (m.constructor.name === 'Histogram') {
        out.set(`${m.name}_bucket`, new Set([...labels, 'le']));
        out.set(`${m.name}_sum`, labels);
        out.set(`${m.name}_count`, labels);
      } else {
        out.set(m.name, labels);
      }
    }
    return out;
  } finally {
    metrics.close();
  }
}

/** Labels Prometheus adds to every scraped series. */
const TARGET_LABELS = ['instance', 'job'];

const FUNCTIONS_AND_KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan']);

interface Use {
  metric: string;
  labels: string[];
}

/**
 * The metrics a PromQL expression reads and the labels it names: label names in `{...}`
 * matchers belong to the metric before them; those in by/without/on/ignoring clauses to every
 * metric of the expression. Identifiers followed by `(` are functions or aggregations.
 */
function parsePromql(expr: string): { uses: Use[]; grouping: string[] } {
  const noStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const grouping = [...noStrings.matchAll(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g)].flatMap((m) => m[1].split(',').map((s) => s.trim()).filter(Boolean));
  const rest = noStrings
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ') // range and subquery selectors: [5m], [$__rate_interval]
    .replace(/\$\{?\w+\}?/g, ' ') // Grafana variables outside strings
    .replace(/(^|[^\w:])\d[\w.]*/g, '$1 '); // numbers and durations: 0.8, 1024, 5m, 1e6
  const uses: Use[] = [];
  for (const m of rest.matchAll(/([a-zA-Z_:][\w:]*)?\s*(\{[^}]*\})?(\s*\()?/g)) {
    const [, name, matchers, call] = m;
    if (!name && !matchers) continue;
    if (name && (call || FUNCTIONS_AND_KEYWORDS.has(name.toLowerCase()))) continue;
    const labels = matchers ? [...matchers.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)].map((l) => l[1]) : [];
    // A selector without a name ({__name__=~"..."}) is not checkable here: reported as unknown.
    uses.push({ metric: name ?? '(a selector without a metric name)', labels });
  }
  return { uses, grouping };
}

/** Every PromQL expression in the dashboard: panel targets, variable queries, annotations. */
function dashboardExprs(d: Record<string, unknown>): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  const walk = (panels: unknown[]) => {
    for (const p of panels as { title?: string; targets?: { expr?: string }[]; panels?: unknown[] }[]) {
      for (const tg of p.targets ?? []) if (tg.expr) out.push({ where: `panel "${p.title}"`, expr: tg.expr });
      walk(p.panels ?? []);
    }
  };
  walk(d.panels as unknown[]);
  for (const v of (d.templating as { list: { name: string; type: string; query: unknown }[] }).list) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : (v.query as { query: string }).query;
    // label_values(SELECTOR, label) / query_result(EXPR): the selector is PromQL, the label must exist on it.
    const lv = /^label_values\((.*),\s*(\w+)\)$/.exec(q);
    out.push({ where: `variable $${v.name}`, expr: lv ? `sum by (${lv[2]}) (${lv[1]})` : q.replace(/^query_result\((.*)\)$/, '$1') });
  }
  for (const a of (d.annotations as { list: { name: string; expr?: string }[] }).list) if (a.expr) out.push({ where: `annotation "${a.name}"`, expr: a.expr });
  return out;
}

function ruleExprs(rules: { groups: { name: string; rules: { alert?: string; record?: string; expr: string }[] }[] }): { where: string; expr: string }[] {
  return rules.groups.flatMap((g) => g.rules.map((r) => ({ where: `rule ${r.alert ?? r.record}`, expr: String(r.expr) })));
}

const series = exported();
const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Record<string, unknown>;
const rules = parseYaml(readFileSync(ALERTS, 'utf8')) as Parameters<typeof ruleExprs>[0];

function checkExprs(t: Test, exprs: { where: string; expr: string }[]): void {
  t.ok(exprs.length > 0, 'has expressions');
  for (const { where, expr } of exprs) {
    const { uses, grouping } = parsePromql(expr);
    t.ok(uses.length > 0, `${where}: reads some metric (${expr})`);
    const known = new Set(TARGET_LABELS);
    for (const u of uses) {
      const labels = series.get(u.metric);
      if (!labels) {
        t.fail(`${where}: ${u.metric} is not a metric pgwarden exports (${expr})`);
        continue;
      }
      for (const l of labels) known.add(l);
      const allowed = new Set([...labels, ...TARGET_LABELS]);
      for (const l of u.labels) t.ok(allowed.has(l), `${where}: ${u.metric} has label ${l}`);
    }
    for (const l of grouping) t.ok(known.has(l), `${where}: groups by ${l}, a label of ${uses.map((u) => u.metric).join(', ')}`);
  }
}

t.test('the PromQL parser sees what an expression reads', async (t) => {
  t.same(parsePromql('sum by (listener, le) (rate(pgwarden_x_bucket{instance=~"$i", sqlstate=~"57P03|53300"}[$__rate_interval])) > 0'), {
    uses: [{ metric: 'pgwarden_x_bucket', labels: ['instance', 'sqlstate'] }],
    grouping: ['listener', 'le'],
  });
  t.same(parsePromql('a{s="up"} * 2 + ignoring(s) b offset 5m or vector(0)').uses.map((u) => u.metric), ['a', 'b']);
  t.same(parsePromql('up == 0').uses.map((u) => u.metric), ['up'], 'a bare name that is no function is a metric');
  t.same(parsePromql('x offset 5m > 1e6 * 0.8').uses.map((u) => u.metric), ['x'], 'numbers and durations are no metrics');
  t.same(parsePromql('absent(pgwarden_primary_available)').uses.map((u) => u.metric), ['pgwarden_primary_available']);
});

t.test('the exported metrics include the histogram series and the prefixed process metrics', async (t) => {
  for (const name of ['pgwarden_queue_wait_seconds_bucket', 'pgwarden_queue_wait_seconds_count', 'pgwarden_primary_available', 'pgwarden_process_open_fds', 'pgwarden_nodejs_eventloop_lag_p99_seconds']) {
    t.ok(series.has(name), name);
  }
  t.notOk(series.has('pgwarden_queue_wait_seconds'), 'a histogram has no bare series');
});

t.test('dashboard: Grafana shape and a Prometheus datasource variable', async (t) => {
  t.equal(dashboard.schemaVersion, 39);
  const templating = (dashboard.templating as { list: { name: string; type: string; query: unknown }[] }).list;
  t.ok(templating.some((v) => v.name === 'DS_PROMETHEUS' && v.type === 'datasource' && v.query === 'prometheus'), 'DS_PROMETHEUS datasource variable');
  const panels = (dashboard.panels as { id: number; type: string; title: string; datasource?: { uid: string }; gridPos: unknown }[]);
  t.same(new Set(panels.map((p) => p.id)).size, panels.length, 'panel ids are unique');
  for (const p of panels) {
    t.ok(p.gridPos, `${p.title}: has a gridPos`);
    if (p.type !== 'row') t.equal(p.datasource?.uid, '${DS_PROMETHEUS}', `${p.title}: uses the datasource variable`);
  }
  // What issue 16 asks the dashboard to show, by the metric that shows it.
  const all = dashboardExprs(dashboard).map((e) => e.expr).join('\n');
  for (const m of [
    'pgwarden_backend_state', 'pgwarden_backend_role', 'pgwarden_primary_changes_total', 'pgwarden_listener_queued_sessions', 'pgwarden_queue_wait_seconds_bucket',
    'pgwarden_listener_active_sessions', 'pgwarden_backend_active_sessions', 'pgwarden_backend_replication_lag_bytes', 'pgwarden_check_duration_seconds_bucket', 'pgwarden_check_phase_seconds_bucket',
    'pgwarden_checks_total', 'pgwarden_failure_detection_seconds_count', 'pgwarden_switchover_duration_seconds_count', 'pgwarden_hook_runs_total',
    'pgwarden_host_cpu_load_percent', 'pgwarden_sessions_ended_total', 'pgwarden_cancel_requests_total',
  ]) {
    t.match(all, new RegExp(`\\b${m}\\b`), `shows ${m}`);
  }
  // Coordination (several instances through etcd): leader, epoch and etcd per instance.
  for (const m of ['pgwarden_coordination_leader', 'pgwarden_coordination_epoch', 'pgwarden_coordination_etcd_reachable', 'pgwarden_coordination_handshake_seconds_count']) {
    t.match(all, new RegExp(`\\b${m}\\b`), `shows ${m}`);
  }
});

t.test('dashboard: every metric and label in its PromQL exists', async (t) => {
  checkExprs(t, dashboardExprs(dashboard));
});

t.test('alerts: every rule has for, severity, summary and description; every metric and label exists', async (t) => {
  const all = rules.groups.flatMap((g) => g.rules) as { alert: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }[];
  for (const r of all) {
    t.ok(r.for, `${r.alert}: has for:`);
    t.match(r.labels?.severity, /^(critical|warning|info)$/, `${r.alert}: severity`);
    t.ok(r.annotations?.summary, `${r.alert}: summary`);
    t.ok((r.annotations?.description ?? '').length > 80, `${r.alert}: a description that says what to check`);
  }
  const names = all.map((r) => r.alert);
  for (const a of ['PgwardenNoPrimary', 'PgwardenBackendDown', 'PgwardenBackendFenced', 'PgwardenReplicationLagBytes', 'PgwardenQueueRejecting', 'PgwardenHookFailing', 'PgwardenHostThreshold', 'PgwardenEtcdUnreachable', 'PgwardenNoCoordinationLeader']) {
    t.ok(names.includes(a), `has ${a}`);
  }
  checkExprs(t, ruleExprs(rules));
});

const noPromtool = spawnSync('promtool', ['--version']).error ? 'promtool is not on PATH (Debian package prometheus)' : false;
if (noPromtool) console.log(`# skipping promtool check rules: ${noPromtool}`);

t.test('promtool check rules accepts alerts.yaml', { skip: noPromtool }, async (t) => {
  const r = spawnSync('promtool', ['check', 'rules', ALERTS], { encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 0, `promtool check rules: ${r.stdout}${r.stderr}`);
  t.match(r.stdout, /SUCCESS/);
});

t.test('promtool test rules: the alerts fire when they should (config/prometheus/alerts.test.yaml)', { skip: noPromtool }, async (t) => {
  const r = spawnSync('promtool', ['test', 'rules', join(REPO, 'config', 'prometheus', 'alerts.test.yaml')], { encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 0, `promtool test rules: ${r.stdout}${r.stderr}`);
});
