// Golden tests: v2 sync/finalize requests for each state of a catalog and a table, answered by the
// pure hook functions. Every response is compared with its file in test/golden (UPDATE_GOLDEN=1
// rewrites them), checked for the contract (no unknown top-level fields, complete status), and
// every child is validated against Kubernetes' published OpenAPI schemas (kubernetes-models).
import t, { type Test } from 'tap';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { CronJob } from 'kubernetes-models/batch/v1/CronJob';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import * as backup from '../../hooks/backup.js';
import * as catalog from '../../hooks/catalog.js';
import * as table from '../../hooks/table.js';
import { shortHash } from '../../lib/k8s/labels.js';
import type { KubeObject, SyncResponse } from '../../lib/k8s/metacontroller.js';
import {
  catalogObject,
  ctx,
  jobFailed,
  jobPod,
  jobRunning,
  jobSucceeded,
  observed,
  syncRequest,
  tableObject,
} from '../helpers/hook-fixtures.js';
import { golden } from '../helpers/golden.js';

const CATALOG_TYPES = ['PersistentVolumeClaim.v1', 'Job.batch/v1', 'CronJob.batch/v1'];
const TABLE_TYPES = ['Job.batch/v1'];
const validators: Record<string, (o: KubeObject) => void> = {
  Job: (o) => new Job(o as never).validate(),
  CronJob: (o) => new CronJob(o as never).validate(),
  PersistentVolumeClaim: (o) => new PersistentVolumeClaim(o as never).validate(),
};

function podSpecOf(child: KubeObject): Record<string, any> | undefined {
  const spec = child.spec as Record<string, any> | undefined;
  return child.kind === 'Job' ? spec?.template?.spec : child.kind === 'CronJob' ? spec?.jobTemplate?.spec?.template?.spec : undefined;
}

