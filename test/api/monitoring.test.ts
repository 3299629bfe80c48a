// The monitoring component (metacontroller/monitoring): it renders with kustomize and scrapes the
// Service the install manifests define; its alert rules pass `promtool check rules` and the unit
// tests in test/fixtures/monitoring/alerts.test.yaml, which check every alert firing and not firing
// (and each alert is mutated to never fire and to always fire, which those tests must catch); the
// dashboard and the rules use only the metric names of test/helpers/metric-names.ts.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { packageRoot } from '../../lib/lake/config.js';
import { registry } from '../../lib/metrics.js';
import { METRICS, PROMETHEUS_SERIES, metricNamesIn, seriesNames } from '../helpers/metric-names.js';

const root = packageRoot();
const dir = join(root, 'metacontroller', 'monitoring');
const unitTests = join(root, 'test', 'fixtures', 'monitoring', 'alerts.test.yaml');

function kubectl(): string {
  for (const candidate of [join(root, '.cache', 'k8s', 'bin', 'kubectl'), '/usr/bin/kubectl', '/usr/local/bin/kubectl'])
    if (existsSync(candidate)) return candidate;
  return 'kubectl';
}
function render(path: string): Record<string, any>[] {
  const r = spawnSync(kubectl(), ['kustomize', path], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kubectl kustomize ${path}: ${r.stderr || r.error}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS());
}

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RulesFile {
  groups: { name: string; rules: Rule[] }[];
}
const prometheusRule = parse(readFileSync(join(dir, 'prometheusrule.yaml'), 'utf8'));
const rulesFile: RulesFile = prometheusRule.spec;
const alerts = rulesFile.groups.flatMap((g) => g.rules).filter((r): r is Rule & { alert: string } => typeof r.alert === 'string');
const dashboardText = readFileSync(join(dir, 'featherman-dashboard.json'), 'utf8');
const dashboard = JSON.parse(dashboardText);

interface Promtool {
  code: number | null;
  output: string;
  failing: string[];
}
function promtool(args: string[], cwd?: string): Promtool {
  const r = spawnSync('promtool', args, { cwd, encoding: 'utf8', timeout: 120_000 });
  const output = `${r.stdout}${r.stderr}${r.error ?? ''}`;
  // A failed unit test prints "    alertname: <name>, time: <eval_time>, " and the expected and actual alerts.
  const failing = [...new Set([...output.matchAll(/^\s*alertname: (\S+), time: \S+,/gm)].map((m) => m[1]!))].sort();
  return { code: r.status, output, failing };
}
/** Runs the unit tests against `rules` (a rules file) in a fresh directory. */
function testRules(t: Test, rules: RulesFile): Promtool {
  const work = t.testdir({});
  writeFileSync(join(work, 'rules.yaml'), stringify(rules));
  copyFileSync(unitTests, join(work, 'alerts.test.yaml'));
  return promtool(['test', 'rules', 'alerts.test.yaml'], work);
}
function withExpr(name: string, expr: (old: string) => string): RulesFile {
  return {
    groups: rulesFile.groups.map((g) => ({ ...g, rules: g.rules.map((r) => (r.alert === name ? { ...r, expr: expr(r.expr) } : r)) })),
  };
}

