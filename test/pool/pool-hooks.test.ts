// DuckLakePool hooks: golden v2 sync/finalize responses for each state a pool goes through, every
// child validated against Kubernetes' OpenAPI schemas (kubernetes-models) and checked for the
// runner's security settings; then the hooks over HTTP, where the service fetches each worker's
// GET /stats (here from a local server) and the hook scales on it.
import t, { type Test } from 'tap';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { V1PodSpec } from '@kubernetes/client-node';
import { Pod } from 'kubernetes-models/v1/Pod';
import { Service } from 'kubernetes-models/v1/Service';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import * as pool from '../../hooks/pool.js';
import type { HookContext } from '../../hooks/context.js';
import type { KubeObject, SyncResponse } from '../../lib/k8s/metacontroller.js';
import type { WorkerStats } from '../../lib/pool/stats.js';
import { DEMAND_PREFIX, demandFrom, demandKey, encodeDemand, staleDemandKeys } from '../../lib/pool/demand.js';
import { objectSchemaProblems } from '../../lib/api/schema-validator.js';
import { buildServer } from '../../lib/server/server.js';
import { settingsFromEnv } from '../../lib/k8s/workloads.js';
import { catalogObject, ctx, NOW, observed, syncRequest } from '../helpers/hook-fixtures.js';
import { mutator } from '../helpers/fuzz.js';
import { golden } from '../helpers/golden.js';

const POOL_TYPES = ['Pod.v1', 'Service.v1', 'PodDisruptionBudget.policy/v1', 'NetworkPolicy.networking.k8s.io/v1'];
const validators: Record<string, (o: KubeObject) => void> = {
  Pod: (o) => new Pod(o as never).validate(),
  Service: (o) => new Service(o as never).validate(),
  PodDisruptionBudget: (o) => new PodDisruptionBudget(o as never).validate(),
  NetworkPolicy: (o) => new NetworkPolicy(o as never).validate(),
};
const readyCatalog = { ...observed(catalogObject()), status: { phase: 'Ready' } };
const at = (seconds: number) => new Date(NOW.getTime() + seconds * 1000);
const stamp = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

function poolObject(
  extra: Partial<pool.PoolObject['spec']> = {},
  meta: Partial<KubeObject['metadata']> = {},
  status?: Record<string, unknown>,
): pool.PoolObject {
  return {
    apiVersion: 'ducklake.featherman.dev/v1alpha1',
    kind: 'DuckLakePool',
    metadata: { name: 'default-pool', namespace: 'analytics', uid: 'c0ffee00-0000-4000-8000-000000000003', generation: 1, ...meta },
    spec: {
      minSize: 2,
      maxSize: 10,
      targetUtilization: 0.8,
      template: {
        resources: { requests: { memory: '2Gi', cpu: '1' }, limits: { memory: '4Gi', cpu: '2' } },
        nodeSelector: { 'kubernetes.io/os': 'linux' },
        tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'analytics', effect: 'NoSchedule' }],
      },
      maxIdleTime: '300s',
      maxLifetime: '1h',
      maxQueries: 100,
      maxQueryDuration: '60s',
      scaleUpRate: 2,
      scaleDownRate: 1,
      scaleInterval: '30s',
      queue: { maxLength: 100, maxWaitTime: '30s' },
      catalogRef: { name: 'example', readOnly: true },
      ...extra,
    },
    ...(status ? { status } : {}),
  };
}

/** A worker pod as Metacontroller observes it once the kubelet runs it. */
function running(pod: KubeObject, created: Date, ready = true, ip = '10.1.0.7', annotations: Record<string, string> = {}): KubeObject {
  const o = observed(pod, { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] });
  // Controlled by the pool, as Metacontroller creates it: the service asks only such pods for stats.
  const owner = {
    apiVersion: 'ducklake.featherman.dev/v1alpha1',
    kind: 'DuckLakePool',
    name: 'default-pool',
    uid: 'c0ffee00-0000-4000-8000-000000000003',
    controller: true,
    blockOwnerDeletion: true,
  };
  return {
    ...o,
    metadata: {
      ...o.metadata,
      creationTimestamp: stamp(created),
      ownerReferences: [owner],
      annotations: { ...o.metadata.annotations, ...annotations },
    },
  };
}

function stats(name: string, o: Partial<WorkerStats> = {}): WorkerStats {
  const active = o.activeQueries ?? 0;
  return {
    pod: name,
    ready: true,
    state: active > 0 ? 'busy' : 'idle',
    activeQueries: active,
    queriesServed: 12,
    startedAt: '2026-11-24T11:50:05Z',
    lastQueryAt: '2026-11-24T11:59:40Z',
    utilization: active > 0 ? 1 : 0.05,
    ...o,
  };
}

