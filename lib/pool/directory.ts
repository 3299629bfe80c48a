// Pools and their ready worker pods, read from the API server for the router (the hooks own the
// pods; the router only reads them). A burst of queries costs one API call: both lists are cached
// for a second or two.
import { CoreV1Api, CustomObjectsApi, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { SPEC_DEFAULTS } from '../api/defaults.js';
import { GROUP, VERSION } from '../api/schema.js';
import { parseDuration } from '../api/duration.js';
import { labelValue } from '../k8s/labels.js';
import { WORKER_PORT, type PoolObject } from '../k8s/pool-workers.js';
import type { PoolSettings, WorkerDirectory, WorkerEndpoint } from './router.js';

/** A pool as the API server lists it: always in a namespace. */
type ListedPool = Pick<PoolObject, 'spec'> & { metadata: { name: string; namespace: string } };

/** A value cached for `ms` milliseconds, so a burst of queries costs one API call; `fresh` reloads it. */
function cached<T>(ms: number, load: (key: string) => Promise<T>): (key: string, fresh?: boolean) => Promise<T> {
  const entries = new Map<string, { at: number; value: Promise<T> }>();
  return (key, fresh = false) => {
    const hit = entries.get(key);
    if (hit && !fresh && Date.now() - hit.at < ms) return hit.value;
    const value = load(key);
    entries.set(key, { at: Date.now(), value });
    value.catch(() => entries.delete(key));
    return value;
  };
}

/**
 * Half the default queue (queue.maxLength), so another principal always finds room. Deliberately not
 * a schema default (its description says 50): existing pools are not patched on admission.
 */
export const DEFAULT_MAX_QUEUED_PER_PRINCIPAL = 50;

export function poolSettings(p: ListedPool): PoolSettings {
  // The fallbacks are the schema's defaults, for a spec the API server has not defaulted.
  const d = SPEC_DEFAULTS.pool;
  const seconds = (text: string | undefined, fallback: string) => (text ? parseDuration(text) : undefined) ?? parseDuration(fallback)!;
  return {
    namespace: p.metadata.namespace,
    pool: p.metadata.name,
    catalog: p.spec.catalogRef.name,
    readOnly: p.spec.catalogRef.readOnly ?? d.catalogRef.readOnly,
    queueMaxLength: p.spec.queue?.maxLength ?? d.queue.maxLength,
    queueMaxWaitMs: seconds(p.spec.queue?.maxWaitTime, d.queue.maxWaitTime) * 1000,
    maxQueryMs: seconds(p.spec.maxQueryDuration, d.maxQueryDuration) * 1000,
    workerConcurrency: 1,
    ...(p.spec.queue?.maxRunningPerPrincipal !== undefined ? { maxRunningPerPrincipal: p.spec.queue.maxRunningPerPrincipal } : {}),
    maxQueuedPerPrincipal: p.spec.queue?.maxQueuedPerPrincipal ?? DEFAULT_MAX_QUEUED_PER_PRINCIPAL,
    ...(p.spec.credentialsSecret ? { credentialsSecret: p.spec.credentialsSecret } : {}),
  };
}

const isReady = (pod: V1Pod) =>
  !pod.metadata?.deletionTimestamp &&
  Boolean(pod.status?.podIP) &&
  (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

export class KubernetesDirectory implements WorkerDirectory {
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly listPools: (key: string) => Promise<PoolSettings[]>;
  private readonly listWorkers: (key: string, fresh?: boolean) => Promise<WorkerEndpoint[]>;

  constructor(kc: KubeConfig) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.core = kc.makeApiClient(CoreV1Api);
    this.listPools = cached(2000, async () => {
      const list = (await this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: 'ducklakepools' })) as {
        items: ListedPool[];
      };
      return list.items.map(poolSettings);
    });
    this.listWorkers = cached(1000, async (key) => {
      const [namespace, pool] = key.split('/') as [string, string];
      const labelSelector = `${GROUP}/pool=${labelValue(pool)},app.kubernetes.io/component=worker`;
      const pods = await this.core.listNamespacedPod({ namespace, labelSelector });
      return pods.items.filter(isReady).map((p) => ({ name: p.metadata!.name!, url: `http://${p.status!.podIP}:${WORKER_PORT}` }));
    });
  }

  pools(): Promise<PoolSettings[]> {
    return this.listPools('all');
  }

  async workers(pool: PoolSettings): Promise<WorkerEndpoint[]> {
    const key = `${pool.namespace}/${pool.pool}`;
    const workers = await this.listWorkers(key);
    // An empty list may be a second old, from just before the pods turned Ready: look once more
    // before the query goes to a fallback Job, so the first query after Ready reaches a worker.
    return workers.length > 0 ? workers : this.listWorkers(key, true);
  }
}
