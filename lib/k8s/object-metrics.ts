// Metrics of the lake's objects, computed at scrape time from the watch cache (watch-cache.ts), so
// every replica reports the same values for the same API server state. The pure part maps a
// snapshot of the cache (and the Job tallies) to metric families; installObjectMetrics() hangs them
// on a prom-client registry as collectors. Labels are object names and small fixed sets only.
import { CronExpressionParser } from 'cron-parser';
import type { Registry } from 'prom-client';
import { GROUP } from './labels.js';
import { jobState } from './job-status.js';
import type { KubeObject } from './metacontroller.js';
import type { Change, Resource, Snapshot, WatchCache } from './watch-cache.js';
import { RESOURCE_NAMES } from './watch-cache.js';
import { SPEC_DEFAULTS } from '../api/defaults.js';

export type Operation = 'init' | 'restore' | 'apply' | 'drop' | 'backup' | 'maintain' | 'backup_delete' | 'query';
export type FailureReason = 'bad_input' | 'temporary' | 'other' | 'deadline' | 'backoff_limit' | 'pod_failure_policy' | 'job_failed';

export interface Sample {
  labels: Record<string, string>;
  value: number;
  metricName?: string;
}
export interface Family {
  name: string;
  help: string;
  type: 'gauge' | 'counter' | 'histogram';
  values: Sample[];
}

export const CATALOG_PHASES = ['Pending', 'Provisioning', 'Ready', 'Failed', 'Deleting'] as const;
export const TABLE_PHASES = ['Pending', 'Applying', 'Ready', 'Failed', 'Deleting'] as const;
export const POOL_PHASES = ['Pending', 'Scaling', 'Ready', 'Degraded', 'Deleting'] as const;
export const JOB_DURATION_BUCKETS = [1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200];

const COMPONENT = 'app.kubernetes.io/component';
type Json = Record<string, unknown>;
const rec = (v: unknown): Json => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {});
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const seconds = (v: unknown): number | undefined => {
  const t = typeof v === 'string' ? Date.parse(v) : NaN;
  return Number.isFinite(t) ? t / 1000 : undefined;
};

// ---- Jobs: what they do and how they ended (pure) -----------------------------------------------

/**
 * The operation a featherman Job (or one of its pods) runs, from its component label; a restore
 * init Job by its runner's first argument.
 */
export function operationOf(o: KubeObject): Operation | undefined {
  const component = o.metadata.labels?.[COMPONENT];
  const spec = rec(o.spec);
  const podSpec = o.kind === 'Job' ? rec(rec(spec.template).spec) : spec;
  const containers = Array.isArray(podSpec.containers) ? podSpec.containers : [];
  const firstArg = (rec(containers.find((c) => rec(c).name === 'featherman') ?? containers[0]).args as unknown[] | undefined)?.[0];
  switch (component) {
    case 'catalog-init':
      return firstArg === 'restore' ? 'restore' : 'init';
    case 'catalog-backup':
      return 'backup';
    case 'catalog-maintenance':
      return 'maintain';
    case 'backup-delete':
      return 'backup_delete';
    case 'table-apply':
      return 'apply';
    case 'table-drop':
      return 'drop';
    case 'query':
      return 'query';
    default:
      return undefined;
  }
}

export function jobOutcome(job: KubeObject): 'succeeded' | 'failed' | undefined {
  const state = jobState(job);
  return state === 'Succeeded' ? 'succeeded' : state === 'Failed' ? 'failed' : undefined;
}

function finishedCondition(job: KubeObject): Json | undefined {
  const conditions = rec(job.status).conditions;
  return (Array.isArray(conditions) ? conditions : [])
    .map(rec)
    .find((c) => ['Complete', 'SuccessCriteriaMet', 'Failed', 'FailureTarget'].includes(String(c.type)) && c.status === 'True');
}

/** When a finished Job ended: its completionTime, else (failed Jobs have none) its condition's time. */
export function jobFinishedAt(job: KubeObject): number | undefined {
  return seconds(rec(job.status).completionTime) ?? seconds(finishedCondition(job)?.lastTransitionTime);
}

