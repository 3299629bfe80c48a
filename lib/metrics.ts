// Prometheus metrics of the pool and router, with the names of the original Featherman README in
// Prometheus units (seconds), labelled by pool and namespace. One registry, served at /metrics.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

// prom-client's default Node.js metrics are left out: three of them (nodejs_active_*_total) are
// gauges with a counter's suffix, which `promtool check metrics` rejects.
export const registry = new Registry();

const labelNames = ['pool', 'namespace'] as const;
const buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export const metrics = {
  sizeCurrent: new Gauge({
    name: 'ducklake_pool_size_current',
    help: 'Workers in the pool that are ready to take queries.',
    labelNames,
    registers: [registry],
  }),
  sizeDesired: new Gauge({
    name: 'ducklake_pool_size_desired',
    help: 'Workers the pool wants, as last decided by its sync hook.',
    labelNames,
    registers: [registry],
  }),
  podsIdle: new Gauge({ name: 'ducklake_pool_pods_idle', help: 'Ready workers running no query.', labelNames, registers: [registry] }),
  podsBusy: new Gauge({ name: 'ducklake_pool_pods_busy', help: 'Workers running at least one query.', labelNames, registers: [registry] }),
  queueLength: new Gauge({
    name: 'ducklake_pool_queue_length',
    help: 'Queries waiting for a free worker.',
    labelNames,
    registers: [registry],
  }),
  queryDuration: new Histogram({
    name: 'ducklake_pool_query_duration_seconds',
    help: "Time from a query's arrival to the end of its result, queueing included.",
    labelNames,
    buckets,
    registers: [registry],
  }),
  waitDuration: new Histogram({
    name: 'ducklake_pool_wait_duration_seconds',
    help: 'Time a query waited for a free worker.',
    labelNames,
    buckets,
    registers: [registry],
  }),
  queries: new Counter({
    name: 'ducklake_pool_queries_total',
    help:
      'Queries by outcome: ok, error, rejected (queue full, or a per-principal limit), timeout (waited too long), ' +
      'worker_failed, fallback, stream_error, cancelled (the client went away, or DELETE /v1/queries/{id}), ' +
      'forbidden (RBAC refused a table).',
    labelNames: [...labelNames, 'outcome'],
    registers: [registry],
  }),
  // Label-bounded: which check and its result, never who asked.
  authChecks: new Counter({
    name: 'featherman_auth_reviews_total',
    help: 'TokenReviews and SubjectAccessReviews sent to the API server, by result: allowed, denied, error.',
    labelNames: ['check', 'result'],
    registers: [registry],
  }),
  authCache: new Counter({
    name: 'featherman_auth_cache_total',
    help: "Authentication and authorisation answers looked up in the service's short cache, by result: hit, miss.",
    labelNames: ['check', 'result'],
    registers: [registry],
  }),
  demandReports: new Counter({
    name: 'featherman_pool_demand_reports_total',
    help: "Writes of this replica's waiting-query count to its pools (the scaling hooks read them), by outcome: ok, failed.",
    labelNames: [...labelNames, 'outcome'],
    registers: [registry],
  }),
  hookRequests: new Counter({
    name: 'featherman_hook_requests_total',
    help: 'Metacontroller hook calls by resource, hook and HTTP status code.',
    labelNames: ['resource', 'hook', 'code'],
    registers: [registry],
  }),
  hookDuration: new Histogram({
    name: 'featherman_hook_duration_seconds',
    help: 'Time to answer a Metacontroller hook call.',
    labelNames: ['resource', 'hook'],
    buckets,
    registers: [registry],
  }),
};
