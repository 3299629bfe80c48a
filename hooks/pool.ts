// DuckLakePool: warm worker Pods (`featherman worker`) attached to one catalog, a headless Service
// in front of them and a PodDisruptionBudget. How many pods, and which ones go, is decided by
// lib/pool/scaling.ts from the pods Metacontroller observed, the stats each worker answered
// (fetched by lib/server/hooks.ts into ctx.workerStats) and what the last sync left in .status.
// Pod names come from a counter in .status, so the hook stays a pure function of its request.
import { createHash } from 'node:crypto';
import type { V1Container, V1PodSpec, V1ResourceRequirements } from '@kubernetes/client-node';
import type { CustomizeRequest, CustomizeResponse, KubeObject, SyncRequest, SyncResponse } from '../lib/k8s/metacontroller.js';
import { objectNamed, objectsOf } from '../lib/k8s/metacontroller.js';
import { validateSpec } from '../lib/api/validate.js';
import { parseQuantity } from '../lib/api/quantity.js';
import { API_VERSION, childName, GROUP, labelsFor, labelValue, shortHash } from '../lib/k8s/labels.js';
import { catalogAccess, type CatalogObject } from '../lib/k8s/catalog-runner.js';
import { condition, type Condition } from '../lib/k8s/conditions.js';
import { containerSecurity, podSecurity, SCRATCH, SCRATCH_MOUNT } from '../lib/k8s/workloads.js';
import {
  decide, poolPolicy, type PodState, type PoolSpec, type ScalingDecision, type ScalingMemory, type WorkerObservation,
} from '../lib/pool/scaling.js';
import { demandFrom } from '../lib/pool/demand.js';
import type { HookContext } from './context.js';

export type PoolObject = KubeObject & { spec: PoolSpec; status?: Record<string, unknown> };

export const WORKER_PORT = 8080;
/** On a worker pod: the port its GET /stats is served on, when not WORKER_PORT (tests). */
export const STATS_PORT_ANNOTATION = `${GROUP}/stats-port`;
/** On a worker pod: a hash of the pod spec it was built from; a different one means "recycle me". */
export const TEMPLATE_ANNOTATION = `${GROUP}/template-hash`;

const FINALIZE_RESYNC_SECONDS = 5;
/** A pool below minSize with a pod not Ready for this long is Degraded rather than Scaling. */
const STARTUP_GRACE_SECONDS = 300;
const DEFAULT_RESOURCES = { requests: { cpu: '500m', memory: '1Gi' }, limits: { cpu: '2', memory: '2Gi' } };
const SUFFIX_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

function catalogOf(req: SyncRequest<PoolObject>): CatalogObject | undefined {
  return objectNamed<CatalogObject>(req.related, 'DuckLakeCatalog', API_VERSION, req.parent.metadata.namespace ?? 'default', req.parent.spec.catalogRef?.name ?? '');
}

/** Why the pool cannot run workers on its catalog now, or undefined when it can. */
function catalogProblem(p: PoolObject, catalog: CatalogObject | undefined): { reason: string; message: string } | undefined {
  const name = p.spec.catalogRef.name;
  if (!catalog) return { reason: 'CatalogNotFound', message: `DuckLakeCatalog ${name} does not exist in namespace ${p.metadata.namespace}` };
  if (validateSpec('DuckLakeCatalog', catalog.spec).problems.length) return { reason: 'CatalogNotReady', message: `DuckLakeCatalog ${name} has an invalid spec; fix it first` };
  if (catalog.metadata.deletionTimestamp) return { reason: 'CatalogNotReady', message: `DuckLakeCatalog ${name} is being deleted` };
  if (catalog.status?.phase !== 'Ready') return { reason: 'CatalogNotReady', message: `waiting for DuckLakeCatalog ${name} to be Ready (it is ${String(catalog.status?.phase ?? 'Pending')})` };
  return undefined;
}

// ---- children -----------------------------------------------------------------------------------

