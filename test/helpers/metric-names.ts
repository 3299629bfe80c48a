// The metric names Featherman serves at /metrics (a contract: dashboards rely on them), by type. The dashboard and
// the alert rules may use only these (test/api/monitoring.test.ts); the e2e checks them against a
// real scrape. A histogram is listed once, by its base name; seriesNames() adds _bucket, _sum, _count.
export type MetricType = 'gauge' | 'counter' | 'histogram';

export const METRICS: Readonly<Record<string, MetricType>> = {
  // Per replica: what this replica's router and hooks did (lib/metrics.ts).
  ducklake_pool_size_current: 'gauge',
  ducklake_pool_size_desired: 'gauge',
  ducklake_pool_pods_idle: 'gauge',
  ducklake_pool_pods_busy: 'gauge',
  ducklake_pool_queue_length: 'gauge',
  ducklake_pool_query_duration_seconds: 'histogram',
  ducklake_pool_wait_duration_seconds: 'histogram',
  ducklake_pool_queries_total: 'counter',
  featherman_hook_requests_total: 'counter',
  featherman_hook_duration_seconds: 'histogram',
  featherman_auth_reviews_total: 'counter',
  featherman_auth_cache_total: 'counter',
  featherman_pool_demand_reports_total: 'counter',
  // The objects, from the watch cache: the same on every replica.
  featherman_catalog_info: 'gauge',
  featherman_catalog_phase: 'gauge',
  featherman_catalog_snapshot_id: 'gauge',
  featherman_catalog_tables: 'gauge',
  featherman_catalog_rows: 'gauge',
  featherman_catalog_bytes: 'gauge',
  featherman_catalog_files: 'gauge',
  featherman_catalog_last_backup_success_timestamp_seconds: 'gauge',
  featherman_catalog_last_backup_duration_seconds: 'gauge',
  featherman_catalog_last_backup_bytes: 'gauge',
  featherman_catalog_last_backup_failed: 'gauge',
  featherman_catalog_backup_interval_seconds: 'gauge',
  featherman_catalog_last_maintenance_success_timestamp_seconds: 'gauge',
  featherman_catalog_last_maintenance_duration_seconds: 'gauge',
  featherman_catalog_last_maintenance_failed: 'gauge',
  featherman_catalog_last_maintenance_bytes_reclaimed: 'gauge',
  featherman_table_info: 'gauge',
  featherman_table_phase: 'gauge',
  featherman_table_rows: 'gauge',
  featherman_table_bytes: 'gauge',
  featherman_table_files: 'gauge',
  featherman_table_snapshot_id: 'gauge',
  featherman_pool_info: 'gauge',
  featherman_pool_phase: 'gauge',
  featherman_pool_workers: 'gauge',
  featherman_pool_queue_length: 'gauge',
  featherman_job_duration_seconds: 'histogram',
  featherman_job_failures_total: 'counter',
  featherman_operations_total: 'counter',
  featherman_watch_cache_synced: 'gauge',
};

/** Series Prometheus itself writes for each target; never in a scrape. */
export const PROMETHEUS_SERIES: readonly string[] = ['up'];

/** Every series name a scrape of /metrics may show for METRICS. */
export function seriesNames(): Set<string> {
  const names = new Set<string>();
  for (const [name, type] of Object.entries(METRICS)) {
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
    else names.add(name);
  }
  return names;
}

const NOT_METRICS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'inf',
  'nan',
]);

/**
 * The metric names a PromQL expression selects (with Grafana's $variables allowed in it): what is
 * left once strings, label matchers, ranges, grouping clauses, function names and keywords are gone.
 */
export function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\boffset\s+\S+/g, ' ')
    .replace(/\$\{?\w+\}?/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(?<![\w.:])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()/g)) {
    const word = m[1]!;
    if (!NOT_METRICS.has(word.toLowerCase())) names.add(word);
  }
  return [...names].sort();
}