const withStats = (s: Record<string, WorkerStats | undefined>, now = NOW): HookContext => ({ ...ctx, now, workerStats: s });
const podsOf = (r: SyncResponse) => r.children.filter((c) => c.kind === 'Pod');
const podNames = (r: SyncResponse) => podsOf(r).map((p) => p.metadata.name);
const podSpecOf = (r: SyncResponse) => podsOf(r)[0]!.spec as Record<string, any>;

function checkContract(t: Test, response: SyncResponse, finalize = false) {
  const allowed = new Set(['status', 'children', 'resyncAfterSeconds', ...(finalize ? ['finalized'] : [])]);
  t.same(
    Object.keys(response).filter((k) => !allowed.has(k)),
    [],
    'no unknown top-level fields (v2 hooks are strict)',
  );
  t.type(response.status.phase, 'string', 'status.phase is set');
  t.type(response.status.observedGeneration, 'number', 'status.observedGeneration is set');
  t.ok(
    (response.status.conditions as { type: string }[]).some((c) => c.type === 'Ready'),
    'status has a Ready condition',
  );
  for (const c of response.status.conditions as Record<string, unknown>[]) {
    t.match(
      c,
      {
        type: String,
        status: /^(True|False|Unknown)$/,
        reason: /^[A-Za-z][A-Za-z0-9]*$/,
        message: String,
        lastTransitionTime: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
      },
      `condition ${c.type} is complete`,
    );
  }
  // The API server would refuse the status write (and Metacontroller report SyncError) otherwise.
  t.same(
    objectSchemaProblems('DuckLakePool', { ...poolObject(), status: response.status }, { strict: false }),
    [],
    "the status fits the CRD's status schema",
  );
  for (const child of response.children) {
    const what = `${child.kind} ${child.metadata?.name}`;
    t.ok(child.metadata.name.length <= 63, `${what}: name fits 63 characters`);
    t.match(
      child.metadata.labels,
      {
        'app.kubernetes.io/name': 'featherman',
        'app.kubernetes.io/managed-by': 'featherman',
        'app.kubernetes.io/component': 'worker',
        'app.kubernetes.io/instance': 'default-pool',
        'ducklake.featherman.dev/catalog': 'example',
        'ducklake.featherman.dev/pool': 'default-pool',
      },
      `${what} carries the labels`,
    );
    t.doesNotThrow(() => validators[child.kind]!(child), `${what} is valid against the Kubernetes OpenAPI schema`);
    if (child.kind !== 'Pod') continue;
    const pod = child.spec as Record<string, any>;
    t.match(
      pod,
      {
        restartPolicy: 'Always',
        automountServiceAccountToken: false,
        securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } },
      },
      `${what}: pod runs as non-root with RuntimeDefault seccomp, no token`,
    );
    t.ok(pod.terminationGracePeriodSeconds >= 60, `${what}: a running query may finish (grace ≥ maxQueryDuration)`);
    for (const c of pod.containers) {
      t.match(
        c.securityContext,
        { runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
        `${what}: container is locked down`,
      );
      t.ok(c.resources?.requests?.memory && c.resources?.limits?.memory, `${what}: container has requests and limits`);
      for (const e of c.env ?? []) {
        if (/SECRET|PASSWORD|KEY_ID|TOKEN/.test(e.name))
          t.ok(e.valueFrom?.secretKeyRef && e.value === undefined, `${what}: ${e.name} comes from a secretKeyRef`);
      }
    }
  }
}

t.test('DuckLakePool: catalog missing or not Ready', async (t) => {
  const r0 = pool.sync(syncRequest(poolObject(), [], [], POOL_TYPES), ctx);
  checkContract(t, r0);
  t.match(r0.status, { phase: 'Pending', conditions: [{ type: 'Ready', status: 'False', reason: 'CatalogNotFound' }] });

  const provisioning = { ...readyCatalog, status: { phase: 'Provisioning' } };
  const r1 = pool.sync(syncRequest(poolObject(), [], [provisioning], POOL_TYPES), ctx);
  checkContract(t, r1);
  golden(t, 'pool-catalog-not-ready', r1);
  t.match(r1.status, { phase: 'Pending', desiredSize: 0, currentSize: 0, conditions: [{ type: 'Ready', reason: 'CatalogNotReady' }] });
  t.same(
    r1.children.map((c) => `${c.kind}/${c.metadata.name}`),
    ['Service/default-pool-workers', 'PodDisruptionBudget/default-pool-workers', 'NetworkPolicy/default-pool-workers'],
    'no pods; the headless Service and the network policy stay',
  );
  t.equal(r1.resyncAfterSeconds, 30, 'resyncs every scaleInterval');

  // Workers that exist when the catalog stops being Ready: idle ones go, a busy one finishes first.
  const fresh = pool.sync(syncRequest(poolObject(), [], [readyCatalog], POOL_TYPES), ctx);
  const [a, b] = podsOf(fresh).map((p) => running(p, at(-600)));
  const r2 = pool.sync(
    syncRequest(poolObject(), [a!, b!], [provisioning], POOL_TYPES),
    withStats({ [a!.metadata.name]: stats(a!.metadata.name, { activeQueries: 1 }), [b!.metadata.name]: stats(b!.metadata.name) }),
  );
  checkContract(t, r2);
  t.same(podNames(r2), [a!.metadata.name], 'the busy worker is kept, the idle one removed');
});

