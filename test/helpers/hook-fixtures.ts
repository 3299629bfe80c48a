// v2 hook requests for each state a catalog or table goes through, built the way Metacontroller
// builds them: children and related keyed "<Kind>.<group>/<version>" then "namespace/name".
import type { KubeObject, ObjectMap, SyncRequest } from '../../lib/k8s/metacontroller.js';
import type { CatalogObject } from '../../lib/k8s/catalog-runner.js';
import type { TableObject } from '../../hooks/table.js';
import type { HookContext } from '../../hooks/context.js';

export const NOW = new Date('2026-11-24T12:00:00Z');
export const ctx: HookContext = {
  now: NOW,
  settings: {
    image: 'registry.example/featherman:test',
    imagePullPolicy: 'IfNotPresent',
    runnerResources: { requests: { cpu: '250m', memory: '512Mi' }, limits: { cpu: '2', memory: '2Gi' } },
    serviceNamespace: 'featherman',
  },
};

export function catalogObject(extra: Partial<CatalogObject['spec']> = {}, meta: Partial<KubeObject['metadata']> = {}): CatalogObject {
  return {
    apiVersion: 'ducklake.featherman.dev/v1alpha1',
    kind: 'DuckLakeCatalog',
    metadata: { name: 'example', namespace: 'analytics', uid: 'c0ffee00-0000-4000-8000-000000000001', generation: 1, ...meta },
    spec: {
      storageClass: 'standard',
      size: '10Gi',
      objectStore: {
        endpoint: 'http://minio.storage:9000',
        bucket: 'lake',
        region: 'us-east-1',
        credentialsSecret: { name: 's3-credentials' },
      },
      backupPolicy: { schedule: '0 2 * * *', retentionDays: 7 },
      maintenance: { schedule: '30 3 * * 0', expireSnapshotsOlderThan: '30d' },
      ...extra,
    },
  };
}

export function tableObject(extra: Partial<TableObject['spec']> = {}, meta: Partial<KubeObject['metadata']> = {}): TableObject {
  return {
    apiVersion: 'ducklake.featherman.dev/v1alpha1',
    kind: 'DuckLakeTable',
    metadata: { name: 'users', namespace: 'analytics', uid: 'c0ffee00-0000-4000-8000-000000000002', generation: 1, ...meta },
    spec: {
      catalogRef: 'example',
      name: 'users',
      columns: [
        { name: 'id', type: 'INTEGER' },
        { name: 'name', type: 'VARCHAR' },
        { name: 'created_at', type: 'TIMESTAMP' },
      ],
      format: { compression: 'ZSTD', partitioning: ['day(created_at)'] },
      ...extra,
    },
  };
}

export function objectMap(objects: KubeObject[]): ObjectMap {
  const map: ObjectMap = {};
  for (const o of objects) {
    const key = `${o.kind}.${o.apiVersion}`;
    (map[key] ??= {})[`${o.metadata.namespace ?? 'analytics'}/${o.metadata.name}`] = o;
  }
  return map;
}

/** What Metacontroller would observe after creating `obj` in the parent's namespace. */
export function observed<T extends KubeObject>(obj: T, status?: unknown): T {
  return { ...obj, metadata: { ...obj.metadata, namespace: 'analytics' }, ...(status !== undefined ? { status } : {}) };
}

export const jobRunning = { active: 1, startTime: '2026-11-24T11:59:00Z' };
export const jobSucceeded = {
  succeeded: 1,
  conditions: [{ type: 'Complete', status: 'True', lastTransitionTime: '2026-11-24T11:59:30Z' }],
};
export const jobFailed = {
  failed: 1,
  conditions: [
    {
      type: 'Failed',
      status: 'True',
      reason: 'PodFailurePolicy',
      message: 'Container featherman for pod analytics/x failed with exit code 2 matching FailJob rule at index 0',
      lastTransitionTime: '2026-11-24T11:59:30Z',
    },
  ],
};

/** A finished pod of a Job with the runner's summary as its termination message. */
export function jobPod(jobName: string, exitCode: number, summary: object): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: `${jobName}-x7k2p`,
      namespace: 'analytics',
      labels: { 'job-name': jobName, 'batch.kubernetes.io/job-name': jobName },
    },
    status: {
      phase: exitCode === 0 ? 'Succeeded' : 'Failed',
      containerStatuses: [
        { name: 'featherman', state: { terminated: { exitCode, message: JSON.stringify(summary), finishedAt: '2026-11-24T11:59:29Z' } } },
      ],
    },
  };
}

export function syncRequest<P extends KubeObject>(
  parent: P,
  children: KubeObject[] = [],
  related: KubeObject[] = [],
  childTypes: string[] = [],
  finalizing = false,
): SyncRequest<P> {
  const map = objectMap(children);
  for (const t of childTypes) map[t] ??= {};
  return {
    controller: { apiVersion: 'metacontroller.k8s.io/v1alpha1', kind: 'CompositeController', metadata: { name: 'x' } },
    parent,
    children: map,
    related: objectMap(related),
    finalizing,
  };
}
