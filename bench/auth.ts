// Who may query what, and what it costs: the warm path's latency with a static token beside a
// Kubernetes ServiceAccount token checked by TokenReview plus a SubjectAccessReview per table,
// with the service's short caches warm (the usual case) and cold (every query asks the API
// server), side by side in one run, interleaved. A real kube-apiserver (test/helpers/cluster.ts,
// RBAC on), two local workers on a lake in MinIO.
// Run: node dist/bench/auth.js (after the build; needs .ci/cluster/build's binaries). BENCH_AUTH_RUNS overrides.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';
import { kubernetesTokenReviewer } from '../lib/auth/authenticate.js';
import { kubernetesAccessReviewer, kubernetesTableObjects } from '../lib/auth/authorize.js';
import { packageRoot } from '../lib/lake/config.js';
import { LocalFallback, LocalPool } from '../lib/pool/local.js';
import { Router, type PoolSettings } from '../lib/pool/router.js';
import { buildServer } from '../lib/server/server.js';
import { quietSdkWarnings } from '../lib/warnings.js';
import { CLI } from '../test/helpers/cli.js';
import { clusterBinariesMissing, startCluster } from '../test/helpers/cluster.js';
import { Minio } from '../test/helpers/minio.js';
import { fmt } from './load.js';
import { postTimed } from './post.js';

const RUNS = Number(process.env.BENCH_AUTH_RUNS ?? 300);
const STATIC = 'bench-static-token';
const SQL = 'SELECT count(*) AS n FROM events';
const pct = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};

export async function run(): Promise<void> {
  const missing = clusterBinariesMissing();
  if (missing) {
    console.log(`skipped: ${missing}`);
    return;
  }
  const [cluster, minio] = await Promise.all([startCluster(), Minio.start()]);
  const work = mkdtempSync(join(tmpdir(), 'fm-bench-auth-'));
  let pool: LocalPool | undefined;
  try {
    const kubectl = async (args: string[], input?: string) => {
      const r = await cluster.kubectl(args, input);
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    await kubectl(['apply', '-k', join(packageRoot(), 'crds')]);
    await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '-l', 'app.kubernetes.io/name=featherman']);
    await kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'ducklake.featherman.dev/v1alpha1',
        kind: 'DuckLakeTable',
        metadata: { name: 'events', namespace: 'default' },
        spec: { catalogRef: 'bench', name: 'events', columns: [{ name: 'id', type: 'BIGINT' }] },
      }),
    );
    await kubectl(['create', 'serviceaccount', 'reader']);
    await kubectl([
      'create',
      'role',
      'read-events',
      '--verb=get',
      '--resource=ducklaketables.ducklake.featherman.dev/data',
      '--resource-name=events',
    ]);
    await kubectl(['create', 'rolebinding', 'reader-reads-events', '--role=read-events', '--serviceaccount=default:reader']);
    const saToken = (await kubectl(['create', 'token', 'reader', '--audience', 'featherman', '--duration', '1h'])).trim();

    await minio.createBucket('lake');
    const env: Record<string, string> = {
      PATH: process.env.PATH!,
      HOME: process.env.HOME ?? '/tmp',
      ...minio.env(),
      FEATHERMAN_METADATA: `duckdb:${join(work, 'meta.ducklake')}`,
      FEATHERMAN_DATA_PATH: 's3://lake/bench/data/',
    };
    for (const args of [
      ['catalog', 'init'],
      ['query', '--write', '--sql', 'CREATE TABLE events AS SELECT i AS id FROM range(100000) r(i)'],
    ]) {
      const r = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(r.stderr);
    }
    const settings: PoolSettings = {
      namespace: 'default',
      pool: 'bench',
      catalog: 'bench',
      readOnly: true,
      queueMaxLength: 10_000,
      queueMaxWaitMs: 60_000,
      maxQueryMs: 60_000,
      workerConcurrency: 1,
    };
    pool = new LocalPool(settings, env);
    await pool.scaleTo(2);
    const router = new Router(pool, new LocalFallback(env));
    const kc = new KubeConfig();
    kc.loadFromFile(cluster.kubeconfig);
    const k8s = (cacheMs: number | undefined) => ({
      tokenReviewer: kubernetesTokenReviewer(kc),
      accessReviewer: kubernetesAccessReviewer(kc),
      tableObjects: kubernetesTableObjects(kc, cacheMs ?? 2000),
      ...(cacheMs === undefined ? {} : { tokenCacheMs: cacheMs, decisionCacheMs: cacheMs }),
    });
    const quiet = () => undefined;
    const apps = {
      'static token': await buildServer({ plugins: ['query'], router, apiTokens: [STATIC], queryLog: quiet }),
      'TokenReview + SAR, cache warm': await buildServer({
        plugins: ['query'],
        router,
        apiTokens: [],
        kubernetesAuth: k8s(undefined),
        queryLog: quiet,
      }),
      'TokenReview + SAR, cache cold': await buildServer({
        plugins: ['query'],
        router,
        apiTokens: [],
        kubernetesAuth: k8s(0),
        queryLog: quiet,
      }),
    };
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });
    const paths: { label: string; base: string; token: string }[] = [];
    for (const [label, app] of Object.entries(apps))
      paths.push({ label, base: await app.listen({ port: 0, host: '127.0.0.1' }), token: label === 'static token' ? STATIC : saToken });
    const times: Record<string, number[]> = Object.fromEntries(paths.map((p) => [p.label, []]));
    for (let i = 0; i < 20; i++)
      for (const p of paths)
        await postTimed(agent, `${p.base}/v1/query`, { catalog: 'bench', sql: SQL }, { authorization: `Bearer ${p.token}` });
    for (let i = 0; i < RUNS; i++) {
      for (const p of paths)
        times[p.label]!.push(
          await postTimed(agent, `${p.base}/v1/query`, { catalog: 'bench', sql: SQL }, { authorization: `Bearer ${p.token}` }),
        );
    }
    console.log(`\nwarm-path latency of "${SQL}" (${RUNS} each, interleaved; 2 local workers; a real kube-apiserver on loopback, RBAC on)`);
    console.log(`${'authentication'.padEnd(32)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}${'p50 +ms'.padStart(10)}`);
    const base = pct(times['static token']!, 0.5);
    for (const p of paths) {
      const xs = times[p.label]!;
      console.log(
        `${p.label.padEnd(32)}${fmt(pct(xs, 0.5), 2).padStart(9)}${fmt(pct(xs, 0.99), 2).padStart(9)}` +
          `${fmt(pct(xs, 0.5) - base, 2).padStart(10)}`,
      );
    }
    agent.destroy();
    for (const app of Object.values(apps)) await app.close();
  } finally {
    await pool?.stop();
    await minio.stop();
    await cluster.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  quietSdkWarnings();
  run().catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
