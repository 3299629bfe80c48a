// Golden tests: v2 sync/finalize requests for each state of a catalog and a table, answered by the
// pure hook functions. Every response is compared with its file in test/golden (UPDATE_GOLDEN=1
// rewrites them), checked for the contract (no unknown top-level fields, complete status), and
// every child is validated against Kubernetes' published OpenAPI schemas (kubernetes-models).
import t, { type Test } from 'tap';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { CronJob } from 'kubernetes-models/batch/v1/CronJob';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import * as catalog from '../../hooks/catalog.js';
import * as table from '../../hooks/table.js';
import type { KubeObject, SyncResponse } from '../../lib/k8s/metacontroller.js';
import {
  catalogObject, ctx, jobFailed, jobPod, jobRunning, jobSucceeded, observed, syncRequest, tableObject,
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
  t.same(Object.keys(response).filter((k) => !allowed.has(k)), [], 'no unknown top-level fields (v2 hooks are strict)');
  t.type(response.status.phase, 'string', 'status.phase is set');
  t.ok(Array.isArray(response.status.conditions) && (response.status.conditions as { type: string }[]).some((c) => c.type === 'Ready'), 'status has a Ready condition');
  t.type(response.status.observedGeneration, 'number', 'status.observedGeneration is set');
  for (const c of response.status.conditions as Record<string, unknown>[]) {
    t.match(c, { type: String, status: /^(True|False|Unknown)$/, reason: /^[A-Za-z][A-Za-z0-9]*$/, message: String, lastTransitionTime: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/ }, `condition ${c.type} is complete`);
  }
  for (const child of response.children) {
    const what = `${child.kind} ${child.metadata?.name}`;
    t.ok(child.apiVersion && child.kind && child.metadata?.name, `${what} has apiVersion, kind and name`);
    t.ok(child.metadata.name.length <= 63, `${what}: name fits 63 characters`);
    t.match(child.metadata.labels, {
      'app.kubernetes.io/name': 'featherman', 'app.kubernetes.io/managed-by': 'featherman', 'app.kubernetes.io/component': String,
      'app.kubernetes.io/instance': String, 'ducklake.featherman.dev/catalog': String,
    }, `${what} carries the labels`);
    const validate = validators[child.kind];
    t.ok(validate, `${what} is a known child type`);
    t.doesNotThrow(() => validate!(child), `${what} is valid against the Kubernetes OpenAPI schema`);
    const pod = podSpecOf(child);
    if (pod) {
      t.match(pod.securityContext, { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } }, `${what}: pod runs as non-root with RuntimeDefault seccomp`);
      for (const c of pod.containers) {
        t.match(c.securityContext, { runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false }, `${what}: container is locked down`);
        t.ok(c.resources?.requests?.memory && c.resources?.limits?.memory, `${what}: container has requests and limits`);
        t.equal(c.image, ctx.settings.image, `${what}: image from the one setting`);
        for (const e of c.env ?? []) {
          if (/SECRET|PASSWORD|KEY_ID|TOKEN/.test(e.name)) t.ok(e.valueFrom?.secretKeyRef && e.value === undefined, `${what}: ${e.name} comes from a secretKeyRef`);
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
  t.match(kinds(r0), ['PersistentVolumeClaim/example-catalog', /^Job\/example-init-[0-9a-f]{8}$/, 'CronJob/example-backup', 'CronJob/example-maintain']);
  t.same(podSpecOf(initJob)!.containers[0].args, ['catalog', 'init']);

  const provisioning = syncRequest(fresh, r0.children.map((c) => observed(c, c.kind === 'Job' ? jobRunning : {})), [], CATALOG_TYPES);
  const r1 = catalog.sync(provisioning, ctx);
  checkContract(t, r1);
  golden(t, 'catalog-provisioning', r1);
  t.equal(r1.status.phase, 'Provisioning');
  t.same(r1.children, r0.children, 'the desired children do not change while the Job runs');

  const withStatus = { ...fresh, status: r1.status };
  const later = { ...ctx, now: new Date('2026-11-24T12:05:00Z') };
  const done = r0.children.map((c) => observed(c, c.kind === 'Job' ? jobSucceeded : c.kind === 'CronJob' && c.metadata.name.endsWith('backup') ? { lastSuccessfulTime: '2026-11-24T02:00:41Z' } : {}));
  const pod = jobPod(initJob.metadata.name, 0, { ok: true, command: 'catalog init', ducklakeVersion: '1.0', dataPath: 's3://lake/analytics/example/data/', snapshotId: 0, tables: [] });
  const r2 = catalog.sync(syncRequest(withStatus, done, [pod], CATALOG_TYPES), later);
  checkContract(t, r2);
  golden(t, 'catalog-ready', r2);
  t.match(r2.status, { phase: 'Ready', ducklakeVersion: '1.0', dataPath: 's3://lake/analytics/example/data/', lastBackupTime: '2026-11-24T02:00:41Z', tableCount: 0 });
  t.notOk('resyncAfterSeconds' in r2, 'no resync once ready');
  const ready = (r2.status.conditions as { type: string; lastTransitionTime: string }[]);
  const before = (r1.status.conditions as { type: string; lastTransitionTime: string }[]);
  t.not(ready.find((c) => c.type === 'Ready')!.lastTransitionTime, before.find((c) => c.type === 'Ready')!.lastTransitionTime, 'Ready moved: its time changed');
  t.equal(ready.find((c) => c.type === 'BackupScheduled')!.lastTransitionTime, before.find((c) => c.type === 'BackupScheduled')!.lastTransitionTime, 'BackupScheduled did not move: its time did not change');

  const failedPod = jobPod(initJob.metadata.name, 1, { ok: false, exitCode: 1, error: 'checking s3://lake/analytics/example/data/: the storage or catalog rejected the credentials; check the access key and secret (AccessDenied (HTTP 403))' });
  const r3 = catalog.sync(syncRequest(fresh, r0.children.map((c) => observed(c, c.kind === 'Job' ? jobFailed : {})), [failedPod], CATALOG_TYPES), ctx);
  checkContract(t, r3);
  golden(t, 'catalog-failed', r3);
  t.equal(r3.status.phase, 'Failed');
  t.match((r3.status.conditions as { type: string; message: string }[]).find((c) => c.type === 'Ready')!.message, /rejected the credentials/, 'Failed carries the pod\'s own message');

  const retryPod = jobPod(initJob.metadata.name, 75, { ok: false, exitCode: 75, error: 'checking s3://lake/analytics/example/data/: storage or catalog unreachable; retry later (ECONNREFUSED)' });
  const retrying = catalog.sync(syncRequest(fresh, r0.children.map((c) => observed(c, c.kind === 'Job' ? { ...jobRunning, failed: 1 } : {})), [retryPod], CATALOG_TYPES), ctx);
  checkContract(t, retrying);
  t.match(retrying.status, { phase: 'Provisioning', conditions: [{ type: 'Ready', message: /provisioning; last attempt: .*unreachable; retry later \(ECONNREFUSED\) \(1 failed attempt, retrying\)$/ }] }, 'a retrying init Job shows its last failed attempt');
  // Metacontroller may see the Job's failed count before the failed pod (two watches), or the pod
  // may be gone: the count alone still says an attempt failed.
  const countOnly = catalog.sync(syncRequest(fresh, r0.children.map((c) => observed(c, c.kind === 'Job' ? { ...jobRunning, failed: 2 } : {})), [], CATALOG_TYPES), ctx);
  checkContract(t, countOnly);
  t.match(countOnly.status, { phase: 'Provisioning', conditions: [{ type: 'Ready', message: /^the catalog is provisioning; 2 failed attempts, retrying$/ }] }, 'without the failed pod, the Job\'s count shows the failure');

  const edited = catalogObject({ backupPolicy: { schedule: '0 4 * * *', retentionDays: 30 }, maintenance: undefined }, { generation: 2 });
  const r4 = catalog.sync(syncRequest(edited, done, [pod], CATALOG_TYPES), ctx);
  checkContract(t, r4);
  golden(t, 'catalog-edited', r4);
  t.same(kinds(r4), kinds(r0).filter((k) => !k.endsWith('maintain')), 'removing maintenance removes its CronJob; the init Job keeps its name');
  const backup = r4.children.find((c) => c.metadata.name === 'example-backup') as { spec: { schedule: string; jobTemplate: unknown } };
  t.equal(backup.spec.schedule, '0 4 * * *');
  t.same(podSpecOf(backup as unknown as KubeObject)!.containers[0].args, ['backup', '--retention-days', '30']);

  const postgres = catalogObject({ metadata: { type: 'postgres', connectionSecret: { name: 'pg-app' }, schema: 'lake_example' }, restoreFrom: { backup: 'latest' } });
  const r5 = catalog.sync(syncRequest(postgres, [], [], CATALOG_TYPES), ctx);
  checkContract(t, r5);
  golden(t, 'catalog-postgres-restore', r5);
  t.notOk(r5.children.some((c) => c.kind === 'PersistentVolumeClaim'), 'a Postgres catalog needs no volume');
  t.same(podSpecOf(r5.children.find((c) => c.kind === 'Job')!)!.containers[0].args, ['restore', '--backup', 'latest']);

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
  t.same(JSON.parse(container.env.find((e: { name: string }) => e.name === 'FEATHERMAN_TABLE_SPEC').value), { catalogRef: 'example', name: 'users', columns: fresh.spec.columns, format: fresh.spec.format });
  t.match(podSpecOf(applyJob)!.volumes, [{ name: 'scratch' }, { name: 'catalog', persistentVolumeClaim: { claimName: 'example-catalog' } }], 'mounts the catalog volume');

  const r3 = table.sync(syncRequest(fresh, [observed(applyJob, jobRunning)], [readyCatalog], TABLE_TYPES), ctx);
  checkContract(t, r3);
  golden(t, 'table-applying', r3);
  t.same(r3.children, r2.children, 'the same Job while it runs');

  const pod = jobPod(applyJob.metadata.name, 0, { ok: true, command: 'table apply', action: 'create', snapshotId: 3, files: 0, bytes: 0, columns: [{ name: 'id', type: 'INTEGER', nullable: true }, { name: 'name', type: 'VARCHAR', nullable: true }, { name: 'created_at', type: 'TIMESTAMP', nullable: true }] });
  const r4 = table.sync(syncRequest(fresh, [observed(applyJob, jobSucceeded)], [readyCatalog, pod], TABLE_TYPES), ctx);
  checkContract(t, r4);
  golden(t, 'table-ready', r4);
  t.match(r4.status, { phase: 'Ready', appliedGeneration: 1, snapshotId: 3, files: 0, columns: [{ name: 'id' }, { name: 'name' }, { name: 'created_at' }] });
  t.same(r4.children, r2.children, 'an unchanged spec keeps the same Job and never re-runs it');

  const failedPod = jobPod(applyJob.metadata.name, 2, { ok: false, exitCode: 2, error: 'spec.columns[1].type: cannot change name from VARCHAR to INTEGER: only lossless widenings are allowed' });
  const r5 = table.sync(syncRequest(fresh, [observed(applyJob, jobFailed)], [readyCatalog, failedPod], TABLE_TYPES), ctx);
  checkContract(t, r5);
  golden(t, 'table-failed', r5);
  t.match(r5.status, { phase: 'Failed', conditions: [{ type: 'Ready', reason: 'InvalidChange', message: /cannot change name from VARCHAR to INTEGER/ }] });

  const edited = tableObject({ columns: [...fresh.spec.columns, { name: 'email', type: 'VARCHAR' }] }, { generation: 2 });
  const r6 = table.sync(syncRequest({ ...edited, status: r4.status }, [observed(applyJob, jobSucceeded)], [readyCatalog, pod], TABLE_TYPES), ctx);
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
  t.match(r11.status, { phase: 'Failed', conditions: [{ reason: 'InvalidSpec', message: /partition column "created" is not one of the table's columns/ }] });
});

t.test('customize asks for the catalog and the pods of the object\'s own Jobs', async (t) => {
  t.same(table.customize({ controller: {} as KubeObject, parent: tableObject() }), {
    relatedResources: [
      { apiVersion: 'ducklake.featherman.dev/v1alpha1', resource: 'ducklakecatalogs', namespace: 'analytics', names: ['example'] },
      { apiVersion: 'v1', resource: 'pods', namespace: 'analytics', labelSelector: { matchLabels: { 'ducklake.featherman.dev/table': 'users' } } },
    ],
  });
  t.same(catalog.customize({ controller: {} as KubeObject, parent: catalogObject() }).relatedResources[0]!.labelSelector, {
    matchLabels: { 'ducklake.featherman.dev/catalog': 'example', 'app.kubernetes.io/component': 'catalog-init' },
  });
});
