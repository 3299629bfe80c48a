// The install manifests: `kubectl kustomize metacontroller/` renders them, every object is valid
// Kubernetes, and the CompositeControllers declare exactly the child types and hook routes the
// service produces and serves.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Service } from 'kubernetes-models/v1/Service';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { HOOKS } from '../../lib/server/hooks.js';
import * as catalogHooks from '../../hooks/catalog.js';
import * as tableHooks from '../../hooks/table.js';
import * as poolHooks from '../../hooks/pool.js';
import * as backupHooks from '../../hooks/backup.js';
import { packageRoot } from '../../lib/lake/config.js';
import { catalogObject, ctx, observed, syncRequest, tableObject } from '../helpers/hook-fixtures.js';

const root = packageRoot();
function kubectl(): string {
  for (const candidate of [join(root, '.cache', 'k8s', 'bin', 'kubectl'), '/usr/bin/kubectl', '/usr/local/bin/kubectl'])
    if (existsSync(candidate)) return candidate;
  return 'kubectl';
}

const rendered = spawnSync(kubectl(), ['kustomize', join(root, 'metacontroller')], { encoding: 'utf8' });
const objects = rendered.status === 0 ? parseAllDocuments(rendered.stdout).map((d) => d.toJS()) : [];
const byKind = (kind: string) => objects.filter((o) => o.kind === kind);

t.test('kubectl kustomize renders the whole installation', async (t) => {
  t.equal(rendered.status, 0, `kubectl kustomize failed: ${rendered.stderr || rendered.error}`);
  const kinds = [...new Set(objects.map((o) => o.kind))].sort();
  t.same(kinds, [
    'Certificate',
    'ClusterRole',
    'ClusterRoleBinding',
    'CompositeController',
    'CustomResourceDefinition',
    'Deployment',
    'Issuer',
    'MutatingWebhookConfiguration',
    'Namespace',
    'NetworkPolicy',
    'PodDisruptionBudget',
    'Service',
    'ServiceAccount',
    'ValidatingWebhookConfiguration',
  ]);
  t.equal(byKind('CustomResourceDefinition').length, 4);
  t.doesNotThrow(() => new Deployment(byKind('Deployment')[0]).validate(), 'the Deployment is valid');
  t.doesNotThrow(() => new Service(byKind('Service')[0]).validate(), 'the Service is valid');
  t.doesNotThrow(() => new PodDisruptionBudget(byKind('PodDisruptionBudget')[0]).validate(), 'the PDB is valid');
  for (const np of byKind('NetworkPolicy'))
    t.doesNotThrow(() => new NetworkPolicy(np).validate(), `NetworkPolicy ${np.metadata.name} is valid`);
  for (const role of byKind('ClusterRole'))
    t.doesNotThrow(() => new ClusterRole(role).validate(), `ClusterRole ${role.metadata.name} is valid`);
  const d = byKind('Deployment')[0];
  t.equal(d.spec.replicas, 2);
  const c = d.spec.template.spec.containers[0];
  t.match(c, {
    readinessProbe: { httpGet: { path: '/readyz' } },
    livenessProbe: { httpGet: { path: '/healthz' } },
    securityContext: { runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false },
  });
  const rules = byKind('ClusterRole').flatMap((r) => r.rules) as { apiGroups: string[]; resources: string[]; verbs: string[] }[];
  t.notOk(
    rules.some((r) => r.resources.includes('*') || r.verbs.includes('*') || r.apiGroups.includes('*')),
    'no wildcard rules',
  );
  t.notOk(
    rules.some((r) => r.resources.includes('secrets')),
    'no access to Secrets',
  );
  // The pools' NetworkPolicies admit pods with these labels (hooks/pool.ts): the service's must match.
  const admitted = { 'app.kubernetes.io/name': 'featherman', 'app.kubernetes.io/component': 'service' };
  t.match(d.spec.template.metadata.labels, admitted, "the service pods carry the labels the pools' NetworkPolicies admit");
  t.ok(
    c.env.some(
      (e: { name: string; valueFrom?: { fieldRef?: { fieldPath?: string } } }) =>
        e.name === 'POD_NAMESPACE' && e.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace',
    ),
    'and know their namespace',
  );
});