t.test('DuckLakePool: queries waiting in the routers start workers in a pool at minSize 0', async (t) => {
  const idle = poolObject({ minSize: 0, targetUtilization: 1 }, {}, { desiredSize: 0, lastScaleTime: stamp(at(-3600)), nextPodIndex: 0 });
  const r0 = pool.sync(syncRequest(idle, [], [readyCatalog], POOL_TYPES), ctx);
  t.equal(podsOf(r0).length, 0, 'no demand, no workers');
  t.match(r0.status, { queueLength: 0, desiredSize: 0 });

  // Two replicas report; a third is from a replica gone for a quarter of an hour; one is garbage.
  const annotations = {
    [demandKey('featherman-7d9f-a')]: encodeDemand(2, at(-3)),
    [demandKey('featherman-7d9f-b')]: encodeDemand(1, at(-20)),
    [demandKey('featherman-old')]: encodeDemand(40, at(-900)),
    [`${DEMAND_PREFIX}junk`]: '{"queued":"many"}',
    'example.com/unrelated': '{"queued":9}',
  };
  const queued = { ...idle, metadata: { ...idle.metadata, annotations } };
  const r1 = pool.sync(syncRequest(queued, [], [readyCatalog], POOL_TYPES), ctx);
  checkContract(t, r1);
  t.equal(podsOf(r1).length, 2, 'three waiting queries at scaleUpRate 2: two workers now');
  t.match(r1.status, { queueLength: 3, desiredSize: 2, phase: 'Scaling' });
  t.match(r1.status!.message, /demand 3 \(3 queued in the routers\)/, 'the status says why');
  t.same(
    staleDemandKeys(annotations, NOW),
    [demandKey('featherman-old'), `${DEMAND_PREFIX}junk`],
    'the stale report and the garbage are for removal',
  );
  for (const odd of [null, 5, 'null', '"text"', '[1]', '{"queued":2,"at":"later"}', '{"queued":-1,"at":"2026-11-24T12:00:00Z"}']) {
    t.same(
      demandFrom({ [`${DEMAND_PREFIX}odd`]: odd } as unknown as Record<string, string>, NOW),
      { queued: 0 },
      `a report of ${JSON.stringify(odd)} is no demand`,
    );
  }

  // Nothing waits any more, but a query found no worker a minute ago: one worker, for maxIdleTime.
  const woken = {
    ...idle,
    metadata: {
      ...idle.metadata,
      annotations: {
        [demandKey('featherman-7d9f-a')]: encodeDemand(0, at(-50), at(-60)),
        [demandKey('featherman-7d9f-b')]: encodeDemand(0, at(-400), at(-500)),
      },
    },
  };
  t.same(demandFrom(woken.metadata.annotations, NOW), { queued: 0, fallbackAt: stamp(at(-60)) }, 'the latest fallback of any replica');
  const r2 = pool.sync(syncRequest(woken, [], [readyCatalog], POOL_TYPES), ctx);
  t.equal(podsOf(r2).length, 1, 'one worker for the pool a query found empty');
  t.match(r2.status!.message, new RegExp(`a query found no ready worker at ${stamp(at(-60))}`));
  const later = pool.sync(syncRequest(woken, [], [readyCatalog], POOL_TYPES), { ...ctx, now: at(300) });
  t.equal(podsOf(later).length, 0, 'maxIdleTime (300s) after it, no longer');
});

