// The small parsers behind admission: quantities, cron schedules, endpoints, defaults and patches.
import t from 'tap';
import { cronScheduleProblem } from '../../lib/api/cron.js';
import { defaultsPatch, diff, withDefaults } from '../../lib/api/defaults.js';
import { endpointProblem, parseEndpoint } from '../../lib/api/endpoint.js';
import { GIBIBYTE, parseQuantity } from '../../lib/api/quantity.js';
import { KIND_INFO } from '../../lib/api/schema.js';
import { fieldPath } from '../../lib/api/schema-validator.js';
import { applyPatch } from '../helpers/admission.js';

t.test('quantities', async (t) => {
  const cases: [unknown, number | undefined][] = [
    ['1Gi', GIBIBYTE],
    ['10Gi', 10 * GIBIBYTE],
    ['1024Mi', GIBIBYTE],
    ['500Mi', 500 * 2 ** 20],
    ['1G', 1e9],
    ['1.5Gi', 1.5 * GIBIBYTE],
    ['2', 2],
    ['500m', 0.5],
    ['1n', 1e-9],
    ['1u', 1e-6],
    ['1e3', 1000],
    ['1E-2', 0.01],
    ['.5', 0.5],
    ['+1Ki', 1024],
    ['-1', -1],
    [4, 4],
    ['1.Ti', 2 ** 40],
    ['', undefined],
    ['Gi', undefined],
    ['1GiB', undefined],
    ['1 Gi', undefined],
    ['ten', undefined],
    ['1gi', undefined],
    ['0x10', undefined],
    [null, undefined],
    [{}, undefined],
    [Infinity, undefined],
    ['1e999', undefined],
  ];
  for (const [text, value] of cases) t.equal(parseQuantity(text), value, `${JSON.stringify(text)} → ${value}`);
  t.ok(parseQuantity('1Gi')! >= GIBIBYTE && parseQuantity('1000Mi')! < GIBIBYTE, '1000Mi is below 1Gi, 1Gi is not');
});

t.test('cron schedules as Kubernetes CronJobs take them', async (t) => {
  for (const ok of [
    '0 2 * * *',
    '*/15 * * * *',
    '0 9 * * MON-FRI',
    '0 0 1 JAN,JUL *',
    '0 0 * * 0',
    '0 0 ? * 1-5',
    '5 4 * * sun',
    '@daily',
    '@hourly',
    '@yearly',
    '@midnight',
    '  0 2 * * *  ',
  ]) {
    t.equal(cronScheduleProblem(ok), undefined, `${JSON.stringify(ok)} is accepted`);
  }
  const bad: [string, RegExp][] = [
    ['', /must be a cron schedule/],
    ['0 2 * *', /has 4 fields/],
    ['0 0 2 * * *', /has 6 fields/],
    ['@every 5m', /not a supported macro/],
    ['@reboot', /not a supported macro/],
    ['0 0 L * *', /not allowed here/],
    ['0 0 * * 5#3', /character/],
    ['H * * * *', /not allowed here/],
    ['0 0 * * 7', /days are 0-6/],
    ['0 0 * * 1-7', /days are 0-6/],
    ['60 * * * *', /not a valid cron schedule/],
    ['0 24 * * *', /not a valid cron schedule/],
    ['0 0 32 * *', /not a valid cron schedule/],
    ['0 0 * 13 *', /not a valid cron schedule/],
    ['0 0 * MON *', /not allowed here/],
    ['TZ=UTC 0 2 * * *', /time zones/],
    ['0 0 31 2 *', /not a valid cron schedule/],
    ['*/0 * * * *', /not a valid cron schedule/],
  ];
  for (const [text, message] of bad) t.match(cronScheduleProblem(text), message, `${JSON.stringify(text)} is refused`);
});