t.test('each CompositeController declares the child types its hooks return, and routes the service serves', async (t) => {
  const controllers = byKind('CompositeController');
  t.equal(controllers.length, 4);
  const readyCatalog = { ...observed(catalogObject()), status: { phase: 'Ready' } };
  const backupObject: backupHooks.BackupObject = {
    apiVersion: 'ducklake.featherman.dev/v1alpha1',
    kind: 'DuckLakeBackup',
    metadata: { name: 'b', namespace: 'analytics', uid: 'u', generation: 1, creationTimestamp: '2026-11-24T12:00:00Z' },
    spec: { catalogRef: 'example' },
  };
  const produced: Record<string, { apiVersion: string; kind: string }[]> = {
    ducklakecatalogs: catalogHooks.desiredChildren(catalogObject(), ctx),
    ducklaketables: [
      ...tableHooks.sync(syncRequest(tableObject(), [], [readyCatalog]), ctx).children,
      ...tableHooks.finalize(
        syncRequest(tableObject({ deletionPolicy: 'Delete' }, { deletionTimestamp: '2026-11-24T12:10:00Z' }), [], [readyCatalog], [], true),
        ctx,
      ).children,
    ],
    ducklakepools: poolHooks.sync(
      syncRequest(
        {
          apiVersion: 'ducklake.featherman.dev/v1alpha1',
          kind: 'DuckLakePool',
          metadata: { name: 'default-pool', namespace: 'analytics', generation: 1 },
          spec: { catalogRef: { name: 'example' } },
        },
        [],
        [readyCatalog],
      ),
      ctx,
    ).children,
    ducklakebackups: [
      ...backupHooks.sync(syncRequest(backupObject, [], [readyCatalog]), ctx).children,
      ...backupHooks.finalize(
        syncRequest(
          {
            ...backupObject,
            spec: { ...backupObject.spec, deletionPolicy: 'Delete' as const },
            metadata: { ...backupObject.metadata, deletionTimestamp: '2026-11-24T12:10:00Z' },
          },
          [],
          [readyCatalog],
          [],
          true,
        ),
        ctx,
      ).children,
    ],
  };
  t.same(
    produced.ducklakebackups!.map((c) => c.kind),
    ['Job', 'Job'],
    'a backup produces its backup Job, and on delete its delete Job',
  );
  t.same(
    [...new Set(produced.ducklakepools!.map((c) => c.kind))].sort(),
    ['NetworkPolicy', 'Pod', 'PodDisruptionBudget', 'Service'],
    'the pool produces pods, a Service, a PodDisruptionBudget and a NetworkPolicy',
  );
  const plural: Record<string, string> = {
    Job: 'jobs',
    CronJob: 'cronjobs',
    PersistentVolumeClaim: 'persistentvolumeclaims',
    Pod: 'pods',
    Service: 'services',
    PodDisruptionBudget: 'poddisruptionbudgets',
    NetworkPolicy: 'networkpolicies',
  };
  // Metacontroller manages every declared child type for us, so its ClusterRole must cover each one.
  const metacontrollerRules = byKind('ClusterRole').find((r) => r.metadata.name === 'featherman-metacontroller')!.rules as {
    apiGroups: string[];
    resources: string[];
    verbs: string[];
  }[];
  for (const cc of controllers) {
    const resource = cc.spec.parentResource.resource as string;
    t.equal(cc.spec.parentResource.apiVersion, 'ducklake.featherman.dev/v1alpha1');
    t.equal(cc.spec.generateSelector, true);
    t.ok(HOOKS[resource], `the service has hooks for ${resource}`);
    const declared = new Set(
      (cc.spec.childResources as { apiVersion: string; resource: string }[]).map((r) => `${r.apiVersion} ${r.resource}`),
    );
    for (const child of produced[resource] ?? [])
      t.ok(
        declared.has(`${child.apiVersion} ${plural[child.kind]}`),
        `${resource}: ${child.apiVersion} ${child.kind} is declared with exactly that apiVersion`,
      );
    for (const child of cc.spec.childResources as { apiVersion: string; resource: string }[]) {
      const group = child.apiVersion.includes('/') ? child.apiVersion.split('/')[0]! : '';
      const verbs = new Set(
        metacontrollerRules.filter((r) => r.apiGroups.includes(group) && r.resources.includes(child.resource)).flatMap((r) => r.verbs),
      );
      t.ok(
        ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'].every((v) => verbs.has(v)),
        `${resource}: Metacontroller may manage ${child.resource} (${child.apiVersion})`,
      );
    }
    for (const hook of ['sync', 'finalize', 'customize']) {
      const h = cc.spec.hooks[hook];
      t.equal(h.version, 'v2', `${resource} ${hook} uses v2 hooks`);
      t.equal(new URL(h.webhook.url).pathname, `/hooks/${resource}/${hook}`, `${resource} ${hook} points at the served route`);
    }
  }
});

