// The router in a cluster: pools and their ready worker pods come from the API server (the hooks
// own the pods; the router only reads them), and with no ready worker a query runs as a one-off
// Job of the catalog's runner, exactly like a table Job, whose JSON summary is read from its log.
// A failed query's exit code says what went wrong: 2 bad input (400), 77 refused (403), 124 past
// its deadline (504), 75 temporary (503).
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Readable } from 'node:stream';
import { BatchV1Api, CoreV1Api, CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { parseDuration } from '../api/duration.js';
import { catalogAccess, type CatalogObject, type CredentialsSecret } from '../k8s/catalog-runner.js';
import { API_VERSION, GROUP, labelsFor, labelValue } from '../k8s/labels.js';
import { job, runnerPodSpec, settingsFromEnv, type HookSettings } from '../k8s/workloads.js';
import { EXIT_BAD_INPUT, EXIT_DEADLINE, EXIT_REFUSED, EXIT_TEMPORARY } from '../errors.js';
import { csvLine } from '../lake/format.js';
import { DEMAND_STALE_SECONDS, demandKey, encodeDemand, staleDemandKeys } from './demand.js';
import { fallbackLimitsFromEnv, type FallbackLimits } from './limits.js';
import { metrics } from './metrics.js';
import type { Grant } from '../auth/tables.js';
import type { DemandListener, PoolSettings, QueryFallback, QueryRequest, RoutedResponse, WorkerDirectory, WorkerEndpoint } from './router.js';

const WORKER_PORT = 8080;
const VERSION = API_VERSION.split('/')[1]!;

interface PoolObject {
  metadata: { name: string; namespace: string };
  spec: {
    catalogRef: { name: string; readOnly?: boolean }; maxQueryDuration?: string; credentialsSecret?: CredentialsSecret;
    queue?: { maxLength?: number; maxWaitTime?: string; maxRunningPerPrincipal?: number; maxQueuedPerPrincipal?: number };
  };
}

export function kubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault(); // in-cluster service account, or KUBECONFIG
  return kc;
}

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

/** As the CRD's default: a principal may fill half the default queue, so another always finds room. */
export const DEFAULT_MAX_QUEUED_PER_PRINCIPAL = 50;

export function poolSettings(p: PoolObject): PoolSettings {
  const seconds = (d: string | undefined, fallback: number) => (d ? parseDuration(d) ?? fallback : fallback);
  return {
    namespace: p.metadata.namespace,
    pool: p.metadata.name,
    catalog: p.spec.catalogRef.name,
    readOnly: p.spec.catalogRef.readOnly ?? true,
    queueMaxLength: p.spec.queue?.maxLength ?? 100,
    queueMaxWaitMs: seconds(p.spec.queue?.maxWaitTime, 30) * 1000,
    maxQueryMs: seconds(p.spec.maxQueryDuration, 60) * 1000,
    workerConcurrency: 1,
    ...(p.spec.queue?.maxRunningPerPrincipal !== undefined ? { maxRunningPerPrincipal: p.spec.queue.maxRunningPerPrincipal } : {}),
    maxQueuedPerPrincipal: p.spec.queue?.maxQueuedPerPrincipal ?? DEFAULT_MAX_QUEUED_PER_PRINCIPAL,
    ...(p.spec.credentialsSecret ? { credentialsSecret: p.spec.credentialsSecret } : {}),
  };
}

