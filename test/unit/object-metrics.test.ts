// The pure parts of the object metrics (lib/k8s/object-metrics.ts) and Events (lib/k8s/events.ts):
// Job → operation, outcome, duration and failure reason; schedule → interval; objects → samples;
// the tallies counting once and never going down; cache changes → Events (names deterministic,
// old history not re-announced, no secret in a message); and the rendered scrape against the
// reference families.
import t from 'tap';
import { Registry } from 'prom-client';
import { labelsFor } from '../../lib/k8s/labels.js';
import type { KubeObject } from '../../lib/k8s/metacontroller.js';
import { ANNOUNCE_WINDOW_SECONDS, EventRecorder, eventName, transitions, type EventSpec } from '../../lib/k8s/events.js';
import {
  conditionReason,
  exitReason,
  installObjectMetrics,
  jobDurationSeconds,
  jobLevelFailure,
  jobOutcome,
  JobTallies,
  objectFamilies,
  objectOperation,
  operationOf,
  podFailureExitCode,
  scheduleIntervalSeconds,
} from '../../lib/k8s/object-metrics.js';
import { WatchCache, type Change } from '../../lib/k8s/watch-cache.js';

const NOW = new Date('2026-11-30T12:00:00Z');
const ago = (s: number) => new Date(NOW.getTime() - s * 1000).toISOString();
let n = 0;
const uid = () => `uid-${++n}`;

function job(
  component: Parameters<typeof labelsFor>[0]['component'],
  opts: {
    name?: string;
    args?: string[];
    state?: 'running' | 'ok' | 'failed';
    reason?: string;
    failedPods?: number;
    created?: string;
    table?: string;
    owner?: string;
  } = {},
): KubeObject {
  const name = opts.name ?? `${component}-${++n}`;
  const state = opts.state ?? 'ok';
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name,
      namespace: 'ns',
      uid: uid(),
      creationTimestamp: opts.created ?? ago(120),
      labels: labelsFor({ component, catalog: 'lake', instance: 'x', ...(opts.table ? { table: opts.table } : {}) }),
      ...(opts.owner
        ? {
            ownerReferences: [
              {
                apiVersion: 'ducklake.featherman.dev/v1alpha1',
                kind: opts.table ? 'DuckLakeTable' : 'DuckLakeCatalog',
                name: opts.table ?? 'lake',
                uid: opts.owner,
                controller: true,
              },
            ],
          }
        : {}),
    },
    spec: { template: { spec: { containers: [{ name: 'featherman', args: opts.args ?? ['catalog', 'init'] }] } } },
    status: {
      startTime: ago(100),
      ...(state === 'ok'
        ? { completionTime: ago(40), succeeded: 1, conditions: [{ type: 'Complete', status: 'True', lastTransitionTime: ago(40) }] }
        : {}),
      ...(state === 'failed'
        ? {
            failed: opts.failedPods ?? 1,
            conditions: [{ type: 'Failed', status: 'True', reason: opts.reason ?? 'BackoffLimitExceeded', lastTransitionTime: ago(30) }],
          }
        : {}),
    },
  };
}

function pod(j: KubeObject, exitCode: number, message = ''): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: `${j.metadata.name}-abcde`,
      namespace: 'ns',
      uid: uid(),
      labels: { ...j.metadata.labels, 'job-name': j.metadata.name },
      ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: j.metadata.name, uid: j.metadata.uid, controller: true }],
    },
    spec: (j.spec as { template: { spec: unknown } }).template.spec,
    status: {
      phase: exitCode === 0 ? 'Succeeded' : 'Failed',
      containerStatuses: [{ name: 'featherman', state: { terminated: { exitCode, message, finishedAt: ago(35) } } }],
    },
  };
}