t.test('kustomize renders the ServiceMonitor, the PrometheusRule and the dashboard ConfigMap', async (t) => {
  const objects = render(dir);
  t.same(objects.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`).sort(), [
    'ConfigMap/featherman/featherman-dashboard',
    'PrometheusRule/featherman/featherman',
    'ServiceMonitor/featherman/featherman',
  ]);
  const install = render(join(root, 'metacontroller'));
  t.notOk(
    install.some((o) => ['ServiceMonitor', 'PrometheusRule'].includes(o.kind)),
    'kubectl apply -k metacontroller/ needs no Prometheus Operator',
  );

  const monitor = objects.find((o) => o.kind === 'ServiceMonitor')!;
  const service = install.find((o) => o.kind === 'Service' && o.metadata.name === 'featherman')!;
  const deployment = install.find((o) => o.kind === 'Deployment' && o.metadata.name === 'featherman')!;
  t.equal(monitor.apiVersion, 'monitoring.coreos.com/v1');
  t.same(monitor.spec.namespaceSelector.matchNames, [service.metadata.namespace]);
  t.match(service.metadata.labels, monitor.spec.selector.matchLabels, 'the ServiceMonitor selects the featherman Service');
  t.equal(monitor.spec.endpoints.length, 1);
  const [endpoint] = monitor.spec.endpoints;
  t.match(endpoint, { port: 'http', path: '/metrics', honorLabels: true });
  // The Service port it names must lead to the container port that `serve --port` (/metrics) listens on.
  const servicePort = service.spec.ports.find((p: { name: string }) => p.name === endpoint.port);
  const container = deployment.spec.template.spec.containers[0];
  const containerPort = container.ports.find((p: { name: string }) => p.name === servicePort.targetPort);
  t.equal(
    String(containerPort.containerPort),
    container.args[container.args.indexOf('--port') + 1],
    'the scraped port is the one serving /metrics',
  );

  const rule = objects.find((o) => o.kind === 'PrometheusRule')!;
  t.equal(rule.apiVersion, 'monitoring.coreos.com/v1');
  t.same(rule.spec, rulesFile);

  const configMap = objects.find((o) => o.kind === 'ConfigMap')!;
  t.equal(configMap.metadata.labels.grafana_dashboard, '1', "Grafana's sidecar picks it up");
  t.same(Object.keys(configMap.data), ['featherman-dashboard.json']);
  t.equal(configMap.data['featherman-dashboard.json'], dashboardText, 'the ConfigMap holds the importable JSON file unchanged');
});

t.test("promtool check rules accepts the PrometheusRule's spec", async (t) => {
  const work = t.testdir({ 'rules.yaml': stringify(rulesFile) });
  const r = promtool(['check', 'rules', join(work, 'rules.yaml')]);
  t.equal(r.code, 0, r.output);
  t.match(r.output, new RegExp(`SUCCESS: ${rulesFile.groups.flatMap((g) => g.rules).length} rules found`));
  t.same(alerts.map((a) => a.alert).sort(), [
    'FeathermanBackupFailed',
    'FeathermanBackupNeverSucceeded',
    'FeathermanBackupOverdue',
    'FeathermanCatalogNotReady',
    'FeathermanHookErrors',
    'FeathermanJobsFailing',
    'FeathermanMaintenanceFailed',
    'FeathermanPoolNotReady',
    'FeathermanPoolQueueBacklog',
    'FeathermanPoolRejectingQueries',
    'FeathermanPoolUnavailable',
    'FeathermanTableNotReady',
    'FeathermanTargetDown',
    'FeathermanWatchCacheNotSynced',
  ]);
});

t.test('every alert has a severity, and a summary and description that name its object', async (t) => {
  // The labels an alert carries, as the unit tests expect them; the target's job and pod need no mention.
  const cases = (
    parse(readFileSync(unitTests, 'utf8')).tests as {
      alert_rule_test: { alertname: string; exp_alerts: { exp_labels: Record<string, string> }[] }[];
    }[]
  ).flatMap((g) => g.alert_rule_test);
  for (const a of alerts) {
    t.match(a.labels?.severity, /^(critical|warning)$/, `${a.alert} severity`);
    t.same(Object.keys(a.annotations ?? {}).sort(), ['description', 'summary'], `${a.alert} annotations`);
    const labels = new Set(
      cases.filter((c) => c.alertname === a.alert).flatMap((c) => c.exp_alerts.flatMap((e) => Object.keys(e.exp_labels))),
    );
    for (const label of ['severity', 'job', 'pod']) labels.delete(label);
    t.ok(labels.size > 0, `${a.alert} keeps some labels`);
    for (const label of labels) {
      t.match(a.annotations!.summary, `{{ $labels.${label} }}`, `${a.alert} summary names ${label}`);
      t.match(a.annotations!.description, `{{ $labels.${label} }}`, `${a.alert} description names ${label}`);
    }
  }
});

t.test('promtool test rules: every alert fires and stays quiet where the unit tests say', async (t) => {
  const r = testRules(t, rulesFile);
  t.same(r.failing, [], `failing alerts:\n${r.output}`);
  t.equal(r.code, 0, r.output);
  t.match(r.output, /SUCCESS/);

  // Each alert has a case where it fires and one where it must not.
  const cases = (
    parse(readFileSync(unitTests, 'utf8')).tests as { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[]
  ).flatMap((g) => g.alert_rule_test);
  for (const a of alerts) {
    t.ok(
      cases.some((c) => c.alertname === a.alert && c.exp_alerts.length > 0),
      `${a.alert} has a firing case`,
    );
    t.ok(
      cases.some((c) => c.alertname === a.alert && c.exp_alerts.length === 0),
      `${a.alert} has a quiet case`,
    );
  }
  t.same(
    [...new Set(cases.map((c) => c.alertname))].filter((n) => !alerts.some((a) => a.alert === n)),
    [],
    'the unit tests name only existing alerts',
  );
});

t.test('the unit tests catch an alert that never fires, or always fires, and name it', async (t) => {
  for (const a of alerts) {
    const silent = testRules(
      t,
      withExpr(a.alert, () => 'vector(1) > 2'),
    );
    t.not(silent.code, 0, `${a.alert} never firing fails promtool`);
    t.same(silent.failing, [a.alert], `${a.alert} never firing: promtool names exactly it`, { output: silent.output.slice(0, 2000) });
    const noisy = testRules(
      t,
      withExpr(a.alert, (old) => `(${old}) or vector(1)`),
    );
    t.not(noisy.code, 0, `${a.alert} always firing fails promtool`);
    t.same(noisy.failing, [a.alert], `${a.alert} always firing: promtool names exactly it`, { output: noisy.output.slice(0, 2000) });
  }
});

t.test('the metric-name check finds names, and would flag an unknown one', async (t) => {
  t.same(
    metricNamesIn(
      'sum by (pool, le) (rate(nope_seconds_bucket{outcome=~"a|b", x="$ns"}[$__rate_interval])) ' +
        '/ on (pool) group_left (catalog) up offset 5m > bool 1e3',
    ),
    ['nope_seconds_bucket', 'up'],
  );
  t.same(metricNamesIn('histogram_quantile(0.99, max by (operation, le) (rate(featherman_job_duration_seconds_bucket[5m])))'), [
    'featherman_job_duration_seconds_bucket',
  ]);
  t.same(metricNamesIn('time() - min_over_time(timestamp(max by (a) (m_one > 0))[15d:1h]) unless on (a) m_two'), ['m_one', 'm_two']);
  t.notOk(seriesNames().has('nope_seconds_bucket'));
  t.ok(
    seriesNames().has('featherman_job_duration_seconds_bucket') && !seriesNames().has('featherman_job_duration_seconds'),
    'a histogram is known by its series',
  );
});

t.test('the known metric names follow Prometheus naming, and the per-replica ones are registered today', async (t) => {
  for (const [name, type] of Object.entries(METRICS)) {
    t.match(name, /^(ducklake|featherman)_[a-z0-9_]+$/, name);
    t.equal(name.endsWith('_total'), type === 'counter', `${name}: _total exactly on counters`);
    if (type === 'histogram') t.match(name, /_seconds$/, `${name}: histograms here measure seconds`);
  }
  const registered = new Map((await registry.getMetricsAsJSON()).map((m) => [m.name, String(m.type)]));
  for (const [name, type] of Object.entries(METRICS)) {
    if (!/^(ducklake_pool_|featherman_hook_|featherman_auth_|featherman_pool_demand_)/.test(name)) continue;
    t.equal(registered.get(name), type, `${name} is a ${type} in lib/metrics.ts`);
  }
});

t.test('the dashboard: its panels query only known metrics, and covers lakes, pools and hooks', async (t) => {
  t.equal(dashboard.uid, 'featherman');
  t.ok(
    dashboard.templating.list.some((v: { type: string; query: string }) => v.type === 'datasource' && v.query === 'prometheus'),
    'a data source variable, so it imports anywhere',
  );
  const panels = dashboard.panels as {
    id: number;
    type: string;
    title: string;
    datasource?: { uid: string };
    targets?: { expr: string }[];
  }[];
  t.equal(new Set(panels.map((p) => p.id)).size, panels.length, 'panel ids are unique');
  t.same(
    panels.filter((p) => p.type === 'row').map((p) => p.title),
    ['Lakes', 'Pools', 'Service and hooks'],
  );
  const exprs: string[] = [];
  for (const p of panels.filter((p) => p.type !== 'row')) {
    t.ok(p.targets?.length, `${p.title} has queries`);
    t.equal(p.datasource?.uid, '${datasource}', `${p.title} uses the data source variable`);
    exprs.push(...p.targets!.map((q) => q.expr));
  }
  for (const v of dashboard.templating.list as { type: string; name: string; query: { query: string } }[]) {
    if (v.type !== 'query') continue;
    const m = /^label_values\((.+),\s*\w+\)$/.exec(v.query.query);
    t.ok(m, `variable ${v.name} is label_values(metric, label)`);
    exprs.push(m![1]!);
  }
  const known = new Set([...seriesNames(), ...PROMETHEUS_SERIES]);
  const used = new Set(exprs.flatMap(metricNamesIn));
  t.same(
    [...used].filter((n) => !known.has(n)),
    [],
    'the dashboard uses no unknown metric',
  );
  for (const needed of [
    'featherman_catalog_phase',
    'featherman_catalog_rows',
    'featherman_catalog_bytes',
    'featherman_catalog_last_backup_success_timestamp_seconds',
    'featherman_job_duration_seconds_bucket',
    'featherman_job_failures_total',
    'featherman_pool_workers',
    'ducklake_pool_queue_length',
    'ducklake_pool_query_duration_seconds_bucket',
    'ducklake_pool_queries_total',
    'featherman_hook_requests_total',
  ]) {
    t.ok(used.has(needed), `the dashboard shows ${needed}`);
  }

  // Prometheus's own parser on every query: as recording rules, with Grafana's variables filled in.
  const grafana = (e: string) => e.replaceAll('$__rate_interval', '5m').replace(/\$\w+/g, '.*');
  const asRules: RulesFile = {
    groups: [{ name: 'dashboard', rules: exprs.map((e, i) => ({ record: `dashboard:query_${i}`, expr: grafana(e) })) }],
  };
  const work = t.testdir({ 'dashboard.yaml': stringify(asRules) });
  const check = promtool(['check', 'rules', join(work, 'dashboard.yaml')]);
  t.equal(check.code, 0, check.output);
});

t.test('the alert rules use only known metrics', async (t) => {
  const known = new Set([...seriesNames(), ...PROMETHEUS_SERIES]);
  for (const a of alerts)
    t.same(
      metricNamesIn(a.expr).filter((n) => !known.has(n)),
      [],
      `${a.alert}: ${metricNamesIn(a.expr).join(', ')}`,
    );
});