t.test("DuckLakePool: only the service's pods may reach the workers", async (t) => {
  const r = pool.sync(syncRequest(poolObject(), [], [readyCatalog], POOL_TYPES), {
    ...ctx,
    settings: { ...ctx.settings, serviceNamespace: 'platform' },
  });
  const policy = r.children.find((c) => c.kind === 'NetworkPolicy') as KubeObject & {
    spec: { podSelector: { matchLabels: Record<string, string> }; ingress: unknown[] };
  };
  for (const worker of podsOf(r)) {
    for (const [k, v] of Object.entries(policy.spec.podSelector.matchLabels))
      t.equal(worker.metadata.labels?.[k], v, `the policy selects worker ${worker.metadata.name} (${k})`);
  }
  t.same(
    policy.spec.ingress,
    [
      {
        from: [
          {
            namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'platform' } },
            podSelector: { matchLabels: { 'app.kubernetes.io/name': 'featherman', 'app.kubernetes.io/component': 'service' } },
          },
        ],
        ports: [{ protocol: 'TCP', port: pool.WORKER_PORT }],
      },
    ],
    "ingress from the service's pods in its own namespace, to the worker port, and nothing else",
  );
});

t.test("DuckLakePool: credentialsSecret gives the workers their own S3 keys instead of the catalog's", async (t) => {
  const envOf = (r: SyncResponse) => (podsOf(r)[0]!.spec as V1PodSpec).containers[0]!.env!;
  const keyRefs = (r: SyncResponse) =>
    envOf(r)
      .filter((e) => e.name.startsWith('AWS_') && e.valueFrom)
      .map((e) => ({ name: e.name, ref: e.valueFrom!.secretKeyRef }));
  const own = pool.sync(
    syncRequest(poolObject({ credentialsSecret: { name: 'lake-readonly', accessKeyField: 'id' } }), [], [readyCatalog], POOL_TYPES),
    ctx,
  );
  t.same(
    keyRefs(own),
    [
      { name: 'AWS_ACCESS_KEY_ID', ref: { name: 'lake-readonly', key: 'id' } },
      { name: 'AWS_SECRET_ACCESS_KEY', ref: { name: 'lake-readonly', key: 'secret-key' } },
    ],
    "the pool's Secret, with its field names and the defaults",
  );
  const inherited = pool.sync(syncRequest(poolObject(), [], [readyCatalog], POOL_TYPES), ctx);
  const catalogSecret = (readyCatalog.spec as { objectStore: { credentialsSecret: { name: string } } }).objectStore.credentialsSecret.name;
  t.same(
    keyRefs(inherited).map((k) => k.ref?.name),
    [catalogSecret, catalogSecret],
    "without one, the catalog's Secret",
  );
  t.notOk(
    envOf(own).some((e) => e.value !== undefined && /secret|key/i.test(e.name) && e.name.startsWith('AWS_')),
    'keys only through secretKeyRef, never as values',
  );
});