t.test("a Job's operation, outcome, duration and failure reason", async (t) => {
  t.equal(operationOf(job('catalog-init')), 'init');
  t.equal(
    operationOf(job('catalog-init', { args: ['restore', '--backup', 'latest'] })),
    'restore',
    "a restore init Job by its runner's first argument",
  );
  t.equal(operationOf(job('catalog-backup')), 'backup');
  t.equal(operationOf(job('catalog-maintenance')), 'maintain');
  t.equal(operationOf(job('backup-delete')), 'backup_delete');
  t.equal(operationOf(job('table-apply')), 'apply');
  t.equal(operationOf(job('table-drop')), 'drop');
  t.equal(operationOf(job('query')), 'query');
  t.equal(operationOf(job('worker')), undefined, 'a worker is no Job operation');
  t.equal(operationOf(pod(job('table-drop'), 1)), 'drop', "a pod carries its Job's labels");
  t.equal(jobOutcome(job('table-apply', { state: 'running' })), undefined);
  t.equal(jobOutcome(job('table-apply')), 'succeeded');
  t.equal(jobOutcome(job('table-apply', { state: 'failed' })), 'failed');
  t.equal(jobDurationSeconds(job('table-apply')), 60, 'startTime to completionTime');
  t.equal(jobDurationSeconds(job('table-apply', { state: 'failed' })), 70, 'a failed Job ends at its Failed condition');
  t.equal(jobDurationSeconds(job('table-apply', { state: 'running' })), undefined);
  t.same([0, 2, 75, 1, 137].map(exitReason), ['other', 'bad_input', 'temporary', 'other', 'other']);
  t.equal(conditionReason(job('catalog-init', { state: 'failed', reason: 'DeadlineExceeded' })), 'deadline');
  t.equal(conditionReason(job('catalog-init', { state: 'failed', reason: 'PodFailurePolicy' })), 'pod_failure_policy');
  t.equal(conditionReason(job('catalog-init', { state: 'failed', reason: 'Something' })), 'job_failed');
  t.equal(
    jobLevelFailure(job('catalog-init', { state: 'failed', reason: 'DeadlineExceeded' })),
    'deadline',
    'a deadline counts on the Job',
  );
  t.equal(
    jobLevelFailure(job('catalog-init', { state: 'failed', failedPods: 3 })),
    undefined,
    'failed pods count by their exit codes instead',
  );
  t.equal(jobLevelFailure(job('catalog-init', { state: 'failed', failedPods: 0 })), 'backoff_limit', "no failed pod: the Job's reason");
  t.equal(podFailureExitCode(pod(job('catalog-init'), 75)), 75);
  t.equal(podFailureExitCode(pod(job('catalog-init'), 0)), undefined);
});

t.test('catalog and table operations', async (t) => {
  t.same(objectOperation(job('catalog-init'), []), { kind: 'catalog', operation: 'create' });
  t.same(objectOperation(job('catalog-init', { args: ['restore'] }), []), { kind: 'catalog', operation: 'create' });
  t.same(objectOperation(job('table-drop', { table: 'users' }), []), { kind: 'table', operation: 'delete' });
  t.equal(objectOperation(job('catalog-backup'), []), undefined);
  const first = job('table-apply', { table: 'users', owner: 'table-uid', created: ago(600) });
  const second = job('table-apply', { table: 'users', owner: 'table-uid', created: ago(60) });
  const otherTable = job('table-apply', { table: 'orders', owner: 'other-uid', created: ago(900) });
  const recreated = job('table-apply', { table: 'users', owner: 'new-uid', created: ago(30) });
  const all = [first, second, otherTable, recreated];
  t.same(objectOperation(first, all), { kind: 'table', operation: 'create' }, "the table's first apply Job creates it");
  t.same(objectOperation(second, all), { kind: 'table', operation: 'update' }, 'a later one updates it');
  t.same(objectOperation(otherTable, all), { kind: 'table', operation: 'create' }, "another table's Jobs do not count");
  t.same(objectOperation(recreated, all), { kind: 'table', operation: 'create' }, 'a table re-created under the same name is a new object');
});

t.test("a schedule's interval", async (t) => {
  t.equal(scheduleIntervalSeconds('0 2 * * *', NOW), 86400);
  t.equal(scheduleIntervalSeconds('@hourly', NOW), 3600);
  t.equal(scheduleIntervalSeconds('@weekly', NOW), 7 * 86400);
  t.equal(scheduleIntervalSeconds('*/15 * * * *', NOW), 900);
  t.equal(scheduleIntervalSeconds('not a schedule', NOW), undefined);
  t.equal(scheduleIntervalSeconds(undefined, NOW), undefined);
});

const catalog = (
  status: Record<string, unknown>,
  spec: Record<string, unknown> = { backupPolicy: { schedule: '0 2 * * *' } },
): KubeObject => ({
  apiVersion: 'ducklake.featherman.dev/v1alpha1',
  kind: 'DuckLakeCatalog',
  metadata: { name: 'lake', namespace: 'ns', uid: 'cat-uid' },
  spec,
  status,
});
const valuesOf = (families: ReturnType<typeof objectFamilies>, name: string) => families.find((f) => f.name === name)!.values;

