// Featherman end to end on a real kube-apiserver (test/helpers/e2e-env.ts): the API server
// validates our CRDs and calls our admission webhooks over TLS; the real Metacontroller (or, on a
// machine without it, the stand-in; the output says which) drives our hooks; the real Job
// controller runs our Jobs on the process kubelet against real MinIO; the real garbage collector
// cleans up. Driven through kubectl, the way a user would.
import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { DuckDBInstance } from '@duckdb/node-api';
import { parseAllDocuments } from 'yaml';
import { packageRoot } from '../../lib/lake/config.js';
import { featherman } from '../helpers/cli.js';
import { clusterBinariesMissing } from '../helpers/cluster.js';
import { BUCKET, E2E_TOKEN, eventually, kubectlTools, startE2eEnv, type E2eEnv } from '../helpers/e2e-env.js';
import type { KubeObj } from '../helpers/metacontroller-standin.js';
import { parseScrape, promtoolCheckMetrics, sampleValue, type Sample } from '../helpers/prometheus.js';
import { metricNamesIn, PROMETHEUS_SERIES } from '../helpers/metric-names.js';

const missing = clusterBinariesMissing();
if (missing) {
  t.skip(`the test cluster is not built: ${missing}`, () => {});
} else {
  const root = packageRoot();
  const started = Date.now();
  // (two replicas of the service: the object metrics must read the same on both)
  const env: E2eEnv = await startE2eEnv({ replicas: 2 });
  t.teardown(() => env.stop());
  t.comment(`hooks driven by ${env.metacontroller.description}`);
  t.comment(
    `environment up in ${((Date.now() - started) / 1000).toFixed(1)} s (API server ${env.cluster.server}, hooks ${env.hooksUrl}, ` +
      `queries ${env.queryUrl}, admission ${env.admissionUrl})`,
  );
  const { kubectl, minio } = env;
  const { ok, get, wait } = kubectlTools(env);
  const example = (file: string) => readFileSync(join(root, 'examples', file), 'utf8');
  const catalogYaml = example('catalog.yaml').replace('http://minio.storage.svc:9000', minio.url);
  const tableYaml = example('users-table.yaml');
  const lakeEnv = () => ({
    FEATHERMAN_METADATA: `duckdb:${env.kubelet.pvcDir('default', 'example-catalog')}/metadata.ducklake`,
    FEATHERMAN_DATA_PATH: `s3://${BUCKET}/lakes/example/data/`,
    FEATHERMAN_CATALOG: 'example',
    ...minio.env(),
  });
  const phase = async (kind: string, name: string) => (await get([kind, name]))?.status?.phase as string | undefined;
  const tablesInLake = async (): Promise<string[]> => {
    const info = await featherman(['catalog', 'info'], lakeEnv());
    if (info.code !== 0) throw new Error(`catalog info: ${info.stderr}`);
    return ((info.json.tables ?? []) as { name: string }[]).map((x) => x.name);
  };

  /** featherman_hook_requests_total for one resource and hook, summed over status codes. */
  const hookCalls = async (resource: string, hook: string): Promise<number> => {
    const samples = parseScrape(await (await fetch(`${env.queryUrl}/metrics`)).text());
    return samples
      .filter((s) => s.name === 'featherman_hook_requests_total' && s.labels.resource === resource && s.labels.hook === hook)
      .reduce((n, s) => n + s.value, 0);
  };
  const realOnly =
    env.metacontroller.kind === 'metacontroller'
      ? false
      : `only the real Metacontroller does this; this run uses ${env.metacontroller.description}`;
  const TABLE_FINALIZER = 'metacontroller.io/compositecontroller-ducklaketables.featherman';
  const CATALOG_FINALIZER = 'metacontroller.io/compositecontroller-ducklakecatalogs.featherman';

  await t.test('(a) CRDs and admission over TLS', async (t) => {
    // (kubectl skips crds/kustomization.yaml when applying the directory with -f)
    const applied = ok(await kubectl(['apply', '-f', join(root, 'crds')]), 'kubectl apply -f crds/');
    t.match(applied, /ducklakecatalogs\.ducklake\.featherman\.dev (created|unchanged|configured)/);
    ok(await kubectl(['apply', '-k', join(root, 'crds')]), 'kubectl apply -k crds/');
    ok(
      await kubectl([
        'wait',
        '--for=condition=Established',
        '--timeout=60s',
        'crd/ducklakecatalogs.ducklake.featherman.dev',
        'crd/ducklaketables.ducklake.featherman.dev',
        'crd/ducklakepools.ducklake.featherman.dev',
        'crd/ducklakebackups.ducklake.featherman.dev',
      ]),
      'CRDs Established',
    );

    // The original README's table partitions by a column it does not have: the webhook refuses it.
    // (Webhook configurations take effect asynchronously, so retry until the webhook answers.)
    const original = readFileSync(join(root, 'test', 'fixtures', 'original-readme', 'table.yaml'), 'utf8');
    const refused = await wait('the admission webhook to refuse the original README table', 60_000, async () => {
      const res = await kubectl(['apply', '--dry-run=server', '-f', '-'], original);
      if (res.code === 0) return undefined;
      return /created_at/.test(res.stderr) ? res : undefined;
    });
    t.comment(`refused: ${refused.stderr.trim()}`);
    t.match(refused.stderr, /spec\.format\.partitioning\[0\]: partition column "created_at" is not one of the table's columns/);

    for (const f of ['catalog.yaml', 'users-table.yaml', 'pool.yaml', 's3-credentials.yaml', 'backup.yaml']) {
      const res = await kubectl(['apply', '--dry-run=server', '-f', join(root, 'examples', f)]);
      t.equal(res.code, 0, `examples/${f} is accepted: ${res.stderr}`);
    }

    // An UPDATE changing an immutable field is refused (CEL rule and webhook).
    // (its own prefix: its init Job may run and claim its data path before it is deleted)
    const throwaway = catalogYaml
      .replace('name: example', 'name: immutable-check')
      .replace('prefix: lakes/example', 'prefix: lakes/immutable-check');
    ok(await kubectl(['apply', '-f', '-'], throwaway), 'create a throwaway catalog');
    const upd = await kubectl(['apply', '-f', '-'], throwaway.replace('bucket: my-data-lake', 'bucket: another-bucket'));
    t.not(upd.code, 0, 'changing objectStore.bucket is refused');
    t.match(upd.stderr, /objectStore\.bucket/);
    t.match(upd.stderr, /immutable/);
    ok(await kubectl(['delete', 'dlc', 'immutable-check', '--wait=true', '--timeout=90s']), 'delete the throwaway catalog');
  });

  await t.test('(b) the example catalog and table become Ready; Parquet files land in MinIO', async (t) => {
    const secret = example('s3-credentials.yaml')
      .replace('REPLACE-WITH-ACCESS-KEY-ID', minio.accessKey)
      .replace('REPLACE-WITH-SECRET-ACCESS-KEY', minio.secretKey);
    ok(await kubectl(['apply', '-f', '-'], secret), 'apply the credentials Secret');
    ok(await kubectl(['apply', '-f', '-'], catalogYaml), 'apply the catalog');
    const catalog = await wait('catalog example Ready', 180_000, async () => {
      const c = await get(['dlc', 'example']);
      if (c?.status?.phase === 'Failed') throw new Error(`catalog failed: ${JSON.stringify(c.status)}`);
      return c?.status?.phase === 'Ready' ? c : undefined;
    });
    t.equal(catalog.status?.dataPath, `s3://${BUCKET}/lakes/example/data/`);
    t.ok(catalog.status?.ducklakeVersion, `DuckLake version reported: ${String(catalog.status?.ducklakeVersion)}`);
    t.ok(catalog.metadata.finalizers?.includes(CATALOG_FINALIZER), `${env.metacontroller.kind} added the finalizer`);
    const pvc = await get(['pvc', 'example-catalog']);
    t.equal(pvc?.metadata.labels?.['controller-uid'], catalog.metadata.uid, 'the PVC is a child (controller-uid)');
    t.match(pvc?.metadata.ownerReferences, [{ kind: 'DuckLakeCatalog', name: 'example', controller: true, blockOwnerDeletion: true }]);
    const cronjobs = await get<{ items: KubeObj[] }>(['cronjobs', '-l', `controller-uid=${catalog.metadata.uid}`]);
    t.same(
      cronjobs?.items.map((c) => c.metadata.name).sort(),
      ['example-backup', 'example-inspect', 'example-maintain'],
      'backup, maintenance and inspection CronJobs',
    );

    ok(await kubectl(['apply', '-f', '-'], tableYaml), 'apply the users table');
    const table = await wait('table users Ready', 180_000, async () => {
      const x = await get(['dlt', 'users']);
      if (x?.status?.phase === 'Failed') throw new Error(`table failed: ${JSON.stringify(x.status)}`);
      return x?.status?.phase === 'Ready' ? x : undefined;
    });
    t.match(JSON.stringify(table.status?.columns), /created_at/, 'the status lists the columns');
    t.ok((await tablesInLake()).includes('users'), 'the table exists in the lake (catalog info)');

    const values = Array.from(
      { length: 20 },
      (_, i) => `(${i + 1}, 'user${i + 1}', TIMESTAMP '2026-11-${String(10 + (i % 3)).padStart(2, '0')} 09:00:00')`,
    ).join(', ');
    const ins = await featherman(['query', '--write', '--sql', `INSERT INTO users VALUES ${values}`], lakeEnv());
    t.equal(ins.code, 0, `insert through featherman query --write: ${ins.stderr}`);
    const s3 = minio.client();
    t.teardown(() => s3.destroy());
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'lakes/example/data/' }));
    const parquet = (listed.Contents ?? []).map((o) => o.Key!).filter((k) => k.endsWith('.parquet'));
    t.ok(parquet.length >= 1, `Parquet files in MinIO: ${parquet.join(', ')}`);
  });

  await t.test('(e) the pool reaches minSize ready workers', async (t) => {
    ok(await kubectl(['apply', '-f', join(root, 'examples', 'pool.yaml')]), 'apply the pool');
    const pool = await wait('pool default-pool with 2 ready workers', 120_000, async () => {
      const p = await get(['dlp', 'default-pool']);
      if (!p) return undefined;
      const pods = await get<{ items: (KubeObj & { status?: { conditions?: { type: string; status: string }[]; podIP?: string } })[] }>([
        'pods',
        '-l',
        `controller-uid=${p.metadata.uid}`,
      ]);
      const ready = (pods?.items ?? []).filter((x) => x.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
      return ready.length >= 2 && p.status?.currentSize !== undefined ? { p, ready } : undefined;
    });
    t.equal(pool.ready.length, 2, 'minSize ready pods');
    const ips = pool.ready.map((x) => String(x.status?.podIP));
    t.ok(
      ips.every((ip) => /^127\.\d+\.\d+\.\d+$/.test(ip)) && new Set(ips).size === ips.length,
      `each worker has its own loopback pod IP (${ips.join(', ')})`,
    );
    // The API server accepted the workers' NetworkPolicy (this test network enforces none).
    const policy = await get<KubeObj & { spec?: { podSelector?: { matchLabels?: Record<string, string> } } }>([
      'networkpolicy',
      'default-pool-workers',
    ]);
    t.match(
      policy?.spec?.podSelector?.matchLabels,
      { 'ducklake.featherman.dev/pool': 'default-pool' },
      'a NetworkPolicy guards the workers',
    );
    // A query through the service's router reaches a worker pod and returns the table's rows.
    const answer = await eventually('a query through POST /v1/query', 60_000, async () => {
      const res = await fetch(`${env.queryUrl}/v1/query`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${E2E_TOKEN}` },
        body: JSON.stringify({ catalog: 'example', sql: 'SELECT count(*) AS n FROM users' }),
      });
      const body = await res.text();
      return res.status === 200 && body.includes('"n":"20"') ? { pod: res.headers.get('x-featherman-pod'), body } : undefined;
    });
    t.ok(
      pool.ready.some((x) => x.metadata.name === answer.pod),
      `answered by worker pod ${answer.pod}: ${answer.body.slice(0, 120)}`,
    );
    const unauthorized = await fetch(`${env.queryUrl}/v1/query`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ catalog: 'example', sql: 'SELECT 1' }),
    });
    t.equal(unauthorized.status, 401, 'no token, no query');
  });

  await t.test(
    '(g) ignoreStatusChanges: steady queries write the pool status, and those writes start no syncs',
    { skip: realOnly },
    async (t) => {
      // A pool whose status changes on every sync (each worker's queryCount), resynced every 5 s; its
      // one worker stays for the whole window (no recycling after maxQueries or maxLifetime, which
      // would be child events, each a sync of its own).
      const steady = {
        apiVersion: 'ducklake.featherman.dev/v1alpha1',
        kind: 'DuckLakePool',
        metadata: { name: 'steady' },
        spec: {
          minSize: 1,
          maxSize: 1,
          scaleInterval: '5s',
          maxIdleTime: '300s',
          maxQueries: 1_000_000,
          maxLifetime: '1h',
          catalogRef: { name: 'example', readOnly: true },
        },
      };
      ok(await kubectl(['apply', '-f', '-'], JSON.stringify(steady)), 'apply the steady pool');
      type PoolStatus = { phase?: string; readyPods?: number; pods?: { name: string; queryCount?: number }[] };
      const status = async () => (await get(['dlp', 'steady']))?.status as PoolStatus | undefined;
      await wait('pool steady Ready with 1 worker', 120_000, async () => {
        const s = await status();
        return s?.phase === 'Ready' && s.readyPods === 1 ? true : undefined;
      });
      const WINDOW_S = 20;
      const before = await hookCalls('ducklakepools', 'sync');
      const until = Date.now() + WINDOW_S * 1000;
      let answered = 0;
      const counts = new Set<number>();
      const client = async () => {
        while (Date.now() < until) {
          const res = await fetch(`${env.queryUrl}/v1/query`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${E2E_TOKEN}` },
            body: JSON.stringify({ catalog: 'example', pool: 'steady', sql: 'SELECT count(*) AS n FROM users' }),
          });
          await res.text();
          if (res.status === 200) answered++;
        }
      };
      const watcher = async () => {
        while (Date.now() < until) {
          const c = (await status())?.pods?.[0]?.queryCount;
          if (c !== undefined) counts.add(c);
          await new Promise((r) => setTimeout(r, 500));
        }
      };
      await Promise.all([client(), watcher()]);
      const syncs = (await hookCalls('ducklakepools', 'sync')) - before;
      // Expected: one sync per scaleInterval (5 s) for this pool, one per 30 s for default-pool, plus a
      // few for events (the worker's pod, the start and end of the window). One sync per status write
      // would be one per query counted, in a loop.
      const bound = Math.ceil(WINDOW_S / 5) + Math.ceil(WINDOW_S / 30) + 3;
      t.ok(answered > 20, `${answered} queries answered in ${WINDOW_S} s`);
      t.ok(counts.size >= 2, `the status was rewritten during the window (queryCount values seen: ${[...counts].join(', ')})`);
      t.ok(syncs <= bound, `${syncs} pool syncs in ${WINDOW_S} s (at most ${bound}: scaleInterval and resyncs, not one per status write)`);
      ok(await kubectl(['delete', 'dlp', 'steady', '--wait=true', '--timeout=90s']), 'delete the steady pool');
    },
  );

  await t.test('(h) updateStrategy InPlace: a new backup schedule updates the CronJob in place', async (t) => {
    const catalog = (await get(['dlc', 'example']))!;
    const cronjobs = async () =>
      (
        await get<{ items: (KubeObj & { spec?: { schedule?: string } })[] }>([
          'cronjobs',
          '-l',
          `controller-uid=${catalog.metadata.uid},app.kubernetes.io/component=catalog-backup`,
        ])
      )?.items ?? [];
    const [before] = await cronjobs();
    t.equal(before?.spec?.schedule, '0 2 * * *', 'the example schedule');
    ok(
      await kubectl(['patch', 'dlc', 'example', '--type=merge', '-p', '{"spec":{"backupPolicy":{"schedule":"15 4 * * *"}}}']),
      'change spec.backupPolicy.schedule',
    );
    const after = await wait('the CronJob to carry the new schedule', 60_000, async () => {
      const list = await cronjobs();
      return list.length === 1 && list[0]!.spec?.schedule === '15 4 * * *' ? list[0] : undefined;
    });
    t.equal(after.metadata.uid, before?.metadata.uid, 'the same CronJob (same uid), updated in place');
    t.equal((await get(['dlc', 'example']))?.status?.phase, 'Ready', 'the catalog stays Ready');
  });

  await t.test(
    "(j) the service's listeners and NetworkPolicies; a pool sync naming a pod outside the pool fetches nothing from it",
    async (t) => {
      // Two plain ports: the hooks answer only on the hooks port, the query API only on the query port.
      const pool = (await get(['dlp', 'default-pool']))!;
      const customize = (base: string) =>
        fetch(`${base}/hooks/ducklakepools/customize`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ controller: {}, parent: pool }),
        });
      t.equal((await customize(env.hooksUrl)).status, 200, 'the hooks port answers POST /hooks/ducklakepools/customize');
      t.equal((await customize(env.queryUrl)).status, 404, 'the query port does not (404)');
      const query = (base: string) =>
        fetch(`${base}/v1/query`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ catalog: 'example', sql: 'SELECT 1' }),
        });
      t.equal((await query(env.queryUrl)).status, 401, 'the query port answers POST /v1/query (401 without a token)');
      t.equal((await query(env.hooksUrl)).status, 404, 'the hooks port does not (404)');

      // The NetworkPolicies: the pool's, and the service's from metacontroller/.
      t.ok(await get(['networkpolicy', 'default-pool-workers']), "the pool's NetworkPolicy default-pool-workers exists");
      const policies = readdirSync(join(root, 'metacontroller'))
        .filter((f) => f.endsWith('.yaml'))
        .flatMap((f) => parseAllDocuments(readFileSync(join(root, 'metacontroller', f), 'utf8')).map((d) => d.toJSON() as KubeObj | null))
        .filter((d): d is KubeObj => d?.kind === 'NetworkPolicy');
      t.ok(policies.length >= 1, `metacontroller/ has the service's NetworkPolicy (${policies.map((p) => p.metadata.name).join(', ')})`);
      for (const ns of new Set(policies.map((p) => p.metadata.namespace ?? 'default'))) {
        ok(
          await kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } })),
          `namespace ${ns}`,
        );
      }
      for (const policy of policies) {
        ok(await kubectl(['apply', '-f', '-'], JSON.stringify(policy)), `the API server accepts NetworkPolicy ${policy.metadata.name}`);
        const got = await get(['networkpolicy', '-n', policy.metadata.namespace ?? 'default', policy.metadata.name]);
        t.equal(
          got?.metadata.name,
          policy.metadata.name,
          `kubectl get networkpolicy shows ${policy.metadata.namespace}/${policy.metadata.name}`,
        );
      }

      // A pod outside the pool (labelled like its workers, but no owner reference and no
      // controller-uid, so Metacontroller neither lists nor adopts it) whose stats port is a local
      // server that counts every request.
      let hits = 0;
      const recorder = createServer((req, res) => {
        hits++;
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
      await new Promise<void>((r) => recorder.listen(0, '127.0.0.1', r));
      t.teardown(() => new Promise<void>((r) => recorder.close(() => r())));
      const port = (recorder.address() as AddressInfo).port;
      ok(
        await kubectl(
          ['apply', '-f', '-'],
          JSON.stringify({
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: {
              name: 'intruder',
              labels: {
                'app.kubernetes.io/name': 'featherman',
                'app.kubernetes.io/component': 'worker',
                'ducklake.featherman.dev/pool': 'default-pool',
                'ducklake.featherman.dev/catalog': 'example',
              },
              annotations: { 'ducklake.featherman.dev/stats-port': String(port) },
            },
            // On another node, so the process kubelet leaves it alone; its status is written below.
            spec: { nodeName: 'elsewhere', containers: [{ name: 'featherman', image: 'featherman:e2e' }] },
          }),
        ),
        'create a pod outside the pool',
      );
      t.teardown(async () => {
        await kubectl(['delete', 'pod', 'intruder', '--grace-period=0', '--force', '--wait=false']);
      });
      const now = new Date().toISOString();
      await env.api.ok(
        'PATCH',
        '/api/v1/namespaces/default/pods/intruder/status',
        {
          status: {
            phase: 'Running',
            podIP: '127.0.0.1',
            podIPs: [{ ip: '127.0.0.1' }],
            conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }],
          },
        },
        'application/merge-patch+json',
      );
      const intruder = (await get(['pod', 'intruder']))!;
      t.equal((intruder.status as { podIP?: string } | undefined)?.podIP, '127.0.0.1', 'the pod is Running at 127.0.0.1');

      const before = await hookCalls('ducklakepools', 'sync');
      // A sync request naming it among the pool's pods, as anyone reaching the hooks port could send.
      const forged = await fetch(`${env.hooksUrl}/hooks/ducklakepools/sync`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          controller: {},
          parent: pool,
          children: { 'Pod.v1': { 'default/intruder': { ...intruder, apiVersion: 'v1', kind: 'Pod' } } },
          related: {},
          finalizing: false,
        }),
      });
      t.equal(forged.status, 200, 'the forged sync is answered');
      // And real syncs of the pool (an annotation change makes Metacontroller sync it at once).
      ok(await kubectl(['annotate', 'dlp', 'default-pool', `e2e.featherman.dev/poke=${Date.now()}`, '--overwrite']), 'poke the pool');
      const calls = await wait('the pool to be synced after the forged call', 60_000, async () => {
        const n = await hookCalls('ducklakepools', 'sync');
        return n >= before + 2 ? n : undefined;
      });
      t.equal(hits, 0, `no request reached the pod outside the pool during ${calls - before} pool syncs`);
      // It carries the workers' labels: gone before the next query, which the router would send it.
      ok(
        await kubectl(['delete', 'pod', 'intruder', '--grace-period=0', '--force', '--wait=true', '--timeout=30s']),
        'delete the pod outside the pool',
      );
    },
  );

  await t.test('printer columns: kubectl get dlc,dlt,dlp', async (t) => {
    let last = '';
    const out = await eventually(
      'printer columns filled in',
      60_000,
      async () => {
        const o = (last = ok(await kubectl(['get', 'dlc,dlt,dlp']), 'kubectl get dlc,dlt,dlp'));
        return /\/example\s+Ready\s+True\s/.test(o) &&
          /\/users\s+example\s+users\s+\d+\s+Ready\s+True\s/.test(o) &&
          /\/default-pool\s+2\s+10\s+2\s+\d+\s+\d+\s+\w+\s+True\s/.test(o)
          ? o
          : undefined;
      },
      () => last,
    );
    t.comment(out.trim());
    t.pass('catalog (phase, ready), table (catalog, table, snapshot, phase, ready), pool (min, max, current, idle, busy, phase, ready)');
    const wide = ok(await kubectl(['get', 'dlc', '-o', 'wide']), 'kubectl get dlc -o wide');
    t.match(wide, /example\s+Ready\s+True\s+my-data-lake\s+duckdb\s/, 'the wide columns (priority 1): bucket and metadata type');
  });

  await t.test(
    '(c) editing the table: a new column runs a new Job (OnDelete: the old Job is never updated); a lossy edit is refused',
    async (t) => {
      const before = await get(['dlt', 'users']);
      const oldJobs = (await get<{ items: KubeObj[] }>(['jobs', '-l', `controller-uid=${before!.metadata.uid}`]))!.items;
      const jobsBefore = oldJobs.map((j) => j.metadata.name);
      t.equal(oldJobs.length, 1, `one apply Job before the edit (${jobsBefore.join(', ')})`);
      const oldJob = oldJobs[0]!;
      const withEmail = tableYaml.replace(
        '    - name: created_at\n      type: TIMESTAMP\n',
        '    - name: created_at\n      type: TIMESTAMP\n    - name: email\n      type: VARCHAR\n',
      );
      t.not(withEmail, tableYaml);
      ok(await kubectl(['apply', '-f', '-'], withEmail), 'apply the table with a new column');
      const after = await wait('the new column in the status', 120_000, async () => {
        const x = await get(['dlt', 'users']);
        return x?.status?.phase === 'Ready' &&
          x.status.appliedGeneration === x.metadata.generation &&
          /email/.test(JSON.stringify(x.status.columns))
          ? x
          : undefined;
      });
      t.ok((after.metadata.generation ?? 0) > (before!.metadata.generation ?? 0));
      const jobsAfter = (await get<{ items: KubeObj[] }>(['jobs', '-l', `controller-uid=${after.metadata.uid}`]))!.items.map(
        (j) => j.metadata.name,
      );
      t.ok(
        jobsAfter.some((j) => !jobsBefore.includes(j)),
        `a new apply Job ran (${jobsAfter.join(', ')})`,
      );
      // Everything that happened to the old Job since the edit, replayed by a watch from its resourceVersion.
      const watched = await env.api.request(
        'GET',
        `/apis/batch/v1/namespaces/default/jobs?watch=1&fieldSelector=${encodeURIComponent(`metadata.name=${oldJob.metadata.name}`)}` +
          `&resourceVersion=${oldJob.metadata.resourceVersion}&timeoutSeconds=2`,
      );
      const events = watched.text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { type: string; object: KubeObj });
      t.comment(`old Job ${oldJob.metadata.name} since the edit: ${events.map((e) => e.type).join(', ') || 'no change'}`);
      t.ok(
        events.every(
          (e) => e.type !== 'ERROR' && e.object.metadata.uid === oldJob.metadata.uid && isDeepStrictEqual(e.object.spec, oldJob.spec),
        ),
        'the old Job keeps its uid and spec (never updated in place)',
      );
      t.notOk(jobsAfter.includes(oldJob.metadata.name), 'the old Job is no longer a desired child: Metacontroller deleted it');

      const lossy = withEmail.replace('    - name: name\n      type: VARCHAR\n', '    - name: name\n      type: INTEGER\n');
      t.not(lossy, withEmail);
      const r = await kubectl(['apply', '-f', '-'], lossy);
      t.not(r.code, 0, 'VARCHAR → INTEGER is refused at apply');
      t.match(r.stderr, /spec\.columns\[1\]\.type: cannot change name from VARCHAR to INTEGER/);
    },
  );

  await t.test('(f) MinIO down while a Job runs: retried, reported, Ready once back; nothing lost', async (t) => {
    await minio.pause();
    let resumed = false;
    t.teardown(async () => {
      if (!resumed) await minio.resume();
    });
    // A table's DDL lives in the catalog (metadata only), so a table Job needs no S3: it succeeds.
    ok(
      await kubectl(
        ['apply', '-f', '-'],
        `apiVersion: ducklake.featherman.dev/v1alpha1
kind: DuckLakeTable
metadata: { name: events }
spec:
  catalogRef: example
  name: events
  columns:
    - { name: id, type: BIGINT }
    - { name: payload, type: JSON }
`,
      ),
      'apply a second table',
    );
    await wait('table events Ready (DDL needs no S3)', 120_000, async () =>
      (await phase('dlt', 'events')) === 'Ready' ? true : undefined,
    );
    t.pass('a table Job succeeds while MinIO is down (metadata only)');

    // A catalog's init Job checks the bucket: it fails (exit 75, retryable) and the Job retries.
    ok(
      await kubectl(
        ['apply', '-f', '-'],
        catalogYaml.replace('name: example', 'name: outage').replace('prefix: lakes/example', 'prefix: lakes/outage'),
      ),
      'apply a catalog while MinIO is down',
    );
    const failing = await wait('the init Job to fail and retry', 120_000, async () => {
      const c = await get(['dlc', 'outage']);
      if (!c?.metadata.uid) return undefined;
      const jobs =
        (await get<{ items: (KubeObj & { status?: { failed?: number } })[] }>(['jobs', '-l', `controller-uid=${c.metadata.uid}`]))?.items ??
        [];
      const job = jobs.find((j) => (j.status?.failed ?? 0) >= 1);
      return job ? { c, job } : undefined;
    });
    t.ok(failing.job.status?.failed, `the Job ${failing.job.metadata.name} has a failed pod and is retrying`);
    const pods =
      (
        await get<{
          items: (KubeObj & {
            status?: {
              phase?: string;
              containerStatuses?: { state?: { terminated?: { exitCode: number; message?: string; finishedAt?: string } } }[];
            };
          })[];
        }>(['pods', '-l', `batch.kubernetes.io/job-name=${failing.job.metadata.name}`])
      )?.items ?? [];
    const term = pods.map((p) => p.status?.containerStatuses?.[0]?.state?.terminated).find((x) => x && x.exitCode !== 0);
    t.equal(term?.exitCode, 75, `exit 75 (temporary): ${term?.message?.trim().slice(0, 200)}`);
    // Someone watching `kubectl get dlc -w` sees the failed attempt within STATUS_BOUND_S of the pod
    // failing: Metacontroller syncs the catalog when the pod (a related object) or the Job changes,
    // and the 5 s resync of a provisioning catalog backs that up.
    const STATUS_BOUND_S = 10;
    const failedAt = Date.parse(term?.finishedAt ?? '');
    const shown = await wait('the catalog status to name the failed attempt', 60_000, async () => {
      const c = await get(['dlc', 'outage']);
      const ready = (c?.status?.conditions as { type: string; message?: string }[] | undefined)?.find((x) => x.type === 'Ready');
      return /last attempt: .*(unreachable|ECONNREFUSED)/.test(ready?.message ?? '')
        ? { c, message: ready!.message!, at: Date.now() }
        : undefined;
    });
    const latency = (shown.at - failedAt) / 1000;
    t.comment(
      `catalog status while MinIO is down, ${latency.toFixed(1)} s after the pod failed: ` +
        `${String(shown.c?.status?.phase)}: ${shown.message}`,
    );
    t.not(shown.c?.status?.phase, 'Ready', `not Ready while MinIO is down (${String(shown.c?.status?.phase)})`);
    t.ok(
      latency <= STATUS_BOUND_S,
      `the catalog status named the failed attempt ${latency.toFixed(1)} s after the pod failed (bound ${STATUS_BOUND_S} s)`,
    );
    await minio.resume();
    resumed = true;
    await wait('catalog outage Ready once MinIO is back', 180_000, async () =>
      (await phase('dlc', 'outage')) === 'Ready' ? true : undefined,
    );
    t.pass('Ready once MinIO is back');
    const count = await featherman(['query', '--format', 'csv', '--sql', 'SELECT count(*) AS n FROM users'], lakeEnv());
    t.match(
      count.stdout,
      /n\s*\n20\b/,
      `nothing was lost: users still has its 20 rows (${count.stdout.trim()} ${count.stderr.trim().slice(0, 200)})`,
    );
  });

  // ---- backups as objects, maintenance on demand, one catalog per data path ----------

  /** The README's commands for backups and maintenance in a cluster, each run as written below. */
  /** The commands of the first bash block under a README heading. */
  const readmeBlock = (heading: string) => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const at = readme.indexOf(`\n${heading}\n`);
    const section = at < 0 ? '' : readme.slice(at + heading.length + 2).split(/\n#{2,3} /)[0]!;
    const block = /```bash\n([\s\S]*?)```/.exec(section)?.[1];
    if (!block) throw new Error(`README: no bash block under "${heading}"`);
    return block
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
  };
  const readmeCommands = readmeBlock('### Backups and maintenance in a cluster');
  const watchingCommands = readmeBlock('### Watching a catalog');
  const ranReadme = new Set<string>();
  /** A README line as kubectl arguments: words, with '...' quoting as the shell reads it; examples/ paths from the checkout. */
  const readmeArgs = (line: string): string[] => {
    const words: string[] = [];
    let word = '';
    let quoted = false;
    for (const ch of line) {
      if (ch === "'") {
        quoted = !quoted;
        continue;
      }
      if (ch === ' ' && !quoted) {
        if (word) words.push(word);
        word = '';
        continue;
      }
      word += ch;
    }
    if (word) words.push(word);
    if (words[0] !== 'kubectl') throw new Error(`README command is not kubectl: ${line}`);
    return words.slice(1).map((w) => (w.startsWith('examples/') ? join(root, w) : w));
  };
  const runReadme = async (start: string, commands = readmeCommands) => {
    const line = commands.find((l) => l.startsWith(start));
    if (!line) throw new Error(`README has no command starting with ${JSON.stringify(start)}: ${commands.join(' | ')}`);
    ranReadme.add(line);
    return { line, out: ok(await kubectl(readmeArgs(line), undefined, 120_000), `README: ${line}`) };
  };
  type BackupStatus = {
    phase?: string;
    message?: string;
    backupName?: string;
    snapshotId?: number;
    bytes?: number;
    files?: number;
    verified?: boolean;
    includeData?: boolean;
    location?: string;
    durationSeconds?: number;
    catalog?: string;
  };
  const backupDone = (name: string) =>
    wait(`DuckLakeBackup ${name} Completed`, 300_000, async () => {
      const b = await get<KubeObj & { status?: BackupStatus }>(['dlb', name]);
      if (b?.status?.phase === 'Failed') throw new Error(`backup ${name} failed: ${JSON.stringify(b.status)}`);
      return b?.status?.phase === 'Completed' ? b : undefined;
    });
  const backupObjects = async (prefix: string) => {
    const s3 = minio.client();
    try {
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
      return (listed.Contents ?? []).map((o) => o.Key!);
    } finally {
      s3.destroy();
    }
  };

  await t.test('(k) a DuckLakeBackup reaches Completed with its figures; the catalog reports it as its last backup', async (t) => {
    const { out: applied } = await runReadme('kubectl apply -f examples/backup.yaml');
    t.match(applied, /ducklakebackup\.ducklake\.featherman\.dev\/before-migration created/);
    const b = await backupDone('before-migration');
    await runReadme('kubectl wait --for=jsonpath=');
    const s = b.status!;
    t.comment(`before-migration: ${JSON.stringify(s)}`);
    t.match(
      s,
      {
        catalog: 'example',
        backupName: /^\d{8}T\d{6}Z-[0-9a-f]{8}$/,
        verified: true,
        includeData: true,
        snapshotId: Number,
        bytes: Number,
        files: Number,
      },
      'Completed with its name, snapshot, bytes and verification',
    );
    t.ok(s.bytes! > 0 && s.files! >= 1, `the snapshot's data: ${s.files} files, ${s.bytes} bytes`);
    const created = Date.parse(String((b.metadata as { creationTimestamp?: string }).creationTimestamp));
    t.equal(
      s.backupName!.slice(0, 16),
      new Date(created)
        .toISOString()
        .replace(/\.\d{3}Z$/, 'Z')
        .replace(/[-:]/g, ''),
      "named after the object's creation time",
    );
    const keys = await backupObjects(`lakes/example/backups/example/${s.backupName}/`);
    t.ok(
      keys.some((k) => k.endsWith('manifest.json')),
      `the backup is in MinIO with its manifest (${keys.length} objects)`,
    );
    // Copied data files are shared by the catalog's backups (<catalog>/data/), each copied once.
    const copied = (await backupObjects('lakes/example/backups/example/data/')).filter((k) => k.endsWith('.parquet'));
    t.ok(copied.length >= s.files!, `and, with includeData, the data files (${copied.length} Parquet files under example/data/)`);
    const listed = await featherman(['backup', 'list'], lakeEnv());
    t.equal(listed.code, 0, listed.stderr);
    t.match(
      (listed.json.backups as { name: string }[]).find((x) => x.name === s.backupName),
      { owner: 'DuckLakeBackup/default/before-migration', includeData: true },
      'the runner knows it as owned by the object (never pruned)',
    );
    const { out: table } = await runReadme('kubectl get dlb');
    t.comment(table.trim());
    t.match(
      table,
      new RegExp(`before-migration\\s+example\\s+Completed\\s+${s.backupName}\\s+${s.snapshotId}\\s+${s.bytes}\\s`),
      'printer columns: catalog, phase, backup, snapshot, bytes',
    );
    const catalog = await wait('the catalog to report the backup as its lastBackup', 60_000, async () => {
      const c = await get(['dlc', 'example']);
      return (c?.status?.lastBackup as { name?: string } | undefined)?.name === s.backupName ? c : undefined;
    });
    t.match(catalog.status?.lastBackup, {
      name: s.backupName,
      outcome: 'Succeeded',
      snapshotId: s.snapshotId,
      bytes: s.bytes,
      includeData: true,
      time: /^\d{4}-/,
    });
    t.equal(catalog.status?.lastBackupName, s.backupName);

    // deletionPolicy Delete: deleting the object deletes the backup (through a `backup delete` Job).
    ok(
      await kubectl(
        ['apply', '-f', '-'],
        JSON.stringify({
          apiVersion: 'ducklake.featherman.dev/v1alpha1',
          kind: 'DuckLakeBackup',
          metadata: { name: 'scratch' },
          spec: { catalogRef: 'example', includeData: false, deletionPolicy: 'Delete' },
        }),
      ),
      'apply a DuckLakeBackup with deletionPolicy Delete',
    );
    const scratch = (await backupDone('scratch')).status!;
    t.equal(scratch.includeData, false, 'its own includeData: false');
    const prefix = `lakes/example/backups/example/${scratch.backupName}/`;
    t.ok((await backupObjects(prefix)).length > 0, `backup ${scratch.backupName} is in MinIO`);
    const changed = await kubectl(['patch', 'dlb', 'scratch', '--type=merge', '-p', '{"spec":{"deletionPolicy":"Retain"}}']);
    t.not(changed.code, 0, 'the spec is immutable');
    t.match(changed.stderr, /spec\.deletionPolicy: is immutable|spec is immutable/);
    let deleteJobSeen = false;
    const uid = (await get(['dlb', 'scratch']))!.metadata.uid;
    ok(await kubectl(['delete', 'dlb', 'scratch', '--wait=false']), 'delete it');
    await wait('the scratch backup object to be gone', 180_000, async () => {
      const x = await get<KubeObj & { status?: BackupStatus }>(['dlb', 'scratch']);
      if (!x) return true;
      if (x.status?.phase === 'Failed') throw new Error(`deleting the backup failed: ${x.status.message}`);
      const jobs = (await get<{ items: KubeObj[] }>(['jobs', '-l', `controller-uid=${uid}`]))?.items ?? [];
      if (jobs.some((j) => j.metadata.name === 'scratch-delete')) deleteJobSeen = true;
      return undefined;
    });
    t.ok(deleteJobSeen, 'a delete Job ran while the finalizer held the object');
    t.same(await backupObjects(prefix), [], 'the backup is gone from MinIO');
    t.ok((await backupObjects(`lakes/example/backups/example/${s.backupName}/`)).length > 0, 'the other backup is untouched');
  });

  await t.test('(l) the maintenance CronJob run on demand completes; the catalog status shows its figures', async (t) => {
    // More small files in each day partition of users, for maintenance to merge.
    for (const batch of [1, 2, 3]) {
      const values = Array.from(
        { length: 12 },
        (_, i) => `(${100 + batch * 12 + i}, 'more${batch}_${i}', TIMESTAMP '2026-11-${String(10 + (i % 3)).padStart(2, '0')} 10:00:00')`,
      ).join(', ');
      const ins = await featherman(['query', '--write', '--sql', `INSERT INTO users (id, name, created_at) VALUES ${values}`], lakeEnv());
      t.equal(ins.code, 0, `insert batch ${batch}: ${ins.stderr}`);
    }
    const sums = async () =>
      (await featherman(['query', '--format', 'csv', '--sql', 'SELECT count(*) AS n, sum(id) AS s FROM users'], lakeEnv())).stdout.trim();
    const before = await sums();
    const { out: created } = await runReadme('kubectl create job --from=cronjob/example-maintain');
    t.match(created, /job\.batch\/example-maintain-now created/);
    t.teardown(async () => {
      await kubectl(['delete', 'job', 'example-maintain-now', '--cascade=foreground', '--wait=true', '--timeout=60s']);
    });
    await wait('job example-maintain-now to complete', 300_000, async () => {
      const j = await get<KubeObj & { status?: { succeeded?: number; conditions?: { type: string; status: string }[] } }>([
        'job',
        'example-maintain-now',
      ]);
      if (j?.status?.conditions?.some((c) => c.type === 'Failed' && c.status === 'True'))
        throw new Error(`maintenance failed: ${JSON.stringify(j.status)}`);
      return (j?.status?.succeeded ?? 0) >= 1 ? true : undefined;
    });
    await runReadme('kubectl wait --for=condition=complete job/example-maintain-now');
    const pods =
      (
        await get<{
          items: (KubeObj & {
            status?: { containerStatuses?: { state?: { terminated?: { exitCode: number; message?: string; finishedAt?: string } } }[] };
          })[];
        }>(['pods', '-l', 'batch.kubernetes.io/job-name=example-maintain-now'])
      )?.items ?? [];
    const term = pods.map((p) => p.status?.containerStatuses?.[0]?.state?.terminated).find((x) => x?.exitCode === 0);
    const summary = JSON.parse(term?.message?.trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
    t.comment(`maintenance summary: ${JSON.stringify(summary)}`);
    t.match(summary, { ok: true, command: 'maintain' });
    t.ok(Number(summary.filesMerged) > 0, `it merged the small files (${String(summary.filesMerged)})`);
    await wait('the catalog status to show this run', 60_000, async () => {
      const c = await get(['dlc', 'example']);
      return (c?.status?.lastMaintenance as { time?: string } | undefined)?.time === term?.finishedAt ? c : undefined;
    });
    const { out: shown } = await runReadme('kubectl get dlc example -o jsonpath=');
    const last = JSON.parse(shown) as Record<string, unknown>;
    t.match(last, { outcome: 'Succeeded', time: term?.finishedAt, durationSeconds: summary.durationSeconds });
    for (const key of [
      'snapshotsExpired',
      'snapshotsKeptBack',
      'filesMerged',
      'filesRewritten',
      'filesDeleted',
      'bytesReclaimed',
      'filesKeptBack',
      'orphansDeleted',
    ]) {
      t.equal(last[key], summary[key], `status.lastMaintenance.${key} is the run's (${String(summary[key])})`);
    }
    t.equal((await get(['dlc', 'example']))?.status?.lastMaintenanceTime, term?.finishedAt);
    t.equal(await sums(), before, `the rows are unchanged (${before})`);

    // The backup of (k) still restores after maintenance: verified against its files.
    const name = (await get<KubeObj & { status?: BackupStatus }>(['dlb', 'before-migration']))!.status!.backupName!;
    const verified = await featherman(['backup', 'verify', name], lakeEnv());
    t.equal(verified.code, 0, `backup verify ${name}: ${verified.stderr}`);
    t.match(verified.json, { verified: true });

    // Retain: deleting the object leaves the backup in place.
    ok(await kubectl(['delete', 'dlb', 'before-migration', '--wait=true', '--timeout=120s']), 'delete the Retain backup object');
    t.ok(
      (await backupObjects(`lakes/example/backups/example/${name}/`)).some((k) => k.endsWith('manifest.json')),
      'the backup stays in MinIO',
    );
    t.same(
      readmeCommands.filter((l) => !ranReadme.has(l)),
      [],
      'every command of the README block was run',
    );
  });

  await t.test("(m) a second catalog on the first one's bucket and prefix fails, naming the owner", async (t) => {
    ok(
      await kubectl(['apply', '-f', '-'], catalogYaml.replace('name: example', 'name: squatter')),
      "apply a catalog with the example's bucket and prefix",
    );
    const failed = await wait('catalog squatter Failed', 180_000, async () => {
      const c = await get(['dlc', 'squatter']);
      if (c?.status?.phase === 'Ready')
        throw new Error(`the second catalog became Ready on the first one's data path: ${JSON.stringify(c.status)}`);
      return c?.status?.phase === 'Failed' ? c : undefined;
    });
    t.comment(`squatter: ${String(failed.status?.message)}`);
    t.match(failed.status?.message, /belongs to catalog default\/example/, 'the status message names the owner');
    t.match(
      (failed.status?.conditions as { type: string; message?: string }[]).find((c) => c.type === 'Ready')?.message,
      /belongs to catalog default\/example/,
    );
    const cronjobs = (await get<{ items: KubeObj[] }>(['cronjobs', '-l', `controller-uid=${failed.metadata.uid}`]))?.items ?? [];
    t.equal(cronjobs.length, 0, 'and it schedules no backups or maintenance there');
    ok(await kubectl(['delete', 'dlc', 'squatter', '--wait=true', '--timeout=120s']), 'delete it');
    t.equal((await get(['dlc', 'example']))?.status?.phase, 'Ready', 'the first catalog is still Ready');
    t.ok((await tablesInLake()).includes('users'), 'and its lake is untouched');
  });

  // ---- operations you can see --------------------------------------------------------------------

  await t.test(
    "(n) a backup on demand, the lake's figures in status and in the metrics of both replicas, Events in kubectl describe",
    async (t) => {
      const requested = new Date(Math.floor(Date.now() / 1000) * 1000).toISOString().replace('.000Z', 'Z');
      await runReadme('kubectl create job --from=cronjob/example-backup', watchingCommands);
      t.teardown(async () => {
        await kubectl(['delete', 'job', 'example-backup-now', '--cascade=foreground', '--wait=true', '--timeout=60s']);
      });
      await runReadme('kubectl wait --for=condition=complete job/example-backup-now', watchingCommands);
      const pods =
        (
          await get<{ items: (KubeObj & { status?: { containerStatuses?: { state?: { terminated?: { message?: string } } }[] } })[] }>([
            'pods',
            '-l',
            'batch.kubernetes.io/job-name=example-backup-now',
          ])
        )?.items ?? [];
      const summary = JSON.parse(pods[0]?.status?.containerStatuses?.[0]?.state?.terminated?.message?.trim() ?? '{}') as {
        backup?: string;
        snapshotId?: number;
        lake?: { totalRows?: number };
      };
      t.type(summary.backup, 'string', 'the backup pod reported its backup');

      type LakeStatus = {
        lastBackup?: { name?: string; time?: string; outcome?: string; bytes?: number };
        totalRows?: number;
        totalBytes?: number;
        tableCount?: number;
        snapshotId?: number;
        lakeReportTime?: string;
        phase?: string;
      };
      const catalog = await wait('status.lastBackup to name the on-demand backup', 120_000, async () => {
        const c = await get<KubeObj & { status?: LakeStatus }>(['dlc', 'example']);
        return c?.status?.lastBackup?.name === summary.backup ? c : undefined;
      });
      const s = catalog.status!;
      t.match(s.lastBackup, { outcome: 'Succeeded', time: String }, 'status.lastBackup: Succeeded, with its time');
      const { out: shownBackup } = await runReadme("kubectl get dlc example -o jsonpath='{.status.lastBackup}'", watchingCommands);
      t.match(JSON.parse(shownBackup), { name: summary.backup, outcome: 'Succeeded' }, 'as the README shows it');
      const { out: wide } = await runReadme('kubectl get dlc example -o wide', watchingCommands);
      t.match(wide, /TABLES\s+ROWS\s+BYTES/, "kubectl get -o wide shows the lake's figures");
      t.ok(s.lastBackup!.time! >= requested, `its time (${s.lastBackup!.time}) is after the Job was created (${requested})`);

      const info = await featherman(['catalog', 'info'], lakeEnv());
      t.equal(info.code, 0, info.stderr);
      const lake = info.json.lake as { snapshotId: number; tableCount: number; totalRows: number; totalBytes: number };
      const users = (info.json.tables as { name: string; rows: number; bytes: number; files: number }[]).find((x) => x.name === 'users')!;
      t.ok(users.rows > 0 && users.bytes > 0, `users has ${users.rows} rows in ${users.bytes} bytes`);
      t.match(
        s,
        { snapshotId: lake.snapshotId, tableCount: lake.tableCount, totalRows: lake.totalRows, totalBytes: lake.totalBytes },
        "the catalog status has the lake's figures, as `featherman catalog info` reads them",
      );
      const usersStatus = await wait("the users table status to take its figures from the catalog's report", 60_000, async () => {
        const u = await get<KubeObj & { status?: { rows?: number; bytes?: number; files?: number } }>(['dlt', 'users']);
        return u?.status?.rows === users.rows ? u.status : undefined;
      });
      t.match(usersStatus, { rows: users.rows, files: users.files, bytes: users.bytes }, 'dlt users: rows, files and bytes');

      // Both replicas answer from their own watch cache: the same object figures, once each has seen the same objects.
      const scrape = async (url: string) => (await fetch(`${url}/metrics`)).text();
      const objectLines = (text: string) =>
        text
          .split('\n')
          .filter((l) => /^featherman_(catalog|table)_/.test(l))
          .sort();
      const urls = [env.queryUrl, env.replicaUrl!];
      const scrapes = await wait("both replicas to report the users table's rows and the on-demand backup", 60_000, async () => {
        const texts = await Promise.all(urls.map(scrape));
        const parsed = texts.map(parseScrape);
        const current = parsed.every(
          (p) =>
            sampleValue(p, 'featherman_table_rows', { namespace: 'default', table: 'users' }) === users.rows &&
            sampleValue(p, 'featherman_catalog_last_backup_success_timestamp_seconds', { namespace: 'default', catalog: 'example' }) ===
              Date.parse(s.lastBackup!.time!) / 1000,
        );
        return current && isDeepStrictEqual(objectLines(texts[0]!), objectLines(texts[1]!)) ? { texts, parsed } : undefined;
      });
      t.pass('the two replicas report identical catalog and table figures');
      for (const [i, samples] of scrapes.parsed.entries()) {
        const who = `replica ${i + 1}`;
        const at = (name: string, labels: Record<string, string>) => sampleValue(samples, name, labels);
        t.equal(
          at('featherman_catalog_phase', { namespace: 'default', catalog: 'example', phase: 'Ready' }),
          1,
          `${who}: catalog example is Ready`,
        );
        t.equal(at('featherman_catalog_phase', { namespace: 'default', catalog: 'example', phase: 'Failed' }), 0, `${who}: and not Failed`);
        t.equal(
          at('featherman_table_bytes', { namespace: 'default', table: 'users' }),
          users.bytes,
          `${who}: users bytes as catalog info reads them`,
        );
        t.equal(at('featherman_catalog_rows', { namespace: 'default', catalog: 'example' }), lake.totalRows, `${who}: the catalog's rows`);
        const temporary = samples.filter(
          (x: Sample) => x.name === 'featherman_job_failures_total' && x.labels.operation === 'init' && x.labels.reason === 'temporary',
        );
        t.ok(
          temporary.reduce((n, x) => n + x.value, 0) >= 1,
          `${who}: the outage catalog's failed init attempt counts as a temporary failure`,
        );
        t.ok(
          samples.some(
            (x) =>
              x.name === 'featherman_job_duration_seconds_count' &&
              x.labels.operation === 'backup' &&
              x.labels.outcome === 'succeeded' &&
              x.value >= 1,
          ),
          `${who}: backup Job durations are observed`,
        );
        const promtool = promtoolCheckMetrics(scrapes.texts[i]!);
        t.same(promtool, { code: 0, output: '' }, `${who}: promtool check metrics is clean`);
      }

      // Every metric the dashboard and the alert rules query is one this service declares.
      const declared = new Set(
        [...scrapes.texts[0]!.matchAll(/^# TYPE (\S+) (\S+)$/gm)].flatMap((m) =>
          m[2] === 'histogram' ? ['_bucket', '_sum', '_count'].map((x) => m[1] + x) : [m[1]!],
        ),
      );
      const monitoring = join(root, 'metacontroller', 'monitoring');
      const exprs: string[] = [];
      const collect = (v: unknown): void => {
        if (Array.isArray(v)) v.forEach(collect);
        else if (v && typeof v === 'object')
          for (const [k, x] of Object.entries(v)) {
            if (k === 'expr' && typeof x === 'string') exprs.push(x);
            else collect(x);
          }
      };
      collect(JSON.parse(readFileSync(join(monitoring, 'featherman-dashboard.json'), 'utf8')));
      collect(parseAllDocuments(readFileSync(join(monitoring, 'prometheusrule.yaml'), 'utf8')).map((d) => d.toJSON()));
      const used = [...new Set(exprs.flatMap(metricNamesIn))].filter((n) => !PROMETHEUS_SERIES.includes(n));
      t.ok(exprs.length > 20 && used.length > 20, `${exprs.length} expressions naming ${used.length} metrics`);
      t.same(
        used.filter((n) => !declared.has(n)),
        [],
        'every metric in the dashboard and the alert rules is in the scrape',
      );

      // Events, once each across both replicas, as kubectl describe shows them.
      const described = await wait("kubectl describe dlc example to show the backup's Event", 60_000, async () => {
        const { out } = await runReadme('kubectl describe dlc example', watchingCommands);
        return /BackupTaken/.test(out) ? out : undefined;
      });
      t.same(
        watchingCommands.filter((l) => !ranReadme.has(l)),
        [],
        'every command of the README block was run',
      );
      const events = described.slice(described.indexOf('Events:'));
      t.match(events, /BackupTaken/, 'Events: the backup taken');
      t.match(events, new RegExp(summary.backup!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), 'naming the backup');
      t.notMatch(events, /minioadmin|SECRET|secret_access_key/i, 'no secret in the events');
      const list = await get<{ items: { reason?: string; message?: string; count?: number; series?: unknown }[] }>([
        'events',
        '--field-selector',
        'involvedObject.kind=DuckLakeCatalog,involvedObject.name=example',
      ]);
      const taken = (list?.items ?? []).filter((e) => e.reason === 'BackupTaken' && e.message?.includes(summary.backup!));
      t.equal(taken.length, 1, 'one BackupTaken Event for the backup, though two replicas watched it');
      const outage = await kubectl(['describe', 'dlc', 'outage']);
      t.match(
        outage.stdout.slice(outage.stdout.indexOf('Events:')),
        /JobAttemptFailed.*exit code 75, temporary: retried/s,
        'the outage catalog shows its failed init attempt',
      );
    },
  );

  await t.test(
    '(i) deleting a catalog while a table Job runs: the Job goes, the finalizer lets go, the table says its catalog is gone',
    async (t) => {
      const catalog = (await get(['dlc', 'outage']))!;
      t.ok(catalog.metadata.finalizers?.includes(CATALOG_FINALIZER), "the catalog carries Metacontroller's finalizer");
      // Holding the catalog file's lock from here keeps the table's apply Job waiting for it (up to
      // FEATHERMAN_LOCK_TIMEOUT_SECONDS), so the Job surely runs when the catalog is deleted.
      const holder = await DuckDBInstance.create(join(env.kubelet.pvcDir('default', 'outage-catalog'), 'metadata.ducklake'));
      const held = await holder.connect();
      t.teardown(() => {
        held.closeSync();
        holder.closeSync();
      });
      ok(
        await kubectl(
          ['apply', '-f', '-'],
          `apiVersion: ducklake.featherman.dev/v1alpha1
kind: DuckLakeTable
metadata: { name: late }
spec:
  catalogRef: outage
  name: late
  columns:
    - { name: id, type: BIGINT }
`,
        ),
        'apply a table on the outage catalog',
      );
      const table = await wait("the table's apply Job to run (its pod started)", 90_000, async () => {
        const x = await get(['dlt', 'late']);
        if (!x?.metadata.uid) return undefined;
        const jobs =
          (await get<{ items: (KubeObj & { status?: { active?: number } })[] }>(['jobs', '-l', `controller-uid=${x.metadata.uid}`]))
            ?.items ?? [];
        const running = jobs.find((j) => (j.status?.active ?? 0) >= 1);
        if (!running) return undefined;
        const pods =
          (
            await get<{ items: (KubeObj & { status?: { phase?: string } })[] }>([
              'pods',
              '-l',
              `batch.kubernetes.io/job-name=${running.metadata.name}`,
            ])
          )?.items ?? [];
        return pods.some((p) => p.status?.phase === 'Running') ? { x, job: running } : undefined;
      });
      t.ok(table.x.metadata.finalizers?.includes(TABLE_FINALIZER), "the table carries Metacontroller's finalizer");
      ok(await kubectl(['delete', 'dlc', 'outage', '--wait=false']), 'delete the catalog while the Job runs');
      let deleting: KubeObj | undefined;
      await wait('the catalog to be gone', 180_000, async () => {
        const c = await get(['dlc', 'outage']);
        if (c?.metadata.deletionTimestamp) deleting = c;
        return c ? undefined : true;
      });
      t.ok(deleting?.metadata.finalizers?.includes(CATALOG_FINALIZER), 'while its children went, the finalizer held the catalog');
      const after = await wait('the table to report its catalog gone', 60_000, async () => {
        const x = await get(['dlt', 'late']);
        const ready = (x?.status?.conditions as { type: string; reason?: string }[] | undefined)?.find((c) => c.type === 'Ready');
        return ready?.reason === 'CatalogNotFound' ? x : undefined;
      });
      t.equal(after.status?.phase, 'Pending', 'the table waits for its catalog');
      await wait("the table's Job to be gone", 60_000, async () =>
        (await get<{ items: KubeObj[] }>(['jobs', '-l', `controller-uid=${table.x.metadata.uid}`]))?.items.length === 0 ? true : undefined,
      );
      t.pass('the running Job was deleted with it (no child is left behind)');
      for (const kind of ['jobs', 'cronjobs', 'pvc']) {
        const left = (await get<{ items: KubeObj[] }>([kind, '-l', `controller-uid=${catalog.metadata.uid}`]))?.items ?? [];
        t.equal(left.length, 0, `no ${kind} of the catalog left: ${left.map((i) => i.metadata.name).join(', ')}`);
      }
      ok(await kubectl(['delete', 'dlt', 'late', '--wait=true', '--timeout=60s']), 'delete the table (Retain: nothing to drop)');
    },
  );

  await t.test('(e) under a burst of queries the pool scales up within maxSize, then back down when idle', async (t) => {
    const burstPool = {
      apiVersion: 'ducklake.featherman.dev/v1alpha1',
      kind: 'DuckLakePool',
      metadata: { name: 'burst' },
      spec: {
        minSize: 1,
        maxSize: 3,
        targetUtilization: 0.5,
        scaleUpRate: 2,
        scaleDownRate: 1,
        scaleInterval: '2s',
        maxIdleTime: '4s',
        maxQueryDuration: '60s',
        queue: { maxLength: 200, maxWaitTime: '60s' },
        catalogRef: { name: 'example', readOnly: true },
      },
    };
    ok(await kubectl(['apply', '-f', '-'], JSON.stringify(burstPool)), 'apply a small, quick pool');
    const size = async () =>
      (await get(['dlp', 'burst']))?.status as { currentSize?: number; desiredSize?: number; idlePods?: number } | undefined;
    await wait('burst pool at 1 ready, idle worker', 90_000, async () => {
      const s = await size();
      return s?.currentSize === 1 && s.idlePods === 1 ? true : undefined;
    });
    let stop = false;
    let answered = 0;
    const client = async () => {
      while (!stop) {
        const res = await fetch(`${env.queryUrl}/v1/query`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${E2E_TOKEN}` },
          body: JSON.stringify({
            catalog: 'example',
            pool: 'burst',
            sql: 'SELECT count(*) AS n FROM range(300000000) r(i) WHERE i % 3 = 1',
          }),
        });
        await res.text();
        if (res.status === 200) answered++;
      }
    };
    const clients = Array.from({ length: 4 }, client);
    let peak = 1;
    try {
      await wait('burst pool scales up', 90_000, async () => {
        const s = await size();
        peak = Math.max(peak, s?.currentSize ?? 0);
        return peak >= 2 ? true : undefined;
      });
    } finally {
      stop = true;
      await Promise.all(clients);
    }
    t.ok(peak >= 2 && peak <= 3, `scaled up to ${peak} workers (maxSize 3) under the burst; ${answered} queries answered`);
    await wait('burst pool back to minSize when idle', 180_000, async () => {
      const s = await size();
      peak = Math.max(peak, s?.currentSize ?? 0);
      return s?.currentSize === 1 && s?.desiredSize === 1 ? true : undefined;
    });
    t.ok(peak <= 3, `never above maxSize (peak ${peak})`);
    t.pass('back to minSize (1) once idle');
    ok(await kubectl(['delete', 'dlp', 'burst', '--wait=true', '--timeout=60s']), 'delete the burst pool');
  });

  await t.test('(e) a pool at minSize 0: a Job answers the first query, and the demand it made starts a worker', async (t) => {
    // The router's rights as installed: it may patch pools (its demand annotation), not read Secrets.
    ok(await kubectl(['apply', '-f', join(root, 'metacontroller', 'rbac.yaml')]), 'apply metacontroller/rbac.yaml');
    const router = '--as=system:serviceaccount:featherman:featherman';
    t.equal(
      (await kubectl(['auth', 'can-i', 'patch', 'ducklakepools.ducklake.featherman.dev', router])).stdout.trim(),
      'yes',
      'the router may patch pools',
    );
    t.equal((await kubectl(['auth', 'can-i', 'get', 'secrets', router])).stdout.trim(), 'no', 'the router may not read Secrets');

    const zeroPool = {
      apiVersion: 'ducklake.featherman.dev/v1alpha1',
      kind: 'DuckLakePool',
      metadata: { name: 'zero' },
      spec: {
        minSize: 0,
        maxSize: 2,
        targetUtilization: 1,
        scaleUpRate: 1,
        scaleInterval: '2s',
        maxIdleTime: '5s',
        catalogRef: { name: 'example', readOnly: true },
      },
    };
    ok(await kubectl(['apply', '-f', '-'], JSON.stringify(zeroPool)), 'apply a pool with minSize 0');
    const status = async () =>
      (await get(['dlp', 'zero']))?.status as
        { phase?: string; currentSize?: number; readyPods?: number; desiredSize?: number; message?: string } | undefined;
    await wait('pool zero Ready with no workers', 60_000, async () => ((await status())?.phase === 'Ready' ? true : undefined));
    t.equal((await status())?.currentSize, 0, 'no workers before any query');

    const ask = async (sql: string) => {
      const res = await fetch(`${env.queryUrl}/v1/query`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${E2E_TOKEN}` },
        body: JSON.stringify({ catalog: 'example', pool: 'zero', sql }),
      });
      return { status: res.status, pod: res.headers.get('x-featherman-pod') ?? '', body: await res.text() };
    };
    const first = await ask('SELECT 42 AS answer');
    t.equal(first.status, 200, `the first query is answered: ${first.body.slice(0, 300)}`);
    t.match(first.pod, /^zero-query-[0-9a-f]{8}$/, `by a fallback Job (${first.pod})`);
    t.match(JSON.parse(first.body), { columns: ['answer'], rows: [{ answer: 42 }] });

    await wait('pool zero starts a worker for the demand', 90_000, async () => ((await status())?.readyPods === 1 ? true : undefined));
    const second = await ask('SELECT count(*) AS n FROM users');
    t.equal(second.status, 200, second.body.slice(0, 300));
    t.match(second.pod, /^zero-[bcdfghjklmnpqrstvwxz2456789]{6}$/, `the next query is answered by the warm worker ${second.pod}`);
    const reports = Object.entries((await get(['dlp', 'zero']))?.metadata.annotations ?? {}).filter(([k]) =>
      k.startsWith('ducklake.featherman.dev/demand-'),
    );
    t.equal(reports.length, 1, "one demand report: this service replica's");
    t.match(
      JSON.parse(reports[0]?.[1] ?? '{}'),
      { queued: 0, fallbackAt: /^\d{4}-/ },
      'nothing waits now; it keeps when a query last found no worker',
    );

    await wait('pool zero back to no workers once idle', 120_000, async () => {
      const s = await status();
      return s?.currentSize === 0 && s.desiredSize === 0 ? true : undefined;
    });
    t.pass('idle past maxIdleTime: back to minSize 0');
    ok(await kubectl(['delete', 'dlp', 'zero', '--wait=true', '--timeout=60s']), 'delete the pool');
  });

  await t.test('(d) deleting: a Delete-policy table is dropped first; the catalog garbage-collects its children', async (t) => {
    ok(await kubectl(['delete', 'dlp', 'default-pool', '--wait=true', '--timeout=90s']), 'delete the pool');
    ok(await kubectl(['patch', 'dlt', 'users', '--type=merge', '-p', '{"spec":{"deletionPolicy":"Delete"}}']), 'set deletionPolicy Delete');
    const uid = (await get(['dlt', 'users']))!.metadata.uid;
    ok(await kubectl(['delete', 'dlt', 'users', '--wait=false']), 'delete the table');
    let dropSeen = false;
    let heldByFinalizer = false;
    await wait('the table object to disappear', 120_000, async () => {
      const x = await get(['dlt', 'users']);
      if (x) {
        if (x.metadata.deletionTimestamp && x.metadata.finalizers?.includes(TABLE_FINALIZER)) heldByFinalizer = true;
        const jobs = (await get<{ items: KubeObj[] }>(['jobs', '-l', `controller-uid=${uid}`]))?.items ?? [];
        if (jobs.some((j) => j.metadata.name.startsWith('users-drop-'))) dropSeen = true;
        return undefined;
      }
      return true;
    });
    t.ok(heldByFinalizer, "Metacontroller's finalizer held the deleted table while it was dropped");
    t.ok(dropSeen, 'a drop Job ran while the table object still existed');
    t.pass('once dropped, the finalizer was removed and the object went');
    t.notOk((await tablesInLake()).includes('users'), 'users is gone from the lake once the object is gone');
    t.ok((await tablesInLake()).includes('events'), 'events (deletionPolicy Retain) is still there');

    const catalog = await get(['dlc', 'example']);
    ok(await kubectl(['delete', 'dlt', 'events', '--wait=true', '--timeout=60s']), 'delete the Retain table');
    ok(await kubectl(['delete', 'dlc', 'example', '--wait=true', '--timeout=120s']), 'delete the catalog');
    await wait("the catalog's children to be gone", 120_000, async () => {
      const left: string[] = [];
      for (const kind of ['jobs', 'cronjobs', 'pvc']) {
        const items = (await get<{ items: KubeObj[] }>([kind, '-l', `controller-uid=${catalog!.metadata.uid}`]))?.items ?? [];
        left.push(...items.map((i) => `${kind}/${i.metadata.name}`));
      }
      return left.length === 0 ? true : undefined;
    });
    const pods = (await get<{ items: KubeObj[] }>(['pods']))?.items ?? [];
    t.equal(pods.length, 0, `no pods left: ${pods.map((p) => p.metadata.name).join(', ')}`);
    t.comment(`e2e scenarios took ${((Date.now() - started) / 1000).toFixed(0)} s in all`);
  });
}
