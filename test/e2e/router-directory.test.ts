// The query router's view of a real API server: DuckLakePools and their Ready worker pods become
// pools and endpoints (lib/pool/kubernetes.ts). Pods here are objects whose status the test
// writes, as a kubelet would; the full pool with running workers is in the other e2e scenarios.
// And the router's demand reports (lib/pool/demand.ts) written to and read from a real pool object.
import t from 'tap';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { DemandAnnotations, KubernetesDirectory } from '../../lib/pool/kubernetes.js';
import { demandFrom, demandKey, encodeDemand } from '../../lib/pool/demand.js';
import { metrics } from '../../lib/metrics.js';
import { packageRoot } from '../../lib/lake/config.js';
import { clusterBinariesMissing, startCluster } from '../helpers/cluster.js';

const missing = clusterBinariesMissing();
if (missing) {
  t.skip(`cluster binaries not built (${missing}); run .ci/cluster/build`, () => {});
} else {
  const cluster = await startCluster();
  t.teardown(() => cluster.stop());
  const root = packageRoot();

  t.test('pools and ready worker pods, read from the API server', async (t) => {
    const crds = await cluster.kubectl(['apply', '-f', join(root, 'crds')]);
    t.equal(crds.code, 0, crds.stderr);
    t.equal(
      (await cluster.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/ducklakepools.ducklake.featherman.dev'])).code,
      0,
    );
    const ns = await cluster.kubectl(['create', 'namespace', 'analytics']);
    t.equal(ns.code, 0, ns.stderr);
    const pool = await cluster.kubectl(
      ['apply', '-n', 'analytics', '-f', '-'],
      JSON.stringify({
        apiVersion: 'ducklake.featherman.dev/v1alpha1',
        kind: 'DuckLakePool',
        metadata: { name: 'default-pool' },
        spec: {
          minSize: 1,
          maxSize: 3,
          maxQueryDuration: '45s',
          queue: { maxLength: 7, maxWaitTime: '12s' },
          catalogRef: { name: 'example', readOnly: true },
        },
      }),
    );
    t.equal(pool.code, 0, pool.stderr);
    const pod = (name: string) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, labels: { 'ducklake.featherman.dev/pool': 'default-pool', 'app.kubernetes.io/component': 'worker' } },
      spec: { containers: [{ name: 'worker', image: 'featherman' }] },
    });
    for (const name of ['default-pool-aaaaaa', 'default-pool-bbbbbb', 'default-pool-cccccc']) {
      t.equal((await cluster.kubectl(['apply', '-n', 'analytics', '-f', '-'], JSON.stringify(pod(name)))).code, 0);
    }
    const setStatus = async (name: string, ip: string, ready: boolean) => {
      const r = await cluster.kubectl([
        'patch',
        'pod',
        name,
        '-n',
        'analytics',
        '--subresource=status',
        '--type=merge',
        '-p',
        JSON.stringify({
          status: { phase: 'Running', podIP: ip, podIPs: [{ ip }], conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
        }),
      ]);
      t.equal(r.code, 0, r.stderr);
    };
    await setStatus('default-pool-aaaaaa', '127.0.0.2', true);
    await setStatus('default-pool-bbbbbb', '127.0.0.3', false);

    const kc = new KubeConfig();
    kc.loadFromFile(cluster.kubeconfig);
    const directory = new KubernetesDirectory(kc);
    const pools = await directory.pools();
    t.same(pools, [
      {
        namespace: 'analytics',
        pool: 'default-pool',
        catalog: 'example',
        readOnly: true,
        queueMaxLength: 7,
        queueMaxWaitMs: 12_000,
        maxQueryMs: 45_000,
        workerConcurrency: 1,
        maxQueuedPerPrincipal: 50,
      },
    ]);
    t.same(
      await directory.workers(pools[0]!),
      [{ name: 'default-pool-aaaaaa', url: 'http://127.0.0.2:8080' }],
      'only the Ready pod with an IP',
    );
  });

  t.test('the router reports its waiting queries on the pool, and removes the report when none wait', async (t) => {
    const kc = new KubeConfig();
    kc.loadFromFile(cluster.kubeconfig);
    const readAnnotations = async () => {
      const r = await cluster.kubectl(['get', 'dlp', 'default-pool', '-n', 'analytics', '-o', 'jsonpath={.metadata.annotations}']);
      return (r.stdout.trim() ? JSON.parse(r.stdout) : {}) as Record<string, string>;
    };
    // A report a replica left behind long ago, for the next writer to clean up.
    const gone = demandKey('featherman-gone');
    const old = await cluster.kubectl([
      'annotate',
      'dlp',
      'default-pool',
      '-n',
      'analytics',
      `${gone}=${encodeDemand(4, new Date(Date.now() - 3600_000))}`,
    ]);
    t.equal(old.code, 0, old.stderr);
    const settings = (await new KubernetesDirectory(kc).pools())[0]!;
    const reporter = new DemandAnnotations(kc, 'featherman-replica-a', 50, 60_000);
    reporter.waiting(settings, 1);
    reporter.waiting(settings, 3);
    const waitFor = async (what: string, check: (a: Record<string, string>) => boolean) => {
      for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
        const a = await readAnnotations();
        if (check(a)) return a;
      }
      throw new Error(`timed out waiting for ${what}: ${JSON.stringify(await readAnnotations())}`);
    };
    const mine = demandKey('featherman-replica-a');
    const reported = await waitFor('3 queued', (a) => demandFrom(a, new Date()).queued === 3);
    t.match(JSON.parse(reported[mine]!), { queued: 3 }, "the latest count, in this replica's own annotation");
    reporter.waiting(settings, 0);
    const cleared = await waitFor('the report removed', (a) => !(mine in a));
    t.notOk(gone in cleared, 'the stale report of a replica long gone went with it');

    // A pool that does not exist (deleted meanwhile): one failed write, then no retries.
    reporter.waiting({ ...settings, pool: 'deleted-pool' }, 2);
    await new Promise((r) => setTimeout(r, 1500)); // retries would come 250 ms, 500 ms, 1 s later
    const failed = (await metrics.demandReports.get()).values.filter((v) => v.labels.pool === 'deleted-pool');
    t.same(
      failed.map((v) => [v.labels.outcome, v.value]),
      [['failed', 1]],
      'a 404 is not retried',
    );
  });
}
