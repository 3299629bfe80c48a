// Smoke test of the e2e test cluster itself (test/helpers/cluster.ts): the API server stores
// and serves CRDs, namespaces and ConfigMaps; the real Job controller creates a Job's Pod (it
// stays Pending: there is no kubelet here); the real garbage collector removes that Pod when
// the Job is deleted with foreground propagation; a validating webhook served from this process
// over TLS on 127.0.0.1 (clientConfig.url + caBundle) is called by the API server.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterBinariesMissing, startCluster, type Cluster, type KubectlResult } from '../helpers/cluster.js';

const missing = clusterBinariesMissing();
if (missing) {
  t.skip(`the test cluster is not built: ${missing}`, () => {});
} else {
  const started = Date.now();
  const cluster: Cluster = await startCluster();
  t.teardown(() => cluster.stop());
  t.comment(`cluster up in ${((Date.now() - started) / 1000).toFixed(1)} s at ${cluster.server}`);
  const kubectl = cluster.kubectl;
  const ok = (r: KubectlResult, what: string) => {
    if (r.code !== 0) throw new Error(`${what} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  };
  const json = async <T>(args: string[]): Promise<T> => JSON.parse(ok(await kubectl([...args, '-o', 'json']), args.join(' '))) as T;
  /** Polls until `check` returns a value, up to `ms`. */
  const eventually = async <T>(what: string, ms: number, check: () => Promise<T | undefined>): Promise<T> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await check();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  interface Obj {
    metadata: {
      name: string;
      uid: string;
      labels?: Record<string, string>;
      ownerReferences?: { kind: string; name: string; uid: string }[];
    };
    spec?: Record<string, unknown>;
    status?: Record<string, unknown>;
    data?: Record<string, string>;
  }

  await t.test('the API server is a real one', async (t) => {
    const v = await json<{ serverVersion: { gitVersion: string } }>(['version']);
    t.match(v.serverVersion.gitVersion, /^v1\.\d+\.\d+$/);
    t.equal(ok(await kubectl(['get', '--raw=/readyz']), 'readyz'), 'ok');
  });

  await t.test('apply and read back a CRD, a namespace and a ConfigMap', async (t) => {
    const crd = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.smoke.featherman.dev
spec:
  group: smoke.featherman.dev
  scope: Namespaced
  names: { plural: widgets, singular: widget, kind: Widget }
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: { type: integer, minimum: 1 }
`;
    ok(await kubectl(['apply', '-f', '-'], crd), 'apply crd');
    ok(await kubectl(['wait', '--for=condition=Established', '--timeout=30s', 'crd/widgets.smoke.featherman.dev']), 'wait established');
    ok(
      await kubectl(
        ['apply', '-f', '-'],
        `apiVersion: v1
kind: Namespace
metadata: { name: smoke }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: settings, namespace: smoke }
data: { greeting: hello }
`,
      ),
      'apply namespace and configmap',
    );
    const cm = await json<Obj>(['get', 'configmap', 'settings', '-n', 'smoke']);
    t.same(cm.data, { greeting: 'hello' });
    t.equal((await json<{ status: { phase: string } }>(['get', 'namespace', 'smoke'])).status.phase, 'Active');

    // The CRD's schema is enforced by the API server: a valid Widget is stored, an invalid one refused.
    ok(
      await kubectl(
        ['apply', '-f', '-'],
        'apiVersion: smoke.featherman.dev/v1\nkind: Widget\nmetadata: { name: w1, namespace: smoke }\nspec: { size: 3 }\n',
      ),
      'apply widget',
    );
    t.equal((await json<Obj>(['get', 'widget', 'w1', '-n', 'smoke'])).spec?.size, 3);
    const bad = await kubectl(
      ['apply', '-f', '-'],
      'apiVersion: smoke.featherman.dev/v1\nkind: Widget\nmetadata: { name: w2, namespace: smoke }\nspec: { size: 0 }\n',
    );
    t.not(bad.code, 0);
    t.match(bad.stderr, /spec\.size/);
  });

  await t.test('the Job controller creates a Pod; the garbage collector removes it', async (t) => {
    ok(
      await kubectl(
        ['apply', '-f', '-'],
        `apiVersion: batch/v1
kind: Job
metadata: { name: hello, namespace: smoke }
spec:
  backoffLimit: 0
  template:
    metadata:
      labels: { app.kubernetes.io/name: smoke-hello }
    spec:
      restartPolicy: Never
      containers:
      - { name: main, image: featherman:e2e, command: ["true"] }
`,
      ),
      'apply job',
    );
    const job = await json<Obj>(['get', 'job', 'hello', '-n', 'smoke']);
    const pod = await eventually("the Job's pod", 30_000, async () => {
      const list = await json<{ items: Obj[] }>(['get', 'pods', '-n', 'smoke', '-l', `batch.kubernetes.io/job-name=hello`]);
      return list.items[0];
    });
    t.equal(pod.metadata.labels?.['app.kubernetes.io/name'], 'smoke-hello', "the template's labels");
    t.equal(pod.metadata.labels?.['batch.kubernetes.io/controller-uid'], job.metadata.uid, "the Job controller's labels");
    t.match(pod.metadata.ownerReferences, [{ kind: 'Job', name: 'hello', uid: job.metadata.uid }]);
    t.equal(pod.status?.phase, 'Pending', 'no kubelet, so it stays Pending');

    ok(await kubectl(['delete', 'job', 'hello', '-n', 'smoke', '--cascade=foreground', '--wait=true', '--timeout=60s']), 'delete job');
    await eventually('the pod to be garbage-collected', 60_000, async () => {
      const r = await kubectl(['get', 'pod', pod.metadata.name, '-n', 'smoke', '-o', 'name']);
      return r.code !== 0 && /NotFound/.test(r.stderr) ? true : undefined;
    });
    t.pass('the pod is gone');
  });

  await t.test('an admission webhook at https://127.0.0.1 is called', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'fm-webhook-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const r = spawnSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        'tls.key',
        '-out',
        'tls.crt',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { cwd: dir, encoding: 'utf8' },
    );
    t.equal(r.status, 0, `openssl made a serving certificate ${r.stderr}`);
    const cert = readFileSync(join(dir, 'tls.crt'));
    let calls = 0;
    const server = createServer({ key: readFileSync(join(dir, 'tls.key')), cert }, (req, res) => {
      const body: Buffer[] = [];
      req.on('data', (b: Buffer) => body.push(b));
      req.on('end', () => {
        calls++;
        const review = JSON.parse(Buffer.concat(body).toString('utf8')) as { request: { uid: string; object: Obj } };
        const denied = review.request.object.data?.forbidden !== undefined;
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            apiVersion: 'admission.k8s.io/v1',
            kind: 'AdmissionReview',
            response: {
              uid: review.request.uid,
              allowed: !denied,
              ...(denied ? { status: { code: 422, message: 'smoke webhook: "forbidden" is not allowed' } } : {}),
            },
          }),
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const port = (server.address() as { port: number }).port;
    ok(
      await kubectl(
        ['apply', '-f', '-'],
        `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: { name: smoke-webhook }
webhooks:
- name: configmaps.smoke.featherman.dev
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  timeoutSeconds: 5
  clientConfig:
    url: https://127.0.0.1:${port}/validate
    caBundle: ${cert.toString('base64')}
  namespaceSelector: { matchLabels: { kubernetes.io/metadata.name: smoke } }
  rules:
  - { apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [configmaps], scope: Namespaced }
`,
      ),
      'apply webhook configuration',
    );
    // The configuration takes effect asynchronously; retry until the webhook has been consulted.
    const refused = await eventually('the webhook to refuse', 30_000, async () => {
      const res = await kubectl(['create', 'configmap', 'nope', '-n', 'smoke', '--from-literal=forbidden=1']);
      if (res.code === 0) {
        await kubectl(['delete', 'configmap', 'nope', '-n', 'smoke']);
        return undefined;
      }
      return res;
    });
    t.match(refused.stderr, /smoke webhook: "forbidden" is not allowed/);
    ok(await kubectl(['create', 'configmap', 'fine', '-n', 'smoke', '--from-literal=ok=1']), 'allowed configmap');
    t.ok(calls >= 2, 'the webhook was called');
    ok(await kubectl(['delete', 'validatingwebhookconfiguration', 'smoke-webhook']), 'delete webhook configuration');
  });

  await t.test('namespace deletion (namespace controller)', async (t) => {
    ok(await kubectl(['delete', 'namespace', 'smoke', '--wait=true', '--timeout=60s']), 'delete namespace');
    const r = await kubectl(['get', 'namespace', 'smoke']);
    t.match(r.stderr, /NotFound/);
  });
}
