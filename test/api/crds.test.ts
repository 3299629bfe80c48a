// The committed CRDs and webhook manifests are exactly what lib/api generates, and they have
// the shape the API needs: group, version, scope, names, status subresource, printer
// columns, CEL rules, and bounded strings and lists (the API server's CEL cost budget).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { crdFileName, generatedFiles, WEBHOOK_PATHS } from '../../lib/api/crds.js';
import { KINDS, type Schema } from '../../lib/api/schema.js';
import { buildServer } from '../../lib/server/server.js';
import { featherman } from '../helpers/cli.js';
import { ROOT, type Obj } from '../helpers/admission.js';

t.test('committed files match the generator (run `featherman crds` after editing lib/api/schema.ts)', async (t) => {
  for (const [rel, text] of Object.entries(generatedFiles())) {
    t.equal(readFileSync(join(ROOT, rel), 'utf8'), text, rel);
  }
  const check = await featherman(['crds', '--check', '--dir', ROOT], {});
  t.equal(check.code, 0, 'featherman crds --check agrees');
  t.same(check.json.stale, []);
});

t.test('featherman crds --check fails on drift', async (t) => {
  const dir = t.testdir({ crds: { [crdFileName('DuckLakeTable')]: 'stale' } });
  const res = await featherman(['crds', '--check', '--dir', dir], {});
  t.equal(res.code, 2);
  t.match(res.json.error, /out of date, run featherman crds: .*ducklaketables/);
});

const expected = {
  DuckLakeCatalog: {
    plural: 'ducklakecatalogs',
    short: 'dlc',
    columns: ['Phase', 'Ready', 'Bucket', 'Metadata', 'Tables', 'Rows', 'Bytes', 'Last Backup', 'Age'],
  },
  DuckLakeTable: { plural: 'ducklaketables', short: 'dlt', columns: ['Catalog', 'Table', 'Snapshot', 'Phase', 'Ready', 'Age'] },
  DuckLakePool: { plural: 'ducklakepools', short: 'dlp', columns: ['Min', 'Max', 'Current', 'Idle', 'Busy', 'Phase', 'Ready', 'Age'] },
  DuckLakeBackup: { plural: 'ducklakebackups', short: 'dlb', columns: ['Catalog', 'Phase', 'Backup', 'Snapshot', 'Bytes', 'Age'] },
};

function walk(schema: Schema, path: string, visit: (s: Schema, path: string) => void): void {
  visit(schema, path);
  for (const [k, v] of Object.entries(schema.properties ?? {})) walk(v, `${path}.${k}`, visit);
  if (schema.items) walk(schema.items, `${path}[]`, visit);
  if (typeof schema.additionalProperties === 'object') walk(schema.additionalProperties, `${path}{}`, visit);
}

for (const kind of KINDS) {
  t.test(`${kind} CRD`, async (t) => {
    const crd = parse(readFileSync(join(ROOT, 'crds', crdFileName(kind)), 'utf8')) as Obj;
    const e = expected[kind];
    t.equal(crd.apiVersion, 'apiextensions.k8s.io/v1');
    t.equal(crd.metadata.name, `${e.plural}.ducklake.featherman.dev`);
    t.equal(crd.spec.group, 'ducklake.featherman.dev');
    t.equal(crd.spec.scope, 'Namespaced');
    t.same(crd.spec.names.shortNames, [e.short]);
    t.same(crd.spec.names.categories, ['featherman']);
    t.equal(crd.spec.versions.length, 1);
    const v = crd.spec.versions[0];
    t.match(v, { name: 'v1alpha1', served: true, storage: true, subresources: { status: {} } });
    t.same(
      v.additionalPrinterColumns.map((c: Obj) => c.name),
      e.columns,
    );
    const readyColumn = v.additionalPrinterColumns.find((c: Obj) => c.name === 'Ready');
    if (readyColumn) t.equal(readyColumn.jsonPath, '.status.conditions[?(@.type=="Ready")].status');
    const schema = v.schema.openAPIV3Schema as Schema;
    t.same(schema.required, ['spec']);
    walk(schema, '', (s, path) => {
      if (path.startsWith('.metadata')) return;
      if (!s['x-kubernetes-int-or-string'] && !s['x-kubernetes-preserve-unknown-fields'])
        t.ok(s.type, `${path || '(root)'} has a type (structural)`);
      if (s.type === 'string' && !path.match(/^\.(apiVersion|kind)$/)) t.ok(s.maxLength, `${path} has a maxLength`);
      if (s.type === 'array') t.ok(s.maxItems, `${path} has maxItems`);
      t.not(s.additionalProperties, false, `${path}: no additionalProperties: false (not allowed in a structural schema)`);
    });
  });
}

