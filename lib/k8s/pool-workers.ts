// Typed builders for a DuckLakePool's children: its worker Pods (`featherman worker`), the headless
// Service in front of them, their PodDisruptionBudget and NetworkPolicy. hooks/pool.ts decides how
// many workers there are and which go; what each child looks like is decided here.
import { createHash } from 'node:crypto';
import type { V1Container, V1Pod, V1PodDisruptionBudget, V1PodSpec, V1ResourceRequirements, V1Service } from '@kubernetes/client-node';
import { SPEC_DEFAULTS } from '../api/defaults.js';
import { parseQuantity } from '../api/quantity.js';
import type { WrittenSpec } from '../api/types.js';
import type { KubeObject } from './metacontroller.js';
import { catalogAccess, type CatalogObject } from './catalog-runner.js';
import { childName, GROUP, labelsFor, labelValue } from './labels.js';
import { containerSecurity, podSecurity, SCRATCH, SCRATCH_MOUNT, type HookSettings } from './workloads.js';

/** The port every worker serves its query API, /stats and health on; the router and the hooks dial it. */
export const WORKER_PORT = 8080;
/** On a worker pod: the port its GET /stats is served on, when not WORKER_PORT (tests). */
export const STATS_PORT_ANNOTATION = `${GROUP}/stats-port`;
/** On a worker pod: a hash of the pod spec it was built from; a different one means "recycle me". */
export const TEMPLATE_ANNOTATION = `${GROUP}/template-hash`;

const DEFAULT_RESOURCES = { requests: { cpu: '500m', memory: '1Gi' }, limits: { cpu: '2', memory: '2Gi' } };
const SUFFIX_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

type Quantity = string | number;

/**
 * A DuckLakePool as a hook takes it: the API server applies the schema's defaults, but a hook also
 * copes with a spec it has not defaulted (tests feed them), falling back on SPEC_DEFAULTS.
 */
export type PoolObject = KubeObject & { spec: WrittenSpec<'DuckLakePool'>; status?: Record<string, unknown> };

/** spec.template of a DuckLakePool: how its worker pods run. */
export type WorkerTemplate = NonNullable<PoolObject['spec']['template']>;

/** The parts of a DuckLakePool its children are built from (a PoolObject is one). */
export interface WorkerPool {
  metadata: { name: string; namespace?: string; uid?: string };
  spec: Pick<PoolObject['spec'], 'catalogRef' | 'template' | 'maxQueryDuration' | 'credentialsSecret'>;
}

/** The labels a worker pod carries; the Service and the PodDisruptionBudget select on a subset. */
export const workerLabels = (p: WorkerPool) =>
  labelsFor({ component: 'worker', catalog: p.spec.catalogRef.name, pool: p.metadata.name, instance: p.metadata.name });

const workerSelector = (p: WorkerPool) => ({
  'app.kubernetes.io/name': 'featherman',
  'app.kubernetes.io/component': 'worker',
  [`${GROUP}/pool`]: labelValue(p.metadata.name),
});

/** `<pool>-<6 characters>`: looks random, but is a hash of the pool and a counter kept in .status. */
export function workerName(p: WorkerPool, index: number): string {
  const digest = createHash('sha256')
    .update(`${p.metadata.uid ?? `${p.metadata.namespace}/${p.metadata.name}`}/${index}`)
    .digest();
  let suffix = '';
  for (let i = 0; i < 6; i++) suffix += SUFFIX_ALPHABET[digest[i]! % SUFFIX_ALPHABET.length];
  return childName(p.metadata.name, suffix);
}

/** Whether `name` is one workerName() could give this pool, whatever the counter. */
export function isWorkerName(p: WorkerPool, name: string): boolean {
  const prefix = workerName(p, 0).slice(0, -6).replace(/[.]/g, '\\.');
  return new RegExp(`^${prefix}[${SUFFIX_ALPHABET}]{6}$`).test(name);
}

/** A Service name is a DNS label: no dots, and it starts with a letter. */
export function serviceName(p: WorkerPool): string {
  const base = p.metadata.name.replace(/\./g, '-');
  return childName(/^[a-z]/.test(base) ? base : `pool-${base}`, 'workers');
}