/** Start to completion of a finished Job, in seconds. */
export function jobDurationSeconds(job: KubeObject): number | undefined {
  const start = seconds(rec(job.status).startTime) ?? seconds(job.metadata.creationTimestamp);
  const end = jobFinishedAt(job);
  return start !== undefined && end !== undefined && end >= start ? end - start : undefined;
}

/** The runner's exit codes (lib/errors.ts): 2 bad input, 75 temporary, anything else a failure. */
export function exitReason(exitCode: number): FailureReason {
  return exitCode === 2 ? 'bad_input' : exitCode === 75 ? 'temporary' : 'other';
}

/** A failed Job's condition reason, as a bounded label. */
export function conditionReason(job: KubeObject): FailureReason {
  const conditions = rec(job.status).conditions;
  const reason = (Array.isArray(conditions) ? conditions : []).map(rec).find((c) => c.type === 'Failed' && c.status === 'True')?.reason;
  return reason === 'DeadlineExceeded'
    ? 'deadline'
    : reason === 'BackoffLimitExceeded'
      ? 'backoff_limit'
      : reason === 'PodFailurePolicy'
        ? 'pod_failure_policy'
        : 'job_failed';
}

/** The featherman container's exit code of a failed pod (non-zero), else undefined. */
export function podFailureExitCode(pod: KubeObject): number | undefined {
  const statuses = rec(pod.status).containerStatuses;
  const list = (Array.isArray(statuses) ? statuses : []).map(rec);
  const c = list.find((x) => x.name === 'featherman') ?? list[0];
  const code = num(rec(rec(c?.state).terminated).exitCode);
  return code !== undefined && code !== 0 ? code : undefined;
}

/**
 * A Job failed as a whole, to be counted besides its pods' exit codes: at its deadline (the runner
 * was stopped from outside), or with no failed pod at all (e.g. never scheduled).
 */
export function jobLevelFailure(job: KubeObject): FailureReason | undefined {
  if (jobOutcome(job) !== 'failed') return undefined;
  const reason = conditionReason(job);
  const failedPods = num(rec(job.status).failed) ?? 0;
  return reason === 'deadline' || failedPods === 0 ? reason : undefined;
}

export interface ObjectOperation {
  kind: 'catalog' | 'table';
  operation: 'create' | 'update' | 'delete';
}

const ownerUid = (o: KubeObject): string | undefined => {
  const refs = o.metadata.ownerReferences;
  return (Array.isArray(refs) ? refs.map(rec) : []).find((r) => r.controller === true || refs!.length === 1)?.uid as string | undefined;
};

/**
 * The catalog or table operation a Job carries out: catalog init and restore create the catalog; a
 * table's apply Job creates it when it is the table's first apply Job (no apply Job of the same
 * table object created before it among `jobs`), and updates it otherwise; a drop Job deletes it.
 */
export function objectOperation(job: KubeObject, jobs: KubeObject[]): ObjectOperation | undefined {
  const op = operationOf(job);
  if (op === 'init' || op === 'restore') return { kind: 'catalog', operation: 'create' };
  if (op === 'drop') return { kind: 'table', operation: 'delete' };
  if (op !== 'apply') return undefined;
  const owner = ownerUid(job);
  const table = job.metadata.labels?.[`${GROUP}/table`];
  const mine = `${job.metadata.creationTimestamp ?? ''}\u0000${job.metadata.name}`;
  const earlier = jobs.some(
    (j) =>
      j.metadata.namespace === job.metadata.namespace &&
      j.metadata.labels?.[`${GROUP}/table`] === table &&
      j !== job &&
      j.metadata.uid !== job.metadata.uid &&
      operationOf(j) === 'apply' &&
      (!owner || ownerUid(j) === owner) &&
      `${j.metadata.creationTimestamp ?? ''}\u0000${j.metadata.name}` < mine,
  );
  return { kind: 'table', operation: earlier ? 'update' : 'create' };
}

