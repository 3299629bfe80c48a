// /metrics with a big lake in the watch cache: 200 catalogs, 2,000 tables, 50 pools, and the Jobs
// and pods a cluster keeps for them (an init Job per catalog, 3 backup Jobs per catalog, an apply
// Job per table, each with its pod). Objects enter the cache as the API server sends them (full
// Jobs and pods, slimmed by the cache), without an API server. Prints the scrape's p50/p99 over
// the whole registry (the pool metrics included) and the cache's heap cost, measured as heapUsed
// after a forced GC with and without the cache.
// Run: node dist/bench/metrics.js (or npm run bench -- metrics). BENCH_SCRAPES overrides the count.
import { availableParallelism, loadavg } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Registry } from 'prom-client';
import { labelsFor } from '../lib/k8s/labels.js';
import type { KubeObject } from '../lib/k8s/metacontroller.js';
import { installObjectMetrics } from '../lib/k8s/object-metrics.js';
import { WatchCache } from '../lib/k8s/watch-cache.js';
import { registry as poolRegistry } from '../lib/metrics.js';

const CATALOGS = 200;
const TABLES = 2000;
const POOLS = 50;
const SCRAPES = Number(process.env.BENCH_SCRAPES ?? 300);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const heap = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};

let uidCounter = 0;
const uid = () => `00000000-0000-4000-8000-${String(++uidCounter).padStart(12, '0')}`;
const ago = (s: number) => new Date(Date.now() - s * 1000).toISOString();
const ns = (i: number) => `team-${i % 20}`;

function runnerJob(
  name: string,
  namespace: string,
  component: Parameters<typeof labelsFor>[0]['component'],
  catalog: string,
  args: string[],
  ok: boolean,
  extra: { table?: string } = {},
): [KubeObject, KubeObject] {
  const labels = labelsFor({ component, catalog, instance: extra.table ?? catalog, ...extra });
  const jobUid = uid();
  const podSpec = {
    restartPolicy: 'Never',
    automountServiceAccountToken: false,
    containers: [
      {
        name: 'featherman',
        image: 'ghcr.io/featherman/featherman:0.1.0',
        args,
        env: [
          { name: 'FEATHERMAN_METADATA', value: `postgres:dbname=${catalog}` },
          { name: 'AWS_ACCESS_KEY_ID', valueFrom: { secretKeyRef: { name: `${catalog}-s3`, key: 'accessKeyId' } } },
        ],
        resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '1Gi' } },
        securityContext: {
          runAsNonRoot: true,
          readOnlyRootFilesystem: true,
          allowPrivilegeEscalation: false,
          capabilities: { drop: ['ALL'] },
        },
        terminationMessagePath: '/dev/termination-log',
        terminationMessagePolicy: 'FallbackToLogsOnError',
      },
    ],
  };
  const job: KubeObject = {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name,
      namespace,
      uid: jobUid,
      labels,
      creationTimestamp: ago(3600),
      ownerReferences: [
        { apiVersion: 'ducklake.featherman.dev/v1alpha1', kind: 'DuckLakeCatalog', name: catalog, uid: 'x', controller: true },
      ],
    },
    spec: { backoffLimit: 6, activeDeadlineSeconds: 3600, template: { metadata: { labels }, spec: podSpec } },
    status: {
      startTime: ago(3600),
      ...(ok ? { completionTime: ago(3590), succeeded: 1 } : { failed: 1 }),
      conditions: [
        {
          type: ok ? 'Complete' : 'Failed',
          status: 'True',
          lastTransitionTime: ago(3590),
          ...(ok ? {} : { reason: 'BackoffLimitExceeded' }),
        },
      ],
    },
  };
  const pod: KubeObject = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: `${name}-x7k2p`,
      namespace,
      uid: uid(),
      labels: { ...labels, 'job-name': name, 'batch.kubernetes.io/controller-uid': jobUid },
      creationTimestamp: ago(3600),
      ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name, uid: jobUid, controller: true }],
    },
    spec: { ...podSpec, nodeName: 'node-1' },
    status: {
      phase: ok ? 'Succeeded' : 'Failed',
      containerStatuses: [
        {
          name: 'featherman',
          ready: false,
          restartCount: 0,
          image: 'ghcr.io/featherman/featherman:0.1.0',
          state: {
            terminated: {
              exitCode: ok ? 0 : 75,
              finishedAt: ago(3590),
              message: JSON.stringify(
                ok
                  ? { ok: true, command: args.join(' '), snapshotId: 42, tables: 10, rows: 123456, bytes: 987654321 }
                  : { ok: false, exitCode: 75, error: 'storage unreachable: connect ECONNREFUSED' },
              ),
            },
          },
        },
      ],
    },
  };
  return [job, pod];
}

