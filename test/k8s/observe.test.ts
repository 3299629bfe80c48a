// The watch cache, the object metrics and the Events against a REAL kube-apiserver (etcd +
// kube-apiserver from .cache, test/helpers/cluster.ts). There is no kubelet and no Job controller
// here: the test writes the Jobs', pods' and objects' status through the status subresource, as
// the kubelet, the Job controller and the hooks would. Two caches run in this process, each with
// its own registry and Event recorder, like two replicas of `featherman serve`.
import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { EventRecorder } from '../../lib/k8s/events.js';
import { labelsFor } from '../../lib/k8s/labels.js';
import { installObjectMetrics } from '../../lib/k8s/object-metrics.js';
import { WatchCache } from '../../lib/k8s/watch-cache.js';
import { packageRoot } from '../../lib/lake/config.js';
import { clusterBinariesMissing, startCluster } from '../helpers/cluster.js';
import { yamlObjects } from '../helpers/admission.js';
import { promtoolCheckMetrics } from '../helpers/prometheus.js';

const missing = clusterBinariesMissing();
if (missing) {
  t.skip(`cluster binaries not built (${missing}); run .ci/cluster/build`, () => {});
} else {
  const root = packageRoot();
  // Only the namespace controller: no Job controller may rewrite the Job status this test writes.
  const cluster = await startCluster({ controllers: ['namespace-controller'] });
  t.teardown(() => cluster.stop());
  const ns = 'lake';
  const kubectl = async (args: string[], input?: string) => {
    const r = await cluster.kubectl(args, input);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const apply = (o: object) =>
    kubectl(['apply', '-n', ns, '-o', 'json', '-f', '-'], JSON.stringify(o)).then(
      (s) => JSON.parse(s) as { metadata: { uid: string; name: string } },
    );
  const setStatus = (resource: string, name: string, status: object) =>
    kubectl(['patch', resource, name, '-n', ns, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
  const until = async <T>(what: string, check: () => Promise<T | undefined> | T | undefined, ms = 60_000): Promise<T> => {
    for (const deadline = Date.now() + ms; ; await new Promise((r) => setTimeout(r, 100))) {
      const v = await check();
      if (v !== undefined && v !== false) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    }
  };

  await kubectl(['apply', '-f', join(root, 'crds')]);
  for (const crd of ['ducklakecatalogs', 'ducklaketables', 'ducklakepools', 'ducklakebackups']) {
    await kubectl(['wait', '--for=condition=Established', '--timeout=60s', `crd/${crd}.ducklake.featherman.dev`]);
  }
  await kubectl(['create', 'namespace', ns]);

  const kc = new KubeConfig();
  kc.loadFromFile(cluster.kubeconfig);
  const warnings: object[] = [];
  const log = {
    warn: (o: object, msg: string) => {
      warnings.push({ ...o, msg });
    },
  };
  const replicas = ['replica-a', 'replica-b'].map((name) => {
    const cache = new WatchCache();
    const registry = new Registry();
    installObjectMetrics(cache, registry);
    const events = EventRecorder.forCluster(kc, log, name);
    events.attach(cache);
    cache.start(kc, log);
    return { cache, registry, events };
  });
  t.teardown(() => {
    for (const r of replicas) r.cache.stop();
  });

  // A secret the runner's error carries: it must never reach an Event.
  const secret = 'pg-secret-4f9d2c71';
  process.env.PGPASSWORD = secret;
  t.teardown(() => {
    delete process.env.PGPASSWORD;
  });

  t.test('both caches sync', async (t) => {
    await until('both caches synced', () => replicas.every((r) => Object.values(r.cache.synced).every(Boolean)));
    t.pass('every resource listed by both');
  });

  const catalogYaml = yamlObjects(join(root, 'examples', 'catalog.yaml'))[0]!;
  const tableYaml = yamlObjects(join(root, 'examples', 'users-table.yaml'))[0]!;
  const poolYaml = yamlObjects(join(root, 'examples', 'pool.yaml'))[0]!;
  let catalogUid = '';

  t.test('objects, Jobs and pods become metrics and Events', async (t) => {
    const catalog = await apply(catalogYaml);
    catalogUid = catalog.metadata.uid;
    await apply(tableYaml);
    const pool = await apply(poolYaml);
    t.ok(pool.metadata.uid);
    const lastBackupTime = new Date(Date.now() - 5_000).toISOString().replace(/\.\d+Z$/, 'Z');
    await setStatus('dlc', 'example', {
      phase: 'Ready',
      metadataType: 'duckdb',
      ducklakeVersion: '0.3',
      snapshotId: 12,
      tableCount: 1,
      totalRows: 3,
      totalBytes: 2048,
    });
    await setStatus('dlt', tableYaml.metadata.name, {
      phase: 'Ready',
      catalog: 'example',
      table: 'main.users',
      snapshotId: 12,
      rows: 3,
      files: 1,
      bytes: 2048,
    });
    await setStatus('dlp', poolYaml.metadata.name, {
      phase: 'Ready',
      desiredSize: 1,
      currentSize: 1,
      idlePods: 1,
      busyPods: 0,
      queueLength: 0,
    });

    // The catalog's init Job, failing with exit 75 (storage unreachable), as Metacontroller makes it.
    const labels = labelsFor({ component: 'catalog-init', catalog: 'example', instance: 'example' });
    const job = await apply({
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: {
        name: 'example-init',
        labels,
        ownerReferences: [
          { apiVersion: 'ducklake.featherman.dev/v1alpha1', kind: 'DuckLakeCatalog', name: 'example', uid: catalogUid, controller: true },
        ],
      },
      spec: {
        backoffLimit: 0,
        template: {
          metadata: { labels },
          spec: { restartPolicy: 'Never', containers: [{ name: 'featherman', image: 'featherman:test', args: ['catalog', 'init'] }] },
        },
      },
    });
    // The JobStarted Event needs the catalog in the cache; both see the Job as added.
    const pod = await apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'example-init-x1',
        labels: { ...labels, 'job-name': 'example-init', 'batch.kubernetes.io/job-name': 'example-init' },
        ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: 'example-init', uid: job.metadata.uid, controller: true }],
      },
      spec: { restartPolicy: 'Never', containers: [{ name: 'featherman', image: 'featherman:test', args: ['catalog', 'init'] }] },
    });
    t.ok(pod.metadata.uid);
    const finished = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    await setStatus('pod', 'example-init-x1', {
      phase: 'Failed',
      containerStatuses: [
        {
          name: 'featherman',
          image: 'featherman:test',
          imageID: '',
          ready: false,
          restartCount: 0,
          state: {
            terminated: {
              exitCode: 75,
              reason: 'Error',
              finishedAt: finished,
              startedAt: finished,
              message: JSON.stringify({
                ok: false,
                exitCode: 75,
                error: `storage unreachable: postgres://featherman:${secret}@db:5432/lake refused`,
              }),
            },
          },
        },
      ],
    });
    const started = new Date(Date.now() - 30_000).toISOString().replace(/\.\d+Z$/, 'Z');
    await setStatus('job', 'example-init', {
      startTime: started,
      failed: 1,
      conditions: [
        {
          type: 'FailureTarget',
          status: 'True',
          reason: 'BackoffLimitExceeded',
          message: 'Job has reached the specified backoff limit',
          lastProbeTime: finished,
          lastTransitionTime: finished,
        },
        {
          type: 'Failed',
          status: 'True',
          reason: 'BackoffLimitExceeded',
          message: 'Job has reached the specified backoff limit',
          lastProbeTime: finished,
          lastTransitionTime: finished,
        },
      ],
    });
    // A backup, and the pool scaling up.
    await setStatus('dlc', 'example', {
      lastBackup: {
        name: '20261130T020000Z-abc',
        time: lastBackupTime,
        bytes: 2048,
        durationSeconds: 3.5,
        snapshotId: 12,
        outcome: 'Succeeded',
      },
    });
    await setStatus('dlp', poolYaml.metadata.name, { desiredSize: 3 });

    const poolName = poolYaml.metadata.name as string;
    const expected = [
      'featherman_catalog_phase{namespace="lake",catalog="example",phase="Ready"} 1',
      'featherman_catalog_info{namespace="lake",catalog="example",metadata_type="duckdb",ducklake_version="0.3"} 1',
      'featherman_catalog_bytes{namespace="lake",catalog="example"} 2048',
      'featherman_catalog_snapshot_id{namespace="lake",catalog="example"} 12',
      `featherman_catalog_last_backup_success_timestamp_seconds{namespace="lake",catalog="example"} ${Date.parse(lastBackupTime) / 1000}`,
      'featherman_catalog_last_backup_duration_seconds{namespace="lake",catalog="example"} 3.5',
      'featherman_catalog_last_backup_failed{namespace="lake",catalog="example"} 0',
      'featherman_catalog_backup_interval_seconds{namespace="lake",catalog="example"} 86400',
      `featherman_table_rows{namespace="lake",table="${tableYaml.metadata.name}"} 3`,
      `featherman_table_bytes{namespace="lake",table="${tableYaml.metadata.name}"} 2048`,
      `featherman_pool_workers{namespace="lake",pool="${poolName}",state="desired"} 3`,
      'featherman_job_failures_total{operation="init",reason="temporary"} 1',
      'featherman_operations_total{kind="catalog",operation="create",outcome="failed"} 1',
      'featherman_job_duration_seconds_count{operation="init",outcome="failed"} 1',
      'featherman_watch_cache_synced 1',
    ];
    const scrapes = await until('both scrapes show the objects', async () => {
      const texts = await Promise.all(replicas.map((r) => r.registry.metrics()));
      return texts.every((text) => expected.every((line) => text.split('\n').includes(line))) ? texts : undefined;
    }).catch(async (e) => {
      t.comment(await replicas[0]!.registry.metrics());
      throw e;
    });
    t.pass('every expected line in both scrapes');
    const lines = (text: string) =>
      text
        .split('\n')
        .filter((l) => l.startsWith('featherman_'))
        .sort();
    t.same(lines(scrapes[1]!), lines(scrapes[0]!), 'two caches give identical lines');

    // promtool on the scrape.
    const dir = mkdtempSync(join(tmpdir(), 'fm-scrape-'));
    writeFileSync(join(dir, 'metrics.txt'), scrapes[0]!);
    const promtool = promtoolCheckMetrics(scrapes[0]!);
    t.equal(promtool.code, 0, `promtool check metrics: ${promtool.output}`);
  });

  t.test('each transition is one Event on its object, with no secret', async (t) => {
    type Ev = {
      metadata: { name: string };
      reason: string;
      message: string;
      type: string;
      count: number;
      involvedObject: { kind: string; name: string; uid: string };
      reportingComponent: string;
    };
    const reasons = ['JobStarted', 'JobFailed', 'BackupTaken', 'PoolScaledUp'];
    const events = await until('the Events', async () => {
      await Promise.all(replicas.map((r) => r.events.idle()));
      const list = (JSON.parse(await kubectl(['get', 'events', '-n', ns, '-o', 'json'])) as { items: Ev[] }).items;
      return reasons.every((r) => list.some((e) => e.reason === r)) ? list : undefined;
    });
    for (const reason of reasons) t.equal(events.filter((e) => e.reason === reason).length, 1, `one ${reason} Event`);
    const failed = events.find((e) => e.reason === 'JobFailed')!;
    t.match(failed, {
      type: 'Warning',
      count: 1,
      reportingComponent: 'featherman',
      involvedObject: { kind: 'DuckLakeCatalog', name: 'example', uid: catalogUid },
    });
    t.match(
      failed.message,
      /^catalog init job example-init failed: storage unreachable: postgres:\/\/featherman:\*\*\*@db:5432\/lake refused$/,
    );
    for (const e of events) t.notMatch(e.message, secret, `${e.reason}: no secret`);
    t.match(
      events.find((e) => e.reason === 'BackupTaken'),
      {
        involvedObject: { kind: 'DuckLakeCatalog', name: 'example' },
        message: 'backup 20261130T020000Z-abc taken: snapshot 12, 2048 bytes, in 3.5s',
      },
    );
    t.match(
      events.find((e) => e.reason === 'PoolScaledUp'),
      { involvedObject: { kind: 'DuckLakePool' }, message: 'desired workers 1 → 3' },
    );
    const sent = replicas.reduce((n, r) => n + r.events.created, 0);
    const existed = replicas.reduce((n, r) => n + r.events.existed, 0);
    t.equal(sent, events.length, 'every Event created once, by one replica or the other');
    t.equal(existed, events.length, 'and the other replica got 409 for each');
    const describe = await kubectl(['describe', 'dlc', 'example', '-n', ns]);
    t.match(describe, /JobFailed/, 'kubectl describe shows the Events');
    // A fresh API server may answer the first lists 429 (the cache retries them, as it should); no
    // Event may have failed.
    t.same(
      warnings.filter((w) => (w as { msg: string }).msg !== 'watch cache: list failed; retrying'),
      [],
      'no watch or Event errors',
    );
  });

  t.test("the service's ClusterRole (metacontroller/rbac.yaml, featherman-router) is enough", async (t) => {
    await kubectl(['create', 'namespace', 'featherman']);
    await kubectl(['create', 'serviceaccount', 'featherman', '-n', 'featherman']);
    await kubectl(['apply', '-f', join(root, 'metacontroller', 'rbac.yaml')]);
    const token = (await kubectl(['create', 'token', 'featherman', '-n', 'featherman'])).trim();
    const sa = new KubeConfig();
    sa.loadFromOptions({
      clusters: [{ name: 'c', server: cluster.server, caData: Buffer.from(cluster.caCert).toString('base64') }],
      users: [{ name: 'featherman', token }],
      contexts: [{ name: 'c', cluster: 'c', user: 'featherman' }],
      currentContext: 'c',
    });
    const cache = new WatchCache();
    const saWarnings: object[] = [];
    cache.start(sa, {
      warn: (o: object, msg: string) => {
        saWarnings.push({ ...o, msg });
      },
    });
    t.teardown(() => cache.stop());
    await until("the ServiceAccount's cache synced", () => Object.values(cache.synced).every(Boolean)).catch((e) => {
      t.comment(JSON.stringify(saWarnings));
      throw e;
    });
    t.equal(cache.size('catalogs'), 1, 'it sees the catalog');
    const as = ['--as=system:serviceaccount:featherman:featherman', '-n', ns];
    t.equal((await cluster.kubectl(['auth', 'can-i', 'create', 'events', ...as])).stdout.trim(), 'yes', 'may create Events');
    t.equal((await cluster.kubectl(['auth', 'can-i', 'delete', 'events', ...as])).stdout.trim(), 'no', 'and no more');
    t.equal((await cluster.kubectl(['auth', 'can-i', 'watch', 'secrets', ...as])).stdout.trim(), 'no', 'never Secrets');
  });

  t.test('a new cache does not repeat history, and deleting the Job keeps its count', async (t) => {
    const late = new WatchCache();
    const registry = new Registry();
    installObjectMetrics(late, registry);
    const proposed: string[] = [];
    const recorder = new EventRecorder(
      async (body) => {
        proposed.push(body.metadata!.name!);
      },
      log,
      'replica-late',
    );
    recorder.attach(late);
    late.start(kc, log);
    t.teardown(() => late.stop());
    await until('the late cache synced', () => Object.values(late.synced).every(Boolean));
    await recorder.idle();
    // Its transitions are recent (within the announce window), so it proposes the same Events:
    // the API server's 409 makes them no-ops. Their names equal the ones already created.
    const existing = (
      JSON.parse(await kubectl(['get', 'events', '-n', ns, '-o', 'json'])) as { items: { metadata: { name: string } }[] }
    ).items.map((e) => e.metadata.name);
    t.ok(proposed.length > 0, 'it proposes the recent transitions again');
    t.same(
      proposed.filter((name) => !existing.includes(name)),
      [],
      "under the names already created: the API server's 409 makes them no-ops",
    );
    await kubectl(['delete', 'job', 'example-init', '-n', ns, '--cascade=background', '--wait=false']);
    await kubectl(['delete', 'pod', 'example-init-x1', '-n', ns, '--wait=false']);
    await until('the Job gone from the cache', () => replicas.every((r) => r.cache.size('jobs') === 0 && r.cache.size('pods') === 0));
    const text = await replicas[0]!.registry.metrics();
    t.ok(
      text.split('\n').includes('featherman_job_failures_total{operation="init",reason="temporary"} 1'),
      'the failure still counts after the Job is deleted',
    );
  });
}