/** Seconds between the next two runs of a CronJob schedule after `now` (UTC, as our CronJobs run). */
export function scheduleIntervalSeconds(schedule: unknown, now: Date): number | undefined {
  if (typeof schedule !== 'string' || !schedule.trim()) return undefined;
  try {
    const it = CronExpressionParser.parse(schedule.trim(), { currentDate: now, tz: 'UTC', strict: false });
    const a = it.next().getTime();
    const b = it.next().getTime();
    return (b - a) / 1000;
  } catch {
    return undefined;
  }
}

// ---- Job tallies: counted once per Job or pod, never decreasing ---------------------------------

interface HistogramCell {
  labels: Record<string, string>;
  buckets: number[];
  sum: number;
  count: number;
}
interface CounterCell {
  labels: Record<string, string>;
  value: number;
}

/**
 * Counters and the duration histogram over Jobs and pods, fed by the cache's changes. Each finished
 * Job and each failed pod counts once, when first seen finished (the first list counts everything
 * the API server still holds); deleting it later (TTL, history limits) does not take it back, so the
 * counters only go up within a process, as Prometheus' rate() and increase() need.
 */
export class JobTallies {
  readonly durations = new Map<string, HistogramCell>();
  readonly failures = new Map<string, CounterCell>();
  readonly operations = new Map<string, CounterCell>();
  private readonly counted = new Set<string>();

  private once(id: string): boolean {
    if (this.counted.has(id)) return false;
    this.counted.add(id);
    return true;
  }

  private inc(map: Map<string, CounterCell>, labels: Record<string, string>): void {
    const key = Object.values(labels).join('\u0000');
    const cell = map.get(key) ?? map.set(key, { labels, value: 0 }).get(key)!;
    cell.value++;
  }

  observe(change: Change, jobs: () => KubeObject[]): void {
    const o = change.object;
    const uid = o.metadata.uid ?? `${o.metadata.namespace}/${o.metadata.name}`;
    if (change.type === 'deleted') {
      // A uid never comes back; forget it so the set stays the size of the cache.
      for (const suffix of [':finished', ':failed', ':job-failed']) this.counted.delete(uid + suffix);
      return;
    }
    if (change.resource === 'pods') {
      const operation = operationOf(o);
      const code = podFailureExitCode(o);
      if (operation && code !== undefined && this.once(`${uid}:failed`)) this.inc(this.failures, { operation, reason: exitReason(code) });
      return;
    }
    if (change.resource !== 'jobs') return;
    const operation = operationOf(o);
    const outcome = jobOutcome(o);
    if (!operation || !outcome || !this.once(`${uid}:finished`)) return;
    const duration = jobDurationSeconds(o);
    if (duration !== undefined) {
      const labels = { operation, outcome };
      const key = `${operation}\u0000${outcome}`;
      const cell =
        this.durations.get(key) ??
        this.durations.set(key, { labels, buckets: JOB_DURATION_BUCKETS.map(() => 0), sum: 0, count: 0 }).get(key)!;
      JOB_DURATION_BUCKETS.forEach((le, i) => {
        if (duration <= le) cell.buckets[i]!++;
      });
      cell.sum += duration;
      cell.count++;
    }
    const whole = jobLevelFailure(o);
    if (whole && this.once(`${uid}:job-failed`)) this.inc(this.failures, { operation, reason: whole });
    const objectOp = objectOperation(o, jobs());
    if (objectOp) this.inc(this.operations, { ...objectOp, outcome });
  }
}

// ---- families from a snapshot (pure) ------------------------------------------------------------