/** The labels a worker pod carries; the Service and the PodDisruptionBudget select on a subset. */
export const workerLabels = (p: PoolObject) => labelsFor({ component: 'worker', catalog: p.spec.catalogRef.name, pool: p.metadata.name, instance: p.metadata.name });
const workerSelector = (p: PoolObject) => ({ 'app.kubernetes.io/name': 'featherman', 'app.kubernetes.io/component': 'worker', [`${GROUP}/pool`]: labelValue(p.metadata.name) });

/** `<pool>-<6 characters>`: looks random, but is a hash of the pool and a counter kept in .status. */
export function workerName(p: PoolObject, index: number): string {
  const digest = createHash('sha256').update(`${p.metadata.uid ?? `${p.metadata.namespace}/${p.metadata.name}`}/${index}`).digest();
  let suffix = '';
  for (let i = 0; i < 6; i++) suffix += SUFFIX_ALPHABET[digest[i]! % SUFFIX_ALPHABET.length];
  return childName(p.metadata.name, suffix);
}

/** A Service name is a DNS label: no dots, and it starts with a letter. */
export function serviceName(p: PoolObject): string {
  const base = p.metadata.name.replace(/\./g, '-');
  return childName(/^[a-z]/.test(base) ? base : `pool-${base}`, 'workers');
}

/** The template's resources over the defaults; a request above the limit it meets raises that limit. */
export function workerResources(r: { requests?: Record<string, string | number>; limits?: Record<string, string | number> } | undefined): V1ResourceRequirements {
  const requests: Record<string, string> = { ...DEFAULT_RESOURCES.requests };
  const limits: Record<string, string> = { ...DEFAULT_RESOURCES.limits };
  for (const [k, v] of Object.entries(r?.requests ?? {})) requests[k] = String(v);
  for (const [k, v] of Object.entries(r?.limits ?? {})) limits[k] = String(v);
  for (const key of Object.keys(requests)) {
    const request = parseQuantity(requests[key]);
    const limit = parseQuantity(limits[key]);
    if (request === undefined || limit === undefined || request <= limit) continue;
    // Whichever side the user wrote wins; the default on the other side moves to meet it.
    if (r?.limits?.[key] !== undefined && r?.requests?.[key] === undefined) requests[key] = limits[key]!;
    else limits[key] = requests[key]!;
  }
  return { requests, limits };
}

export function workerPodSpec(p: PoolObject, catalog: CatalogObject, ctx: HookContext): V1PodSpec {
  const t = p.spec.template ?? {};
  const readOnly = p.spec.catalogRef.readOnly ?? true;
  const access = catalogAccess(catalog, { readOnlyVolume: readOnly, credentials: p.spec.credentialsSecret });
  const policy = poolPolicy(p.spec);
  const container: V1Container = {
    name: 'featherman',
    image: t.image ?? ctx.settings.image,
    imagePullPolicy: t.imagePullPolicy ?? ctx.settings.imagePullPolicy,
    args: ['worker', '--port', String(WORKER_PORT)],
    ports: [{ name: 'http', containerPort: WORKER_PORT, protocol: 'TCP' }],
    env: [
      ...access.env,
      { name: 'FEATHERMAN_POOL', value: p.metadata.name },
      { name: 'FEATHERMAN_POOL_READ_ONLY', value: String(readOnly) },
      { name: 'FEATHERMAN_MAX_QUERY_DURATION', value: p.spec.maxQueryDuration ?? '60s' },
      { name: 'FEATHERMAN_MEMORY_LIMIT', valueFrom: { resourceFieldRef: { containerName: 'featherman', resource: 'limits.memory' } } },
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
      { name: 'HOME', value: '/tmp' },
      { name: 'TMPDIR', value: '/tmp' },
    ],
    resources: workerResources(t.resources),
    securityContext: containerSecurity(),
    readinessProbe: { httpGet: { path: '/readyz', port: 'http' }, periodSeconds: 5, timeoutSeconds: 2, failureThreshold: 2 },
    livenessProbe: { httpGet: { path: '/healthz', port: 'http' }, initialDelaySeconds: 10, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 6 },
    volumeMounts: [SCRATCH_MOUNT, ...access.mounts],
  };
  return {
    restartPolicy: 'Always',
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    ...(ctx.settings.serviceAccountName ? { serviceAccountName: ctx.settings.serviceAccountName } : {}),
    securityContext: podSecurity(),
    // SIGTERM makes the worker drain: a running query gets its full maxQueryDuration to finish.
    terminationGracePeriodSeconds: Math.ceil(policy.maxQuerySeconds) + 10,
    containers: [container],
    volumes: [SCRATCH, ...access.volumes],
    ...(t.nodeSelector && Object.keys(t.nodeSelector).length ? { nodeSelector: t.nodeSelector } : {}),
    ...(t.tolerations?.length ? { tolerations: t.tolerations as V1PodSpec['tolerations'] } : {}),
    ...(t.affinity ? { affinity: t.affinity as V1PodSpec['affinity'] } : {}),
  };
}