t.test('DuckLakePool: from a fresh pool through scaling and recycling', async (t) => {
  // A fresh pool: minSize pods, named from a counter in .status.
  const r0 = pool.sync(syncRequest(poolObject(), [], [readyCatalog], POOL_TYPES), ctx);
  checkContract(t, r0);
  golden(t, 'pool-fresh', r0);
  t.match(r0.status, {
    phase: 'Scaling',
    desiredSize: 2,
    currentSize: 0,
    nextPodIndex: 2,
    conditions: [
      { type: 'Ready', status: 'False' },
      { type: 'Scaled', reason: 'ScalingUp' },
    ],
  });
  t.equal(podsOf(r0).length, 2);
  for (const name of podNames(r0)) t.match(name, /^default-pool-[bcdfghjklmnpqrstvwxz2456789]{6}$/);
  t.same(
    pool.sync(syncRequest(poolObject(), [], [readyCatalog], POOL_TYPES), ctx),
    r0,
    'the same request gives the same answer (pure, replica-safe)',
  );
  const pdb = r0.children.find((c) => c.kind === 'PodDisruptionBudget')!;
  t.match(pdb.spec, { minAvailable: 1, unhealthyPodEvictionPolicy: 'AlwaysAllow' }, 'one worker below the desired size at most');
  const svc = r0.children.find((c) => c.kind === 'Service')!;
  t.match(svc.spec, {
    clusterIP: 'None',
    ports: [{ name: 'http', port: 8080 }],
    selector: { 'app.kubernetes.io/component': 'worker', 'ducklake.featherman.dev/pool': 'default-pool' },
  });
  const spec = podSpecOf(r0);
  const c = spec.containers[0];
  t.same(c.args, ['worker', '--port', '8080']);
  t.equal(c.image, ctx.settings.image);
  t.match(c, {
    readinessProbe: { httpGet: { path: '/readyz', port: 'http' } },
    livenessProbe: { httpGet: { path: '/healthz', port: 'http' } },
  });
  t.same(c.resources, { requests: { memory: '2Gi', cpu: '1' }, limits: { memory: '4Gi', cpu: '2' } });
  const env = Object.fromEntries(
    (c.env as { name: string; value?: string; valueFrom?: unknown }[]).map((e) => [e.name, e.value ?? e.valueFrom]),
  );
  t.match(env, {
    FEATHERMAN_POOL: 'default-pool',
    FEATHERMAN_POOL_READ_ONLY: 'true',
    FEATHERMAN_MAX_QUERY_DURATION: '60s',
    FEATHERMAN_CATALOG: 'example',
    FEATHERMAN_MEMORY_LIMIT: { resourceFieldRef: { containerName: 'featherman', resource: 'limits.memory' } },
    POD_NAME: { fieldRef: { fieldPath: 'metadata.name' } },
    POD_IP: { fieldRef: { fieldPath: 'status.podIP' } },
  });
  t.match(
    spec.volumes,
    [
      { name: 'scratch', emptyDir: {} },
      { name: 'catalog', persistentVolumeClaim: { claimName: 'example-catalog', readOnly: true } },
    ],
    'the catalog volume, read-only',
  );
  t.match(spec, { nodeSelector: { 'kubernetes.io/os': 'linux' }, tolerations: [{ key: 'dedicated' }], terminationGracePeriodSeconds: 70 });

  // Metacontroller's cache has not seen the new pods yet: the next sync asks for the same ones.
  const lagging = pool.sync(syncRequest(poolObject({}, {}, r0.status), [], [readyCatalog], POOL_TYPES), withStats({}, at(2)));
  t.same(podNames(lagging), podNames(r0), 'pods asked for but not observed yet are not asked for twice');

  // Started but not Ready: Scaling while young, Degraded once stuck below minSize for minutes.
  const young = pool.sync(
    syncRequest(
      poolObject({}, {}, r0.status),
      podsOf(r0).map((p) => running(p, at(-20), false)),
      [readyCatalog],
      POOL_TYPES,
    ),
    withStats({}, at(0)),
  );
  t.match(young.status, {
    phase: 'Scaling',
    currentSize: 2,
    conditions: [
      { type: 'Ready', status: 'False' },
      { type: 'Scaled', reason: 'Starting' },
    ],
  });
  t.same(podNames(young), podNames(r0), 'pods that are not Ready yet are kept, none added');
  const stuck = pool.sync(
    syncRequest(
      poolObject({}, {}, r0.status),
      podsOf(r0).map((p) => running(p, at(-400), false)),
      [readyCatalog],
      POOL_TYPES,
    ),
    withStats({}, at(0)),
  );
  t.match(stuck.status, { phase: 'Degraded', conditions: [{ type: 'Ready', status: 'False', reason: 'NotEnoughWorkers' }] });

  // Steady: both Ready and idle.
  const [a, b] = podsOf(r0).map((p, i) => running(p, at(-600), true, `10.1.0.${i + 10}`));
  const idle = { [a!.metadata.name]: stats(a!.metadata.name), [b!.metadata.name]: stats(b!.metadata.name) };
  const r1 = pool.sync(syncRequest(poolObject({}, {}, r0.status), [a!, b!], [readyCatalog], POOL_TYPES), withStats(idle, at(10)));
  checkContract(t, r1);
  golden(t, 'pool-ready', r1);
  t.match(r1.status, {
    phase: 'Ready',
    currentSize: 2,
    desiredSize: 2,
    idlePods: 2,
    busyPods: 0,
    conditions: [
      { type: 'Ready', status: 'True' },
      { type: 'Scaled', status: 'True' },
    ],
  });
  t.same(podNames(r1), podNames(r0));
  t.match((r1.status.pods as unknown[])[0], { state: 'Idle', queryCount: 12, lastUsed: '2026-11-24T11:59:40Z' });

  // Load: both busy, the last change long enough ago → one more.
  const busy = {
    [a!.metadata.name]: stats(a!.metadata.name, { activeQueries: 1 }),
    [b!.metadata.name]: stats(b!.metadata.name, { activeQueries: 1 }),
  };
  const r2 = pool.sync(syncRequest(poolObject({}, {}, r1.status), [a!, b!], [readyCatalog], POOL_TYPES), withStats(busy, at(60)));
  checkContract(t, r2);
  golden(t, 'pool-scale-up', r2);
  t.match(r2.status, {
    phase: 'Scaling',
    desiredSize: 3,
    busyPods: 2,
    nextPodIndex: 3,
    lastScaleTime: stamp(at(60)),
    conditions: [{}, { type: 'Scaled', reason: 'ScalingUp' }],
  });
  t.equal(podsOf(r2).length, 3);
  const cPod = podsOf(r2).find((p) => !podNames(r1).includes(p.metadata.name))!;
  const r2b = pool.sync(syncRequest(poolObject({}, {}, r2.status), [a!, b!], [readyCatalog], POOL_TYPES), withStats(busy, at(70)));
  t.same(podNames(r2b), podNames(r2), 'within scaleInterval nothing more is added');

  // Load gone: the lower size has to hold for the window before a pod goes.
  const c3 = running(cPod, at(65), true, '10.1.0.12');
  const idle3 = {
    ...idle,
    [c3.metadata.name]: stats(c3.metadata.name, { queriesServed: 0, lastQueryAt: undefined, startedAt: stamp(at(66)) }),
  };
  const r3 = pool.sync(syncRequest(poolObject({}, {}, r2.status), [a!, b!, c3], [readyCatalog], POOL_TYPES), withStats(idle3, at(120)));
  checkContract(t, r3);
  t.equal(podsOf(r3).length, 3, 'not yet: the window starts');
  t.match(r3.status, { phase: 'Ready', scaleDownSince: stamp(at(120)), scaleDownTarget: 2 });
  const r4 = pool.sync(syncRequest(poolObject({}, {}, r3.status), [a!, b!, c3], [readyCatalog], POOL_TYPES), withStats(idle3, at(181)));
  checkContract(t, r4);
  golden(t, 'pool-scale-down', r4);
  t.match(r4.status, { phase: 'Scaling', desiredSize: 2, conditions: [{}, { type: 'Scaled', reason: 'ScalingDown' }] });
  t.equal(podsOf(r4).length, 2);
  t.notOk(
    podNames(r4).includes(c3.metadata.name) && podNames(r4).includes(a!.metadata.name) && podNames(r4).includes(b!.metadata.name),
    'one pod removed',
  );
  t.equal(
    r4.children.find((x) => x.kind === 'PodDisruptionBudget')!.spec &&
      (r4.children.find((x) => x.kind === 'PodDisruptionBudget')!.spec as { minAvailable: number }).minAvailable,
    1,
  );

  // Recycling: a pod past maxLifetime gets a replacement first, and goes once that one is Ready.
  const old = running(podsOf(r0)[0]!, at(-3700), true, '10.1.0.10');
  const keep = running(podsOf(r0)[1]!, at(-600), true, '10.1.0.11');
  const st = { [old.metadata.name]: stats(old.metadata.name), [keep.metadata.name]: stats(keep.metadata.name) };
  const r5 = pool.sync(syncRequest(poolObject({}, {}, r1.status), [old, keep], [readyCatalog], POOL_TYPES), withStats(st, at(10)));
  checkContract(t, r5);
  golden(t, 'pool-recycle', r5);
  t.match(r5.status, { phase: 'Scaling', desiredSize: 2, conditions: [{}, { type: 'Scaled', reason: 'Recycling' }] });
  t.equal(podsOf(r5).length, 3, 'surge: the old pod stays while its replacement starts');
  t.match(
    (r5.status.pods as { name: string; state: string }[]).find((p) => p.name === old.metadata.name),
    { state: 'Draining' },
  );
  const replacement = running(
    podsOf(r5).find((p) => ![old.metadata.name, keep.metadata.name].includes(p.metadata.name))!,
    at(15),
    true,
    '10.1.0.13',
  );
  const r6 = pool.sync(
    syncRequest(poolObject({}, {}, r5.status), [old, keep, replacement], [readyCatalog], POOL_TYPES),
    withStats({ ...st, [replacement.metadata.name]: stats(replacement.metadata.name, { queriesServed: 0 }) }, at(40)),
  );
  checkContract(t, r6);
  golden(t, 'pool-recycled', r6);
  t.same(podNames(r6), [keep.metadata.name, replacement.metadata.name].sort(), 'the old pod goes once the replacement is Ready');

  // A new template (image) recycles every pod, scaleUpRate at a time.
  const newImage = poolObject({ template: { image: 'registry.example/featherman:next' } }, { generation: 2 }, r1.status);
  const r7 = pool.sync(syncRequest(newImage, [a!, b!], [readyCatalog], POOL_TYPES), withStats(idle, at(10)));
  checkContract(t, r7);
  t.equal(podsOf(r7).length, 4, 'both outdated pods get a replacement first (scaleUpRate 2)');
  t.equal(podSpecOf(r7).containers[0].image, 'registry.example/featherman:next');
});