t.test('samples of catalogs, tables and pools', async (t) => {
  const fams = objectFamilies(
    {
      catalogs: [
        catalog({
          phase: 'Ready',
          metadataType: 'duckdb',
          ducklakeVersion: '0.3',
          snapshotId: 7,
          tableCount: 2,
          totalRows: 30,
          totalBytes: 4096,
          lastBackup: { time: '2026-11-30T02:00:10Z', durationSeconds: 10, bytes: 4000, outcome: 'Failed', attemptTime: ago(60) },
        }),
      ],
      tables: [
        {
          apiVersion: 'x',
          kind: 'DuckLakeTable',
          metadata: { name: 'users', namespace: 'ns' },
          spec: { catalogRef: 'lake', name: 'users' },
          status: { phase: 'Ready', rows: 3, bytes: 1024, files: 1, snapshotId: 5 },
        },
      ],
      pools: [
        {
          apiVersion: 'x',
          kind: 'DuckLakePool',
          metadata: { name: 'p', namespace: 'ns' },
          spec: { catalogRef: { name: 'lake' } },
          status: { phase: 'Ready', desiredSize: 2, currentSize: 1, idlePods: 1, busyPods: 0, queueLength: 4 },
        },
      ],
      jobs: [job('table-apply', { state: 'running', table: 'users' })],
    },
    undefined,
    NOW,
  );
  const l = { namespace: 'ns', catalog: 'lake' };
  t.same(valuesOf(fams, 'featherman_catalog_info'), [{ labels: { ...l, metadata_type: 'duckdb', ducklake_version: '0.3' }, value: 1 }]);
  t.same(
    valuesOf(fams, 'featherman_catalog_phase').map((v) => [v.labels.phase, v.value]),
    [
      ['Pending', 0],
      ['Provisioning', 0],
      ['Ready', 1],
      ['Failed', 0],
      ['Deleting', 0],
    ],
  );
  t.same(valuesOf(fams, 'featherman_catalog_bytes'), [{ labels: l, value: 4096 }]);
  t.same(valuesOf(fams, 'featherman_catalog_files'), [], 'absent when unknown');
  t.same(
    valuesOf(fams, 'featherman_catalog_last_backup_success_timestamp_seconds'),
    [{ labels: l, value: Date.parse('2026-11-30T02:00:10Z') / 1000 }],
    "the last good backup's time",
  );
  t.same(valuesOf(fams, 'featherman_catalog_last_backup_failed'), [{ labels: l, value: 1 }], 'the newest attempt failed');
  t.same(valuesOf(fams, 'featherman_catalog_backup_interval_seconds'), [{ labels: l, value: 86400 }]);
  t.same(valuesOf(fams, 'featherman_catalog_last_maintenance_failed'), [{ labels: l, value: 0 }]);
  t.same(
    valuesOf(fams, 'featherman_table_info'),
    [{ labels: { namespace: 'ns', table: 'users', catalog: 'lake', sql_name: 'main.users' }, value: 1 }],
    'the SQL name from the spec until the status has one',
  );
  t.same(valuesOf(fams, 'featherman_table_bytes'), [{ labels: { namespace: 'ns', table: 'users' }, value: 1024 }]);
  t.same(
    valuesOf(fams, 'featherman_pool_workers').map((v) => [v.labels.state, v.value]),
    [
      ['desired', 2],
      ['current', 1],
      ['idle', 1],
      ['busy', 0],
    ],
  );
  t.same(valuesOf(fams, 'featherman_pool_queue_length'), [{ labels: { namespace: 'ns', pool: 'p' }, value: 4 }]);
  t.same(
    valuesOf(fams, 'featherman_operations_running').find((v) => v.labels.kind === 'table' && v.labels.operation === 'create')!.value,
    1,
  );
  const odd = objectFamilies({ catalogs: [catalog({ phase: 'Upgrading' })], tables: [], pools: [], jobs: [] }, undefined, NOW);
  t.same(
    valuesOf(odd, 'featherman_catalog_phase')
      .filter((v) => v.value === 1)
      .map((v) => v.labels.phase),
    ['Upgrading'],
    'an unknown phase still shows',
  );
});

const change = (resource: Change['resource'], object: KubeObject, old?: KubeObject, listed = false, type?: Change['type']): Change => ({
  resource,
  type: type ?? (old ? 'modified' : 'added'),
  object,
  ...(old ? { old } : {}),
  listed,
});

