// The service's view of the API server: our four kinds, and the Jobs, CronJobs and Pods labelled
// managed-by=featherman in every namespace, kept current by list + watch (one watch per resource).
// /metrics reads it at scrape time (lib/k8s/object-metrics.ts) and Events are told from its changes
// (lib/k8s/events.ts), so a scrape never lists anything. Objects are stored slimmed: only the
// fields those two read, so a cache of thousands of objects stays small.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { Watch, type KubeConfig } from '@kubernetes/client-node';
import { API_VERSION } from './labels.js';
import type { KubeObject } from './metacontroller.js';

export const MANAGED_SELECTOR = 'app.kubernetes.io/managed-by=featherman';

export const RESOURCES = {
  catalogs: { path: `/apis/${API_VERSION}/ducklakecatalogs`, apiVersion: API_VERSION, kind: 'DuckLakeCatalog', selector: undefined },
  tables: { path: `/apis/${API_VERSION}/ducklaketables`, apiVersion: API_VERSION, kind: 'DuckLakeTable', selector: undefined },
  pools: { path: `/apis/${API_VERSION}/ducklakepools`, apiVersion: API_VERSION, kind: 'DuckLakePool', selector: undefined },
  backups: { path: `/apis/${API_VERSION}/ducklakebackups`, apiVersion: API_VERSION, kind: 'DuckLakeBackup', selector: undefined },
  jobs: { path: '/apis/batch/v1/jobs', apiVersion: 'batch/v1', kind: 'Job', selector: MANAGED_SELECTOR },
  cronjobs: { path: '/apis/batch/v1/cronjobs', apiVersion: 'batch/v1', kind: 'CronJob', selector: MANAGED_SELECTOR },
  pods: { path: '/api/v1/pods', apiVersion: 'v1', kind: 'Pod', selector: MANAGED_SELECTOR },
} as const;

export type Resource = keyof typeof RESOURCES;
export const RESOURCE_NAMES = Object.keys(RESOURCES) as Resource[];

export interface Change {
  resource: Resource;
  type: 'added' | 'modified' | 'deleted';
  /** The object as the cache held it before (absent when added). */
  old?: KubeObject;
  object: KubeObject;
  /** Seen by a (re)list rather than a watch event: it may describe something long past. */
  listed: boolean;
}

export type Snapshot = Record<Resource, KubeObject[]>;

export interface CacheLog {
  warn(obj: object, msg: string): void;
  info?(obj: object, msg: string): void;
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json | undefined => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : undefined);
const pick = (v: unknown, keys: string[]): Json | undefined => {
  const o = obj(v);
  if (!o) return undefined;
  const out: Json = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
};

/** The first argument of the runner container: `restore` tells a restore init Job from `catalog init`. */
function slimContainers(spec: unknown): Json {
  const containers = obj(spec)?.containers;
  const list = Array.isArray(containers) ? containers : [];
  return {
    containers: list.map((c) => ({
      name: obj(c)?.name,
      args: (Array.isArray(obj(c)?.args) ? (obj(c)!.args as unknown[]) : []).slice(0, 1),
    })),
  };
}