const isReady = (pod: V1Pod) =>
  !pod.metadata?.deletionTimestamp && Boolean(pod.status?.podIP) && (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

export class KubernetesDirectory implements WorkerDirectory {
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly listPools: (key: string) => Promise<PoolSettings[]>;
  private readonly listWorkers: (key: string, fresh?: boolean) => Promise<WorkerEndpoint[]>;

  constructor(kc: KubeConfig) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.core = kc.makeApiClient(CoreV1Api);
    this.listPools = cached(2000, async () => {
      const list = (await this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: 'ducklakepools' })) as { items: PoolObject[] };
      return list.items.map(poolSettings);
    });
    this.listWorkers = cached(1000, async (key) => {
      const [namespace, pool] = key.split('/') as [string, string];
      const pods = await this.core.listNamespacedPod({ namespace, labelSelector: `${GROUP}/pool=${labelValue(pool)},app.kubernetes.io/component=worker` });
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

interface DemandState {
  pool: PoolSettings;
  queued: number;
  /** When a query last found no ready worker here (epoch ms). */
  fallbackAt?: number;
  /** The count the annotation holds now (0: none, or a fallback time only). */
  sent: number;
  sentAt: number;
  /** Something the annotation does not say yet besides the count (a new fallback time). */
  dirty?: boolean;
  timer?: NodeJS.Timeout;
  /** A write is under way; when it ends it writes again if anything moved meanwhile. */
  writing?: boolean;
  /** Writes failed in a row: the next try waits longer, up to heartbeatMs. */
  failures: number;
}

/**
 * Writes this replica's demand into its annotation on the pool (see demand.ts): at once when a
 * queue starts or a query finds no worker, then at most once per `throttleMs` with the latest
 * count, again every `heartbeatMs` while queries keep waiting (so the report stays fresh). With
 * nothing waiting the report stays only to carry a recent fallback time, and goes once that is
 * DEMAND_STALE_SECONDS old, along with reports that replicas long gone left behind.
 */
export class DemandAnnotations implements DemandListener {
  private readonly custom: CustomObjectsApi;
  private readonly key: string;
  private readonly states = new Map<string, DemandState>();

  constructor(kc: KubeConfig, replica = process.env.POD_NAME || hostname(), private readonly throttleMs = 1000, private readonly heartbeatMs = 20_000) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.key = demandKey(replica);
  }

  private stateOf(pool: PoolSettings): DemandState {
    const id = `${pool.namespace}/${pool.pool}`;
    let s = this.states.get(id);
    if (!s) this.states.set(id, (s = { pool, queued: 0, sent: 0, sentAt: 0, failures: 0 }));
    s.pool = pool;
    return s;
  }

  fellBack(pool: PoolSettings): void {
    const s = this.stateOf(pool);
    s.fallbackAt = Date.now();
    s.dirty = true;
    if (!s.writing) this.schedule(s, 0); // it may be what starts the pool's first worker
  }

  waiting(pool: PoolSettings, queued: number): void {
    const s = this.stateOf(pool);
    s.queued = queued;
    if ((s.queued === s.sent && !s.dirty) || s.writing) return;
    // The first waiting query is told at once; later changes at most once per throttleMs.
    this.schedule(s, s.sent === 0 ? 0 : Math.max(0, s.sentAt + this.throttleMs - Date.now()));
  }

  private schedule(s: DemandState, delayMs: number): void {
    if (s.timer) clearTimeout(s.timer);
    s.timer = setTimeout(() => void this.write(s), delayMs);
    s.timer.unref();
  }

  private async write(s: DemandState): Promise<void> {
    s.timer = undefined;
    s.writing = true;
    s.dirty = false;
    const queued = s.queued;
    const now = Date.now();
    const holdUntil = (s.fallbackAt ?? -Infinity) + DEMAND_STALE_SECONDS * 1000;
    const { namespace, pool: name } = s.pool;
    const target = { group: GROUP, version: VERSION, namespace, plural: 'ducklakepools', name };
    let gone = false;
    try {
      const report = queued > 0 || now < holdUntil ? encodeDemand(queued, new Date(now), s.fallbackAt !== undefined ? new Date(s.fallbackAt) : undefined) : null;
      const annotations: Record<string, string | null> = { [this.key]: report };
      if (queued === 0) {
        const current = (await this.custom.getNamespacedCustomObject(target)) as { metadata?: { annotations?: Record<string, string> } };
        for (const key of staleDemandKeys(current.metadata?.annotations, new Date(now))) if (key !== this.key) annotations[key] = null;
      }
      await this.custom.patchNamespacedCustomObject({ ...target, body: { metadata: { annotations } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
      s.sent = queued;
      s.failures = 0;
      metrics.demandReports.inc({ pool: name, namespace, outcome: 'ok' });
    } catch (err) {
      // A deleted pool has nothing to report to; anything else (API server away, a missing
      // permission) is tried again, less and less often.
      metrics.demandReports.inc({ pool: name, namespace, outcome: 'failed' });
      gone = (err as { code?: number }).code === 404;
      s.failures++;
    }
    s.sentAt = Date.now();
    s.writing = false;
    if (gone) this.states.delete(`${namespace}/${name}`);
    else if (s.failures > 0) this.schedule(s, Math.min(this.heartbeatMs, 5 * this.throttleMs * 2 ** (s.failures - 1)));
    else if (s.queued !== s.sent || s.dirty) this.schedule(s, this.throttleMs);
    else if (s.queued > 0) this.schedule(s, this.heartbeatMs);
    else if (s.sentAt < holdUntil) this.schedule(s, holdUntil - s.sentAt);
    else this.states.delete(`${namespace}/${name}`);
  }
}

/**
 * The cold path in a cluster: a Job running `featherman query --sandbox` with the catalog's
 * environment, held to a worker's rules: the SQL in an environment variable (never on the command
 * line, where it would be parsed as options and is capped at 128 KiB), the deadline enforced by
 * the process and, past it and the grace, by deleting the Job; rows and bytes capped; deleted
 * when the caller goes away.
 */
export class JobFallback implements QueryFallback {
  private readonly custom: CustomObjectsApi;
  private readonly batch: BatchV1Api;
  private readonly core: CoreV1Api;
  private readonly limits: FallbackLimits;

  constructor(kc: KubeConfig, private readonly settings: HookSettings = settingsFromEnv(process.env), limits: Partial<FallbackLimits> = {}) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.batch = kc.makeApiClient(BatchV1Api);
    this.core = kc.makeApiClient(CoreV1Api);
    this.limits = { ...fallbackLimitsFromEnv(process.env), ...limits };
  }

  async run(pool: PoolSettings, query: QueryRequest, grant?: Grant): Promise<RoutedResponse> {
    const { maxRows, maxBytes, killGraceMs } = this.limits;
    const deadlineMs = Math.min(query.timeoutMs ?? pool.maxQueryMs, pool.maxQueryMs);
    const catalog = (await this.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: pool.namespace, plural: 'ducklakecatalogs', name: pool.catalog })) as CatalogObject;
    const access = catalogAccess(catalog, { readOnlyVolume: true, credentials: pool.credentialsSecret });
    const name = `${pool.pool}`.slice(0, 40).replace(/[-.]+$/, '') + `-query-${randomBytes(4).toString('hex')}`;
    const labels = labelsFor({ component: 'query', catalog: pool.catalog, pool: pool.pool, instance: pool.pool });
    const args = ['query', '--sandbox', '--sql-env', '--format', 'json', '--timeout-ms', String(deadlineMs), '--max-rows', String(maxRows), '--max-bytes', String(maxBytes), ...(pool.readOnly ? [] : ['--write'])];
    const spec = runnerPodSpec({ settings: this.settings, args, ...access });
    spec.containers[0]!.env = [...(spec.containers[0]!.env ?? []), { name: 'FEATHERMAN_QUERY_SQL', value: query.sql },
      ...(grant ? [{ name: 'FEATHERMAN_QUERY_GRANT', value: JSON.stringify(grant) }] : [])];
    // Pod start-up (scheduling, image, DuckDB) comes on top of the query's own deadline and grace.
    const startupSeconds = 60;
    const body = job(name, labels, spec, { backoffLimit: 0, activeDeadlineSeconds: Math.ceil((deadlineMs + killGraceMs) / 1000) + startupSeconds });
    body.spec!.ttlSecondsAfterFinished = 300;
    if (query.signal?.aborted) return error(499, 'the client went away');
    await this.batch.createNamespacedJob({ namespace: pool.namespace, body });
    // The result is read (or no longer wanted); the Job and its pod go now rather than at their
    // TTL, so they do not keep running or holding the catalog volume.
    const remove = () => this.batch.deleteNamespacedJob({ name, namespace: pool.namespace, propagationPolicy: 'Background', gracePeriodSeconds: 0 }).catch(() => undefined);
    const killBy = Date.now() + deadlineMs + killGraceMs + startupSeconds * 1000;
    for (;;) {
      if (query.signal?.aborted) { await remove(); return error(499, 'the client went away'); }
      const status = (await this.batch.readNamespacedJob({ name, namespace: pool.namespace })).status;
      if (status?.succeeded || status?.failed) break;
      if (Date.now() > killBy) {
        await remove();
        return error(504, `query exceeded its deadline of ${deadlineMs} ms and did not stop within ${killGraceMs} ms; its Job ${name} was deleted`);
      }
      // Woken at once by a cancel: deleting the Job (its pod follows through the garbage collector) is what stops the query.
      await new Promise<void>((r) => {
        const done = () => { clearTimeout(timer); query.signal?.removeEventListener('abort', done); r(); };
        const timer = setTimeout(done, 500);
        query.signal?.addEventListener('abort', done, { once: true });
      });
    }
    const pods = await this.core.listNamespacedPod({ namespace: pool.namespace, labelSelector: `job-name=${name}` });
    const pod = pods.items[0];
    // Bounded like a worker's answer: the rows, plus room for the summary around them.
    const log = pod ? await this.core.readNamespacedPodLog({ name: pod.metadata!.name!, namespace: pool.namespace, container: 'featherman', limitBytes: maxBytes + 64 * 1024 }) : '';
    await remove();
    const line = String(log).trim().split('\n').reverse().find((l) => l.startsWith('{')) ?? '{}';
    let result: { ok?: boolean; error?: string; exitCode?: number; columns?: string[]; rows?: Record<string, unknown>[]; truncated?: boolean };
    try { result = JSON.parse(line); } catch { result = { ok: false, error: 'the fallback Job printed no result' }; }
    if (!result.ok) {
      const code = result.exitCode;
      const status = code === EXIT_BAD_INPUT ? 400 : code === EXIT_REFUSED ? 403 : code === EXIT_DEADLINE ? 504 : code === EXIT_TEMPORARY ? 503 : 502;
      return error(status, result.error ?? 'the fallback Job failed');
    }
    return render(query.format, result.columns ?? [], result.rows ?? [], name, result.truncated === true);
  }
}

function error(status: number, message: string): RoutedResponse {
  return { status, headers: { 'content-type': 'application/json' }, body: Readable.from([JSON.stringify({ error: message })]) };
}

function render(format: QueryRequest['format'], columns: string[], rows: Record<string, unknown>[], pod: string, truncated: boolean): RoutedResponse {
  const headers = { 'x-featherman-pod': pod };
  if (format === 'csv') return { status: 200, headers: { ...headers, 'content-type': 'text/csv; charset=utf-8' }, body: Readable.from([csvLine(columns), ...rows.map((r) => csvLine(columns.map((c) => r[c])))]) };
  if (format === 'ndjson') return { status: 200, headers: { ...headers, 'content-type': 'application/x-ndjson' }, body: Readable.from(rows.map((r) => JSON.stringify(r) + '\n')) };
  return { status: 200, headers: { ...headers, 'content-type': 'application/json' }, body: Readable.from([JSON.stringify({ columns, rows, rowCount: rows.length, truncated })]) };
}