export function workerPod(p: PoolObject, name: string, spec: V1PodSpec, templateHash: string): KubeObject {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: workerLabels(p), annotations: { [TEMPLATE_ANNOTATION]: templateHash } }, spec };
}

/** Headless: one DNS record per Ready worker, for the router and for people debugging. */
export function workersService(p: PoolObject): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: serviceName(p), labels: workerLabels(p) },
    spec: { clusterIP: 'None', selector: workerSelector(p), ports: [{ name: 'http', port: WORKER_PORT, targetPort: 'http', protocol: 'TCP' }] },
  };
}

/**
 * At most one worker below the desired size through voluntary evictions (node drains). Our pods'
 * owner has no scale subresource, so Kubernetes accepts only an integer minAvailable here
 * (maxUnavailable would make every eviction fail); desiredSize - 1 is maxUnavailable 1 in effect.
 * Pods that are not Ready may always be evicted, so a broken pod never blocks a drain.
 */
export function disruptionBudget(p: PoolObject, desiredSize: number): KubeObject {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: childName(p.metadata.name, 'workers'), labels: workerLabels(p) },
    spec: { minAvailable: Math.max(0, desiredSize - 1), selector: { matchLabels: workerSelector(p) }, unhealthyPodEvictionPolicy: 'AlwaysAllow' },
  };
}

/**
 * Workers answer POST /query without a token (the router in front holds the tokens), so only the
 * Featherman service's pods may reach them: its router and its hooks (GET /stats). Kubelet probes
 * come from the node, which common network plugins always admit.
 */
export function workersNetworkPolicy(p: PoolObject, ctx: HookContext): KubeObject {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: childName(p.metadata.name, 'workers'), labels: workerLabels(p) },
    spec: {
      podSelector: { matchLabels: workerSelector(p) },
      policyTypes: ['Ingress'],
      ingress: [{
        from: [{
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ctx.settings.serviceNamespace } },
          podSelector: { matchLabels: { 'app.kubernetes.io/name': 'featherman', 'app.kubernetes.io/component': 'service' } },
        }],
        ports: [{ protocol: 'TCP', port: WORKER_PORT }],
      }],
    },
  };
}

// ---- observing ----------------------------------------------------------------------------------

interface PodSummary {
  name: string;
  state: PodState;
  createdAt?: string;
  lastUsed?: string;
  queryCount?: number;
}

function previousPods(p: PoolObject): PodSummary[] {
  const pods = p.status?.pods;
  return Array.isArray(pods) ? pods.filter((x): x is PodSummary => isObj(x) && typeof x.name === 'string' && typeof x.state === 'string') : [];
}

function isPodReady(pod: KubeObject): boolean {
  const conditions = isObj(pod.status) && Array.isArray(pod.status.conditions) ? pod.status.conditions : [];
  return conditions.some((c) => isObj(c) && c.type === 'Ready' && c.status === 'True');
}