/** What metrics and Events read of an object; everything else is dropped before caching. */
export function slim(resource: Resource, o: KubeObject): KubeObject {
  const m = o.metadata;
  const metadata = {
    name: m.name,
    namespace: m.namespace,
    uid: m.uid,
    generation: m.generation,
    labels: m.labels,
    creationTimestamp: m.creationTimestamp,
    deletionTimestamp: m.deletionTimestamp,
    ownerReferences: m.ownerReferences,
    resourceVersion: (m as { resourceVersion?: string }).resourceVersion,
  };
  const { apiVersion, kind } = RESOURCES[resource];
  const spec = obj(o.spec);
  const status = obj(o.status);
  switch (resource) {
    case 'catalogs':
      return {
        apiVersion,
        kind,
        metadata,
        spec: {
          backupPolicy: pick(spec?.backupPolicy, ['schedule']),
          maintenance: pick(spec?.maintenance, ['schedule']),
          metadata: pick(spec?.metadata, ['type']),
        },
        status: pick(status, [
          'phase',
          'metadataType',
          'ducklakeVersion',
          'snapshotId',
          'tableCount',
          'totalRows',
          'totalBytes',
          'totalFiles',
          'lastBackup',
          'lastMaintenance',
        ]),
      };
    case 'tables':
      return {
        apiVersion,
        kind,
        metadata,
        spec: pick(spec, ['catalogRef', 'name', 'schema']),
        status: pick(status, ['phase', 'catalog', 'table', 'snapshotId', 'rows', 'files', 'bytes']),
      };
    case 'pools':
      // status.pods (up to 1,000 entries) is left out: the counts beside it say the same.
      return {
        apiVersion,
        kind,
        metadata,
        spec: pick(spec, ['catalogRef']),
        status: pick(status, ['phase', 'desiredSize', 'currentSize', 'idlePods', 'busyPods', 'queueLength', 'lastScaleTime']),
      };
    case 'backups':
      return {
        apiVersion,
        kind,
        metadata,
        spec: pick(spec, ['catalogRef']),
        status: pick(status, ['phase', 'message', 'backupName', 'bytes', 'durationSeconds', 'completionTime', 'snapshotId']),
      };
    case 'jobs':
      return {
        apiVersion,
        kind,
        metadata,
        spec: { template: { spec: slimContainers(obj(obj(spec?.template)?.spec)) } },
        status: pick(status, ['conditions', 'startTime', 'completionTime', 'succeeded', 'failed', 'active']),
      };
    case 'cronjobs':
      return {
        apiVersion,
        kind,
        metadata,
        spec: pick(spec, ['schedule', 'suspend']),
        status: pick(status, ['lastScheduleTime', 'lastSuccessfulTime']),
      };
    case 'pods': {
      const statuses = status?.containerStatuses;
      return {
        apiVersion,
        kind,
        metadata,
        spec: slimContainers(spec),
        status: {
          phase: status?.phase,
          containerStatuses: (Array.isArray(statuses) ? statuses : []).map((c) => ({
            name: obj(c)?.name,
            state: { terminated: pick(obj(obj(c)?.state)?.terminated, ['exitCode', 'message', 'finishedAt', 'reason']) },
          })),
        },
      };
    }
  }
}

const keyOf = (o: KubeObject) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;

export class WatchCache {
  private readonly stores = Object.fromEntries(RESOURCE_NAMES.map((r) => [r, new Map<string, KubeObject>()])) as Record<
    Resource,
    Map<string, KubeObject>
  >;
  /** Each resource has been listed at least once, and its last list succeeded. */
  readonly synced = Object.fromEntries(RESOURCE_NAMES.map((r) => [r, false])) as Record<Resource, boolean>;
  /** Bumped on every change: a scrape reuses its computation while this is unchanged. */
  version = 0;
  private readonly listeners: ((change: Change) => void)[] = [];
  private stopped = false;
  private readonly aborts = new Set<AbortController>();
  private readonly sleeps = new Set<() => void>();

  onChange(listener: (change: Change) => void): void {
    this.listeners.push(listener);
  }

  get(resource: Resource, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.stores[resource].get(`${namespace ?? ''}/${name}`);
  }

  list(resource: Resource): KubeObject[] {
    return [...this.stores[resource].values()];
  }

  size(resource: Resource): number {
    return this.stores[resource].size;
  }

  snapshot(): Snapshot {
    return Object.fromEntries(RESOURCE_NAMES.map((r) => [r, this.list(r)])) as Snapshot;
  }

  /** One observed object (a watch event; tests and the bench call it directly). */
  apply(resource: Resource, type: 'added' | 'modified' | 'deleted', raw: KubeObject, listed = false): void {
    const object = slim(resource, raw);
    const key = keyOf(object);
    const old = this.stores[resource].get(key);
    if (type === 'deleted') {
      if (!old) return;
      this.stores[resource].delete(key);
    } else {
      const rv = (object.metadata as { resourceVersion?: string }).resourceVersion;
      if (old && rv !== undefined && (old.metadata as { resourceVersion?: string }).resourceVersion === rv) return;
      this.stores[resource].set(key, object);
    }
    this.version++;
    const change: Change = {
      resource,
      type: type === 'deleted' ? 'deleted' : old ? 'modified' : 'added',
      ...(old ? { old } : {}),
      object,
      listed,
    };
    for (const l of this.listeners) l(change);
  }