t.test('DuckLakePool: deleting', async (t) => {
  const r0 = pool.sync(syncRequest(poolObject(), [], [readyCatalog], POOL_TYPES), ctx);
  const deleting = poolObject({}, { deletionTimestamp: '2026-11-24T12:10:00Z' }, r0.status);
  const pods = podsOf(r0).map((p) => running(p, at(-600)));
  const r1 = pool.finalize(
    syncRequest(
      deleting,
      [...r0.children.filter((c) => c.kind !== 'Pod').map((c) => observed(c)), ...pods],
      [readyCatalog],
      POOL_TYPES,
      true,
    ),
    withStats({ [pods[0]!.metadata.name]: stats(pods[0]!.metadata.name, { activeQueries: 1 }) }),
  );
  checkContract(t, r1, true);
  golden(t, 'pool-deleting', r1);
  t.match(
    r1,
    { finalized: false, children: [], status: { phase: 'Deleting', desiredSize: 0 } },
    'deletes every worker (they drain) and waits',
  );
  const r2 = pool.finalize(syncRequest(deleting, [], [readyCatalog], POOL_TYPES, true), ctx);
  t.match(r2, { finalized: true, children: [] }, 'finalized once no pods remain');
});

t.test('customize asks for the catalog', async (t) => {
  t.same(pool.customize({ controller: {} as KubeObject, parent: poolObject() }), {
    relatedResources: [
      { apiVersion: 'ducklake.featherman.dev/v1alpha1', resource: 'ducklakecatalogs', namespace: 'analytics', names: ['example'] },
    ],
  });
});