/** The observed worker pods, plus those asked for earlier and not observed yet (Metacontroller's cache can lag its own creates). */
function observeWorkers(req: SyncRequest<PoolObject>, ctx: HookContext, templateHash?: string): WorkerObservation[] {
  const p = req.parent;
  const workers: WorkerObservation[] = objectsOf(req.children, 'Pod', 'v1').map((pod) => {
    const phase = isObj(pod.status) ? pod.status.phase : undefined;
    const name = pod.metadata.name;
    const stats = ctx.workerStats?.[name];
    return {
      name,
      phase: pod.metadata.deletionTimestamp ? 'terminating' : phase === 'Failed' || phase === 'Succeeded' ? 'failed' : isPodReady(pod) ? 'ready' : 'starting',
      createdAt: typeof pod.metadata.creationTimestamp === 'string' ? pod.metadata.creationTimestamp : iso(ctx.now),
      ...(templateHash !== undefined && pod.metadata.annotations?.[TEMPLATE_ANNOTATION] !== templateHash ? { outdated: true } : {}),
      ...(stats ? { stats } : {}),
    };
  });
  const seen = new Set(workers.map((w) => w.name));
  const ours = new RegExp(`^${workerName(p, 0).slice(0, -6).replace(/[.]/g, '\\.')}[${SUFFIX_ALPHABET}]{6}$`);
  for (const prev of previousPods(p)) {
    if (prev.state !== 'Creating' || seen.has(prev.name) || !ours.test(prev.name)) continue;
    seen.add(prev.name);
    workers.push({ name: prev.name, phase: 'creating', createdAt: typeof prev.createdAt === 'string' ? prev.createdAt : iso(ctx.now) });
  }
  return workers;
}

function memoryOf(p: PoolObject): ScalingMemory {
  const s = p.status ?? {};
  const num = (v: unknown) => (typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : undefined);
  const str = (v: unknown) => (typeof v === 'string' && !Number.isNaN(Date.parse(v)) ? v : undefined);
  const m: ScalingMemory = {};
  if (num(s.desiredSize) !== undefined) m.desiredSize = num(s.desiredSize);
  if (str(s.lastScaleTime)) m.lastScaleTime = str(s.lastScaleTime);
  if (str(s.scaleDownSince) && num(s.scaleDownTarget) !== undefined) {
    m.scaleDownSince = str(s.scaleDownSince);
    m.scaleDownTarget = num(s.scaleDownTarget);
  }
  return m;
}

// ---- status -------------------------------------------------------------------------------------

type Phase = 'Pending' | 'Scaling' | 'Ready' | 'Degraded' | 'Deleting';

interface Outcome {
  decision: ScalingDecision;
  workers: WorkerObservation[];
  created: string[];
  nextPodIndex: number;
  problem?: { reason: string; message: string };
  deleting?: boolean;
}

