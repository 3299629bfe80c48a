// The builders of a DuckLakePool's children (lib/k8s/pool-workers.ts), one at a time: each object
// is validated against Kubernetes' OpenAPI schemas (kubernetes-models) and held to the rules the
// pool relies on. The whole sync answer is compared byte for byte in test/pool/pool-hooks.test.ts.
import t from 'tap';
import { Pod } from 'kubernetes-models/v1/Pod';
import { Service } from 'kubernetes-models/v1/Service';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import {
  disruptionBudget,
  isWorkerName,
  serviceName,
  STATS_PORT_ANNOTATION,
  TEMPLATE_ANNOTATION,
  WORKER_PORT,
  workerLabels,
  workerName,
  workerPod,
  workerPodSpec,
  workerResources,
  workersNetworkPolicy,
  workersService,
  type WorkerPool,
} from '../../lib/k8s/pool-workers.js';
import { GROUP } from '../../lib/k8s/labels.js';
import { catalogObject, ctx } from '../helpers/hook-fixtures.js';

const poolOf = (spec: Partial<WorkerPool['spec']> = {}, meta: Partial<WorkerPool['metadata']> = {}): WorkerPool => ({
  metadata: { name: 'default-pool', namespace: 'analytics', uid: 'c0ffee00-0000-4000-8000-000000000003', ...meta },
  spec: { catalogRef: { name: 'example' }, ...spec },
});
const catalog = catalogObject();
/** The labels a selector asks for are all on the worker pods. */
const selects = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

t.test('WORKER_PORT and the annotations', async (t) => {
  t.equal(WORKER_PORT, 8080, 'the port every worker listens on (the router and the hooks dial it)');
  t.equal(STATS_PORT_ANNOTATION, `${GROUP}/stats-port`);
  t.equal(TEMPLATE_ANNOTATION, `${GROUP}/template-hash`);
});

t.test('workerLabels: the pool, its catalog and the worker component, each a valid label value', async (t) => {
  t.same(workerLabels(poolOf()), {
    'app.kubernetes.io/name': 'featherman',
    'app.kubernetes.io/instance': 'default-pool',
    'app.kubernetes.io/component': 'worker',
    'app.kubernetes.io/managed-by': 'featherman',
    [`${GROUP}/catalog`]: 'example',
    [`${GROUP}/pool`]: 'default-pool',
  });
  const long = workerLabels(poolOf({}, { name: `p${'x'.repeat(200)}` }));
  for (const [k, v] of Object.entries(long)) t.ok(v.length <= 63, `${k} fits a label value`);
});

t.test('workerName: <pool>-<6 characters>, fixed by the pool and the counter', async (t) => {
  const p = poolOf();
  const names = [0, 1, 2, 3].map((i) => workerName(p, i));
  t.equal(new Set(names).size, 4, 'each index names another pod');
  t.same(
    names,
    [0, 1, 2, 3].map((i) => workerName(poolOf(), i)),
    'the same pool and index give the same name',
  );
  for (const n of names) t.match(n, /^default-pool-[bcdfghjklmnpqrstvwxz2456789]{6}$/);
  t.not(workerName(poolOf({}, { uid: 'another-uid' }), 0), names[0], 'a pool recreated under the same name gets new pod names');
  const long = poolOf({}, { name: `pool.${'y'.repeat(80)}` });
  t.ok(workerName(long, 0).length <= 63, 'a long pool name still gives a valid pod name');

  t.ok(isWorkerName(p, names[0]!), 'its own names are recognised');
  t.ok(isWorkerName(long, workerName(long, 7)), 'also for a long, dotted pool name');
  t.notOk(isWorkerName(p, 'default-pool-aaaaaa'), 'not a suffix this pool makes');
  t.notOk(isWorkerName(p, workerName(poolOf({}, { name: 'other' }), 0)), "not another pool's pod");
  t.notOk(isWorkerName(poolOf({}, { name: 'a.b' }), 'aXb-bbbbbb'), 'a dot in the pool name is a dot, not any character');
});

t.test('serviceName: a DNS label (no dots, starts with a letter)', async (t) => {
  t.equal(serviceName(poolOf()), 'default-pool-workers');
  t.equal(serviceName(poolOf({}, { name: 'a.b.c' })), 'a-b-c-workers');
  t.equal(serviceName(poolOf({}, { name: '7-pool' })), 'pool-7-pool-workers');
  t.match(serviceName(poolOf({}, { name: `z${'9'.repeat(120)}` })), /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/);
});