t.test('names stay valid for long and dotted pool names', async (t) => {
  const long = poolObject({}, { name: `${'a'.repeat(40)}.${'b'.repeat(40)}` });
  const r = pool.sync(syncRequest(long, [], [readyCatalog], POOL_TYPES), ctx);
  for (const child of r.children) t.doesNotThrow(() => validators[child.kind]!(child), `${child.kind} ${child.metadata.name} is valid`);
  t.match(pool.serviceName(long), /^[a-z]([-a-z0-9]*[a-z0-9])?$/);
  t.equal(pool.serviceName(poolObject({}, { name: '7-pool' })), 'pool-7-pool-workers');
  t.same(
    pool.workerResources({ requests: { memory: '8Gi' } }),
    { requests: { cpu: '500m', memory: '8Gi' }, limits: { cpu: '2', memory: '8Gi' } },
    'a request above the default limit raises it',
  );
  t.same(
    pool.workerResources({ limits: { cpu: '250m' } }),
    { requests: { cpu: '250m', memory: '1Gi' }, limits: { cpu: '250m', memory: '2Gi' } },
    'a limit below the default request lowers it',
  );
});

// ---- over HTTP, with the service fetching /stats -------------------------------------------------

async function listen(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; port: number }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

// The service reads its settings (the image) from the environment; pods built with others would be recycled.
const serverCtx = (now: Date): HookContext => ({ ...ctx, now, settings: settingsFromEnv(process.env) });

t.test("over HTTP the service passes each worker's /stats to the pool hooks", async (t) => {
  const app = await buildServer({ plugins: ['hooks'] });
  t.teardown(() => app.close());
  const now = new Date();
  // The pool as the cluster holds it: one Ready worker, its last change long ago.
  const template = pool.sync(syncRequest(poolObject({ minSize: 1 }), [], [readyCatalog], POOL_TYPES), serverCtx(now));
  const podName = podNames(template)[0]!;
  let answer: WorkerStats = stats(podName, { activeQueries: 1, queriesServed: 42, utilization: 1 });
  const requests: string[] = [];
  const { server, port } = await listen((req, res) => {
    requests.push(req.url ?? '');
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(answer));
  });
  t.teardown(() => server.close());
  const status = { ...template.status, desiredSize: 1, lastScaleTime: stamp(new Date(now.getTime() - 3600_000)), pods: [] };
  const worker = running(podsOf(template)[0]!, new Date(now.getTime() - 600_000), true, '127.0.0.1', {
    [pool.STATS_PORT_ANNOTATION]: String(port),
  });
  const body = () => syncRequest(poolObject({ minSize: 1 }, {}, status), [worker], [readyCatalog], POOL_TYPES);
  const post = (payload: unknown, hook = 'sync') =>
    app.inject({ method: 'POST', url: `/hooks/ducklakepools/${hook}`, payload: payload as object });

  const busy = await post(body());
  t.equal(busy.statusCode, 200, busy.body);
  t.same(requests, ['/stats'], 'the service asked the worker for its stats');
  const r1 = busy.json() as SyncResponse;
  const podOf = (r: SyncResponse) => (r.status.pods as { name: string }[]).find((p) => p.name === podName);
  t.match(r1.status, { busyPods: 1, idlePods: 0, desiredSize: 2 }, 'a busy worker: ceil(1 / 0.8) = 2 wanted');
  t.match(podOf(r1), { state: 'Busy', queryCount: 42 }, 'its state and query count come from its stats');
  t.equal(podsOf(r1).length, 2, "scaled up on the worker's stats");

  answer = stats(podName, { queriesServed: 43, utilization: 0 });
  const idle = (await post(body())).json() as SyncResponse;
  t.match(idle.status, { busyPods: 0, idlePods: 1, desiredSize: 1 }, 'an idle worker: no scale-up');
  t.match(podOf(idle), { state: 'Idle', queryCount: 43 });

  answer = { ...stats('some-other-pod'), activeQueries: 0 };
  const wrong = (await post(body())).json() as SyncResponse;
  t.match(wrong.status, { busyPods: 1 }, 'stats from another pod (a reused IP) count as missing: treated as busy');
  t.match(podOf(wrong), { state: 'Busy' });

  const fin = await post({ ...body(), finalizing: true }, 'finalize');
  t.equal(fin.statusCode, 200);
  t.match(fin.json(), { finalized: false, children: [], status: { phase: 'Deleting' } });
});