const OBJECT_FAMILIES: [string, string, Family['type']][] = [
  [
    'featherman_catalog_info',
    'A DuckLakeCatalog, with its metadata database type and DuckLake format version as labels (always 1).',
    'gauge',
  ],
  ['featherman_catalog_phase', "The catalog's status.phase: 1 for the current phase, 0 for the others.", 'gauge'],
  ['featherman_catalog_snapshot_id', 'The newest known DuckLake snapshot id of the catalog.', 'gauge'],
  ['featherman_catalog_tables', 'Tables in the lake, as last reported.', 'gauge'],
  ['featherman_catalog_rows', 'Rows in all tables of the lake, as last reported.', 'gauge'],
  ['featherman_catalog_bytes', 'Bytes in the data files of the lake, as last reported.', 'gauge'],
  ['featherman_catalog_files', 'Data files of the lake, as last reported.', 'gauge'],
  [
    'featherman_catalog_last_backup_success_timestamp_seconds',
    'When the last successful backup of the catalog finished (Unix time).',
    'gauge',
  ],
  ['featherman_catalog_last_backup_duration_seconds', 'How long the last successful backup took.', 'gauge'],
  ['featherman_catalog_last_backup_bytes', 'Data bytes of the snapshot the last successful backup holds.', 'gauge'],
  ['featherman_catalog_last_backup_failed', '1 when the newest backup attempt failed (status.lastBackup.outcome Failed), else 0.', 'gauge'],
  ['featherman_catalog_backup_interval_seconds', 'Seconds between the next two runs of spec.backupPolicy.schedule (UTC).', 'gauge'],
  [
    'featherman_catalog_last_maintenance_success_timestamp_seconds',
    'When the last successful maintenance run of the catalog finished (Unix time).',
    'gauge',
  ],
  ['featherman_catalog_last_maintenance_duration_seconds', 'How long the last successful maintenance run took.', 'gauge'],
  ['featherman_catalog_last_maintenance_failed', '1 when the newest maintenance run failed, else 0.', 'gauge'],
  ['featherman_catalog_last_maintenance_bytes_reclaimed', 'Bytes the last successful maintenance run freed by deleting files.', 'gauge'],
  ['featherman_catalog_maintenance_interval_seconds', 'Seconds between the next two runs of spec.maintenance.schedule (UTC).', 'gauge'],
  ['featherman_table_info', 'A DuckLakeTable, with its catalog and SQL name (schema.table) as labels (always 1).', 'gauge'],
  ['featherman_table_phase', "The table's status.phase: 1 for the current phase, 0 for the others.", 'gauge'],
  ['featherman_table_rows', 'Rows in the table, as last reported.', 'gauge'],
  ['featherman_table_bytes', "Bytes in the table's data files, as last reported.", 'gauge'],
  ['featherman_table_files', 'Data files of the table, as last reported.', 'gauge'],
  ['featherman_table_snapshot_id', 'The lake snapshot that last changed the table.', 'gauge'],
  ['featherman_pool_info', 'A DuckLakePool, with its catalog as a label (always 1).', 'gauge'],
  ['featherman_pool_phase', "The pool's status.phase: 1 for the current phase, 0 for the others.", 'gauge'],
  ['featherman_pool_workers', 'Workers of the pool from its status, by state: desired, current, idle, busy.', 'gauge'],
  ['featherman_pool_queue_length', 'Queries waiting in the pool, from its status (as its sync hook last saw them).', 'gauge'],
  ['featherman_operations_running', 'Catalog and table operations whose Job is still running, by kind and operation.', 'gauge'],
];

const FAMILY_INDEX = new Map(OBJECT_FAMILIES.map(([name], i) => [name, i]));

/** Samples grouped by family, in OBJECT_FAMILIES order. */
export function groupSamples(samples: ObjectSample[]): Sample[][] {
  const out: Sample[][] = OBJECT_FAMILIES.map(() => []);
  for (const x of samples) out[FAMILY_INDEX.get(x.family)!]!.push({ labels: x.labels, value: x.value });
  return out;
}

const TALLY_HELP =
  'Counted once per Job when this replica first sees it finished; its first list counts the Jobs the API server still holds ' +
  '(Jobs have a TTL and CronJob history limits), so a replica started later may count fewer.';