t.test('workerResources: the template over the defaults, requests never above limits', async (t) => {
  t.same(workerResources(undefined), { requests: { cpu: '500m', memory: '1Gi' }, limits: { cpu: '2', memory: '2Gi' } }, 'the defaults');
  t.same(
    workerResources({ requests: { cpu: 1, memory: '2Gi' }, limits: { memory: '4Gi' } }),
    { requests: { cpu: '1', memory: '2Gi' }, limits: { cpu: '2', memory: '4Gi' } },
    'numbers become quantities',
  );
  t.same(
    workerResources({ requests: { memory: '8Gi' } }),
    { requests: { cpu: '500m', memory: '8Gi' }, limits: { cpu: '2', memory: '8Gi' } },
    'a request above the default limit raises it',
  );
  t.same(
    workerResources({ limits: { cpu: '250m' } }),
    { requests: { cpu: '250m', memory: '1Gi' }, limits: { cpu: '250m', memory: '2Gi' } },
    'a limit below the default request lowers it',
  );
  t.same(workerResources({ requests: { cpu: '4' }, limits: { cpu: '1' } }).limits!.cpu, '4', 'both written and crossed: the request wins');
});

t.test('workerPodSpec: a non-root worker on the catalog, draining for maxQueryDuration', async (t) => {
  const spec = workerPodSpec(poolOf({ maxQueryDuration: '90s' }), catalog, ctx.settings, 90);
  new Pod({ metadata: { name: 'w' }, spec } as never).validate();
  const c = spec.containers[0]!;
  t.equal(c.image, ctx.settings.image);
  t.same(c.args, ['worker', '--port', String(WORKER_PORT)]);
  t.same(c.ports, [{ name: 'http', containerPort: WORKER_PORT, protocol: 'TCP' }]);
  t.equal(c.securityContext?.runAsNonRoot, true);
  t.equal(c.securityContext?.readOnlyRootFilesystem, true);
  t.equal(c.securityContext?.allowPrivilegeEscalation, false);
  t.same(c.securityContext?.capabilities?.drop, ['ALL']);
  t.equal(spec.securityContext?.runAsNonRoot, true);
  t.equal(spec.automountServiceAccountToken, false, 'workers never talk to the API server');
  t.equal(spec.enableServiceLinks, false);
  t.equal(spec.restartPolicy, 'Always');
  t.equal(spec.terminationGracePeriodSeconds, 100, 'maxQueryDuration plus 10 s to drain');
  t.equal(workerPodSpec(poolOf(), catalog, ctx.settings, 2.5).terminationGracePeriodSeconds, 13, 'a fraction of a second rounds up');
  const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]));
  t.equal(env.FEATHERMAN_POOL, 'default-pool');
  t.equal(env.FEATHERMAN_POOL_READ_ONLY, 'true', 'read-only unless catalogRef.readOnly is false');
  t.equal(env.FEATHERMAN_MAX_QUERY_DURATION, '90s');
  t.equal(env.FEATHERMAN_CATALOG, 'example');
  t.same(env.AWS_SECRET_ACCESS_KEY, { secretKeyRef: { name: 's3-credentials', key: 'secret-key' } }, 'credentials only by reference');
  t.same(
    c.volumeMounts?.find((m) => m.name === 'catalog'),
    { name: 'catalog', mountPath: '/var/lib/featherman', readOnly: true },
  );
  t.same(
    c.volumeMounts?.find((m) => m.name === 'scratch'),
    { name: 'scratch', mountPath: '/tmp' },
  );
  t.notOk('serviceAccountName' in spec, 'no service account unless the service names one');
  t.notOk('nodeSelector' in spec || 'tolerations' in spec || 'affinity' in spec, 'no scheduling fields the template did not ask for');

  const writer = workerPodSpec(poolOf({ catalogRef: { name: 'example', readOnly: false } }), catalog, ctx.settings, 60);
  t.equal(writer.containers[0]!.env!.find((e) => e.name === 'FEATHERMAN_POOL_READ_ONLY')!.value, 'false');
  t.equal(writer.containers[0]!.env!.find((e) => e.name === 'FEATHERMAN_MAX_QUERY_DURATION')!.value, '60s', 'the default duration');

  const custom = workerPodSpec(
    poolOf({
      template: {
        image: 'registry.example/custom:1',
        imagePullPolicy: 'Always',
        nodeSelector: { disk: 'ssd' },
        tolerations: [{ key: 'dedicated', operator: 'Exists', effect: 'NoSchedule' }],
        affinity: { nodeAffinity: {} },
      },
    }),
    catalog,
    { ...ctx.settings, serviceAccountName: 'workers' },
    60,
  );
  new Pod({ metadata: { name: 'w' }, spec: custom } as never).validate();
  t.equal(custom.containers[0]!.image, 'registry.example/custom:1');
  t.equal(custom.containers[0]!.imagePullPolicy, 'Always');
  t.equal(custom.serviceAccountName, 'workers');
  t.same(custom.nodeSelector, { disk: 'ssd' });
  t.same(custom.tolerations, [{ key: 'dedicated', operator: 'Exists', effect: 'NoSchedule' }]);
  t.same(custom.affinity, { nodeAffinity: {} });
  t.notOk(
    'nodeSelector' in workerPodSpec(poolOf({ template: { nodeSelector: {}, tolerations: [] } }), catalog, ctx.settings, 60),
    'an empty nodeSelector is left out',
  );
});