t.test('a worker that never answers costs the hook at most the stats timeout', async (t) => {
  const app = await buildServer({ plugins: ['hooks'] });
  t.teardown(() => app.close());
  const hanging = new Set<import('node:http').ServerResponse>();
  const { server, port } = await listen((_req, res) => {
    hanging.add(res);
  });
  t.teardown(() => {
    for (const res of hanging) res.destroy();
    server.close();
  });
  const now = new Date();
  const template = pool.sync(syncRequest(poolObject({ minSize: 1 }), [], [readyCatalog], POOL_TYPES), serverCtx(now));
  const worker = running(podsOf(template)[0]!, new Date(now.getTime() - 600_000), true, '127.0.0.1', {
    [pool.STATS_PORT_ANNOTATION]: String(port),
  });
  const status = { ...template.status, desiredSize: 1, lastScaleTime: stamp(new Date(now.getTime() - 3600_000)), pods: [] };
  const started = performance.now();
  const res = await app.inject({
    method: 'POST',
    url: '/hooks/ducklakepools/sync',
    payload: syncRequest(poolObject({ minSize: 1 }, {}, status), [worker], [readyCatalog], POOL_TYPES) as object,
  });
  const ms = performance.now() - started;
  t.equal(res.statusCode, 200);
  // The worker never answers, so an answer at all is the timeout's doing; the bound (20 times the
  // hook's 300 ms stats timeout, lib/server/hooks.ts) only leaves a loaded machine room.
  t.ok(ms < 20 * 300, `answered in ${Math.round(ms)} ms`);
  t.match(res.json().status, { busyPods: 1, message: /did not answer GET \/stats/ }, 'the silent Ready worker counts as busy');
});

t.test('a bounded fuzz of mutated pool sync requests never gets a 500', async (t) => {
  const app = await buildServer({ plugins: ['hooks'] });
  t.teardown(() => app.close());
  const r0 = pool.sync(syncRequest(poolObject(), [], [readyCatalog], POOL_TYPES), ctx);
  // Port 1 on the loopback refuses at once, so the stats fetch costs nothing here.
  const pods = podsOf(r0).map((p, i) => running(p, at(-600 * (i + 1)), i === 0, '127.0.0.1', { [pool.STATS_PORT_ANNOTATION]: '1' }));
  // With a router's demand report on the parent, so the fuzz garbles that too.
  const demand = { annotations: { [demandKey('featherman-a')]: encodeDemand(2, at(-5), at(-10)) } };
  const example = syncRequest(poolObject({}, demand, r0.status), pods, [readyCatalog], POOL_TYPES);
  const mutate = mutator(20261124, ['not-an-ip', '2026-13-45T99:00:00Z', '{"queued":1e9,"at":"2026-11-24T12:00:00Z"}']);
  const counts: Record<number, number> = {};
  for (let i = 0; i < 600; i++) {
    const hook = ['sync', 'finalize', 'customize'][i % 3];
    const last = mutate(example);
    const res = await app.inject({ method: 'POST', url: `/hooks/ducklakepools/${hook}`, payload: last });
    counts[res.statusCode] = (counts[res.statusCode] ?? 0) + 1;
    if (res.statusCode >= 500) {
      t.fail(`500 for a mutated request: ${res.body}`);
      if (process.env.DEBUG_FUZZ) writeFileSync('/tmp/pool-fuzz.json', JSON.stringify({ hook, payload: last }));
      break;
    }
  }
  t.notOk(
    Object.keys(counts).some((c) => Number(c) >= 500),
    `status codes: ${JSON.stringify(counts)}`,
  );
});