/** The template's resources over the defaults; a request above the limit it meets raises that limit. */
export function workerResources(
  r: { requests?: Record<string, Quantity>; limits?: Record<string, Quantity> } | undefined,
): V1ResourceRequirements {
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

/**
 * A worker's pod spec: the catalog's environment and volume, the pool's template, and a grace
 * period that lets a running query finish (`maxQuerySeconds`: the pool's maxQueryDuration with the
 * API's default applied).
 */
export function workerPodSpec(p: WorkerPool, catalog: CatalogObject, settings: HookSettings, maxQuerySeconds: number): V1PodSpec {
  const t = p.spec.template ?? {};
  const readOnly = p.spec.catalogRef.readOnly ?? SPEC_DEFAULTS.pool.catalogRef.readOnly;
  const access = catalogAccess(catalog, { readOnlyVolume: readOnly, credentials: p.spec.credentialsSecret });
  const container: V1Container = {
    name: 'featherman',
    image: t.image ?? settings.image,
    imagePullPolicy: t.imagePullPolicy ?? settings.imagePullPolicy,
    args: ['worker', '--port', String(WORKER_PORT)],
    ports: [{ name: 'http', containerPort: WORKER_PORT, protocol: 'TCP' }],
    env: [
      ...access.env,
      { name: 'FEATHERMAN_POOL', value: p.metadata.name },
      { name: 'FEATHERMAN_POOL_READ_ONLY', value: String(readOnly) },
      { name: 'FEATHERMAN_MAX_QUERY_DURATION', value: p.spec.maxQueryDuration ?? SPEC_DEFAULTS.pool.maxQueryDuration },
      { name: 'FEATHERMAN_MEMORY_LIMIT', valueFrom: { resourceFieldRef: { containerName: 'featherman', resource: 'limits.memory' } } },
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
      { name: 'HOME', value: '/tmp' },
      { name: 'TMPDIR', value: '/tmp' },
    ],
    resources: workerResources(t.resources),
    securityContext: containerSecurity(),
    readinessProbe: { httpGet: { path: '/readyz', port: 'http' }, periodSeconds: 5, timeoutSeconds: 2, failureThreshold: 2 },
    livenessProbe: {
      httpGet: { path: '/healthz', port: 'http' },
      initialDelaySeconds: 10,
      periodSeconds: 10,
      timeoutSeconds: 5,
      failureThreshold: 6,
    },
    volumeMounts: [SCRATCH_MOUNT, ...access.mounts],
  };
  return {
    restartPolicy: 'Always',
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    ...(settings.serviceAccountName ? { serviceAccountName: settings.serviceAccountName } : {}),
    securityContext: podSecurity(),
    // SIGTERM makes the worker drain: a running query gets its full maxQueryDuration to finish.
    terminationGracePeriodSeconds: Math.ceil(maxQuerySeconds) + 10,
    containers: [container],
    volumes: [SCRATCH, ...access.volumes],
    ...(t.nodeSelector && Object.keys(t.nodeSelector).length ? { nodeSelector: t.nodeSelector } : {}),
    ...(t.tolerations?.length ? { tolerations: t.tolerations as V1PodSpec['tolerations'] } : {}),
    ...(t.affinity ? { affinity: t.affinity as V1PodSpec['affinity'] } : {}),
  };
}

/** A worker pod; `templateHash` (of its spec) tells the pool hook which pods are outdated. */
export function workerPod(p: WorkerPool, name: string, spec: V1PodSpec, templateHash: string): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: workerLabels(p), annotations: { [TEMPLATE_ANNOTATION]: templateHash } },
    spec,
  };
}

/** Headless: one DNS record per Ready worker, for the router and for people debugging. */
export function workersService(p: WorkerPool): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: serviceName(p), labels: workerLabels(p) },
    spec: {
      clusterIP: 'None',
      selector: workerSelector(p),
      ports: [{ name: 'http', port: WORKER_PORT, targetPort: 'http', protocol: 'TCP' }],
    },
  };
}

/**
 * At most one worker below the desired size through voluntary evictions (node drains). Our pods'
 * owner has no scale subresource, so Kubernetes accepts only an integer minAvailable here
 * (maxUnavailable would make every eviction fail); desiredSize - 1 is maxUnavailable 1 in effect.
 * Pods that are not Ready may always be evicted, so a broken pod never blocks a drain.
 */
export function disruptionBudget(p: WorkerPool, desiredSize: number): V1PodDisruptionBudget {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: childName(p.metadata.name, 'workers'), labels: workerLabels(p) },
    spec: {
      minAvailable: Math.max(0, desiredSize - 1),
      selector: { matchLabels: workerSelector(p) },
      unhealthyPodEvictionPolicy: 'AlwaysAllow',
    },
  };
}

/**
 * Workers answer POST /query without a token (the router in front holds the tokens), so only the
 * Featherman service's pods may reach them: its router and its hooks (GET /stats). Kubelet probes
 * come from the node, which common network plugins always admit. (A plain object: client-node's
 * model spells the ingress rule's `from` as `_from`, for its serializer.)
 */
export function workersNetworkPolicy(p: WorkerPool, serviceNamespace: string): KubeObject {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: childName(p.metadata.name, 'workers'), labels: workerLabels(p) },
    spec: {
      podSelector: { matchLabels: workerSelector(p) },
      policyTypes: ['Ingress'],
      ingress: [
        {
          from: [
            {
              namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': serviceNamespace } },
              podSelector: { matchLabels: { 'app.kubernetes.io/name': 'featherman', 'app.kubernetes.io/component': 'service' } },
            },
          ],
          ports: [{ protocol: 'TCP', port: WORKER_PORT }],
        },
      ],
    },
  };
}