t.test('workerPod: the spec under the worker labels and its template hash', async (t) => {
  const p = poolOf();
  const spec = workerPodSpec(p, catalog, ctx.settings, 60);
  const pod = workerPod(p, workerName(p, 0), spec, 'abc123');
  new Pod(pod as never).validate();
  t.same(pod.metadata, { name: workerName(p, 0), labels: workerLabels(p), annotations: { [TEMPLATE_ANNOTATION]: 'abc123' } });
  t.equal(pod.spec, spec);
});

t.test("workersService: headless, selecting the pool's workers by name", async (t) => {
  const p = poolOf({}, { name: 'a.b' });
  const svc = workersService(p);
  new Service(svc as never).validate();
  t.equal(svc.metadata?.name, 'a-b-workers');
  t.equal(svc.spec?.clusterIP, 'None');
  t.same(svc.spec?.ports, [{ name: 'http', port: WORKER_PORT, targetPort: 'http', protocol: 'TCP' }]);
  t.ok(selects(svc.spec!.selector!, workerLabels(p)), 'the selector matches the worker pods');
  t.notOk(selects(svc.spec!.selector!, workerLabels(poolOf({}, { name: 'other' }))), "and not another pool's");
  t.notOk(`${GROUP}/catalog` in svc.spec!.selector!, 'the catalog is not part of the selector');
});

t.test('disruptionBudget: one worker below the desired size at most, broken pods always evictable', async (t) => {
  const p = poolOf();
  for (const [desired, min] of [
    [0, 0],
    [1, 0],
    [2, 1],
    [5, 4],
  ] as const) {
    const pdb = disruptionBudget(p, desired);
    new PodDisruptionBudget(pdb as never).validate();
    t.equal(pdb.spec?.minAvailable, min, `desired ${desired}: minAvailable ${min}`);
  }
  const pdb = disruptionBudget(p, 3);
  t.equal(pdb.metadata?.name, 'default-pool-workers');
  t.notOk('maxUnavailable' in pdb.spec!, "an integer minAvailable only (the pods' owner has no scale subresource)");
  t.equal(pdb.spec?.unhealthyPodEvictionPolicy, 'AlwaysAllow');
  t.ok(selects(pdb.spec!.selector!.matchLabels!, workerLabels(p)));
  t.same(pdb.spec!.selector!.matchLabels, workersService(p).spec!.selector, 'the same pods as the Service');
});

t.test("workersNetworkPolicy: only the Featherman service's pods reach the workers, on the worker port", async (t) => {
  const p = poolOf();
  const np: any = workersNetworkPolicy(p, 'featherman-system');
  new NetworkPolicy(np as never).validate();
  t.equal(np.metadata?.name, 'default-pool-workers');
  t.same(np.spec?.policyTypes, ['Ingress']);
  t.ok(selects(np.spec!.podSelector.matchLabels!, workerLabels(p)));
  t.same(np.spec?.ingress, [
    {
      from: [
        {
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'featherman-system' } },
          podSelector: { matchLabels: { 'app.kubernetes.io/name': 'featherman', 'app.kubernetes.io/component': 'service' } },
        },
      ],
      ports: [{ protocol: 'TCP', port: WORKER_PORT }],
    },
  ]);
});