t.test('object store endpoints', async (t) => {
  t.same(parseEndpoint('s3.amazonaws.com'), { host: 's3.amazonaws.com', useSsl: true });
  t.same(parseEndpoint('minio:9000'), { host: 'minio:9000', useSsl: true });
  t.same(parseEndpoint('http://minio.storage.svc:9000'), { host: 'minio.storage.svc:9000', useSsl: false });
  t.same(parseEndpoint('HTTPS://S3.example.com/'), { host: 'S3.example.com', useSsl: true });
  t.same(parseEndpoint('https://[::1]:9000'), { host: '[::1]:9000', useSsl: true });
  t.same(parseEndpoint('10.0.0.5:9000'), { host: '10.0.0.5:9000', useSsl: true });
  for (const [text, message] of [
    ['ftp://minio', /only http:\/\/ and https:\/\//],
    ['http://a:b@minio', /credentials/],
    ['minio:0', /port 0/],
    ['minio:70000', /port 70000/],
    ['http://minio:9000/bucket', /must not have a path/],
    ['mi nio', /not a host/],
    ['-minio', /not a host/],
    ['', /host, host:port/],
  ] as const) {
    t.match(endpointProblem(text), message, `${JSON.stringify(text)} is refused`);
  }
});

t.test('defaults follow the API server: absent or null fields, then nested defaults inside them', async (t) => {
  const spec = withDefaults(KIND_INFO.DuckLakePool.spec, { catalogRef: { name: 'c' }, queue: null, minSize: 0 }) as Record<string, any>;
  t.match(spec.queue, { maxLength: 100, maxWaitTime: '30s' }, 'null replaced, then nested defaults applied');
  t.equal(spec.minSize, 0, 'a given 0 is kept');
  t.equal(spec.catalogRef.readOnly, true);
  const table = withDefaults(KIND_INFO.DuckLakeTable.spec, {
    columns: [
      { name: 'a', type: 'INT' },
      { name: 'b', type: 'INT', nullable: false },
    ],
  }) as Record<string, any>;
  t.same(
    table.columns.map((c: { nullable: boolean }) => c.nullable),
    [true, false],
    'list items are defaulted one by one',
  );
  t.same(table.format, { compression: 'ZSTD' });
});

t.test('a backup target without a prefix gets the layout backups have beside the data', async (t) => {
  const object = {
    apiVersion: 'ducklake.featherman.dev/v1alpha1',
    kind: 'DuckLakeCatalog',
    metadata: { name: 'example', namespace: 'analytics' },
    spec: { objectStore: { bucket: 'lake' }, backupPolicy: { schedule: '@daily', target: { bucket: 'lake-backups' } } },
  };
  const { patch } = defaultsPatch('DuckLakeCatalog', object, { operation: 'CREATE', name: 'example', namespace: 'analytics' });
  const stored = applyPatch(object, patch) as any;
  t.equal(stored.spec.objectStore.prefix, 'analytics/example');
  t.same(stored.spec.backupPolicy, {
    schedule: '@daily',
    retentionDays: 7,
    includeData: false,
    target: { bucket: 'lake-backups', prefix: 'analytics/example/backups' },
  });
  const withPrefix = {
    ...object,
    spec: { objectStore: { bucket: 'lake', prefix: 'p' }, backupPolicy: { schedule: '@daily', target: { bucket: 'b', prefix: '' } } },
  };
  const given = applyPatch(withPrefix, defaultsPatch('DuckLakeCatalog', withPrefix, { operation: 'UPDATE' }).patch) as any;
  t.equal(given.spec.backupPolicy.target.prefix, '', 'a prefix given (even empty) is kept');
  const maintenance = withDefaults(KIND_INFO.DuckLakeCatalog.spec, {
    objectStore: { bucket: 'lake' },
    maintenance: { schedule: '@weekly' },
  }) as Record<string, any>;
  t.match(maintenance.maintenance, {
    maxCompactedFiles: 1000,
    rewriteDeleteThreshold: 0.95,
    rewriteDataFiles: true,
    flushInlinedData: true,
  });
  t.notOk('targetFileSize' in maintenance.maintenance, "targetFileSize has no default: DuckLake's own applies");
  t.same(
    withDefaults(KIND_INFO.DuckLakeBackup.spec, { catalogRef: 'example' }),
    { catalogRef: 'example', deletionPolicy: 'Retain' },
    "a backup's includeData stays unset: the catalog decides",
  );
});

t.test('diff produces a patch that reproduces the change', async (t) => {
  const before = { a: 1, b: { c: [1, { d: 2 }] }, 'x/y': { '~z': 1 }, gone: true };
  const after = { a: 2, b: { c: [1, { d: 2, e: 3 }] }, 'x/y': { '~z': 1, w: 0 }, added: { n: null } };
  const ops = diff(before, after);
  t.same(ops, [
    { op: 'remove', path: '/gone' },
    { op: 'replace', path: '/a', value: 2 },
    { op: 'add', path: '/b/c/1/e', value: 3 },
    { op: 'add', path: '/x~1y/w', value: 0 },
    { op: 'add', path: '/added', value: { n: null } },
  ]);
  t.same(applyPatch(before, ops), after);
  t.same(
    diff({ a: [1, 2] }, { a: [1, 2, 3] }),
    [{ op: 'replace', path: '/a', value: [1, 2, 3] }],
    'lists of another length are replaced whole',
  );
  t.same(defaultsPatch('DuckLakeTable', { spec: 'not an object' }), { patch: [], warnings: [] }, 'nothing to default in a broken spec');
});

t.test("field paths read like kubectl's", async (t) => {
  const root = { spec: { columns: [{ name: 'a' }], template: { nodeSelector: { 'kubernetes.io/os': 'linux' } } } };
  t.equal(fieldPath('/spec/columns/0/name', root), 'spec.columns[0].name');
  t.equal(fieldPath('/spec/template/nodeSelector/kubernetes.io~1os', root), 'spec.template.nodeSelector["kubernetes.io/os"]');
});