function fill(cache: WatchCache): void {
  for (let c = 0; c < CATALOGS; c++) {
    const name = `lake-${c}`;
    cache.apply('catalogs', 'added', {
      apiVersion: 'ducklake.featherman.dev/v1alpha1',
      kind: 'DuckLakeCatalog',
      metadata: { name, namespace: ns(c), uid: uid(), generation: 1, creationTimestamp: ago(86400) },
      spec: {
        metadata: { type: 'postgres' },
        objectStore: { bucket: 'lake', prefix: name, endpoint: 'minio:9000' },
        backupPolicy: { schedule: '0 2 * * *', retentionDays: 7 },
        maintenance: { schedule: '@weekly' },
      },
      status: {
        phase: 'Ready',
        metadataType: 'postgres',
        ducklakeVersion: '0.3',
        snapshotId: 1000 + c,
        tableCount: 10,
        totalRows: 1_000_000,
        totalBytes: 5e9,
        totalFiles: 300,
        lastBackup: {
          name: '20261130T020000Z-abc',
          time: ago(3600),
          bytes: 5e9,
          durationSeconds: 42,
          snapshotId: 1000 + c,
          outcome: 'Succeeded',
        },
        lastMaintenance: {
          time: ago(7200),
          durationSeconds: 12,
          outcome: 'Succeeded',
          filesMerged: 10,
          filesDeleted: 5,
          bytesReclaimed: 1e6,
          snapshotsExpired: 3,
        },
        conditions: [{ type: 'Ready', status: 'True', reason: 'Ready', message: 'the catalog is ready', lastTransitionTime: ago(86400) }],
      },
    });
    for (const [job, pod] of [
      runnerJob(`${name}-init`, ns(c), 'catalog-init', name, ['catalog', 'init'], true),
      ...[0, 1, 2].map((i) => runnerJob(`${name}-backup-2926${i}`, ns(c), 'catalog-backup', name, ['backup'], i !== 2)),
    ]) {
      cache.apply('jobs', 'added', job!);
      cache.apply('pods', 'added', pod!);
    }
  }
  for (let t = 0; t < TABLES; t++) {
    const catalog = `lake-${t % CATALOGS}`;
    const name = `table-${t}`;
    cache.apply('tables', 'added', {
      apiVersion: 'ducklake.featherman.dev/v1alpha1',
      kind: 'DuckLakeTable',
      metadata: { name, namespace: ns(t % CATALOGS), uid: uid(), generation: 1, creationTimestamp: ago(86400) },
      spec: {
        catalogRef: catalog,
        name: `t${t}`,
        schema: 'main',
        columns: Array.from({ length: 12 }, (_, i) => ({ name: `c${i}`, type: 'VARCHAR' })),
      },
      status: {
        phase: 'Ready',
        catalog,
        table: `main.t${t}`,
        snapshotId: 900,
        rows: 100_000,
        files: 30,
        bytes: 5e8,
        columns: Array.from({ length: 12 }, (_, i) => ({ name: `c${i}`, type: 'VARCHAR', nullable: true })),
      },
    });
    const [job, pod] = runnerJob(`${name}-apply-0123456789`, ns(t % CATALOGS), 'table-apply', catalog, ['table', 'apply'], true, {
      table: name,
    });
    cache.apply('jobs', 'added', job);
    cache.apply('pods', 'added', pod);
  }
  for (let p = 0; p < POOLS; p++) {
    cache.apply('pools', 'added', {
      apiVersion: 'ducklake.featherman.dev/v1alpha1',
      kind: 'DuckLakePool',
      metadata: { name: `pool-${p}`, namespace: ns(p), uid: uid(), generation: 1, creationTimestamp: ago(86400) },
      spec: { catalogRef: { name: `lake-${p}`, readOnly: true }, minSize: 2, maxSize: 8 },
      status: {
        phase: 'Ready',
        desiredSize: 4,
        currentSize: 4,
        idlePods: 3,
        busyPods: 1,
        queueLength: 0,
        pods: Array.from({ length: 4 }, (_, i) => ({ name: `pool-${p}-${i}`, state: 'Idle', queryCount: 10 })),
      },
    });
  }
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

export async function run(): Promise<void> {
  const before = heap();
  const cache = new WatchCache();
  const objectRegistry = new Registry();
  installObjectMetrics(cache, objectRegistry);
  fill(cache);
  const after = heap();
  const merged = Registry.merge([poolRegistry, objectRegistry]);
  const text = await merged.metrics();
  const lines = text.split('\n').filter((l) => l && !l.startsWith('#')).length;
  const times: number[] = [];
  // CPU time of this process per scrape besides wall time: on a shared machine the wall time
  // includes waiting for a core.
  const cpu: number[] = [];
  for (let i = 0; i < SCRAPES; i++) {
    // A table changes between scrapes, as in a busy cluster: the biggest families are re-joined.
    const table = cache.get('tables', ns(i % CATALOGS), `table-${i % CATALOGS}`)!;
    cache.apply('tables', 'modified', {
      ...table,
      metadata: { ...table.metadata, resourceVersion: String(i) } as never,
      status: { ...(table.status as object), rows: i },
    });
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    await merged.metrics();
    const c1 = process.cpuUsage(c0);
    times.push(performance.now() - t0);
    cpu.push((c1.user + c1.system) / 1000);
  }
  times.sort((a, b) => a - b);
  cpu.sort((a, b) => a - b);
  const objects = ['catalogs', 'tables', 'pools', 'jobs', 'pods'].map((r) => `${cache.size(r as never)} ${r}`).join(', ');
  console.log(`cache: ${objects}; scrape: ${lines} samples, ${(text.length / 1024).toFixed(0)} KiB`);
  console.log(`machine: ${availableParallelism()} CPUs, load average ${loadavg()[0]!.toFixed(1)} (figures scale with contention)`);
  console.log(
    `scrape over ${SCRAPES} runs: p50 ${quantile(times, 0.5).toFixed(1)} ms, p99 ${quantile(times, 0.99).toFixed(1)} ms ` +
      `(goal: p99 < 50 ms); CPU time p50 ${quantile(cpu, 0.5).toFixed(1)} ms, p99 ${quantile(cpu, 0.99).toFixed(1)} ms`,
  );
  console.log(
    `watch cache heap: ${((after - before) / 1048576).toFixed(1)} MB ` +
      `(heapUsed after a forced GC, filled minus empty; objects slimmed as stored)`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