t.test('immutability is also enforced by CEL transition rules', async (t) => {
  const rules = (kind: string) => readFileSync(join(ROOT, 'crds', crdFileName(kind as never)), 'utf8');
  t.match(rules('DuckLakeCatalog'), /rule: self.bucket == oldSelf.bucket/);
  t.match(rules('DuckLakeCatalog'), /message: objectStore.prefix is immutable/);
  t.match(rules('DuckLakeCatalog'), /message: metadata.type is immutable/);
  t.match(rules('DuckLakeCatalog'), /message: encryption.enabled is immutable/);
  for (const field of ['catalogRef', 'name', 'schema']) t.match(rules('DuckLakeTable'), new RegExp(`message: ${field} is immutable`));
  t.match(rules('DuckLakePool'), /self.minSize <= self.maxSize/);
  t.match(rules('DuckLakeBackup'), /message: "spec is immutable: create a new DuckLakeBackup instead"/);
  t.match(rules('DuckLakeBackup'), /message: catalogRef is immutable/);
  t.match(rules('DuckLakeCatalog'), /has\(self.restoreFrom.catalog\)/, 'restoreFrom.catalog is only honoured at creation too');
});

t.test('the catalog status declares lastBackup and lastMaintenance, field by field', async (t) => {
  const crd = parse(readFileSync(join(ROOT, 'crds', crdFileName('DuckLakeCatalog')), 'utf8')) as Obj;
  const status = crd.spec.versions[0].schema.openAPIV3Schema.properties.status.properties;
  t.same(Object.keys(status.lastBackup.properties), [
    'name',
    'time',
    'bytes',
    'durationSeconds',
    'snapshotId',
    'includeData',
    'outcome',
    'message',
    'attemptTime',
  ]);
  t.same(Object.keys(status.lastMaintenance.properties), [
    'time',
    'durationSeconds',
    'outcome',
    'message',
    'snapshotsExpired',
    'snapshotsKeptBack',
    'filesMerged',
    'filesRewritten',
    'filesDeleted',
    'bytesReclaimed',
    'filesKeptBack',
    'orphansDeleted',
    'attemptTime',
  ]);
  t.same(status.lastBackup.properties.outcome.enum, ['Succeeded', 'Failed']);
  t.ok(status.lastBackupTime && status.lastBackupName && status.lastMaintenanceTime, 'the older fields stay');
  const spec = crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties;
  t.same(Object.keys(spec.backupPolicy.properties.target.properties), [
    'bucket',
    'prefix',
    'endpoint',
    'region',
    'urlStyle',
    'credentialsSecret',
  ]);
  t.match(spec.maintenance.properties, {
    maxCompactedFiles: { default: 1000 },
    rewriteDeleteThreshold: { default: 0.95, minimum: 0, maximum: 1 },
    rewriteDataFiles: { default: true },
    flushInlinedData: { default: true },
  });
  t.equal(spec.backupPolicy.properties.includeData.default, false);
});

t.test('webhook configurations', async (t) => {
  const docs = parseAllDocuments(readFileSync(join(ROOT, 'metacontroller', 'webhooks.yaml'), 'utf8')).map((d) => d.toJS() as Obj);
  t.same(
    docs.map((d) => d.kind),
    ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration'],
  );
  const app = await buildServer({ plugins: ['admission'] });
  t.teardown(() => app.close());
  for (const doc of docs) {
    t.equal(doc.metadata.annotations['cert-manager.io/inject-ca-from'], 'featherman/featherman-webhook');
    t.equal(doc.webhooks.length, 1);
    const hook = doc.webhooks[0];
    t.match(hook, {
      failurePolicy: 'Fail',
      sideEffects: 'None',
      matchPolicy: 'Equivalent',
      timeoutSeconds: Number,
      admissionReviewVersions: ['v1'],
    });
    t.ok(hook.timeoutSeconds >= 1 && hook.timeoutSeconds <= 30);
    t.same(hook.rules, [
      {
        apiGroups: ['ducklake.featherman.dev'],
        apiVersions: ['v1alpha1'],
        resources: ['ducklakecatalogs', 'ducklaketables', 'ducklakepools', 'ducklakebackups'],
        operations: ['CREATE', 'UPDATE'],
        scope: 'Namespaced',
      },
    ]);
    const path = hook.clientConfig.service.path;
    t.equal(path, doc.kind === 'MutatingWebhookConfiguration' ? WEBHOOK_PATHS.mutate : WEBHOOK_PATHS.validate);
    t.ok(app.hasRoute({ method: 'POST', url: path }), `the server routes ${path}`);
  }
  const cert = parseAllDocuments(readFileSync(join(ROOT, 'metacontroller', 'certificate.yaml'), 'utf8')).map((d) => d.toJS() as Obj);
  const certificate = cert.find((d) => d.kind === 'Certificate')!;
  t.equal(
    `${certificate.metadata.namespace}/${certificate.metadata.name}`,
    'featherman/featherman-webhook',
    'the annotation names the Certificate',
  );
  t.ok(certificate.spec.dnsNames.includes('featherman.featherman.svc'), 'for the Service the webhooks call');
});