t.test('the tallies count each Job and failed pod once and never go down', async (t) => {
  const tallies = new JobTallies();
  const running = job('catalog-init', { state: 'running' });
  const failed = {
    ...running,
    status: {
      startTime: ago(100),
      failed: 1,
      conditions: [{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', lastTransitionTime: ago(30) }],
    },
  };
  const p = pod(running, 75, JSON.stringify({ ok: false, exitCode: 75, error: 'storage unreachable' }));
  tallies.observe(change('jobs', running), () => [running]);
  t.equal(tallies.durations.size, 0, 'nothing while it runs');
  tallies.observe(change('pods', p), () => []);
  tallies.observe(change('pods', { ...p }, p), () => []);
  tallies.observe(change('jobs', failed, running), () => [failed]);
  tallies.observe(change('jobs', { ...failed }, failed), () => [failed]);
  t.same(
    [...tallies.failures.values()],
    [{ labels: { operation: 'init', reason: 'temporary' }, value: 1 }],
    'the pod once, by its exit code; the Job adds nothing (its pod explains it)',
  );
  t.same([...tallies.operations.values()], [{ labels: { kind: 'catalog', operation: 'create', outcome: 'failed' }, value: 1 }]);
  t.equal([...tallies.durations.values()][0]!.count, 1);
  tallies.observe(change('jobs', failed, undefined, false, 'deleted'), () => []);
  tallies.observe(change('pods', p, undefined, false, 'deleted'), () => []);
  t.equal([...tallies.failures.values()][0]!.value, 1, 'deleting the Job (TTL) does not take it back');
  const deadline = job('catalog-backup', { state: 'failed', reason: 'DeadlineExceeded' });
  tallies.observe(change('jobs', deadline), () => [deadline]);
  t.same(
    [...tallies.failures.values()].map((c) => [c.labels.operation, c.labels.reason, c.value]),
    [
      ['init', 'temporary', 1],
      ['backup', 'deadline', 1],
    ],
  );
});

t.test('the scrape of a registry equals the reference families, and two caches agree', async (t) => {
  const objects: [Change['resource'], KubeObject][] = [
    [
      'catalogs',
      {
        ...catalog({ phase: 'Ready', snapshotId: 3, totalBytes: 10 }),
        metadata: { name: 'lake', namespace: 'ns', uid: 'c1', resourceVersion: '1' } as never,
      },
    ],
    ['catalogs', { ...catalog({ phase: 'Failed' }), metadata: { name: 'we"ird\\name', namespace: 'ns', uid: 'c2' } }],
    [
      'tables',
      {
        apiVersion: 'x',
        kind: 'DuckLakeTable',
        metadata: { name: 'users', namespace: 'ns', uid: 't1' },
        spec: { catalogRef: 'lake', name: 'users', schema: 'crm' },
        status: { phase: 'Ready', rows: 3 },
      },
    ],
    ['jobs', job('catalog-init')],
    ['jobs', job('table-apply', { state: 'failed', failedPods: 0, table: 'users' })],
  ];
  const scrapes: string[] = [];
  for (let i = 0; i < 2; i++) {
    const cache = new WatchCache();
    const registry = new Registry();
    installObjectMetrics(cache, registry, { now: () => NOW });
    for (const [r, o] of i === 0 ? objects : [...objects].reverse()) cache.apply(r, 'added', o);
    cache.replace('pods', []);
    scrapes.push(await registry.metrics());
  }
  const sorted = (text: string) =>
    text
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .sort();
  t.same(sorted(scrapes[1]!), sorted(scrapes[0]!), 'the same objects in another order give the same lines');
  const text = scrapes[0]!;
  t.match(text, /^featherman_catalog_snapshot_id\{namespace="ns",catalog="lake"\} 3$/m);
  t.match(text, /^featherman_catalog_phase\{namespace="ns",catalog="we\\"ird\\\\name",phase="Failed"\} 1$/m, 'label values escaped');
  t.match(text, /^featherman_table_info\{namespace="ns",table="users",catalog="lake",sql_name="crm.users"\} 1$/m);
  t.match(text, /^featherman_job_failures_total\{operation="apply",reason="backoff_limit"\} 1$/m);
  t.match(text, /^featherman_operations_total\{kind="catalog",operation="create",outcome="succeeded"\} 1$/m);
  t.match(text, /^featherman_job_duration_seconds_bucket\{operation="init",outcome="succeeded",le="60"\} 1$/m);
  t.match(text, /^featherman_job_duration_seconds_bucket\{operation="init",outcome="succeeded",le="30"\} 0$/m);
  t.match(text, /^featherman_watch_cache_objects\{resource="jobs"\} 2$/m);
  t.match(text, /^featherman_watch_cache_synced 0$/m, 'not every resource listed yet');
  // The reference: every sample objectFamilies() computes appears, with the same value.
  const cache = new WatchCache();
  for (const [r, o] of objects) cache.apply(r, 'added', o);
  const reference = objectFamilies(cache.snapshot(), undefined, NOW);
  for (const f of reference) {
    for (const v of f.values) {
      const labels = Object.entries(v.labels)
        .map(([k, x]) => `${k}="${x.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`)
        .join(',');
      t.ok(text.split('\n').includes(`${f.name}${labels ? `{${labels}}` : ''} ${v.value}`), `${f.name}{${labels}} ${v.value}`);
    }
  }
});

t.test('Events from changes', async (t) => {
  const cat: KubeObject = { ...catalog({ phase: 'Ready' }), metadata: { name: 'lake', namespace: 'ns', uid: 'cat-uid' } };
  const lookup = { list: (r: string) => (r === 'catalogs' ? [cat] : r === 'pods' ? pods : []) };
  let pods: KubeObject[] = [];
  const running = job('catalog-init', { state: 'running', owner: 'cat-uid' });
  const started = transitions(change('jobs', running), lookup as never, NOW);
  t.same(
    started.map((e) => [e.reason, e.involved.kind, e.involved.uid]),
    [['JobStarted', 'DuckLakeCatalog', 'cat-uid']],
  );
  t.same(transitions(change('jobs', { ...running }, running), lookup as never, NOW), [], 'no change, no Event');
  const secret = 'hunter2-very-secret';
  process.env.PGPASSWORD = secret;
  t.teardown(() => {
    delete process.env.PGPASSWORD;
  });
  pods = [
    pod(running, 75, JSON.stringify({ ok: false, exitCode: 75, error: `storage unreachable: postgres://u:${secret}@db/x\nsecond line` })),
  ];
  const failed = {
    ...running,
    status: { failed: 1, conditions: [{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', lastTransitionTime: ago(30) }] },
  };
  // A failed attempt of a Job that goes on retrying: a Warning on the catalog, once, with the runner's error.
  const attempt = pods[0]!;
  const unfinished = { ...attempt, status: { phase: 'Running', containerStatuses: [{ name: 'featherman', state: { running: {} } }] } };
  const [tried] = transitions(change('pods', attempt, unfinished), lookup as never, NOW);
  t.match(tried, { reason: 'JobAttemptFailed', type: 'Warning', involved: { kind: 'DuckLakeCatalog', uid: 'cat-uid' } });
  t.match(
    tried!.message,
    /an attempt failed \(exit code 75, temporary: retried\): storage unreachable: postgres:\/\/u:\*\*\*@db\/x second line$/,
  );
  t.same(transitions(change('pods', { ...attempt }, attempt), lookup as never, NOW), [], 'the same terminated pod again: no second Event');
  const [ev] = transitions(change('jobs', failed, running), lookup as never, NOW);
  t.equal(ev!.reason, 'JobFailed');
  t.equal(ev!.type, 'Warning');
  t.match(
    ev!.message,
    /^catalog init job .* failed: storage unreachable: postgres:\/\/u:\*\*\*@db\/x second line$/,
    "the runner's error, one line",
  );
  t.notMatch(ev!.message, secret);
  t.equal(ev!.time, ago(30));
  // A replica starting later lists the same Job: same transition, same Event name.
  const listed = transitions(change('jobs', failed, undefined, true), lookup as never, NOW);
  t.equal(eventName(listed[0]!), eventName(ev!), 'deterministic across replicas');
  const muchLater = new Date(NOW.getTime() + (ANNOUNCE_WINDOW_SECONDS + 60) * 1000);
  t.same(transitions(change('jobs', failed, undefined, true), lookup as never, muchLater), [], 'old history is not re-announced on a list');
  const drop = job('table-drop', { table: 'users', owner: 'tbl-uid' });
  t.same(
    transitions(change('jobs', drop, { ...drop, status: {} }), lookup as never, NOW).map((e) => [e.reason, e.involved.kind]),
    [
      ['JobSucceeded', 'DuckLakeTable'],
      ['TableDropped', 'DuckLakeTable'],
    ],
  );

  const backedUp = {
    ...cat,
    status: { lastBackup: { name: 'b1', time: ago(10), bytes: 5, durationSeconds: 2, snapshotId: 9, outcome: 'Succeeded' } },
  };
  const [taken] = transitions(change('catalogs', backedUp, cat), lookup as never, NOW);
  t.same([taken!.reason, taken!.message], ['BackupTaken', 'backup b1 taken: snapshot 9, 5 bytes, in 2s']);
  const failedBackup = {
    ...cat,
    status: {
      lastBackup: { ...backedUp.status.lastBackup, outcome: 'Failed', attemptTime: ago(5), message: `denied: password=${secret}` },
    },
  };
  const [bf] = transitions(change('catalogs', failedBackup, backedUp), lookup as never, NOW);
  t.same([bf!.reason, bf!.type], ['BackupFailed', 'Warning']);
  t.notMatch(bf!.message, secret);
  t.same(transitions(change('catalogs', { ...failedBackup }, failedBackup), lookup as never, NOW), [], 'the same failure once');
  const maint = { ...cat, status: { lastMaintenance: { time: ago(3), outcome: 'Succeeded', filesMerged: 4, bytesReclaimed: 100 } } };
  t.same(
    transitions(change('catalogs', maint, cat), lookup as never, NOW).map((e) => [e.reason, e.message]),
    [['MaintenanceDone', 'maintenance done: filesMerged 4, bytesReclaimed 100']],
  );

  const pool: KubeObject = {
    apiVersion: 'ducklake.featherman.dev/v1alpha1',
    kind: 'DuckLakePool',
    metadata: { name: 'p', namespace: 'ns', uid: 'pool-uid', resourceVersion: '5' } as never,
    status: { desiredSize: 1 },
  };
  const bigger = { ...pool, metadata: { ...pool.metadata, resourceVersion: '6' } as never, status: { desiredSize: 3 } };
  t.same(
    transitions(change('pools', bigger, pool), lookup as never, NOW).map((e) => [e.reason, e.message]),
    [['PoolScaledUp', 'desired workers 1 → 3']],
  );
  t.same(
    transitions(change('pools', pool, bigger), lookup as never, NOW).map((e) => e.reason),
    ['PoolScaledDown'],
  );
  t.same(transitions(change('pools', bigger), lookup as never, NOW), [], 'a pool seen for the first time did not scale');
  const poolLookup = { list: (r: string) => (r === 'pools' ? [pool] : []) };
  const worker: KubeObject = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'p-abc',
      namespace: 'ns',
      uid: 'w1',
      labels: labelsFor({ component: 'worker', catalog: 'lake', pool: 'p', instance: 'p' }),
    },
  };
  t.same(
    transitions(change('pods', worker, undefined, false, 'deleted'), poolLookup as never, NOW).map((e) => [e.reason, e.involved.name]),
    [['WorkerRecycled', 'p']],
  );
});

t.test('the recorder creates each Event once and treats 409 as done', async (t) => {
  const created = new Set<string>();
  const bodies: unknown[] = [];
  const create = async (body: { metadata?: { name?: string } }) => {
    bodies.push(body);
    if (created.has(body.metadata!.name!)) throw Object.assign(new Error('AlreadyExists'), { code: 409 });
    created.add(body.metadata!.name!);
  };
  const warnings: object[] = [];
  const log = { warn: (o: object) => warnings.push(o) };
  const a = new EventRecorder(create as never, log, 'a');
  const b = new EventRecorder(create as never, log, 'b');
  const spec: EventSpec = {
    namespace: 'ns',
    involved: { apiVersion: 'v', kind: 'DuckLakeCatalog', name: 'lake', uid: 'u' },
    reason: 'JobStarted',
    type: 'Normal',
    message: 'm',
    key: 'k',
    time: NOW.toISOString(),
  };
  a.record(spec);
  a.record(spec);
  b.record(spec);
  await a.idle();
  await b.idle();
  t.equal(created.size, 1);
  t.equal(a.created + b.created, 1, 'one replica created it');
  t.equal(b.existed, 1, 'the other got 409');
  t.equal(bodies.length, 2, 'the same recorder does not send twice');
  t.same(warnings, []);
  t.match(bodies[0], {
    involvedObject: { kind: 'DuckLakeCatalog', name: 'lake', uid: 'u', namespace: 'ns' },
    reason: 'JobStarted',
    source: { component: 'featherman' },
    reportingComponent: 'featherman',
    count: 1,
  });
});
