// DuckLakePool: warm worker Pods (`featherman worker`) attached to one catalog, a headless Service
// in front of them, a PodDisruptionBudget and a NetworkPolicy, each built in lib/k8s/pool-workers.ts.
// How many pods, and which ones go, is decided by lib/pool/scaling.ts from the pods Metacontroller
// observed, the stats each worker answered (fetched by lib/server/hooks.ts into ctx.workerStats)
// and what the last sync left in .status.
// Pod names come from a counter in .status, so the hook stays a pure function of its request.
import type { CustomizeRequest, CustomizeResponse, KubeObject, SyncRequest, SyncResponse } from '../lib/k8s/metacontroller.js';
import { objectNamed, objectsOf } from '../lib/k8s/metacontroller.js';
import { validateSpec } from '../lib/api/validate.js';
import { API_VERSION, shortHash } from '../lib/k8s/labels.js';
import type { CatalogObject } from '../lib/k8s/catalog-runner.js';
import { condition, type Condition } from '../lib/k8s/conditions.js';
import {
  disruptionBudget,
  isWorkerName,
  type PoolObject,
  TEMPLATE_ANNOTATION,
  workerLabels,
  workerName,
  workerPod,
  workerPodSpec,
  workersNetworkPolicy,
  workersService,
} from '../lib/k8s/pool-workers.js';
import {
  decide,
  poolPolicy,
  type PodState,
  type ScalingDecision,
  type ScalingMemory,
  type WorkerObservation,
} from '../lib/pool/scaling.js';
import { demandFrom } from '../lib/pool/demand.js';
import type { HookContext } from './context.js';

export type { PoolObject };

// The children's builders (lib/k8s/pool-workers.ts), for the service's stats fetch and for tests.
export {
  serviceName,
  STATS_PORT_ANNOTATION,
  TEMPLATE_ANNOTATION,
  WORKER_PORT,
  workerLabels,
  workerName,
  workerResources,
} from '../lib/k8s/pool-workers.js';

const FINALIZE_RESYNC_SECONDS = 5;
/** A pool below minSize with a pod not Ready for this long is Degraded rather than Scaling. */
const STARTUP_GRACE_SECONDS = 300;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');
const plural = (n: number) => (n === 1 ? '' : 's');

function catalogOf(req: SyncRequest<PoolObject>): CatalogObject | undefined {
  const namespace = req.parent.metadata.namespace ?? 'default';
  return objectNamed<CatalogObject>(req.related, 'DuckLakeCatalog', API_VERSION, namespace, req.parent.spec.catalogRef?.name ?? '');
}