  /** A full list: objects missing from it were deleted while we were not watching. */
  replace(resource: Resource, items: KubeObject[]): void {
    const seen = new Set<string>();
    for (const item of items) {
      const o = { ...item, apiVersion: RESOURCES[resource].apiVersion, kind: RESOURCES[resource].kind };
      seen.add(keyOf(o));
      this.apply(resource, 'added', o, true);
    }
    for (const [key, o] of [...this.stores[resource]]) if (!seen.has(key)) this.apply(resource, 'deleted', o, true);
    this.synced[resource] = true;
  }

  /** List and watch every resource until stop(); errors re-list after a growing pause (1 s to 30 s). */
  start(kc: KubeConfig, log: CacheLog): void {
    this.stopped = false;
    for (const r of RESOURCE_NAMES) void this.run(kc, r, log);
  }

  stop(): void {
    this.stopped = true;
    for (const a of this.aborts) a.abort();
    for (const wake of this.sleeps) wake();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleeps.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleeps.add(wake);
    });
  }

  private async run(kc: KubeConfig, resource: Resource, log: CacheLog): Promise<void> {
    const { path, selector } = RESOURCES[resource];
    let resourceVersion = '';
    let pause = 1000;
    while (!this.stopped) {
      try {
        if (!resourceVersion) {
          const list = (await getJson(kc, `${path}${selector ? `?labelSelector=${encodeURIComponent(selector)}` : ''}`)) as {
            items?: KubeObject[];
            metadata?: { resourceVersion?: string };
          };
          this.replace(resource, Array.isArray(list.items) ? list.items : []);
          resourceVersion = list.metadata?.resourceVersion ?? '';
        }
        resourceVersion = await this.watchOnce(kc, resource, resourceVersion);
        pause = 1000;
      } catch (err) {
        if (this.stopped) return;
        const code = (err as { statusCode?: number }).statusCode;
        if (code === 410) {
          resourceVersion = '';
          continue;
        }
        // Forbidden or missing (CRDs not installed yet) stays un-synced until a list works.
        if (!resourceVersion) this.synced[resource] = false;
        // A broken watch resumes from its resourceVersion (nothing is missed); a failed list lists again.
        log.warn(
          { resource, err: (err as Error).message, retryInMs: pause },
          resourceVersion ? 'watch cache: watch failed; resuming' : 'watch cache: list failed; retrying',
        );
        await this.sleep(pause);
        pause = Math.min(pause * 2, 30_000);
      }
    }
  }

  /** One watch request; resolves with the newest resourceVersion when the server ends it ('' on 410 Gone). */
  private watchOnce(kc: KubeConfig, resource: Resource, resourceVersion: string): Promise<string> {
    const { path, selector, apiVersion, kind } = RESOURCES[resource];
    let rv = resourceVersion;
    return new Promise((resolve, reject) => {
      const watch = new Watch(kc);
      let controller: AbortController | undefined;
      const done = (err: unknown) => {
        if (controller) this.aborts.delete(controller);
        if (err && (err as { name?: string }).name !== 'AbortError') reject(err);
        else resolve(rv);
      };
      watch
        .watch(
          path,
          { resourceVersion, allowWatchBookmarks: true, ...(selector ? { labelSelector: selector } : {}) },
          (type: string, o: KubeObject) => {
            if (type === 'ERROR') {
              if ((o as { code?: number }).code === 410) rv = '';
              return;
            }
            const next = (o?.metadata as { resourceVersion?: string } | undefined)?.resourceVersion;
            if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') {
              this.apply(resource, type === 'DELETED' ? 'deleted' : type === 'ADDED' ? 'added' : 'modified', { ...o, apiVersion, kind });
            }
            if (next && rv !== '') rv = next;
          },
          done,
        )
        .then((c) => {
          controller = c;
          this.aborts.add(c);
          if (this.stopped) c.abort();
        }, reject);
    });
  }
}

/** GET a path of the API server as JSON, authenticated as the kubeconfig says. */
async function getJson(kc: KubeConfig, path: string): Promise<unknown> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('no current cluster in the kubeconfig');
  const url = new URL(cluster.server + path);
  const opts: RequestOptions = { method: 'GET', headers: { accept: 'application/json' } };
  await kc.applyToHTTPSOptions(opts);
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, { ...opts, timeout: 60_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        if (res.statusCode !== 200) {
          reject(Object.assign(new Error(`GET ${url.pathname}: HTTP ${res.statusCode}`), { statusCode: res.statusCode }));
          return;
        }
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url.pathname}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}
