// Contract: the Jobs and CronJobs the hooks emit really work. Each generated container runs as a
// local process (test/helpers/pod-process.ts) with its environment, Secrets resolved from a test
// Secret, against a real MinIO; the catalog and the table really appear in the lake.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as catalogHooks from '../../hooks/catalog.js';
import * as tableHooks from '../../hooks/table.js';
import type { KubeObject } from '../../lib/k8s/metacontroller.js';
import { Minio } from '../helpers/minio.js';
import { catalogObject, ctx, jobPod, jobSucceeded, observed, syncRequest, tableObject } from '../helpers/hook-fixtures.js';
import { runContainer, type Secrets } from '../helpers/pod-process.js';
import { featherman } from '../helpers/cli.js';

const minio = await Minio.start();
const catalogVolume = mkdtempSync(join(tmpdir(), 'fm-pvc-'));
t.teardown(async () => { await minio.stop(); rmSync(catalogVolume, { recursive: true, force: true }); });
await minio.createBucket('lake');
const secrets: Secrets = { 's3-credentials': { 'access-key': minio.accessKey, 'secret-key': minio.secretKey } };
const volumes = { catalog: catalogVolume };

const podSpec = (child: KubeObject): any => (child.kind === 'CronJob' ? (child.spec as any).jobTemplate.spec.template.spec : (child.spec as any).template.spec);
const find = (children: KubeObject[], kind: string, nameMatch: RegExp) => children.find((c) => c.kind === kind && nameMatch.test(c.metadata.name))!;

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
  const second = catalogHooks.sync(syncRequest(catalog, first.children.map((c) => observed(c, c.kind === 'Job' ? jobSucceeded : {})), [pod]), ctx);
  t.match(second.status, { phase: 'Ready', ducklakeVersion: '1.0', dataPath: 's3://lake/analytics/example/data/' });

  const table = tableObject();
  const tr = tableHooks.sync(syncRequest(table, [], [{ ...observed(catalog), status: second.status }]), ctx);
  const apply = tr.children[0]!;
  const applied = await runContainer(podSpec(apply), secrets, volumes);
  t.equal(applied.exitCode, 0, applied.stderr);
  t.match(JSON.parse(applied.message), { ok: true, action: 'create', table: 'users', columns: [{ name: 'id' }, { name: 'name' }, { name: 'created_at' }] });
  const again = await runContainer(podSpec(apply), secrets, volumes);
  t.match(JSON.parse(again.message), { ok: true, action: 'unchanged' }, 're-running the same Job is harmless');

  const env = applied.env;
  const write = await featherman(['query', '--write', '--sql', "INSERT INTO users SELECT i, 'u' || i, TIMESTAMP '2026-01-01' + to_hours(i) FROM range(500) r(i)"], env);
  t.equal(write.code, 0, write.stderr);
  const info = await featherman(['catalog', 'info'], env);
  t.match(info.json, { ok: true, tables: [{ name: 'users', rows: 500 }] }, 'the table is in the lake with its rows');

  const backup = await runContainer(podSpec(find(first.children, 'CronJob', /-backup$/)), secrets, volumes);
  t.equal(backup.exitCode, 0, backup.stderr);
  t.match(JSON.parse(backup.message), { ok: true, command: 'backup', location: /^s3:\/\/lake\/analytics\/example\/backups\/example\// });
  const maintain = await runContainer(podSpec(find(first.children, 'CronJob', /-maintain$/)), secrets, volumes);
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
  const catalog = catalogObject({ objectStore: { endpoint: minio.url, bucket: 'lake', credentialsSecret: { name: 's3-credentials', secretKeyField: 'nope' } } });
  const init = find(catalogHooks.sync(syncRequest(catalog), ctx).children, 'Job', /-init-/);
  await t.rejects(runContainer(podSpec(init), secrets, volumes), /couldn't find key nope in Secret s3-credentials/);
});

t.test('a Postgres catalog: libpq reads PGHOST, PGUSER and PGPASSWORD from the connection Secret', async (t) => {
  const { Postgres } = await import('../helpers/postgres.js');
  const pg = await Postgres.start();
  t.teardown(() => pg.stop());
  pg.createDatabase('lakes');
  const pgSecrets: Secrets = { ...secrets, 'pg-app': { host: '127.0.0.1', port: String(pg.port), dbname: 'lakes', user: 'postgres', password: pg.password } };
  const catalog = catalogObject({
    objectStore: { endpoint: minio.url, bucket: 'lake', prefix: 'pg-lake', credentialsSecret: { name: 's3-credentials' } },
    metadata: { type: 'postgres', connectionSecret: { name: 'pg-app' }, schema: 'lake_example' },
    backupPolicy: undefined, maintenance: undefined,
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
  const tables = await featherman(['query', '--sql', "SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog LIKE '__ducklake_metadata%' OR table_schema = 'lake_example' ORDER BY 2 LIMIT 1"], applied.env);
  t.equal(tables.code, 0, tables.stderr);
  const info = await featherman(['catalog', 'info'], applied.env);
  t.match(info.json, { ok: true, metadataType: 'postgres', tables: [{ name: 'users' }] });
});
