// What `featherman serve` starts in a cluster to make the lake observable: the watch cache, the
// object metrics on the /metrics registry, ducklake_pool_size_desired from each pool's status, and
// Events on our objects. FEATHERMAN_WATCH_CACHE=false turns all of it off; FEATHERMAN_EVENTS=false
// only the Events (e.g. a replica without the RBAC to create them).
import type { KubeConfig } from '@kubernetes/client-node';
import type { Gauge, Registry } from 'prom-client';
import { EventRecorder } from './events.js';
import { installObjectMetrics } from './object-metrics.js';
import { WatchCache, type CacheLog } from './watch-cache.js';

const off = (v: string | undefined) => v !== undefined && /^(0|false|off|no)$/i.test(v.trim());

/** Keeps a pool gauge (labels pool, namespace) at each cached pool's status.desiredSize. */
export function trackPoolDesired(cache: WatchCache, gauge: Gauge<'pool' | 'namespace'>): void {
  cache.onChange((change) => {
    if (change.resource !== 'pools') return;
    const labels = { pool: change.object.metadata.name, namespace: change.object.metadata.namespace ?? '' };
    const desired = (change.object.status as { desiredSize?: unknown } | undefined)?.desiredSize;
    if (change.type === 'deleted' || typeof desired !== 'number') gauge.remove(labels);
    else gauge.set(labels, desired);
  });
}

export interface Observer {
  cache: WatchCache;
  events?: EventRecorder;
  stop(): void;
}

export function startObserver(
  kc: KubeConfig,
  env: NodeJS.ProcessEnv,
  log: CacheLog,
  registry: Registry,
  poolDesired: Gauge<'pool' | 'namespace'>,
): Observer | undefined {
  if (off(env.FEATHERMAN_WATCH_CACHE)) return undefined;
  const cache = new WatchCache();
  installObjectMetrics(cache, registry);
  trackPoolDesired(cache, poolDesired);
  let events: EventRecorder | undefined;
  if (!off(env.FEATHERMAN_EVENTS)) {
    events = EventRecorder.forCluster(kc, log);
    events.attach(cache);
  }
  cache.start(kc, log);
  return { cache, ...(events ? { events } : {}), stop: () => cache.stop() };
}