function poolStatus(p: PoolObject, ctx: HookContext, o: Outcome) {
  const policy = poolPolicy(p.spec);
  const previous = Array.isArray(p.status?.conditions) ? (p.status.conditions as unknown[]).filter((c): c is Condition => isObj(c) && typeof c.type === 'string') : [];
  const g = p.metadata.generation;
  const d = o.decision;
  const s = d.summary;
  const workers = new Map(o.workers.map((w) => [w.name, w]));
  const prevPods = new Map(previousPods(p).map((x) => [x.name, x]));

  const removed = d.pods.filter((x) => !x.keep && workers.get(x.name)?.phase !== 'terminating');
  const retiring = d.pods.filter((x) => x.keep && x.state === 'Draining');
  const stuck = o.workers.some((w) => (w.phase === 'creating' || w.phase === 'starting') && (ctx.now.getTime() - Date.parse(w.createdAt)) / 1000 > STARTUP_GRACE_SECONDS);
  const failed = o.workers.some((w) => w.phase === 'failed');
  const scaledReason = o.deleting ? 'Deleting' : o.problem ? o.problem.reason
    : s.retiringPods > 0 ? 'Recycling'
      : o.created.length > 0 ? 'ScalingUp'
        : removed.length > 0 || s.currentSize > d.desiredSize ? 'ScalingDown'
          : s.startingPods > 0 || s.readyPods < d.desiredSize ? 'Starting' : 'Scaled';
  const minimumReady = s.readyPods >= policy.minSize;
  const phase: Phase = o.deleting ? 'Deleting' : o.problem ? 'Pending'
    : !minimumReady && (stuck || failed) ? 'Degraded'
      : scaledReason === 'Scaled' ? 'Ready' : 'Scaling';

  const parts = [
    o.deleting ? `deleting ${s.currentSize} worker${s.currentSize === 1 ? '' : 's'}` : o.problem ? o.problem.message : `${s.readyPods} worker${s.readyPods === 1 ? '' : 's'} Ready, ${d.desiredSize} wanted`,
    ...(o.deleting ? [] : d.notes),
    ...(o.created.length ? [`creating ${o.created.join(', ')}`] : []),
    ...(o.deleting ? [] : removed.map((x) => `removing ${x.name}: ${x.reason}`)),
    ...retiring.map((x) => `${x.name} ${x.reason}`),
    ...(s.unknownPods ? [`${s.unknownPods} Ready worker${s.unknownPods === 1 ? '' : 's'} did not answer GET /stats (treated as busy)`] : []),
  ];
  const message = parts.join('; ').slice(0, 4096);

  const ready = o.deleting
    ? condition(previous, 'Ready', 'False', 'Deleting', 'the pool is being deleted', ctx.now, g)
    : o.problem
      ? condition(previous, 'Ready', 'False', o.problem.reason, o.problem.message, ctx.now, g)
      : condition(previous, 'Ready', minimumReady ? 'True' : 'False', minimumReady ? 'MinimumReady' : 'NotEnoughWorkers',
        `${s.readyPods} worker${s.readyPods === 1 ? '' : 's'} Ready, minSize ${policy.minSize}`, ctx.now, g);
  const scaled = condition(previous, 'Scaled', scaledReason === 'Scaled' ? 'True' : 'False', scaledReason,
    scaledReason === 'Scaled' ? `${d.desiredSize} worker${d.desiredSize === 1 ? '' : 's'}, all Ready` : message, ctx.now, g);
  const catalogReady = condition(previous, 'CatalogReady', o.problem ? 'False' : 'True', o.problem ? o.problem.reason : 'CatalogReady',
    o.problem ? o.problem.message : `catalog ${p.spec.catalogRef.name} is ready`, ctx.now, g);

  const pods: PodSummary[] = [
    ...d.pods.map((x) => {
      const w = workers.get(x.name)!;
      const prev = prevPods.get(x.name);
      // Without an answer now, the last known values stay (checked: the CRD refuses a wrong type).
      const lastUsed = w.stats?.lastQueryAt ?? (typeof prev?.lastUsed === 'string' && !Number.isNaN(Date.parse(prev.lastUsed)) ? prev.lastUsed : undefined);
      const queryCount = w.stats?.queriesServed ?? (Number.isInteger(prev?.queryCount) && prev!.queryCount! >= 0 ? prev!.queryCount : undefined);
      return { name: x.name, state: x.state, createdAt: w.createdAt, ...(lastUsed ? { lastUsed } : {}), ...(queryCount !== undefined ? { queryCount } : {}) };
    }),
    ...o.created.map((name) => ({ name, state: 'Creating' as const, createdAt: iso(ctx.now) })),
  ].sort((a, b) => (a.name < b.name ? -1 : 1)).slice(0, 1000);

  return {
    phase,
    message,
    observedGeneration: g,
    conditions: [ready, scaled, catalogReady],
    catalog: p.spec.catalogRef.name,
    currentSize: s.currentSize,
    desiredSize: d.desiredSize,
    readyPods: s.readyPods,
    idlePods: s.idlePods,
    busyPods: s.busyPods,
    // Queries waiting in the routers of every service replica, as they report them (demand.ts).
    queueLength: d.queued,
    ...(d.memory.lastScaleTime ? { lastScaleTime: d.memory.lastScaleTime } : {}),
    ...(d.memory.scaleDownSince ? { scaleDownSince: d.memory.scaleDownSince, scaleDownTarget: d.memory.scaleDownTarget } : {}),
    nextPodIndex: o.nextPodIndex,
    pods,
  };
}

// ---- hooks --------------------------------------------------------------------------------------