t.test("the listeners' ports agree between the Deployment, the Service, the NetworkPolicy, the hook URLs and the webhooks", async (t) => {
  const d = byKind('Deployment')[0];
  const c = d.spec.template.spec.containers[0];
  const containerPorts = Object.fromEntries((c.ports as { name: string; containerPort: number }[]).map((p) => [p.name, p.containerPort]));
  t.same(containerPorts, { http: 8080, hooks: 8081, https: 8443, postgres: 5432 }, 'four named container ports');
  const flag = (name: string) => Number(c.args[c.args.indexOf(name) + 1]);
  t.equal(flag('--port'), containerPorts.http, '--port is the http container port');
  t.equal(flag('--hooks-port'), containerPorts.hooks, '--hooks-port is the hooks container port');
  t.equal(flag('--tls-port'), containerPorts.https, '--tls-port is the https container port');
  const probePort = (p: { httpGet: { port: string | number } }) =>
    typeof p.httpGet.port === 'number' ? p.httpGet.port : containerPorts[p.httpGet.port];
  t.ok(
    [containerPorts.http, containerPorts.hooks].includes(probePort(c.readinessProbe)!),
    'the readiness probe asks a plain-HTTP listener',
  );
  t.ok([containerPorts.http, containerPorts.hooks].includes(probePort(c.livenessProbe)!), 'the liveness probe asks a plain-HTTP listener');

  const svc = byKind('Service').find((s) => s.metadata.name === 'featherman');
  const svcPorts = Object.fromEntries((svc.spec.ports as { name: string; port: number; targetPort: string }[]).map((p) => [p.name, p]));
  for (const name of ['http', 'hooks', 'https'])
    t.ok(containerPorts[svcPorts[name]?.targetPort as string], `Service port ${name} targets the container port of that name`);
  t.same(svc.spec.selector, d.spec.selector.matchLabels, "the Service selects the Deployment's pods");

  // Every hook URL goes to the Service's hooks port, and nothing else does.
  for (const cc of byKind('CompositeController')) {
    for (const hook of ['sync', 'finalize', 'customize']) {
      const url = new URL(cc.spec.hooks[hook].webhook.url);
      t.equal(url.protocol, 'http:');
      t.equal(url.hostname, `${svc.metadata.name}.${svc.metadata.namespace}`, 'the hooks go to the featherman Service');
      t.equal(Number(url.port), svcPorts.hooks!.port, `${cc.metadata.name} ${hook} calls the hooks port`);
    }
  }
  // The API server calls the webhooks on the Service's https port.
  for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
    for (const w of byKind(kind).flatMap((o) => o.webhooks)) {
      t.match(
        w.clientConfig.service,
        { name: svc.metadata.name, namespace: svc.metadata.namespace, port: svcPorts.https!.port },
        `${w.name} calls the https port`,
      );
      t.match(w.clientConfig.service.path, /^\/admission\//);
    }
  }

  // The NetworkPolicy selects the service's pods and has one rule per port.
  const policies = byKind('NetworkPolicy');
  t.equal(policies.length, 1);
  const np = policies[0];
  t.equal(np.metadata.namespace, d.metadata.namespace);
  t.same(np.spec.podSelector.matchLabels, d.spec.template.metadata.labels, "it selects the service's pods");
  t.same(np.spec.policyTypes, ['Ingress']);
  type Rule = {
    from?: { namespaceSelector?: { matchLabels?: Record<string, string> }; podSelector?: { matchLabels?: Record<string, string> } }[];
    ports: { port: string | number; protocol: string }[];
  };
  const rules = np.spec.ingress as Rule[];
  const ruleFor = (port: string) =>
    rules.filter((r) => r.ports.some((p) => (typeof p.port === 'number' ? p.port === containerPorts[port] : p.port === port)));
  for (const r of rules)
    for (const p of r.ports)
      t.ok(
        typeof p.port === 'number' ? Object.values(containerPorts).includes(p.port) : containerPorts[p.port],
        `port ${p.port} is a container port`,
      );
  t.same(rules.flatMap((r) => r.ports.map((p) => p.port)).sort(), ['hooks', 'http', 'https', 'postgres'], 'one rule per port');
  t.same(
    ruleFor('hooks')[0]!.from,
    [
      {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'metacontroller' } },
        podSelector: { matchLabels: { 'app.kubernetes.io/name': 'metacontroller' } },
      },
    ],
    "hooks: only Metacontroller's pods in its namespace (one peer with both selectors)",
  );
  const metacontrollerSubject = byKind('ClusterRoleBinding')
    .flatMap((b) => b.subjects)
    .find((s: { name: string }) => s.name === 'metacontroller');
  t.equal(metacontrollerSubject?.namespace, 'metacontroller', 'the namespace the RBAC grants Metacontroller in');
  t.equal(ruleFor('https')[0]!.from, undefined, 'https: from anywhere (the API server is not a pod)');
  t.same(ruleFor('http')[0]!.from, [{ namespaceSelector: {} }], 'http: any pod in the cluster');
  t.same(ruleFor('postgres')[0]!.from, [{ namespaceSelector: {} }], 'postgres: any pod in the cluster, as http');
});