/** Why the pool cannot run workers on its catalog now, or undefined when it can. */
function catalogProblem(p: PoolObject, catalog: CatalogObject | undefined): { reason: string; message: string } | undefined {
  const name = p.spec.catalogRef.name;
  const notReady = (message: string) => ({ reason: 'CatalogNotReady', message });
  if (!catalog) {
    return { reason: 'CatalogNotFound', message: `DuckLakeCatalog ${name} does not exist in namespace ${p.metadata.namespace}` };
  }
  if (validateSpec('DuckLakeCatalog', catalog.spec).problems.length) {
    return notReady(`DuckLakeCatalog ${name} has an invalid spec; fix it first`);
  }
  if (catalog.metadata.deletionTimestamp) return notReady(`DuckLakeCatalog ${name} is being deleted`);
  const phase = catalog.status?.phase;
  if (phase !== 'Ready') return notReady(`waiting for DuckLakeCatalog ${name} to be Ready (it is ${String(phase ?? 'Pending')})`);
  return undefined;
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
  if (!Array.isArray(pods)) return [];
  return pods.filter((x): x is PodSummary => isObj(x) && typeof x.name === 'string' && typeof x.state === 'string');
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
      phase: pod.metadata.deletionTimestamp
        ? 'terminating'
        : phase === 'Failed' || phase === 'Succeeded'
          ? 'failed'
          : isPodReady(pod)
            ? 'ready'
            : 'starting',
      createdAt: typeof pod.metadata.creationTimestamp === 'string' ? pod.metadata.creationTimestamp : iso(ctx.now),
      ...(templateHash !== undefined && pod.metadata.annotations?.[TEMPLATE_ANNOTATION] !== templateHash ? { outdated: true } : {}),
      ...(stats ? { stats } : {}),
    };
  });
  const seen = new Set(workers.map((w) => w.name));
  for (const prev of previousPods(p)) {
    if (prev.state !== 'Creating' || seen.has(prev.name) || !isWorkerName(p, prev.name)) continue;
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
  const previous = Array.isArray(p.status?.conditions)
    ? (p.status.conditions as unknown[]).filter((c): c is Condition => isObj(c) && typeof c.type === 'string')
    : [];
  const g = p.metadata.generation;
  const d = o.decision;
  const s = d.summary;
  const workers = new Map(o.workers.map((w) => [w.name, w]));
  const prevPods = new Map(previousPods(p).map((x) => [x.name, x]));

  const removed = d.pods.filter((x) => !x.keep && workers.get(x.name)?.phase !== 'terminating');
  const retiring = d.pods.filter((x) => x.keep && x.state === 'Draining');
  const stuck = o.workers.some(
    (w) =>
      (w.phase === 'creating' || w.phase === 'starting') && (ctx.now.getTime() - Date.parse(w.createdAt)) / 1000 > STARTUP_GRACE_SECONDS,
  );
  const failed = o.workers.some((w) => w.phase === 'failed');
  const scaledReason = o.deleting
    ? 'Deleting'
    : o.problem
      ? o.problem.reason
      : s.retiringPods > 0
        ? 'Recycling'
        : o.created.length > 0
          ? 'ScalingUp'
          : removed.length > 0 || s.currentSize > d.desiredSize
            ? 'ScalingDown'
            : s.startingPods > 0 || s.readyPods < d.desiredSize
              ? 'Starting'
              : 'Scaled';
  const minimumReady = s.readyPods >= policy.minSize;
  const phase: Phase = o.deleting
    ? 'Deleting'
    : o.problem
      ? 'Pending'
      : !minimumReady && (stuck || failed)
        ? 'Degraded'
        : scaledReason === 'Scaled'
          ? 'Ready'
          : 'Scaling';

  const parts = [
    o.deleting
      ? `deleting ${s.currentSize} worker${plural(s.currentSize)}`
      : o.problem
        ? o.problem.message
        : `${s.readyPods} worker${plural(s.readyPods)} Ready, ${d.desiredSize} wanted`,
    ...(o.deleting ? [] : d.notes),
    ...(o.created.length ? [`creating ${o.created.join(', ')}`] : []),
    ...(o.deleting ? [] : removed.map((x) => `removing ${x.name}: ${x.reason}`)),
    ...retiring.map((x) => `${x.name} ${x.reason}`),
    ...(s.unknownPods ? [`${s.unknownPods} Ready worker${plural(s.unknownPods)} did not answer GET /stats (treated as busy)`] : []),
  ];
  const message = parts.join('; ').slice(0, 4096);

  const ready = o.deleting
    ? condition(previous, 'Ready', 'False', 'Deleting', 'the pool is being deleted', ctx.now, g)
    : o.problem
      ? condition(previous, 'Ready', 'False', o.problem.reason, o.problem.message, ctx.now, g)
      : condition(
          previous,
          'Ready',
          minimumReady ? 'True' : 'False',
          minimumReady ? 'MinimumReady' : 'NotEnoughWorkers',
          `${s.readyPods} worker${plural(s.readyPods)} Ready, minSize ${policy.minSize}`,
          ctx.now,
          g,
        );
  const scaled = condition(
    previous,
    'Scaled',
    scaledReason === 'Scaled' ? 'True' : 'False',
    scaledReason,
    scaledReason === 'Scaled' ? `${d.desiredSize} worker${plural(d.desiredSize)}, all Ready` : message,
    ctx.now,
    g,
  );
  const catalogReady = condition(
    previous,
    'CatalogReady',
    o.problem ? 'False' : 'True',
    o.problem ? o.problem.reason : 'CatalogReady',
    o.problem ? o.problem.message : `catalog ${p.spec.catalogRef.name} is ready`,
    ctx.now,
    g,
  );

  const pods: PodSummary[] = [
    ...d.pods.map((x) => {
      const w = workers.get(x.name)!;
      const prev = prevPods.get(x.name);
      // Without an answer now, the last known values stay (checked: the CRD refuses a wrong type).
      const lastUsed =
        w.stats?.lastQueryAt ??
        (typeof prev?.lastUsed === 'string' && !Number.isNaN(Date.parse(prev.lastUsed)) ? prev.lastUsed : undefined);
      const queryCount =
        w.stats?.queriesServed ?? (Number.isInteger(prev?.queryCount) && prev!.queryCount! >= 0 ? prev!.queryCount : undefined);
      return {
        name: x.name,
        state: x.state,
        createdAt: w.createdAt,
        ...(lastUsed ? { lastUsed } : {}),
        ...(queryCount !== undefined ? { queryCount } : {}),
      };
    }),
    ...o.created.map((name) => ({ name, state: 'Creating' as const, createdAt: iso(ctx.now) })),
  ]
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .slice(0, 1000);

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

/** The worker pods, and around them the Service, the disruption budget and the network policy. */
function children(p: PoolObject, ctx: HookContext, desiredSize: number, pods: KubeObject[]): KubeObject[] {
  return [
    workersService(p) as KubeObject,
    disruptionBudget(p, desiredSize) as KubeObject,
    workersNetworkPolicy(p, ctx.settings.serviceNamespace) as KubeObject,
    ...pods,
  ];
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
    const keptPods = kept.map((pod) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      spec: pod.spec,
      metadata: { name: pod.metadata.name, labels: pod.metadata.labels ?? workerLabels(p), annotations: pod.metadata.annotations ?? {} },
    }));
    return { status, children: children(p, ctx, 0, keptPods), resyncAfterSeconds };
  }

  const spec = workerPodSpec(p, catalog, ctx.settings, policy.maxQuerySeconds);
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
  const pods = [...decision.keep, ...created].sort().map((name) => workerPod(p, name, spec, templateHash) as KubeObject);
  const status = poolStatus(p, ctx, { decision, workers, created, nextPodIndex });
  return { status, children: children(p, ctx, decision.desiredSize, pods), resyncAfterSeconds };
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
      {
        apiVersion: API_VERSION,
        resource: 'ducklakecatalogs',
        namespace: req.parent.metadata.namespace,
        names: [req.parent.spec.catalogRef?.name ?? ''],
      },
    ],
  };
}