export function sync(req: SyncRequest<PoolObject>, ctx: HookContext): SyncResponse {
  const p = req.parent;
  const policy = poolPolicy(p.spec);
  const resyncAfterSeconds = policy.scaleIntervalSeconds;
  const prevIndex = p.status?.nextPodIndex;
  let nextPodIndex = typeof prevIndex === 'number' && Number.isInteger(prevIndex) && prevIndex >= 0 ? prevIndex : 0;
  const catalog = catalogOf(req);
  const problem = catalogProblem(p, catalog);
  const routers = demandFrom(p.metadata.annotations, ctx.now);

  if (problem || !catalog) {
    // No new workers without a Ready catalog; idle ones go, busy ones finish their queries first.
    const workers = observeWorkers(req, ctx);
    const decision = decide({ ...policy, minSize: 0, maxSize: 0 }, workers, {}, ctx.now, routers);
    decision.memory = { ...memoryOf(p), desiredSize: 0 };
    delete decision.memory.scaleDownSince;
    const kept = objectsOf(req.children, 'Pod', 'v1').filter((pod) => decision.keep.includes(pod.metadata.name));
    const status = poolStatus(p, ctx, { decision, workers, created: [], nextPodIndex, problem });
    // Busy pods are kept as observed (no catalog to rebuild them from); OnDelete never updates them.
    const keptPods = kept.map((pod) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: pod.metadata.name, labels: pod.metadata.labels ?? workerLabels(p), annotations: pod.metadata.annotations ?? {} }, spec: pod.spec }));
    return { status, children: [workersService(p), disruptionBudget(p, 0), workersNetworkPolicy(p, ctx), ...keptPods], resyncAfterSeconds };
  }

  const spec = workerPodSpec(p, catalog, ctx);
  const templateHash = shortHash(spec, 10);
  const workers = observeWorkers(req, ctx, templateHash);
  const decision = decide(policy, workers, memoryOf(p), ctx.now, routers);

  const taken = new Set(workers.map((w) => w.name));
  const created: string[] = [];
  while (created.length < decision.create) {
    const name = workerName(p, nextPodIndex++);
    if (taken.has(name)) continue;
    taken.add(name);
    created.push(name);
  }
  const pods = [...decision.keep, ...created].sort().map((name) => workerPod(p, name, spec, templateHash));
  const status = poolStatus(p, ctx, { decision, workers, created, nextPodIndex });
  return { status, children: [workersService(p), disruptionBudget(p, decision.desiredSize), workersNetworkPolicy(p, ctx), ...pods], resyncAfterSeconds };
}

/** Deleting the pool deletes its workers (each drains for up to maxQueryDuration), then lets go. */
export function finalize(req: SyncRequest<PoolObject>, ctx: HookContext): SyncResponse {
  const p = req.parent;
  const workers = observeWorkers(req, ctx).filter((w) => w.phase !== 'creating');
  const decision = decide({ ...poolPolicy(p.spec), minSize: 0, maxSize: 0 }, workers, {}, ctx.now);
  decision.pods = decision.pods.map((x) => ({ ...x, keep: false, state: 'Terminating' }));
  decision.memory = { ...memoryOf(p), desiredSize: 0 };
  delete decision.memory.scaleDownSince;
  const prevIndex = p.status?.nextPodIndex;
  const nextPodIndex = typeof prevIndex === 'number' && Number.isInteger(prevIndex) && prevIndex >= 0 ? prevIndex : 0;
  const status = poolStatus(p, ctx, { decision, workers, created: [], nextPodIndex, deleting: true });
  if (workers.length === 0) return { status, children: [], finalized: true };
  return { status, children: [], finalized: false, resyncAfterSeconds: FINALIZE_RESYNC_SECONDS };
}

/** The pool's catalog: its spec builds the workers' environment, its phase gates them. */
export function customize(req: CustomizeRequest<PoolObject>): CustomizeResponse {
  return {
    relatedResources: [
      { apiVersion: API_VERSION, resource: 'ducklakecatalogs', namespace: req.parent.metadata.namespace, names: [req.parent.spec.catalogRef?.name ?? ''] },
    ],
  };
}

