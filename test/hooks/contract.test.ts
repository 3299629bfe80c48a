// Contract: the Jobs and CronJobs the hooks emit really work. Each generated container runs as a
// local process (test/helpers/pod-process.ts) with its environment, Secrets resolved from a test
// Secret, against a real MinIO; the catalog and the table really appear in the lake.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as backupHooks from '../../hooks/backup.js';
import * as catalogHooks from '../../hooks/catalog.js';
import * as tableHooks from '../../hooks/table.js';
import type { KubeObject } from '../../lib/k8s/metacontroller.js';
import { Minio } from '../helpers/minio.js';
import { catalogObject, ctx, jobFailed, jobPod, jobSucceeded, observed, syncRequest, tableObject } from '../helpers/hook-fixtures.js';
import { runContainer, type Secrets } from '../helpers/pod-process.js';
import { featherman } from '../helpers/cli.js';

const minio = await Minio.start();
const catalogVolume = mkdtempSync(join(tmpdir(), 'fm-pvc-'));
t.teardown(async () => {
  await minio.stop();
  rmSync(catalogVolume, { recursive: true, force: true });
});
await minio.createBucket('lake');
const secrets: Secrets = { 's3-credentials': { 'access-key': minio.accessKey, 'secret-key': minio.secretKey } };
const volumes = { catalog: catalogVolume };

const podSpec = (child: KubeObject): any =>
  child.kind === 'CronJob' ? (child.spec as any).jobTemplate.spec.template.spec : (child.spec as any).template.spec;
const find = (children: KubeObject[], kind: string, nameMatch: RegExp) =>
  children.find((c) => c.kind === kind && nameMatch.test(c.metadata.name))!;