function checkContract(t: Test, response: SyncResponse, finalize = false) {
  const allowed = new Set(['status', 'children', 'resyncAfterSeconds', ...(finalize ? ['finalized'] : [])]);
  t.same(
    Object.keys(response).filter((k) => !allowed.has(k)),
    [],
    'no unknown top-level fields (v2 hooks are strict)',
  );
  t.type(response.status.phase, 'string', 'status.phase is set');
  t.ok(
    Array.isArray(response.status.conditions) && (response.status.conditions as { type: string }[]).some((c) => c.type === 'Ready'),
    'status has a Ready condition',
  );
  t.type(response.status.observedGeneration, 'number', 'status.observedGeneration is set');
  for (const c of response.status.conditions as Record<string, unknown>[]) {
    t.match(
      c,
      {
        type: String,
        status: /^(True|False|Unknown)$/,
        reason: /^[A-Za-z][A-Za-z0-9]*$/,
        message: String,
        lastTransitionTime: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
      },
      `condition ${c.type} is complete`,
    );
  }
  for (const child of response.children) {
    const what = `${child.kind} ${child.metadata?.name}`;
    t.ok(child.apiVersion && child.kind && child.metadata?.name, `${what} has apiVersion, kind and name`);
    t.ok(child.metadata.name.length <= 63, `${what}: name fits 63 characters`);
    t.match(
      child.metadata.labels,
      {
        'app.kubernetes.io/name': 'featherman',
        'app.kubernetes.io/managed-by': 'featherman',
        'app.kubernetes.io/component': String,
        'app.kubernetes.io/instance': String,
        'ducklake.featherman.dev/catalog': String,
      },
      `${what} carries the labels`,
    );
    const validate = validators[child.kind];
    t.ok(validate, `${what} is a known child type`);
    t.doesNotThrow(() => validate!(child), `${what} is valid against the Kubernetes OpenAPI schema`);
    const pod = podSpecOf(child);
    if (pod) {
      t.match(
        pod.securityContext,
        { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
        `${what}: pod runs as non-root with RuntimeDefault seccomp`,
      );
      for (const c of pod.containers) {
        t.match(
          c.securityContext,
          { runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false },
          `${what}: container is locked down`,
        );
        t.ok(c.resources?.requests?.memory && c.resources?.limits?.memory, `${what}: container has requests and limits`);
        t.equal(c.image, ctx.settings.image, `${what}: image from the one setting`);
        for (const e of c.env ?? []) {
          if (/SECRET|PASSWORD|KEY_ID|TOKEN/.test(e.name))
            t.ok(e.valueFrom?.secretKeyRef && e.value === undefined, `${what}: ${e.name} comes from a secretKeyRef`);
        }
        t.notMatch(JSON.stringify(c.args), /secret|password/i, `${what}: no secret on the command line`);
      }
    }
  }
}

const kinds = (r: SyncResponse) => r.children.map((c) => `${c.kind}/${c.metadata.name}`);

t.test('DuckLakeCatalog', async (t) => {
  const fresh = catalogObject();
  const r0 = catalog.sync(syncRequest(fresh, [], [], CATALOG_TYPES), ctx);
  checkContract(t, r0);
  golden(t, 'catalog-fresh', r0);
  t.equal(r0.status.phase, 'Pending');
  t.equal(r0.resyncAfterSeconds, 5, 'resyncs while work is in flight');
  const initJob = r0.children.find((c) => c.kind === 'Job')!;
  t.match(
    kinds(r0),
    ['PersistentVolumeClaim/example-catalog', /^Job\/example-init-[0-9a-f]{8}$/],
    'no backup or maintenance CronJob before the lake is initialized',
  );
  const full = catalog.desiredChildren(fresh, ctx);
  t.match(kinds({ ...r0, children: full }), [...kinds(r0), 'CronJob/example-backup', 'CronJob/example-maintain']);
  t.same(podSpecOf(initJob)!.containers[0].args, ['catalog', 'init']);

  const provisioning = syncRequest(
    fresh,
    r0.children.map((c) => observed(c, c.kind === 'Job' ? jobRunning : {})),
    [],
    CATALOG_TYPES,
  );
  const r1 = catalog.sync(provisioning, ctx);
  checkContract(t, r1);
  golden(t, 'catalog-provisioning', r1);
  t.equal(r1.status.phase, 'Provisioning');
  t.same(r1.children, r0.children, 'the desired children do not change while the Job runs');

  const withStatus = { ...fresh, status: r1.status };
  const later = { ...ctx, now: new Date('2026-11-24T12:05:00Z') };
  const done = full.map((c) =>
    observed(
      c,
      c.kind === 'Job'
        ? jobSucceeded
        : c.kind === 'CronJob' && c.metadata.name.endsWith('backup')
          ? { lastSuccessfulTime: '2026-11-24T02:00:41Z' }
          : {},
    ),
  );
  const pod = jobPod(initJob.metadata.name, 0, {
    ok: true,
    command: 'catalog init',
    ducklakeVersion: '1.0',
    dataPath: 's3://lake/analytics/example/data/',
    snapshotId: 0,
    tables: [],
  });
  const r2 = catalog.sync(syncRequest(withStatus, done, [pod], CATALOG_TYPES), later);
  checkContract(t, r2);
  golden(t, 'catalog-ready', r2);
  t.match(r2.status, {
    phase: 'Ready',
    ducklakeVersion: '1.0',
    dataPath: 's3://lake/analytics/example/data/',
    lastBackupTime: '2026-11-24T02:00:41Z',
    tableCount: 0,
  });
  t.notOk('resyncAfterSeconds' in r2, 'no resync once ready');
  t.same(kinds(r2), kinds({ ...r0, children: full }), 'once initialized, the CronJobs are scheduled');
  const ready = r2.status.conditions as { type: string; lastTransitionTime: string }[];
  const before = r1.status.conditions as { type: string; lastTransitionTime: string }[];
  t.not(
    ready.find((c) => c.type === 'Ready')!.lastTransitionTime,
    before.find((c) => c.type === 'Ready')!.lastTransitionTime,
    'Ready moved: its time changed',
  );
  t.match(
    before.find((c) => c.type === 'BackupScheduled'),
    { status: 'False', reason: 'WaitingForInit' },
    'while provisioning, backups wait for the lake',
  );
  const again = catalog.sync(syncRequest({ ...fresh, status: r2.status }, done, [pod], CATALOG_TYPES), {
    ...ctx,
    now: new Date('2026-11-24T12:30:00Z'),
  });
  t.same(
    (again.status.conditions as { lastTransitionTime: string }[]).map((c) => c.lastTransitionTime),
    ready.map((c) => c.lastTransitionTime),
    'nothing moved: no condition time changed',
  );

  const failedPod = jobPod(initJob.metadata.name, 1, {
    ok: false,
    exitCode: 1,
    error:
      'checking s3://lake/analytics/example/data/: the storage or catalog rejected the credentials; ' +
      'check the access key and secret (AccessDenied (HTTP 403))',
  });
  const r3 = catalog.sync(
    syncRequest(
      fresh,
      r0.children.map((c) => observed(c, c.kind === 'Job' ? jobFailed : {})),
      [failedPod],
      CATALOG_TYPES,
    ),
    ctx,
  );
  checkContract(t, r3);
  golden(t, 'catalog-failed', r3);
  t.equal(r3.status.phase, 'Failed');
  t.match(
    (r3.status.conditions as { type: string; message: string }[]).find((c) => c.type === 'Ready')!.message,
    /rejected the credentials/,
    "Failed carries the pod's own message",
  );
  t.same(kinds(r3), kinds(r0), 'a catalog whose init failed schedules no backups or maintenance');
  t.match(
    (r3.status.conditions as { type: string; reason: string }[]).find((c) => c.type === 'BackupScheduled'),
    { status: 'False', reason: 'WaitingForInit' },
  );
  const reinit = catalog.sync(
    syncRequest(
      { ...fresh, status: r2.status },
      [
        ...done.filter((c) => c.kind !== 'Job'),
        observed(
          r0.children.find((c) => c.kind === 'Job')!,
          jobRunning,
        ),
      ],
      [],
      CATALOG_TYPES,
    ),
    ctx,
  );
  t.same(kinds(reinit), kinds(r2), 'a Ready catalog keeps its CronJobs while an init Job runs again');

  const retryPod = jobPod(initJob.metadata.name, 75, {
    ok: false,
    exitCode: 75,
    error: 'checking s3://lake/analytics/example/data/: storage or catalog unreachable; retry later (ECONNREFUSED)',
  });
  const retrying = catalog.sync(
    syncRequest(
      fresh,
      r0.children.map((c) => observed(c, c.kind === 'Job' ? { ...jobRunning, failed: 1 } : {})),
      [retryPod],
      CATALOG_TYPES,
    ),
    ctx,
  );
  checkContract(t, retrying);
  t.match(
    retrying.status,
    {
      phase: 'Provisioning',
      conditions: [
        {
          type: 'Ready',
          message: /provisioning; last attempt: .*unreachable; retry later \(ECONNREFUSED\) \(1 failed attempt, retrying\)$/,
        },
      ],
    },
    'a retrying init Job shows its last failed attempt',
  );
  // Metacontroller may see the Job's failed count before the failed pod (two watches), or the pod
  // may be gone: the count alone still says an attempt failed.
  const countOnly = catalog.sync(
    syncRequest(
      fresh,
      r0.children.map((c) => observed(c, c.kind === 'Job' ? { ...jobRunning, failed: 2 } : {})),
      [],
      CATALOG_TYPES,
    ),
    ctx,
  );
  checkContract(t, countOnly);
  t.match(
    countOnly.status,
    { phase: 'Provisioning', conditions: [{ type: 'Ready', message: /^the catalog is provisioning; 2 failed attempts, retrying$/ }] },
    "without the failed pod, the Job's count shows the failure",
  );

  const edited = catalogObject({ backupPolicy: { schedule: '0 4 * * *', retentionDays: 30 }, maintenance: undefined }, { generation: 2 });
  const r4 = catalog.sync(syncRequest(edited, done, [pod], CATALOG_TYPES), ctx);
  checkContract(t, r4);
  golden(t, 'catalog-edited', r4);
  t.same(
    kinds(r4),
    kinds({ ...r0, children: full }).filter((k) => !k.endsWith('maintain')),
    'removing maintenance removes its CronJob; the init Job keeps its name',
  );
  const backup = r4.children.find((c) => c.metadata.name === 'example-backup') as { spec: { schedule: string; jobTemplate: unknown } };
  t.equal(backup.spec.schedule, '0 4 * * *');
  t.same(podSpecOf(backup as unknown as KubeObject)!.containers[0].args, ['backup', '--retention-days', '30']);

  const postgres = catalogObject({
    metadata: { type: 'postgres', connectionSecret: { name: 'pg-app' }, schema: 'lake_example' },
    restoreFrom: { backup: 'latest' },
  });
  const r5 = catalog.sync(syncRequest(postgres, [], [], CATALOG_TYPES), ctx);
  checkContract(t, r5);
  golden(t, 'catalog-postgres-restore', r5);
  t.notOk(
    r5.children.some((c) => c.kind === 'PersistentVolumeClaim'),
    'a Postgres catalog needs no volume',
  );
  t.same(podSpecOf(r5.children.find((c) => c.kind === 'Job')!)!.containers[0].args, ['restore', '--backup', 'latest']);
  for (const child of r5.children) {
    const env = envOf(child);
    t.equal(
      env.FEATHERMAN_CATALOG_ID,
      'analytics/example',
      `${child.metadata.name}: a Postgres catalog's Jobs carry the catalog's identity`,
    );
    t.equal(env.FEATHERMAN_BACKUP_PATH, 's3://lake/analytics/example/backups/', `${child.metadata.name}: and the backup location`);
  }

  const deleting = catalogObject({}, { deletionTimestamp: '2026-11-24T12:10:00Z' });
  const r6 = catalog.finalize(syncRequest(deleting, done, [], CATALOG_TYPES, true), ctx);
  checkContract(t, r6, true);
  golden(t, 'catalog-deleting', r6);
  t.match(r6, { finalized: false, children: [], status: { phase: 'Deleting' } }, 'waits until its children are gone');
  const r7 = catalog.finalize(syncRequest(deleting, [], [], CATALOG_TYPES, true), ctx);
  t.equal(r7.finalized, true, 'finalizes once the children are gone');
});

t.test('DuckLakeTable', async (t) => {
  const readyCatalog = { ...observed(catalogObject()), status: { phase: 'Ready' } };
  const fresh = tableObject();

  const r0 = table.sync(syncRequest(fresh, [], [], TABLE_TYPES), ctx);
  checkContract(t, r0);
  golden(t, 'table-catalog-missing', r0);
  t.match(r0, { children: [], status: { phase: 'Pending' } });
  t.match((r0.status.conditions as { reason: string }[])[0], { reason: 'CatalogNotFound' });

  const r1 = table.sync(syncRequest(fresh, [], [{ ...readyCatalog, status: { phase: 'Provisioning' } }], TABLE_TYPES), ctx);
  checkContract(t, r1);
  golden(t, 'table-catalog-not-ready', r1);
  t.match((r1.status.conditions as { reason: string }[])[0], { reason: 'CatalogNotReady' });
  t.same(r1.children, [], 'no Job until the catalog is Ready');

  const r2 = table.sync(syncRequest(fresh, [], [readyCatalog], TABLE_TYPES), ctx);
  checkContract(t, r2);
  golden(t, 'table-fresh', r2);
  t.equal(r2.status.phase, 'Applying');
  const applyJob = r2.children[0]!;
  t.match(applyJob.metadata.name, /^users-apply-[0-9a-f]{10}$/);
  const container = podSpecOf(applyJob)!.containers[0];
  t.same(container.args, ['table', 'apply']);
  t.same(JSON.parse(container.env.find((e: { name: string }) => e.name === 'FEATHERMAN_TABLE_SPEC').value), {
    catalogRef: 'example',
    name: 'users',
    columns: fresh.spec.columns,
    format: fresh.spec.format,
  });
  t.match(
    podSpecOf(applyJob)!.volumes,
    [{ name: 'scratch' }, { name: 'catalog', persistentVolumeClaim: { claimName: 'example-catalog' } }],
    'mounts the catalog volume',
  );

  const r3 = table.sync(syncRequest(fresh, [observed(applyJob, jobRunning)], [readyCatalog], TABLE_TYPES), ctx);
  checkContract(t, r3);
  golden(t, 'table-applying', r3);
  t.same(r3.children, r2.children, 'the same Job while it runs');

  const pod = jobPod(applyJob.metadata.name, 0, {
    ok: true,
    command: 'table apply',
    action: 'create',
    snapshotId: 3,
    files: 0,
    bytes: 0,
    columns: [
      { name: 'id', type: 'INTEGER', nullable: true },
      { name: 'name', type: 'VARCHAR', nullable: true },
      { name: 'created_at', type: 'TIMESTAMP', nullable: true },
    ],
  });
  const r4 = table.sync(syncRequest(fresh, [observed(applyJob, jobSucceeded)], [readyCatalog, pod], TABLE_TYPES), ctx);
  checkContract(t, r4);
  golden(t, 'table-ready', r4);
  t.match(r4.status, {
    phase: 'Ready',
    appliedGeneration: 1,
    snapshotId: 3,
    files: 0,
    columns: [{ name: 'id' }, { name: 'name' }, { name: 'created_at' }],
  });
  t.same(r4.children, r2.children, 'an unchanged spec keeps the same Job and never re-runs it');

  const failedPod = jobPod(applyJob.metadata.name, 2, {
    ok: false,
    exitCode: 2,
    error: 'spec.columns[1].type: cannot change name from VARCHAR to INTEGER: only lossless widenings are allowed',
  });
  const r5 = table.sync(syncRequest(fresh, [observed(applyJob, jobFailed)], [readyCatalog, failedPod], TABLE_TYPES), ctx);
  checkContract(t, r5);
  golden(t, 'table-failed', r5);
  t.match(r5.status, {
    phase: 'Failed',
    conditions: [{ type: 'Ready', reason: 'InvalidChange', message: /cannot change name from VARCHAR to INTEGER/ }],
  });

  const edited = tableObject({ columns: [...fresh.spec.columns, { name: 'email', type: 'VARCHAR' }] }, { generation: 2 });
  const r6 = table.sync(
    syncRequest({ ...edited, status: r4.status }, [observed(applyJob, jobSucceeded)], [readyCatalog, pod], TABLE_TYPES),
    ctx,
  );
  checkContract(t, r6);
  golden(t, 'table-edited', r6);
  t.not(r6.children[0]!.metadata.name, applyJob.metadata.name, 'an edit makes a new Job (the old one is no longer desired)');
  t.match(r6.status, { phase: 'Applying', appliedGeneration: 1 }, 'the applied generation stays until the new Job succeeds');
  const onlyPolicy = table.sync(syncRequest(tableObject({ deletionPolicy: 'Delete' }), [], [readyCatalog], TABLE_TYPES), ctx);
  t.equal(onlyPolicy.children[0]!.metadata.name, applyJob.metadata.name, 'changing deletionPolicy alone does not re-run the Job');

  const deleting = (policy: 'Retain' | 'Delete') => tableObject({ deletionPolicy: policy }, { deletionTimestamp: '2026-11-24T12:10:00Z' });
  const r7 = table.finalize(syncRequest(deleting('Retain'), [observed(applyJob, jobSucceeded)], [readyCatalog], TABLE_TYPES, true), ctx);
  checkContract(t, r7, true);
  golden(t, 'table-deleting-retain', r7);
  t.match(r7, { finalized: true, children: [] });

  const r8 = table.finalize(syncRequest(deleting('Delete'), [observed(applyJob, jobSucceeded)], [readyCatalog], TABLE_TYPES, true), ctx);
  checkContract(t, r8, true);
  golden(t, 'table-deleting-drop', r8);
  t.equal(r8.finalized, false, 'not finalized before the drop Job succeeded');
  const dropJob = r8.children[0]!;
  t.match(dropJob.metadata.name, /^users-drop-[0-9a-f]{10}$/);
  t.same(podSpecOf(dropJob)!.containers[0].args, ['table', 'drop', 'users', '--schema', 'main']);
  const r9 = table.finalize(syncRequest(deleting('Delete'), [observed(dropJob, jobSucceeded)], [readyCatalog], TABLE_TYPES, true), ctx);
  t.match(r9, { finalized: true, children: [] }, 'finalized after the drop Job succeeded');
  const r10 = table.finalize(syncRequest(deleting('Delete'), [], [], TABLE_TYPES, true), ctx);
  t.match(r10, { finalized: true }, 'finalized at once when the catalog is gone');

  const invalid = tableObject({ format: { partitioning: ['created'] } });
  const r11 = table.sync(syncRequest(invalid, [], [readyCatalog], TABLE_TYPES), ctx);
  checkContract(t, r11);
  t.match(r11.status, {
    phase: 'Failed',
    conditions: [{ reason: 'InvalidSpec', message: /partition column "created" is not one of the table's columns/ }],
  });
});

t.test("customize asks for the catalog and the pods of the object's own Jobs", async (t) => {
  t.same(table.customize({ controller: {} as KubeObject, parent: tableObject() }), {
    relatedResources: [
      { apiVersion: 'ducklake.featherman.dev/v1alpha1', resource: 'ducklakecatalogs', namespace: 'analytics', names: ['example'] },
      {
        apiVersion: 'v1',
        resource: 'pods',
        namespace: 'analytics',
        labelSelector: { matchLabels: { 'ducklake.featherman.dev/table': 'users' } },
      },
    ],
  });
  const catalogRules = catalog.customize({ controller: {} as KubeObject, parent: catalogObject() }).relatedResources;
  t.equal(catalogRules.length, 1, "one rule for pods: Metacontroller keeps only the last rule's objects of a type");
  t.same(catalogRules[0]!.labelSelector, {
    matchLabels: { 'ducklake.featherman.dev/catalog': 'example' },
    matchExpressions: [
      {
        key: 'app.kubernetes.io/component',
        operator: 'In',
        values: ['catalog-init', 'catalog-backup', 'catalog-maintenance', 'catalog-inspect'],
      },
    ],
  });
  t.same(backup.customize({ controller: {} as KubeObject, parent: backupObject() }), {
    relatedResources: [
      { apiVersion: 'ducklake.featherman.dev/v1alpha1', resource: 'ducklakecatalogs', namespace: 'analytics', names: ['example'] },
      {
        apiVersion: 'v1',
        resource: 'pods',
        namespace: 'analytics',
        labelSelector: { matchLabels: { 'ducklake.featherman.dev/backup': 'nightly-extra' } },
      },
    ],
  });
});

// ---- backups and maintenance ------------------------------------------------------------------

function envOf(child: KubeObject): Record<string, string> {
  const c = podSpecOf(child)!.containers[0] as {
    env: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
  };
  return Object.fromEntries(
    c.env.map((e) => [
      e.name,
      e.value ?? (e.valueFrom?.secretKeyRef ? `secret:${e.valueFrom.secretKeyRef.name}/${e.valueFrom.secretKeyRef.key}` : ''),
    ]),
  );
}
const argsOf = (child: KubeObject) => podSpecOf(child)!.containers[0].args as string[];

function backupObject(extra: Partial<backup.BackupObject['spec']> = {}, meta: Partial<KubeObject['metadata']> = {}): backup.BackupObject {
  return {
    apiVersion: 'ducklake.featherman.dev/v1alpha1',
    kind: 'DuckLakeBackup',
    metadata: {
      name: 'nightly-extra',
      namespace: 'analytics',
      uid: 'c0ffee00-0000-4000-8000-00000000000b',
      generation: 1,
      creationTimestamp: '2026-11-24T11:58:07Z',
      ...meta,
    },
    spec: { catalogRef: 'example', ...extra },
  };
}

/** A finished pod of one of the catalog's backup or maintenance runs, labelled as its Job template labels it. */
function runPod(
  component: 'catalog-backup' | 'catalog-maintenance',
  name: string,
  exitCode: number,
  summary: object,
  finishedAt: string,
): KubeObject {
  const pod = jobPod(name, exitCode, summary);
  pod.metadata.labels = { ...pod.metadata.labels, 'ducklake.featherman.dev/catalog': 'example', 'app.kubernetes.io/component': component };
  (pod.status as any).containerStatuses[0].state.terminated.finishedAt = finishedAt;
  return pod;
}

t.test('DuckLakeCatalog: the runner environment and flags for backups and maintenance', async (t) => {
  const plain = { children: catalog.desiredChildren(catalogObject(), ctx) };
  const inspect = plain.children.find((c) => c.metadata.name === 'example-inspect')!;
  t.same(argsOf(inspect), ['catalog', 'info'], "the inspection reads the lake's figures");
  t.notOk(
    Object.keys(envOf(inspect)).some((k) => k === 'FEATHERMAN_CATALOG_ID' || k.startsWith('FEATHERMAN_BACKUP_')),
    'the inspection claims nothing and reaches no backups',
  );
  t.same(
    (podSpecOf(inspect)!.containers[0].volumeMounts as { name: string; readOnly?: boolean }[])
      .filter((m) => m.name === 'catalog')
      .map((m) => m.readOnly),
    [true],
    'it mounts the catalog volume read-only',
  );
  t.equal((inspect.spec as { schedule: string }).schedule, '*/15 * * * *', 'every 15 minutes by default');
  const off = catalog.desiredChildren(catalogObject({ inspection: { enabled: false } }), ctx);
  t.notOk(
    off.some((c) => c.metadata.name === 'example-inspect'),
    'inspection.enabled: false runs none',
  );
  for (const child of plain.children.filter((c) => c.kind !== 'PersistentVolumeClaim' && c !== inspect)) {
    const env = envOf(child);
    t.equal(env.FEATHERMAN_CATALOG_ID, 'analytics/example', `${child.metadata.name}: the catalog's identity for the data path's marker`);
    t.equal(env.FEATHERMAN_BACKUP_PATH, 's3://lake/analytics/example/backups/', `${child.metadata.name}: backups beside the data`);
    t.notOk(
      Object.keys(env).some((k) => k.startsWith('FEATHERMAN_BACKUP_') && k !== 'FEATHERMAN_BACKUP_PATH'),
      `${child.metadata.name}: no target, no target connection`,
    );
  }
  t.same(
    argsOf(plain.children.find((c) => c.metadata.name === 'example-backup')!),
    ['backup', '--retention-days', '7'],
    'no --include-data by default',
  );

  const withTarget = catalogObject({
    objectStore: {
      endpoint: 'http://minio.storage:9000',
      bucket: 'lake',
      prefix: 'lakes/example',
      credentialsSecret: { name: 's3-credentials' },
    },
    backupPolicy: {
      schedule: '0 2 * * *',
      retentionDays: 30,
      includeData: true,
      target: {
        bucket: 'lake-backups',
        endpoint: 'https://s3.eu-central-1.amazonaws.com',
        region: 'eu-central-1',
        urlStyle: 'vhost',
        credentialsSecret: { name: 'backup-credentials', accessKeyField: 'id', secretKeyField: 'key' },
      },
    },
    maintenance: {
      schedule: '30 3 * * 0',
      expireSnapshotsOlderThan: '168h',
      cleanupOlderThan: '1h',
      maxCompactedFiles: 200,
      targetFileSize: '512Mi',
      rewriteDeleteThreshold: 0.5,
      flushInlinedData: false,
    },
    restoreFrom: { backup: 'latest', catalog: 'old-lake' },
  });
  const r = catalog.sync(syncRequest({ ...withTarget, status: { phase: 'Ready' } }, [], [], CATALOG_TYPES), ctx);
  checkContract(t, r);
  golden(t, 'catalog-backup-target', r);
  const cron = (suffix: string) => r.children.find((c) => c.metadata.name === `example-${suffix}`)!;
  t.same(argsOf(cron('backup')), ['backup', '--retention-days', '30', '--include-data']);
  t.same(
    argsOf(cron('maintain')),
    [
      'maintain',
      '--cleanup-older-than',
      '1h',
      '--expire-older-than',
      '168h',
      '--max-compacted-files',
      '200',
      '--target-file-size',
      String(512 * 2 ** 20),
      '--rewrite-delete-threshold',
      '0.5',
      '--no-flush',
    ],
    'the maintenance fields become flags (the size in bytes)',
  );
  const init = r.children.find((c) => c.kind === 'Job')!;
  t.same(argsOf(init), ['restore', '--backup', 'latest', '--from-catalog', 'old-lake'], "a restore from another catalog's backup");
  t.not(init.metadata.name, plain.children.find((c) => c.kind === 'Job')!.metadata.name, 'a restore is another init Job');
  for (const child of [init, cron('backup'), cron('maintain')]) {
    t.match(
      envOf(child),
      {
        FEATHERMAN_BACKUP_PATH: 's3://lake-backups/lakes/example/backups/',
        FEATHERMAN_BACKUP_ENDPOINT: 'https://s3.eu-central-1.amazonaws.com',
        FEATHERMAN_BACKUP_REGION: 'eu-central-1',
        FEATHERMAN_BACKUP_URL_STYLE: 'vhost',
        FEATHERMAN_BACKUP_ACCESS_KEY_ID: 'secret:backup-credentials/id',
        FEATHERMAN_BACKUP_SECRET_ACCESS_KEY: 'secret:backup-credentials/key',
        AWS_ACCESS_KEY_ID: 'secret:s3-credentials/access-key',
      },
      `${child.metadata.name}: the target's own connection, its keys only through secretKeyRef`,
    );
  }
  const noRewrite = {
    children: catalog.desiredChildren(
      catalogObject({
        maintenance: { schedule: '@weekly', rewriteDataFiles: false, rewriteDeleteThreshold: 0.5, mergeAdjacentFiles: false },
      }),
      ctx,
    ),
  };
  t.same(argsOf(noRewrite.children.find((c) => c.metadata.name === 'example-maintain')!), [
    'maintain',
    '--cleanup-older-than',
    '1h',
    '--no-merge',
    '--no-rewrite',
  ]);
  const prefixed = {
    children: catalog.desiredChildren(
      catalogObject({ backupPolicy: { schedule: '@daily', target: { bucket: 'other', prefix: '/team/backups/' } } }),
      ctx,
    ),
  };
  t.equal(
    envOf(prefixed.children.find((c) => c.metadata.name === 'example-backup')!).FEATHERMAN_BACKUP_PATH,
    's3://other/team/backups/',
    'a target prefix, slashes trimmed',
  );
  const vhost = catalog.desiredChildren(
    catalogObject({
      objectStore: { bucket: 'lake', urlStyle: 'vhost' },
      backupPolicy: { schedule: '@daily', target: { bucket: 'other' } },
    }),
    ctx,
  );
  t.equal(
    envOf(vhost.find((c) => c.metadata.name === 'example-backup')!).FEATHERMAN_BACKUP_URL_STYLE,
    'vhost',
    "a target without urlStyle takes the objectStore's",
  );
  t.notOk(
    'FEATHERMAN_BACKUP_URL_STYLE' in envOf(prefixed.children.find((c) => c.metadata.name === 'example-backup')!),
    'neither set: the runner decides from the endpoint',
  );
});

t.test('DuckLakeCatalog status: the newest backup and maintenance runs', async (t) => {
  const ok = (name: string, extra: object = {}) => ({
    ok: true,
    command: 'backup',
    backup: name,
    snapshotId: 7,
    bytes: 4096,
    files: 3,
    durationSeconds: 1.5,
    includeData: false,
    verified: true,
    ...extra,
  });
  const failed = {
    ok: false,
    exitCode: 75,
    error:
      'writing s3://lake/analytics/example/backups/example/x/manifest.json: storage unreachable; retry later (ECONNREFUSED)' +
      '\n    at stack line',
  };
  const maintained = {
    ok: true,
    command: 'maintain',
    durationSeconds: 2.25,
    snapshotsExpired: 4,
    snapshotsKeptBack: 1,
    filesMerged: 6,
    filesRewritten: 1,
    filesDeleted: 9,
    bytesReclaimed: 123456,
    filesKeptBack: 2,
    keptBackFor: ['20261120T020000Z'],
    orphansDeleted: 0,
  };
  interface Case {
    name: string;
    previous?: Record<string, unknown>;
    pods: KubeObject[];
    lastBackup?: object;
    lastMaintenance?: object;
    lastBackupTime?: string;
  }
  const cases: Case[] = [
    { name: 'no runs yet: no fields', pods: [] },
    {
      name: 'one good backup',
      pods: [runPod('catalog-backup', 'example-backup-1', 0, ok('20261124T020000Z'), '2026-11-24T02:00:41Z')],
      lastBackup: {
        name: '20261124T020000Z',
        time: '2026-11-24T02:00:41Z',
        bytes: 4096,
        durationSeconds: 1.5,
        snapshotId: 7,
        includeData: false,
        outcome: 'Succeeded',
      },
      lastBackupTime: '2026-11-24T02:00:41Z',
    },
    {
      name: 'the newest of several wins, whatever the order in the request',
      pods: [
        runPod('catalog-backup', 'example-backup-1', 0, ok('20261123T020000Z', { snapshotId: 5 }), '2026-11-23T02:00:30Z'),
        runPod(
          'catalog-backup',
          'nightly-extra-backup',
          0,
          ok('20261124T115807Z-1a2b3c4d', { snapshotId: 9, includeData: true }),
          '2026-11-24T11:59:00Z',
        ),
        runPod('catalog-backup', 'example-backup-2', 0, ok('20261124T020000Z'), '2026-11-24T02:00:41Z'),
      ],
      lastBackup: {
        name: '20261124T115807Z-1a2b3c4d',
        snapshotId: 9,
        includeData: true,
        outcome: 'Succeeded',
        time: '2026-11-24T11:59:00Z',
      },
      lastBackupTime: '2026-11-24T11:59:00Z',
    },
    {
      name: 'a failure keeps the last good backup and says why, in one line',
      previous: {
        lastBackup: { name: '20261123T020000Z', time: '2026-11-23T02:00:30Z', bytes: 100, snapshotId: 5, outcome: 'Succeeded' },
        lastBackupTime: '2026-11-23T02:00:30Z',
      },
      pods: [
        runPod('catalog-backup', 'example-backup-1', 0, ok('20261123T020000Z', { snapshotId: 5 }), '2026-11-23T02:00:30Z'),
        runPod('catalog-backup', 'example-backup-2', 75, failed, '2026-11-24T02:00:10Z'),
      ],
      lastBackup: {
        name: '20261123T020000Z',
        time: '2026-11-23T02:00:30Z',
        bytes: 100,
        snapshotId: 5,
        outcome: 'Failed',
        attemptTime: '2026-11-24T02:00:10Z',
        message: 'writing s3://lake/analytics/example/backups/example/x/manifest.json: storage unreachable; retry later (ECONNREFUSED)',
      },
      lastBackupTime: '2026-11-23T02:00:30Z',
    },
    {
      name: 'after a failure, the next success clears it',
      previous: {
        lastBackup: {
          name: '20261123T020000Z',
          time: '2026-11-23T02:00:30Z',
          outcome: 'Failed',
          message: 'x',
          attemptTime: '2026-11-24T02:00:10Z',
        },
      },
      pods: [
        runPod('catalog-backup', 'example-backup-2', 75, failed, '2026-11-24T02:00:10Z'),
        runPod('catalog-backup', 'example-backup-2b', 0, ok('20261124T020000Z'), '2026-11-24T02:01:00Z'),
      ],
      lastBackup: { name: '20261124T020000Z', time: '2026-11-24T02:01:00Z', outcome: 'Succeeded' },
    },
    {
      name: 'the pods are gone: the fields stay',
      previous: {
        lastBackup: { name: '20261124T020000Z', time: '2026-11-24T02:00:41Z', outcome: 'Succeeded' },
        lastBackupTime: '2026-11-24T02:00:41Z',
        lastMaintenance: { time: '2026-11-24T03:30:12Z', outcome: 'Succeeded', filesMerged: 6 },
      },
      pods: [],
      lastBackup: { name: '20261124T020000Z', time: '2026-11-24T02:00:41Z', outcome: 'Succeeded' },
      lastMaintenance: { time: '2026-11-24T03:30:12Z', outcome: 'Succeeded', filesMerged: 6 },
      lastBackupTime: '2026-11-24T02:00:41Z',
    },
    {
      name: 'an older pod than the recorded backup changes nothing',
      previous: { lastBackup: { name: '20261124T020000Z', time: '2026-11-24T02:00:41Z', outcome: 'Succeeded' } },
      pods: [runPod('catalog-backup', 'example-backup-1', 1, failed, '2026-11-23T02:00:10Z')],
      lastBackup: { name: '20261124T020000Z', time: '2026-11-24T02:00:41Z', outcome: 'Succeeded' },
    },
    {
      name: 'maintenance figures, and what it kept back for backups',
      pods: [
        runPod('catalog-maintenance', 'example-maintain-1', 0, maintained, '2026-11-24T03:30:12Z'),
        runPod('catalog-backup', 'example-backup-9', 0, ok('20261124T020000Z'), '2026-11-24T02:00:41Z'),
      ],
      lastMaintenance: {
        time: '2026-11-24T03:30:12Z',
        durationSeconds: 2.25,
        outcome: 'Succeeded',
        message: 'kept back for backups 20261120T020000Z',
        snapshotsExpired: 4,
        snapshotsKeptBack: 1,
        filesMerged: 6,
        filesRewritten: 1,
        filesDeleted: 9,
        bytesReclaimed: 123456,
        filesKeptBack: 2,
        orphansDeleted: 0,
      },
      lastBackup: { name: '20261124T020000Z', outcome: 'Succeeded' },
    },
    {
      name: 'a failed maintenance run keeps the last good figures',
      previous: { lastMaintenance: { time: '2026-11-17T03:30:12Z', outcome: 'Succeeded', filesMerged: 6 } },
      pods: [
        runPod(
          'catalog-maintenance',
          'example-maintain-2',
          1,
          { ok: false, exitCode: 1, error: 'Catalog Error: boom' },
          '2026-11-24T03:30:02Z',
        ),
      ],
      lastMaintenance: {
        time: '2026-11-17T03:30:12Z',
        outcome: 'Failed',
        message: 'Catalog Error: boom',
        filesMerged: 6,
        attemptTime: '2026-11-24T03:30:02Z',
      },
    },
    {
      name: 'a runner that died without a summary: its exit code and log tail',
      pods: [
        (() => {
          const p = runPod('catalog-maintenance', 'example-maintain-3', 137, {}, '2026-11-24T03:31:00Z');
          (p.status as any).containerStatuses[0].state.terminated.message = 'Killed';
          return p;
        })(),
      ],
      lastMaintenance: { outcome: 'Failed', message: 'Killed', attemptTime: '2026-11-24T03:31:00Z' },
    },
    {
      name: "another catalog's pods and table pods are not this catalog's runs",
      pods: [
        (() => {
          const p = runPod('catalog-backup', 'other-backup-1', 0, ok('20261124T030000Z'), '2026-11-24T03:00:00Z');
          p.metadata.labels!['ducklake.featherman.dev/catalog'] = 'other';
          return p;
        })(),
        (() => {
          const p = runPod('catalog-backup', 'users-apply-1', 0, ok('x'), '2026-11-24T03:00:00Z');
          p.metadata.labels!['app.kubernetes.io/component'] = 'table-apply';
          return p;
        })(),
      ],
    },
  ];
  const done = catalog.desiredChildren(catalogObject(), ctx).map((c) => observed(c, c.kind === 'Job' ? jobSucceeded : {}));
  for (const c of cases) {
    const parent = { ...catalogObject(), status: { phase: 'Ready', ...(c.previous ?? {}) } };
    const r = catalog.sync(syncRequest(parent, done, c.pods, CATALOG_TYPES), ctx);
    checkContract(t, r);
    if (c.lastBackup) t.match(r.status.lastBackup, c.lastBackup, `${c.name}: lastBackup`);
    else t.notOk('lastBackup' in r.status, `${c.name}: no lastBackup`);
    if (c.lastMaintenance) t.match(r.status.lastMaintenance, c.lastMaintenance, `${c.name}: lastMaintenance`);
    else t.notOk('lastMaintenance' in r.status, `${c.name}: no lastMaintenance`);
    if (c.lastBackup)
      t.equal(
        r.status.lastBackupName,
        (r.status.lastBackup as { name?: string }).name,
        `${c.name}: lastBackupName is the last good backup's`,
      );
    if (c.lastBackupTime) t.equal(r.status.lastBackupTime, c.lastBackupTime, `${c.name}: lastBackupTime`);
    if (c.lastMaintenance && (c.lastMaintenance as { outcome: string }).outcome === 'Succeeded')
      t.equal(r.status.lastMaintenanceTime, (c.lastMaintenance as { time: string }).time);
    for (const key of ['lastBackup', 'lastMaintenance'] as const) {
      if (r.status[key])
        t.notOk(
          Object.values(r.status[key] as object).some((v) => v === undefined || v === null),
          `${c.name}: ${key} has no empty fields`,
        );
    }
  }
  const failedCatalog = catalog.sync(
    syncRequest(
      catalogObject(),
      done.map((c) => (c.kind === 'Job' ? observed(c, jobFailed) : c)),
      [
        jobPod(done.find((c) => c.kind === 'Job')!.metadata.name, 2, {
          ok: false,
          exitCode: 2,
          error:
            'FEATHERMAN_DATA_PATH: s3://lake/analytics/example/data/ belongs to catalog analytics/first ' +
            '(marker s3://lake/analytics/example/data.featherman-owner.json); ' +
            "two catalogs on one data path would delete each other's files",
        }),
      ],
      CATALOG_TYPES,
    ),
    ctx,
  );
  t.match(
    failedCatalog.status,
    { phase: 'Failed', message: /belongs to catalog analytics\/first/ },
    'a catalog that may not use its data path fails, naming the owner in status.message',
  );
});

t.test('DuckLakeBackup', async (t) => {
  const readyCatalog = {
    ...observed(catalogObject({ backupPolicy: { schedule: '0 2 * * *', includeData: true } })),
    status: { phase: 'Ready' },
  };
  const fresh = backupObject();
  t.equal(backup.backupName(fresh), `20261124T115807Z-${shortHash(fresh.metadata.uid, 8)}`, 'NAME: creation time and a hash of the uid');
  t.match(backup.backupName(fresh), /^\d{8}T\d{6}(\d{3})?Z(-[a-z0-9]{1,16})?$/, "matches the runner's NAME pattern");
  t.not(
    backup.backupName(backupObject({}, { uid: 'another' })),
    backup.backupName(fresh),
    'two objects made in the same second get two names',
  );

  const r0 = backup.sync(syncRequest(fresh, [], [], TABLE_TYPES), ctx);
  checkContract(t, r0);
  golden(t, 'backup-catalog-missing', r0);
  t.match(r0, {
    children: [],
    status: {
      phase: 'Pending',
      conditions: [
        { type: 'Ready', status: 'False' },
        { type: 'CatalogReady', status: 'False', reason: 'CatalogNotFound' },
      ],
    },
  });

  const r1 = backup.sync(syncRequest(fresh, [], [{ ...readyCatalog, status: { phase: 'Provisioning' } }], TABLE_TYPES), ctx);
  checkContract(t, r1);
  golden(t, 'backup-catalog-not-ready', r1);
  t.match(r1, {
    children: [],
    status: { phase: 'Pending', conditions: [{}, { type: 'CatalogReady', status: 'False', reason: 'CatalogNotReady' }] },
  });

  const r2 = backup.sync(syncRequest(fresh, [], [readyCatalog], TABLE_TYPES), ctx);
  checkContract(t, r2);
  golden(t, 'backup-fresh', r2);
  t.equal(r2.status.phase, 'Running');
  const job = r2.children[0]!;
  t.equal(job.metadata.name, 'nightly-extra-backup');
  t.same(
    argsOf(job),
    ['backup', '--name', backup.backupName(fresh), '--owner', 'DuckLakeBackup/analytics/nightly-extra', '--include-data'],
    "includeData defaults to the catalog's",
  );
  t.match(envOf(job), {
    FEATHERMAN_CATALOG_ID: 'analytics/example',
    FEATHERMAN_BACKUP_PATH: 's3://lake/analytics/example/backups/',
    FEATHERMAN_CATALOG: 'example',
  });
  t.match(
    job.metadata.labels,
    {
      'app.kubernetes.io/component': 'catalog-backup',
      'ducklake.featherman.dev/catalog': 'example',
      'ducklake.featherman.dev/backup': 'nightly-extra',
    },
    "a catalog backup to the catalog's status too",
  );
  t.match(podSpecOf(job)!.volumes, [{ name: 'scratch' }, { name: 'catalog', persistentVolumeClaim: { claimName: 'example-catalog' } }]);
  t.notOk(
    argsOf(backup.sync(syncRequest(backupObject({ includeData: false }), [], [readyCatalog], TABLE_TYPES), ctx).children[0]!).includes(
      '--include-data',
    ),
    "the object's own includeData: false wins",
  );
  t.ok(
    argsOf(
      backup.sync(
        syncRequest(backupObject({ includeData: true }), [], [{ ...observed(catalogObject()), status: { phase: 'Ready' } }], TABLE_TYPES),
        ctx,
      ).children[0]!,
    ).includes('--include-data'),
    'and its true',
  );
  t.notOk(
    argsOf(
      backup.sync(syncRequest(fresh, [], [{ ...observed(catalogObject()), status: { phase: 'Ready' } }], TABLE_TYPES), ctx).children[0]!,
    ).includes('--include-data'),
    'neither set: false',
  );

  const running = { ...fresh, status: r2.status };
  const r3 = backup.sync(
    syncRequest(running, [observed(job, jobRunning)], [{ ...readyCatalog, status: { phase: 'Provisioning' } }], TABLE_TYPES),
    ctx,
  );
  checkContract(t, r3);
  golden(t, 'backup-running', r3);
  t.match(r3.status, { phase: 'Running', startedAt: '2026-11-24T11:59:00Z' });
  t.same(r3.children, r2.children, 'a running Job is kept even when the catalog is no longer Ready');

  const summary = {
    ok: true,
    command: 'backup',
    backup: backup.backupName(fresh),
    location: `s3://lake/analytics/example/backups/example/${backup.backupName(fresh)}/`,
    snapshotId: 12,
    tableCount: 1,
    rows: 20,
    bytes: 5120,
    files: 3,
    metadataBytes: 40960,
    includeData: true,
    dataBytesCopied: 5120,
    filesCopied: 3,
    durationSeconds: 2.5,
    verified: true,
    pruned: [],
    startedAt: '2026-11-24T11:59:01Z',
    finishedAt: '2026-11-24T11:59:28Z',
  };
  const pod = jobPod(job.metadata.name, 0, summary);
  const r4 = backup.sync(syncRequest(running, [observed(job, jobSucceeded)], [readyCatalog, pod], TABLE_TYPES), ctx);
  checkContract(t, r4);
  golden(t, 'backup-completed', r4);
  t.match(r4.status, {
    phase: 'Completed',
    backupName: backup.backupName(fresh),
    snapshotId: 12,
    bytes: 5120,
    files: 3,
    metadataBytes: 40960,
    dataBytesCopied: 5120,
    durationSeconds: 2.5,
    verified: true,
    includeData: true,
    startedAt: '2026-11-24T11:59:01Z',
    completionTime: '2026-11-24T11:59:29Z',
    conditions: [
      { type: 'Ready', status: 'True', reason: 'Completed' },
      { type: 'CatalogReady', status: 'True' },
    ],
  });
  const gone = backup.sync(syncRequest({ ...fresh, status: r4.status }, [], [], TABLE_TYPES), ctx);
  checkContract(t, gone);
  t.match(
    gone,
    { children: [], status: { phase: 'Completed', snapshotId: 12, bytes: 5120 } },
    'once Completed, it stays so with its figures, even with the catalog and Job gone; nothing runs again',
  );
  const kept = backup.sync(syncRequest({ ...fresh, status: r4.status }, [observed(job, jobSucceeded)], [readyCatalog], TABLE_TYPES), ctx);
  t.same(kept.children, r2.children, 'the finished Job is kept while it and the catalog exist');

  const early = backup.sync(
    syncRequest(running, [observed(job, { ...jobSucceeded, completionTime: '2026-11-24T11:59:50Z' })], [readyCatalog], TABLE_TYPES),
    ctx,
  );
  t.match(
    early,
    { resyncAfterSeconds: 2, status: { phase: 'Running', message: /reading its summary/ } },
    'a succeeded Job whose pod is not seen yet: wait for its summary',
  );
  const late = backup.sync(
    syncRequest(running, [observed(job, { ...jobSucceeded, completionTime: '2026-11-24T11:50:00Z' })], [readyCatalog], TABLE_TYPES),
    ctx,
  );
  t.match(late.status, { phase: 'Completed', message: /pod \(and summary\) is gone/ }, 'long after, Completed without figures');

  const failedPod = jobPod(job.metadata.name, 1, {
    ok: false,
    exitCode: 1,
    error: 'reading s3://lake/analytics/example/data/ducklake-x.parquet: the storage or catalog rejected the credentials (AccessDenied)',
  });
  const r5 = backup.sync(syncRequest(running, [observed(job, jobFailed)], [readyCatalog, failedPod], TABLE_TYPES), ctx);
  checkContract(t, r5);
  golden(t, 'backup-failed', r5);
  t.match(r5.status, {
    phase: 'Failed',
    message: /rejected the credentials/,
    conditions: [{ type: 'Ready', status: 'False', reason: 'BackupFailed', message: /rejected the credentials/ }],
  });
  const retrying = backup.sync(
    syncRequest(running, [observed(job, { ...jobRunning, failed: 1 })], [readyCatalog, failedPod], TABLE_TYPES),
    ctx,
  );
  t.match(retrying.status, { phase: 'Running', message: /last attempt: .*rejected the credentials.*\(1 failed attempt, retrying\)/ });

  // Deleting: Retain keeps the backup; Delete runs `backup delete NAME` and holds the finalizer until it succeeded.
  const deleting = (policy: 'Retain' | 'Delete') => ({
    ...backupObject({ deletionPolicy: policy }, { deletionTimestamp: '2026-11-24T12:10:00Z' }),
    status: r4.status,
  });
  const r6 = backup.finalize(syncRequest(deleting('Retain'), [observed(job, jobSucceeded)], [readyCatalog], TABLE_TYPES, true), ctx);
  checkContract(t, r6, true);
  golden(t, 'backup-deleting-retain', r6);
  t.match(
    r6,
    { finalized: false, children: [], status: { phase: 'Deleting', message: /stays in the backup location/ } },
    'Retain: waits for the Job to go',
  );
  t.match(
    backup.finalize(syncRequest(deleting('Retain'), [], [readyCatalog], TABLE_TYPES, true), ctx),
    { finalized: true },
    'then finalized',
  );

  const r7 = backup.finalize(syncRequest(deleting('Delete'), [observed(job, jobRunning)], [readyCatalog], TABLE_TYPES, true), ctx);
  t.match(
    r7,
    { finalized: false, children: [], status: { message: /stopping the backup Job/ } },
    'Delete: the backup Job is stopped first',
  );
  const r8 = backup.finalize(syncRequest(deleting('Delete'), [], [readyCatalog], TABLE_TYPES, true), ctx);
  checkContract(t, r8, true);
  golden(t, 'backup-deleting-delete', r8);
  const del = r8.children[0]!;
  t.equal(del.metadata.name, 'nightly-extra-delete');
  t.same(argsOf(del), ['backup', 'delete', backup.backupName(fresh)]);
  t.match(del.metadata.labels, { 'app.kubernetes.io/component': 'backup-delete', 'ducklake.featherman.dev/backup': 'nightly-extra' });
  t.equal(r8.finalized, false);
  const delPod = (code: number, s: object) => jobPod(del.metadata.name, code, s);
  const r9 = backup.finalize(
    syncRequest(
      deleting('Delete'),
      [observed(del, jobFailed)],
      [readyCatalog, delPod(1, { ok: false, exitCode: 1, error: 'deleting s3://lake/...: AccessDenied' })],
      TABLE_TYPES,
      true,
    ),
    ctx,
  );
  checkContract(t, r9, true);
  golden(t, 'backup-delete-failed', r9);
  t.match(
    r9,
    {
      finalized: false,
      children: [{ metadata: { name: 'nightly-extra-delete' } }],
      status: {
        phase: 'Failed',
        message: /deleting backup .* failed: deleting s3:\/\/lake\/\.\.\.: AccessDenied; delete Job nightly-extra-delete to retry/,
      },
    },
    'a failed delete keeps the finalizer and says why',
  );
  const r10 = backup.finalize(
    syncRequest(
      deleting('Delete'),
      [observed(del, jobSucceeded)],
      [
        readyCatalog,
        delPod(0, {
          ok: true,
          command: 'backup delete',
          backup: backup.backupName(fresh),
          existed: true,
          filesDeleted: 5,
          bytesReleased: 46080,
        }),
      ],
      TABLE_TYPES,
      true,
    ),
    ctx,
  );
  t.match(r10, { finalized: true, children: [], status: { message: /was deleted \(5 files, 46080 bytes\)/ } });
  const r11 = backup.finalize(syncRequest(deleting('Delete'), [], [], TABLE_TYPES, true), ctx);
  t.match(
    r11,
    { finalized: true, status: { message: /catalog example is gone: backup .* was left/ } },
    'no catalog, no storage to reach: finalized, saying the backup was left',
  );
});