export interface ObjectSample {
  family: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * The samples of one catalog, table or pool. `interval` maps a cron schedule to the seconds between
 * its next two runs (scheduleIntervalSeconds at the scrape's time).
 */
export function objectSamples(
  resource: 'catalogs' | 'tables' | 'pools',
  o: KubeObject,
  interval: (schedule: unknown) => number | undefined,
): ObjectSample[] {
  const out: ObjectSample[] = [];
  const put = (family: string, labels: Record<string, string>, value: number | undefined) => {
    if (value !== undefined) out.push({ family, labels, value });
  };
  const phases = (family: string, labels: Record<string, string>, all: readonly string[], current: string | undefined) => {
    for (const p of all) put(family, { ...labels, phase: p }, p === current ? 1 : 0);
    // A phase outside the known set still shows, so nothing is hidden.
    if (current && !all.includes(current)) put(family, { ...labels, phase: current }, 1);
  };
  const s = rec(o.status);
  const spec = rec(o.spec);
  const namespace = o.metadata.namespace ?? '';
  if (resource === 'catalogs') {
    const l = { namespace, catalog: o.metadata.name };
    put(
      'featherman_catalog_info',
      { ...l, metadata_type: str(s.metadataType) ?? str(rec(spec.metadata).type) ?? '', ducklake_version: str(s.ducklakeVersion) ?? '' },
      1,
    );
    phases('featherman_catalog_phase', l, CATALOG_PHASES, str(s.phase) ?? 'Pending');
    put('featherman_catalog_snapshot_id', l, num(s.snapshotId));
    put('featherman_catalog_tables', l, num(s.tableCount));
    put('featherman_catalog_rows', l, num(s.totalRows));
    put('featherman_catalog_bytes', l, num(s.totalBytes));
    put('featherman_catalog_files', l, num(s.totalFiles));
    const b = rec(s.lastBackup);
    put('featherman_catalog_last_backup_success_timestamp_seconds', l, seconds(b.time));
    put('featherman_catalog_last_backup_duration_seconds', l, num(b.durationSeconds));
    put('featherman_catalog_last_backup_bytes', l, num(b.bytes));
    put('featherman_catalog_last_backup_failed', l, b.outcome === 'Failed' ? 1 : 0);
    put('featherman_catalog_backup_interval_seconds', l, interval(rec(spec.backupPolicy).schedule));
    const m = rec(s.lastMaintenance);
    put('featherman_catalog_last_maintenance_success_timestamp_seconds', l, seconds(m.time));
    put('featherman_catalog_last_maintenance_duration_seconds', l, num(m.durationSeconds));
    put('featherman_catalog_last_maintenance_failed', l, m.outcome === 'Failed' ? 1 : 0);
    put('featherman_catalog_last_maintenance_bytes_reclaimed', l, num(m.bytesReclaimed));
    put('featherman_catalog_maintenance_interval_seconds', l, interval(rec(spec.maintenance).schedule));
  } else if (resource === 'tables') {
    const l = { namespace, table: o.metadata.name };
    const sqlName = str(s.table) ?? (str(spec.name) ? `${str(spec.schema) ?? SPEC_DEFAULTS.table.schema}.${str(spec.name)}` : '');
    put('featherman_table_info', { ...l, catalog: str(s.catalog) ?? str(spec.catalogRef) ?? '', sql_name: sqlName }, 1);
    phases('featherman_table_phase', l, TABLE_PHASES, str(s.phase) ?? 'Pending');
    put('featherman_table_rows', l, num(s.rows));
    put('featherman_table_bytes', l, num(s.bytes));
    put('featherman_table_files', l, num(s.files));
    put('featherman_table_snapshot_id', l, num(s.snapshotId));
  } else {
    const l = { namespace, pool: o.metadata.name };
    put('featherman_pool_info', { ...l, catalog: str(rec(spec.catalogRef).name) ?? '' }, 1);
    phases('featherman_pool_phase', l, POOL_PHASES, str(s.phase) ?? 'Pending');
    put('featherman_pool_workers', { ...l, state: 'desired' }, num(s.desiredSize));
    put('featherman_pool_workers', { ...l, state: 'current' }, num(s.currentSize));
    put('featherman_pool_workers', { ...l, state: 'idle' }, num(s.idlePods));
    put('featherman_pool_workers', { ...l, state: 'busy' }, num(s.busyPods));
    put('featherman_pool_queue_length', l, num(s.queueLength));
  }
  return out;
}

const HOUR = 3_600_000;
const intervalMemo = new Map<string, number | undefined>();

/**
 * scheduleIntervalSeconds from the start of `now`'s hour, memoised per schedule and hour (parsing
 * cron is the slowest part of a scrape otherwise). Replicas agree: they compute from the same instant.
 */
export function intervalsAt(now: Date): (schedule: unknown) => number | undefined {
  const hour = Math.floor(now.getTime() / HOUR);
  return (schedule) => {
    if (typeof schedule !== 'string') return undefined;
    const key = `${hour} ${schedule}`;
    if (!intervalMemo.has(key)) {
      if (intervalMemo.size > 1000) intervalMemo.clear();
      intervalMemo.set(key, scheduleIntervalSeconds(schedule, new Date(hour * HOUR)));
    }
    return intervalMemo.get(key);
  };
}

/**
 * Every object metric family for one snapshot (the reference: installObjectMetrics renders the same
 * samples, memoised per object). `now` only feeds the schedule intervals.
 */
export function objectFamilies(
  snap: Pick<Snapshot, 'catalogs' | 'tables' | 'pools' | 'jobs'>,
  tallies: JobTallies | undefined,
  now: Date,
): Family[] {
  const f = new Map<string, Family>(OBJECT_FAMILIES.map(([name, help, type]) => [name, { name, help, type, values: [] }]));
  const index = new Map(OBJECT_FAMILIES.map(([name], i) => [name, i]));
  const families = [...f.values()];
  const interval = intervalsAt(now);
  for (const resource of ['catalogs', 'tables', 'pools'] as const) {
    for (const o of snap[resource]) {
      groupSamples(objectSamples(resource, o, interval)).forEach((samples, i) => {
        if (samples.length) families[i]!.values.push(...samples);
      });
    }
  }
  const put = (name: string, labels: Record<string, string>, value: number) => {
    families[index.get(name)!]!.values.push({ labels, value });
  };
  const running = new Map<string, number>();
  for (const j of snap.jobs) {
    if (jobOutcome(j)) continue;
    const op = objectOperation(j, snap.jobs);
    if (op) running.set(`${op.kind}\u0000${op.operation}`, (running.get(`${op.kind}\u0000${op.operation}`) ?? 0) + 1);
  }
  for (const kind of ['catalog', 'table']) {
    for (const operation of kind === 'catalog' ? ['create'] : ['create', 'update', 'delete']) {
      put('featherman_operations_running', { kind, operation }, running.get(`${kind}\u0000${operation}`) ?? 0);
    }
  }

  const out = [...f.values()];
  if (tallies) {
    const hist: Sample[] = [];
    for (const cell of tallies.durations.values()) {
      JOB_DURATION_BUCKETS.forEach((le, i) =>
        hist.push({
          metricName: 'featherman_job_duration_seconds_bucket',
          labels: { ...cell.labels, le: String(le) },
          value: cell.buckets[i]!,
        }),
      );
      hist.push({ metricName: 'featherman_job_duration_seconds_bucket', labels: { ...cell.labels, le: '+Inf' }, value: cell.count });
      hist.push({ metricName: 'featherman_job_duration_seconds_sum', labels: cell.labels, value: cell.sum });
      hist.push({ metricName: 'featherman_job_duration_seconds_count', labels: cell.labels, value: cell.count });
    }
    out.push({
      name: 'featherman_job_duration_seconds',
      type: 'histogram',
      values: hist,
      help:
        'Start to completion of finished featherman Jobs, by operation (init, restore, apply, drop, backup, maintain, ' +
        `backup_delete, query) and outcome (succeeded, failed). ${TALLY_HELP}`,
    });
    out.push({
      name: 'featherman_job_failures_total',
      type: 'counter',
      values: [...tallies.failures.values()].map((c) => ({ labels: c.labels, value: c.value })),
      help:
        'Failed attempts of featherman Jobs by operation and reason: a failed pod by its runner exit code ' +
        '(bad_input 2, temporary 75, other), and a Job failed as a whole at its deadline (deadline) or with no failed pod ' +
        '(backoff_limit, pod_failure_policy, job_failed). Counted once per pod or Job when this replica first sees it; ' +
        'its first list counts what the API server still holds (Jobs have a TTL and CronJob history limits).',
    });
    out.push({
      name: 'featherman_operations_total',
      type: 'counter',
      values: [...tallies.operations.values()].map((c) => ({ labels: c.labels, value: c.value })),
      help:
        'Finished catalog and table operations by kind, operation and outcome (succeeded, failed): ' +
        "catalog create = an init or restore Job; table create = the table's first apply Job " +
        '(none of the same table object created before it), update = a later one; ' +
        `table delete = a drop Job. ${TALLY_HELP}`,
    });
  }
  return out;
}

export function cacheFamilies(cache: WatchCache): Family[] {
  return [
    {
      name: 'featherman_watch_cache_objects',
      type: 'gauge',
      help:
        "Objects in this replica's watch cache, by resource " +
        '(catalogs, tables, pools, backups, and the managed-by=featherman jobs, cronjobs, pods).',
      values: RESOURCE_NAMES.map((resource: Resource) => ({ labels: { resource }, value: cache.size(resource) })),
    },
    {
      name: 'featherman_watch_cache_synced',
      type: 'gauge',
      help: '1 when every resource of the watch cache has been listed and its last list succeeded, else 0.',
      values: [{ labels: {}, value: RESOURCE_NAMES.every((r) => cache.synced[r]) ? 1 : 0 }],
    },
  ];
}

const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const NO_LABELS = Object.freeze({}) as Record<string, string>;

/**
 * A sample with its labels already written into its name: prom-client's own label formatting
 * costs tens of milliseconds for the 25,000 samples of a big lake (bench/metrics.ts), and a
 * rendered sample is kept with its object until the object changes.
 */
export function renderSample(name: string, labels: Record<string, string>, value: number): Sample {
  let text = '';
  for (const k in labels) text += `${text ? ',' : ''}${k}="${escapeLabel(labels[k]!)}"`;
  return { metricName: text ? `${name}{${text}}` : name, labels: NO_LABELS, value };
}

/** The text lines of one object's samples of one family, and its last sample apart (see blockSample). */
interface Chunk {
  full: string;
  prefix: string;
  lastName: string;
  lastValue: number;
}

const valueText = (v: number) => (Number.isNaN(v) ? 'NaN' : v === Infinity ? '+Inf' : v === -Infinity ? '-Inf' : String(v));

function chunkOf(family: string, samples: Sample[]): Chunk | undefined {
  if (!samples.length) return undefined;
  const lines = samples.map((x) => renderSample(family, x.labels, x.value));
  const prefix = lines
    .slice(0, -1)
    .map((l) => `${l.metricName} ${valueText(l.value)}\n`)
    .join('');
  const last = lines[lines.length - 1]!;
  return { full: `${prefix}${last.metricName} ${valueText(last.value)}`, prefix, lastName: last.metricName!, lastValue: last.value };
}

const BUCKET = 64;
interface Bucket {
  chunks: Chunk[];
  text: string;
}

/**
 * A whole family's lines as one prom-client sample: every line but the last goes into the sample's
 * name, which prom-client writes out as it is, followed by the last value. A scrape of a big lake
 * then costs a few string joins instead of 25,000 calls of prom-client's formatter, and the text
 * of each run of BUCKET objects is reused while none of them changed (bench/metrics.ts).
 */
function blockSample(chunks: Chunk[], previous: Bucket[]): { sample: Sample; buckets: Bucket[] } {
  const last = chunks[chunks.length - 1]!;
  const buckets: Bucket[] = [];
  for (let start = 0; start < chunks.length - 1; start += BUCKET) {
    const part = chunks.slice(start, Math.min(start + BUCKET, chunks.length - 1));
    const prev = previous[buckets.length];
    buckets.push(
      prev && prev.chunks.length === part.length && prev.chunks.every((c, k) => c === part[k])
        ? prev
        : { chunks: part, text: part.map((c) => c.full).join('\n') },
    );
  }
  const head = buckets.map((b) => b.text).join('\n');
  return {
    sample: { metricName: `${head}${head ? '\n' : ''}${last.prefix}${last.lastName}`, labels: NO_LABELS, value: last.lastValue },
    buckets,
  };
}

const rendered = (family: Family): Sample[] =>
  family.values.map((v) => (v.labels === NO_LABELS ? v : renderSample(v.metricName ?? family.name, v.labels, v.value)));

/**
 * Registers the object metrics on `registry` as collectors: each scrape computes them once from
 * the cache (reused by the other families of the same scrape while the cache is unchanged), and
 * feeds the Job tallies from the cache's changes. Returns the tallies (tests read them).
 */
export function installObjectMetrics(cache: WatchCache, registry: Registry, opts: { now?: () => Date } = {}): JobTallies {
  const tallies = new JobTallies();
  cache.onChange((change) => tallies.observe(change, () => cache.list('jobs')));
  const now = opts.now ?? (() => new Date());
  // Objects in the cache are replaced, never changed, on every update: their rendered lines are
  // kept beside them until then (and until a schedule's interval changes).
  const perObject = new WeakMap<KubeObject, { key: string; chunks: (Chunk | undefined)[] }>();
  const chunksOf = (resource: 'catalogs' | 'tables' | 'pools', o: KubeObject, interval: (schedule: unknown) => number | undefined) => {
    const spec = rec(o.spec);
    const key = resource === 'catalogs' ? `${interval(rec(spec.backupPolicy).schedule)}/${interval(rec(spec.maintenance).schedule)}` : '';
    const hit = perObject.get(o);
    if (hit && hit.key === key) return hit.chunks;
    const chunks = groupSamples(objectSamples(resource, o, interval)).map((samples, i) => chunkOf(OBJECT_FAMILIES[i]![0], samples));
    perObject.set(o, { key, chunks });
    return chunks;
  };
  const lastBuckets: Bucket[][] = [];
  let memo: { version: number; at: number; families: Map<string, Sample[]> } | undefined;
  const families = () => {
    const t = Date.now();
    // One computation per scrape: the families of one registry.metrics() call are read in the same tick.
    if (!memo || memo.version !== cache.version || t - memo.at > 1000) {
      const snap = { catalogs: cache.list('catalogs'), tables: cache.list('tables'), pools: cache.list('pools'), jobs: cache.list('jobs') };
      const at = now();
      const interval = intervalsAt(at);
      const blocks: Chunk[][] = OBJECT_FAMILIES.map(() => []);
      for (const resource of ['catalogs', 'tables', 'pools'] as const) {
        for (const o of snap[resource])
          chunksOf(resource, o, interval).forEach((c, i) => {
            if (c) blocks[i]!.push(c);
          });
      }
      const rest = [...objectFamilies({ catalogs: [], tables: [], pools: [], jobs: snap.jobs }, tallies, at), ...cacheFamilies(cache)];
      const values = new Map<string, Sample[]>(rest.map((x) => [x.name, rendered(x)]));
      OBJECT_FAMILIES.forEach(([name], i) => {
        const chunks = blocks[i]!;
        if (!chunks.length) return;
        const { sample, buckets } = blockSample(chunks, lastBuckets[i] ?? []);
        lastBuckets[i] = buckets;
        values.set(name, [sample, ...(values.get(name) ?? [])]);
      });
      memo = { version: cache.version, at: t, families: values };
    }
    return memo.families;
  };
  for (const fam of [...objectFamilies({ catalogs: [], tables: [], pools: [], jobs: [] }, tallies, now()), ...cacheFamilies(cache)]) {
    const { name, help, type } = fam;
    // prom-client's Registry takes any object with name, help, type and get().
    registry.registerMetric({
      name,
      help,
      type,
      get: async () => ({ name, help, type, values: families().get(name) ?? [], aggregator: 'first' }),
    } as never);
  }
  return tallies;
}
