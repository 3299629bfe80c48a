// Hook requests come from outside: a status, Job or pod in a request that is not what our hooks or
// Kubernetes write (a conditions object instead of a list, strings for numbers) gets an answer,
// never a 500; a DuckLakeBackup spec that breaks the API's rules gets a 400 naming the field.
import t from 'tap';
import { buildServer } from '../../lib/server/server.js';

const app = await buildServer({ plugins: ['hooks'] });
t.teardown(() => app.close());

const backup = (extra: object = {}, meta: object = {}) => ({
  apiVersion: 'ducklake.featherman.dev/v1alpha1',
  kind: 'DuckLakeBackup',
  metadata: { name: 'b', namespace: 'default', ...meta },
  spec: { catalogRef: 'example' },
  ...extra,
});
const catalog = (status: object) => ({
  apiVersion: 'ducklake.featherman.dev/v1alpha1',
  kind: 'DuckLakeCatalog',
  metadata: { name: 'example', namespace: 'default' },
  spec: { objectStore: { bucket: 'lake' } },
  status,
});
const CATALOG_KEY = 'DuckLakeCatalog.ducklake.featherman.dev/v1alpha1';

const cases: [string, Record<string, unknown>][] = [
  [
    'a backup whose status conditions are an object',
    { parent: backup({ status: { phase: 'Completed', backupName: 'x', conditions: { type: 'Ready' } } }) },
  ],
  ['a backup whose status conditions are not conditions', { parent: backup({ status: { conditions: ['x', 1, null] } }) }],
  [
    'a backup with a creationTimestamp that is no time, and a number for a uid',
    { parent: backup({}, { creationTimestamp: 'yesterday', uid: 5 }) },
  ],
  [
    'a related catalog whose spec is a string',
    {
      parent: backup(),
      related: {
        [CATALOG_KEY]: {
          'default/example': { apiVersion: 'x', kind: 'DuckLakeCatalog', metadata: { name: 'example' }, spec: 'nope', status: 'x' },
        },
      },
    },
  ],
  [
    'a related catalog without a spec',
    {
      parent: backup(),
      related: {
        [CATALOG_KEY]: {
          'default/example': { apiVersion: 'x', kind: 'DuckLakeCatalog', metadata: { name: 'example' }, status: { phase: 'Ready' } },
        },
      },
    },
  ],
  [
    'a Job whose conditions are a string',
    {
      parent: backup(),
      children: {
        'Job.batch/v1': {
          'default/b-backup': {
            apiVersion: 'batch/v1',
            kind: 'Job',
            metadata: { name: 'b-backup' },
            status: { conditions: 'Complete', startTime: 5, failed: 'many' },
          },
        },
      },
    },
  ],
  [
    'a pod whose containerStatuses are a string',
    {
      parent: backup(),
      related: {
        'Pod.v1': {
          'default/p': {
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: { name: 'p', labels: { 'job-name': 'b-backup' } },
            status: { containerStatuses: 'x' },
          },
        },
      },
    },
  ],
  [
    'a pod whose terminated state is a string',
    {
      parent: backup(),
      related: {
        'Pod.v1': {
          'default/p': {
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: { name: 'p', labels: { 'job-name': 'b-backup' } },
            status: { containerStatuses: [{ name: 'featherman', state: { terminated: 'yes' } }] },
          },
        },
      },
    },
  ],
  [
    'a catalog whose lastBackup, lastMaintenance and conditions are not ours',
    { parent: catalog({ lastBackup: 'x', lastMaintenance: [1], conditions: {} }) },
  ],
  [
    'a catalog with a backup pod whose summary is a list',
    {
      parent: catalog({ phase: 'Ready' }),
      related: {
        'Pod.v1': {
          'default/p': {
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: {
              name: 'p',
              labels: { 'ducklake.featherman.dev/catalog': 'example', 'app.kubernetes.io/component': 'catalog-backup' },
            },
            status: {
              containerStatuses: [{ name: 'featherman', state: { terminated: { exitCode: 0, message: '[1,2]', finishedAt: 7 } } }],
            },
          },
        },
      },
    },
  ],
  [
    'a table whose status conditions are an object',
    {
      parent: {
        apiVersion: 'ducklake.featherman.dev/v1alpha1',
        kind: 'DuckLakeTable',
        metadata: { name: 't', namespace: 'default' },
        spec: { catalogRef: 'example', name: 't', columns: [{ name: 'id', type: 'INTEGER' }] },
        status: { conditions: { type: 'Ready' } },
      },
    },
  ],
];

const PLURALS: Record<string, string> = {
  DuckLakeCatalog: 'ducklakecatalogs',
  DuckLakeBackup: 'ducklakebackups',
  DuckLakeTable: 'ducklaketables',
};
for (const [name, body] of cases) {
  const plural = PLURALS[(body.parent as { kind: string }).kind]!;
  for (const hook of ['sync', 'finalize', 'customize']) {
    const res = await app.inject({ method: 'POST', url: `/hooks/${plural}/${hook}`, payload: body });
    t.equal(res.statusCode, 200, `${name}: ${hook} answers (${res.body.slice(0, 160)})`);
  }
}

t.test('a DuckLakeBackup spec that bypassed admission: 400 naming the field', async (t) => {
  for (const [spec, field] of [
    [{}, /spec\.catalogRef: is required/],
    [{ catalogRef: 'example', deletionPolicy: 'Archive' }, /spec\.deletionPolicy/],
    [{ catalogRef: 'Not A Name' }, /spec\.catalogRef/],
  ] as const) {
    const res = await app.inject({ method: 'POST', url: '/hooks/ducklakebackups/sync', payload: { parent: { ...backup(), spec } } });
    t.equal(res.statusCode, 400);
    t.match(res.json().message, field);
  }
});

t.test('what a status cannot hold (a time that is no string) stays out of it', async (t) => {
  const res = await app.inject({
    method: 'POST',
    url: '/hooks/ducklakebackups/sync',
    payload: {
      parent: backup(),
      children: {
        'Job.batch/v1': {
          'default/b-backup': { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'b-backup' }, status: { active: 1, startTime: 5 } },
        },
      },
    },
  });
  t.equal(res.statusCode, 200);
  t.match(res.json().status, { phase: 'Running' });
  t.notOk('startedAt' in res.json().status, 'no startedAt from a number');
  const pod = await app.inject({
    method: 'POST',
    url: '/hooks/ducklakecatalogs/sync',
    payload: {
      parent: catalog({ phase: 'Ready' }),
      related: {
        'Pod.v1': {
          'default/p': {
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: {
              name: 'p',
              labels: { 'ducklake.featherman.dev/catalog': 'example', 'app.kubernetes.io/component': 'catalog-maintenance' },
            },
            status: {
              containerStatuses: [
                {
                  name: 'featherman',
                  state: {
                    terminated: {
                      exitCode: 0,
                      message: '{"ok":true,"command":"maintain","finishedAt":7,"filesMerged":"many"}',
                      finishedAt: 7,
                    },
                  },
                },
              ],
            },
          },
        },
      },
    },
  });
  t.equal(pod.statusCode, 200);
  t.same(pod.json().status.lastMaintenance, { outcome: 'Succeeded' }, 'no time or figure that is not one');
});