t.test('the catalog init Job creates the lake; the table Job creates the table; CronJobs back up and maintain', async (t) => {
  const catalog = catalogObject({ objectStore: { endpoint: minio.url, bucket: 'lake', credentialsSecret: { name: 's3-credentials' } } });
  const first = catalogHooks.sync(syncRequest(catalog), ctx);
  const init = find(first.children, 'Job', /-init-/);
  const ran = await runContainer(podSpec(init), secrets, volumes);
  t.equal(ran.exitCode, 0, ran.stderr);
  t.notMatch(ran.stdout + ran.stderr, new RegExp(minio.secretKey), 'the secret is not printed');
  const summary = JSON.parse(ran.message);
  t.match(summary, { ok: true, command: 'catalog init', dataPath: 's3://lake/analytics/example/data/', ducklakeVersion: '1.0' });

  // Feed the Job's outcome back: the catalog becomes Ready with the pod's own numbers.
  const pod = jobPod(init.metadata.name, 0, summary);
  const second = catalogHooks.sync(
    syncRequest(
      catalog,
      first.children.map((c) => observed(c, c.kind === 'Job' ? jobSucceeded : {})),
      [pod],
    ),
    ctx,
  );
  t.match(second.status, { phase: 'Ready', ducklakeVersion: '1.0', dataPath: 's3://lake/analytics/example/data/' });

  const table = tableObject();
  const tr = tableHooks.sync(syncRequest(table, [], [{ ...observed(catalog), status: second.status }]), ctx);
  const apply = tr.children[0]!;
  const applied = await runContainer(podSpec(apply), secrets, volumes);
  t.equal(applied.exitCode, 0, applied.stderr);
  t.match(JSON.parse(applied.message), {
    ok: true,
    action: 'create',
    table: 'users',
    columns: [{ name: 'id' }, { name: 'name' }, { name: 'created_at' }],
  });
  const again = await runContainer(podSpec(apply), secrets, volumes);
  t.match(JSON.parse(again.message), { ok: true, action: 'unchanged' }, 're-running the same Job is harmless');

  const env = applied.env;
  const write = await featherman(
    ['query', '--write', '--sql', "INSERT INTO users SELECT i, 'u' || i, TIMESTAMP '2026-01-01' + to_hours(i) FROM range(500) r(i)"],
    env,
  );
  t.equal(write.code, 0, write.stderr);
  const info = await featherman(['catalog', 'info'], env);
  t.match(info.json, { ok: true, tables: [{ name: 'users', rows: 500 }] }, 'the table is in the lake with its rows');

  const backup = await runContainer(podSpec(find(second.children, 'CronJob', /-backup$/)), secrets, volumes);
  t.equal(backup.exitCode, 0, backup.stderr);
  t.match(JSON.parse(backup.message), { ok: true, command: 'backup', location: /^s3:\/\/lake\/analytics\/example\/backups\/example\// });
  const maintain = await runContainer(podSpec(find(second.children, 'CronJob', /-maintain$/)), secrets, volumes);
  t.equal(maintain.exitCode, 0, maintain.stderr);
  t.match(JSON.parse(maintain.message), { ok: true, command: 'maintain' });

  const deleting = tableObject({ deletionPolicy: 'Delete' }, { deletionTimestamp: '2026-11-24T12:10:00Z' });
  const fin = tableHooks.finalize(syncRequest(deleting, [], [{ ...observed(catalog), status: second.status }], [], true), ctx);
  const dropped = await runContainer(podSpec(fin.children[0]!), secrets, volumes);
  t.equal(dropped.exitCode, 0, dropped.stderr);
  t.match(JSON.parse(dropped.message), { ok: true, dropped: true });
  const after = await featherman(['catalog', 'info'], env);
  t.same(after.json.tables, [], 'the drop Job removed the table');
});

t.test('a missing Secret key stops the pod before it starts, as the kubelet would', async (t) => {
  const catalog = catalogObject({
    objectStore: { endpoint: minio.url, bucket: 'lake', credentialsSecret: { name: 's3-credentials', secretKeyField: 'nope' } },
  });
  const init = find(catalogHooks.sync(syncRequest(catalog), ctx).children, 'Job', /-init-/);
  await t.rejects(runContainer(podSpec(init), secrets, volumes), /couldn't find key nope in Secret s3-credentials/);
});

t.test('a Postgres catalog: libpq reads PGHOST, PGUSER and PGPASSWORD from the connection Secret', async (t) => {
  const { Postgres } = await import('../helpers/postgres.js');
  const pg = await Postgres.start();
  t.teardown(() => pg.stop());
  pg.createDatabase('lakes');
  const pgSecrets: Secrets = {
    ...secrets,
    'pg-app': { host: '127.0.0.1', port: String(pg.port), dbname: 'lakes', user: 'postgres', password: pg.password },
  };
  const catalog = catalogObject({
    objectStore: { endpoint: minio.url, bucket: 'lake', prefix: 'pg-lake', credentialsSecret: { name: 's3-credentials' } },
    metadata: { type: 'postgres', connectionSecret: { name: 'pg-app' }, schema: 'lake_example' },
    backupPolicy: undefined,
    maintenance: undefined,
  });
  const first = catalogHooks.sync(syncRequest(catalog), ctx);
  const ran = await runContainer(podSpec(find(first.children, 'Job', /-init-/)), pgSecrets);
  t.equal(ran.exitCode, 0, ran.stderr);
  t.match(JSON.parse(ran.message), { ok: true, metadataType: 'postgres', dataPath: 's3://lake/pg-lake/data/' });
  t.notMatch(JSON.stringify(podSpec(find(first.children, 'Job', /-init-/))), new RegExp(pg.password), 'the password is only in the Secret');
  const ready = { ...observed(catalog), status: { phase: 'Ready' } };
  const apply = tableHooks.sync(syncRequest(tableObject(), [], [ready]), ctx).children[0]!;
  const applied = await runContainer(podSpec(apply), pgSecrets);
  t.equal(applied.exitCode, 0, applied.stderr);
  const tables = await featherman(
    [
      'query',
      '--sql',
      'SELECT table_schema, table_name FROM information_schema.tables ' +
        "WHERE table_catalog LIKE '__ducklake_metadata%' OR table_schema = 'lake_example' ORDER BY 2 LIMIT 1",
    ],
    applied.env,
  );
  t.equal(tables.code, 0, tables.stderr);
  const info = await featherman(['catalog', 'info'], applied.env);
  t.match(info.json, { ok: true, metadataType: 'postgres', tables: [{ name: 'users' }] });
});

/** The finished pod of a Job or CronJob child, labelled as its template labels it, with the run's termination message. */
function finishedPod(child: KubeObject, jobName: string, ran: { exitCode: number; message: string }): KubeObject {
  const template = child.kind === 'CronJob' ? (child.spec as any).jobTemplate.spec.template : (child.spec as any).template;
  const pod = jobPod(jobName, ran.exitCode, {});
  pod.metadata.labels = { ...template.metadata.labels, ...pod.metadata.labels };
  (pod.status as any).containerStatuses[0].state.terminated.message = ran.message;
  (pod.status as any).containerStatuses[0].state.terminated.finishedAt = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  return pod;
}

t.test(
  'backups to a target bucket, a DuckLakeBackup from creation to deletion, maintenance, and the catalog status, with the real runner',
  async (t) => {
    await minio.createBucket('lake-backups');
    const volume = mkdtempSync(join(tmpdir(), 'fm-pvc-'));
    t.teardown(() => rmSync(volume, { recursive: true, force: true }));
    const vols = { catalog: volume };
    const keys: Secrets = { ...secrets, 'backup-credentials': { id: minio.accessKey, key: minio.secretKey } };
    const catalog = catalogObject({
      objectStore: { endpoint: minio.url, bucket: 'lake', prefix: 'contract-b', credentialsSecret: { name: 's3-credentials' } },
      backupPolicy: {
        schedule: '0 2 * * *',
        retentionDays: 7,
        includeData: true,
        target: {
          bucket: 'lake-backups',
          endpoint: minio.url,
          urlStyle: 'path',
          credentialsSecret: { name: 'backup-credentials', accessKeyField: 'id', secretKeyField: 'key' },
        },
      },
      maintenance: {
        schedule: '@weekly',
        cleanupOlderThan: '1h',
        maxCompactedFiles: 100,
        targetFileSize: '64Mi',
        rewriteDeleteThreshold: 0.5,
      },
    });
    const first = catalogHooks.sync(syncRequest(catalog), ctx);
    const init = find(first.children, 'Job', /-init-/);
    const ran = await runContainer(podSpec(init), keys, vols);
    t.equal(ran.exitCode, 0, ran.stderr);
    t.match(JSON.parse(ran.message), { ok: true, owner: 'analytics/example' }, 'init claims the data path for <namespace>/<name>');
    const initPod = finishedPod(init, init.metadata.name, ran);
    const ready = catalogHooks.sync(
      syncRequest(
        catalog,
        first.children.map((c) => observed(c, c.kind === 'Job' ? jobSucceeded : {})),
        [initPod],
      ),
      ctx,
    );
    t.equal(ready.status.phase, 'Ready');
    const env = ran.env;
    t.equal(env.FEATHERMAN_BACKUP_PATH, 's3://lake-backups/contract-b/backups/');
    const created = await featherman(
      ['query', '--write', '--sql', 'CREATE TABLE t(id INTEGER); INSERT INTO t SELECT range FROM range(50)'],
      env,
    );
    t.equal(created.code, 0, created.stderr);
    for (const n of [1, 2, 3]) {
      const ins = await featherman(['query', '--write', '--sql', `INSERT INTO t SELECT range + ${n * 1000} FROM range(20)`], env);
      t.equal(ins.code, 0, ins.stderr);
    }

    // The scheduled backup, to the target bucket with its own keys, data included.
    const backupCron = find(ready.children, 'CronJob', /-backup$/);
    t.same(podSpec(backupCron).containers[0].args, ['backup', '--retention-days', '7', '--include-data']);
    const scheduled = await runContainer(podSpec(backupCron), keys, vols);
    t.equal(scheduled.exitCode, 0, scheduled.stderr);
    const scheduledSummary = JSON.parse(scheduled.message);
    t.match(
      scheduledSummary,
      { ok: true, includeData: true, location: /^s3:\/\/lake-backups\/contract-b\/backups\/example\// },
      'the backup went to the target bucket',
    );
    t.notMatch(scheduled.stdout + scheduled.stderr + scheduled.message, new RegExp(minio.secretKey), 'no secret in its output');
    const cronPod = finishedPod(backupCron, 'example-backup-29000000', scheduled);
    let status = catalogHooks.sync(
      syncRequest(
        { ...catalog, status: ready.status },
        ready.children.map((c) => observed(c, c.kind === 'Job' ? jobSucceeded : {})),
        [initPod, cronPod],
      ),
      ctx,
    ).status;
    t.match(status.lastBackup, {
      name: scheduledSummary.backup,
      outcome: 'Succeeded',
      includeData: true,
      snapshotId: scheduledSummary.snapshotId,
      bytes: scheduledSummary.bytes,
    });

    // A DuckLakeBackup: its Job, its status, and the catalog's.
    const object: backupHooks.BackupObject = {
      apiVersion: 'ducklake.featherman.dev/v1alpha1',
      kind: 'DuckLakeBackup',
      metadata: {
        name: 'keep-me',
        namespace: 'analytics',
        uid: 'c0ffee00-0000-4000-8000-0000000000aa',
        generation: 1,
        creationTimestamp: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      },
      spec: { catalogRef: 'example', deletionPolicy: 'Delete' },
    };
    const readyCatalog = { ...observed(catalog), status };
    const started = backupHooks.sync(syncRequest(object, [], [readyCatalog]), ctx);
    const job = started.children[0]!;
    const taken = await runContainer(podSpec(job), keys, vols);
    t.equal(taken.exitCode, 0, taken.stderr);
    const takenSummary = JSON.parse(taken.message);
    t.match(
      takenSummary,
      { ok: true, backup: backupHooks.backupName(object), includeData: true, verified: true },
      "the backup Job made the backup named for the object, data included (the catalog's default)",
    );
    const again = await runContainer(podSpec(job), keys, vols);
    t.equal(again.exitCode, 0, again.stderr);
    t.match(
      JSON.parse(again.message),
      { ok: true, backup: backupHooks.backupName(object), existing: true },
      'a retried Job finds the backup it made',
    );
    const jobPodDone = finishedPod(job, job.metadata.name, taken);
    const completed = backupHooks.sync(
      syncRequest({ ...object, status: started.status }, [observed(job, jobSucceeded)], [readyCatalog, jobPodDone]),
      ctx,
    );
    t.match(completed.status, {
      phase: 'Completed',
      backupName: takenSummary.backup,
      snapshotId: takenSummary.snapshotId,
      bytes: takenSummary.bytes,
      files: takenSummary.files,
      verified: true,
      includeData: true,
    });
    status = catalogHooks.sync(
      syncRequest(
        { ...catalog, status },
        ready.children.map((c) => observed(c, c.kind === 'Job' ? jobSucceeded : {})),
        [initPod, cronPod, jobPodDone],
      ),
      ctx,
    ).status;
    t.match(status.lastBackup, { name: takenSummary.backup, outcome: 'Succeeded' }, "the catalog's lastBackup is the newest, the object's");
    const listed = await featherman(['backup', 'list'], scheduled.env);
    t.match(
      (listed.json.backups as { name: string; owner?: string }[]).find((b) => b.name === takenSummary.backup),
      { owner: 'DuckLakeBackup/analytics/keep-me' },
    );

    // Maintenance with the flags from the spec; the catalog status takes its figures.
    const maintainCron = find(ready.children, 'CronJob', /-maintain$/);
    t.same(podSpec(maintainCron).containers[0].args, [
      'maintain',
      '--cleanup-older-than',
      '1h',
      '--max-compacted-files',
      '100',
      '--target-file-size',
      String(64 * 2 ** 20),
      '--rewrite-delete-threshold',
      '0.5',
    ]);
    const maintained = await runContainer(podSpec(maintainCron), keys, vols);
    t.equal(maintained.exitCode, 0, maintained.stderr);
    const m = JSON.parse(maintained.message);
    t.match(m, { ok: true, command: 'maintain' });
    status = catalogHooks.sync(
      syncRequest(
        { ...catalog, status },
        ready.children.map((c) => observed(c, c.kind === 'Job' ? jobSucceeded : {})),
        [initPod, finishedPod(maintainCron, 'example-maintain-1', maintained)],
      ),
      ctx,
    ).status;
    t.match(status.lastMaintenance, {
      outcome: 'Succeeded',
      filesMerged: m.filesMerged,
      snapshotsExpired: m.snapshotsExpired,
      filesDeleted: m.filesDeleted,
      bytesReclaimed: m.bytesReclaimed,
      filesKeptBack: m.filesKeptBack,
    });
    t.match(status.lastBackup, { name: takenSummary.backup }, 'lastBackup stays once its pods are gone');

    // Deleting with deletionPolicy Delete: the delete Job removes the backup; then the finalizer goes.
    const deleting = { ...object, metadata: { ...object.metadata, deletionTimestamp: new Date().toISOString() }, status: completed.status };
    const fin = backupHooks.finalize(syncRequest(deleting, [], [readyCatalog], [], true), ctx);
    const del = fin.children[0]!;
    const deleted = await runContainer(podSpec(del), keys, vols);
    t.equal(deleted.exitCode, 0, deleted.stderr);
    t.match(JSON.parse(deleted.message), { ok: true, command: 'backup delete', existed: true });
    const done = backupHooks.finalize(
      syncRequest(deleting, [observed(del, jobSucceeded)], [readyCatalog, finishedPod(del, del.metadata.name, deleted)], [], true),
      ctx,
    );
    t.match(done, { finalized: true, status: { message: /was deleted/ } });
    const after = await featherman(['backup', 'list'], scheduled.env);
    t.notOk(
      (after.json.backups as { name: string }[]).some((b) => b.name === takenSummary.backup),
      'the backup is gone',
    );
    t.ok(
      (after.json.backups as { name: string }[]).some((b) => b.name === scheduledSummary.backup),
      'the scheduled one is not',
    );

    // Another catalog restored from this one's backup (restoreFrom.catalog), at its own data path,
    // its backupPolicy.target pointing at where the first catalog's backups are.
    const copy = catalogObject(
      {
        objectStore: { endpoint: minio.url, bucket: 'lake', prefix: 'contract-c', credentialsSecret: { name: 's3-credentials' } },
        backupPolicy: {
          schedule: '0 2 * * *',
          target: {
            bucket: 'lake-backups',
            prefix: 'contract-b/backups',
            credentialsSecret: { name: 'backup-credentials', accessKeyField: 'id', secretKeyField: 'key' },
          },
        },
        maintenance: undefined,
        restoreFrom: { backup: scheduledSummary.backup, catalog: 'example' },
      },
      { name: 'copy', uid: 'c0ffee00-0000-4000-8000-0000000000ac' },
    );
    const restoreJob = find(catalogHooks.sync(syncRequest(copy), ctx).children, 'Job', /-init-/);
    t.same(podSpec(restoreJob).containers[0].args, ['restore', '--backup', scheduledSummary.backup, '--from-catalog', 'example']);
    const copyVolume = mkdtempSync(join(tmpdir(), 'fm-pvc-'));
    t.teardown(() => rmSync(copyVolume, { recursive: true, force: true }));
    const restored = await runContainer(podSpec(restoreJob), keys, { catalog: copyVolume });
    t.equal(restored.exitCode, 0, `restore from another catalog's backup: ${restored.stderr}`);
    const rows = await featherman(['query', '--format', 'csv', '--sql', 'SELECT count(*) AS n, sum(id) AS s FROM t'], restored.env);
    t.equal(rows.code, 0, rows.stderr);
    t.match(rows.stdout, /n,s\n110,/, `the copy has the backed-up rows (${rows.stdout.trim()})`);

    // A second catalog on the same bucket and prefix: its init Job fails (exit 2) naming the owner.
    const squatter = catalogObject(
      { objectStore: { endpoint: minio.url, bucket: 'lake', prefix: 'contract-b', credentialsSecret: { name: 's3-credentials' } } },
      { name: 'squatter', uid: 'c0ffee00-0000-4000-8000-0000000000ab' },
    );
    const sq = catalogHooks.sync(syncRequest(squatter), ctx);
    const sqInit = find(sq.children, 'Job', /-init-/);
    const other = mkdtempSync(join(tmpdir(), 'fm-pvc-'));
    t.teardown(() => rmSync(other, { recursive: true, force: true }));
    const refused = await runContainer(podSpec(sqInit), keys, { catalog: other });
    t.equal(refused.exitCode, 2, 'exit 2: bad input, the Job fails at once');
    const sqStatus = catalogHooks.sync(
      syncRequest(
        squatter,
        sq.children.map((c) => observed(c, c.kind === 'Job' ? jobFailed : {})),
        [finishedPod(sqInit, sqInit.metadata.name, refused)],
      ),
      ctx,
    );
    t.match(sqStatus.status, { phase: 'Failed', message: /belongs to catalog analytics\/example/ });
    t.notOk(
      sqStatus.children.some((c) => c.kind === 'CronJob'),
      'no backups or maintenance for it',
    );
  },
);
