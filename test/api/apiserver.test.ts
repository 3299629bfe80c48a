// The CRDs checked by the Kubernetes API server's own code (k8s.io/apiextensions-apiserver, built
// from test/apiserver with Go): the CRDs are valid (structural, defaults, CEL compiles and fits
// the cost budget), the examples pass pruning + defaulting + OpenAPI + CEL, the CEL transition
// rules refuse every immutable change, and the API server's defaults equal the webhook's.
// Needs `go` (and the Go module proxy the first time); set FEATHERMAN_SKIP_APISERVER_CHECK=1 to skip.
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { crdFileName } from '../../lib/api/crds.js';
import { withDefaults } from '../../lib/api/defaults.js';
import { KIND_INFO, KINDS, type Kind } from '../../lib/api/schema.js';
import { clone, exampleFiles, readmeFixture, ROOT, yamlObjects, type Obj } from '../helpers/admission.js';

const hasGo = spawnSync('go', ['version']).status === 0;
if (process.env.FEATHERMAN_SKIP_APISERVER_CHECK === '1' || !hasGo) {
  t.skip(hasGo ? 'FEATHERMAN_SKIP_APISERVER_CHECK=1' : 'no go toolchain', () => {});
} else {
  const source = join(ROOT, 'test', 'apiserver');
  const binary = join(ROOT, '.cache', 'bin', 'apiserver-check');
  const newest = Math.max(...['main.go', 'go.mod', 'go.sum'].map((f) => statSync(join(source, f)).mtimeMs));
  if (!existsSync(binary) || statSync(binary).mtimeMs < newest) {
    mkdirSync(join(ROOT, '.cache', 'bin'), { recursive: true });
    execFileSync('go', ['build', '-o', binary, '.'], { cwd: source, stdio: 'inherit', timeout: 540_000 });
  }

  interface Case {
    name: string;
    kind: Kind;
    object: Obj;
    oldObject?: Obj;
    expect: RegExp | 'valid';
  }
  const edit = (o: Obj, change: (o: Obj) => void) => {
    const c = clone(o);
    change(c);
    return c;
  };
  const catalog = readmeFixture('catalog');
  const postgres = yamlObjects(join(ROOT, 'examples', 'catalog-postgres.yaml'))[0]!;
  const table = yamlObjects(join(ROOT, 'examples', 'users-table.yaml'))[0]!;
  const pool = readmeFixture('pool');
  const backup = yamlObjects(join(ROOT, 'examples', 'backup.yaml'))[0]!;
  const objects = [...exampleFiles().flatMap((f) => yamlObjects(f)), catalog, readmeFixture('table'), pool].filter((o) =>
    KINDS.includes(o.kind),
  );
  const cases: Case[] = [
    ...objects.map((o) => ({ name: `${o.kind} ${o.metadata.name} is valid`, kind: o.kind, object: o, expect: 'valid' as const })),
    ...objects.map((o) => ({
      name: `${o.kind} ${o.metadata.name} can be re-applied`,
      kind: o.kind,
      object: o,
      oldObject: o,
      expect: 'valid' as const,
    })),
    {
      name: 'bucket changed',
      kind: 'DuckLakeCatalog',
      oldObject: catalog,
      object: edit(catalog, (o) => {
        o.spec.objectStore.bucket = 'other-bucket';
      }),
      expect: /objectStore.bucket is immutable/,
    },
    {
      name: 'prefix added',
      kind: 'DuckLakeCatalog',
      oldObject: catalog,
      object: edit(catalog, (o) => {
        o.spec.objectStore.prefix = 'x';
      }),
      expect: /objectStore.prefix is immutable/,
    },
    {
      name: 'prefix changed',
      kind: 'DuckLakeCatalog',
      oldObject: postgres,
      object: edit(postgres, (o) => {
        o.spec.objectStore.prefix = 'x';
      }),
      expect: /objectStore.prefix is immutable/,
    },
    {
      name: 'metadata type changed',
      kind: 'DuckLakeCatalog',
      oldObject: catalog,
      object: edit(catalog, (o) => {
        o.spec.metadata = { type: 'postgres' };
      }),
      expect: /metadata.type is immutable/,
    },
    {
      name: 'metadata schema changed',
      kind: 'DuckLakeCatalog',
      oldObject: postgres,
      object: edit(postgres, (o) => {
        o.spec.metadata.schema = 'other';
      }),
      expect: /metadata.schema is immutable/,
    },
    {
      name: 'encryption turned on',
      kind: 'DuckLakeCatalog',
      oldObject: catalog,
      object: edit(catalog, (o) => {
        o.spec.encryption = { enabled: true };
      }),
      expect: /encryption.enabled is immutable/,
    },
    {
      name: 'encryption block removed',
      kind: 'DuckLakeCatalog',
      oldObject: postgres,
      object: edit(postgres, (o) => {
        delete o.spec.encryption;
      }),
      expect: /encryption.enabled is immutable/,
    },
    {
      name: 'storageClass changed',
      kind: 'DuckLakeCatalog',
      oldObject: catalog,
      object: edit(catalog, (o) => {
        o.spec.storageClass = 'fast';
      }),
      expect: /storageClass is immutable/,
    },
    {
      name: 'restoreFrom added',
      kind: 'DuckLakeCatalog',
      oldObject: catalog,
      object: edit(catalog, (o) => {
        o.spec.restoreFrom = { backup: 'latest' };
      }),
      expect: /restoreFrom can only be set when the catalog is created/,
    },
    {
      name: 'backup schedule changed',
      kind: 'DuckLakeCatalog',
      oldObject: catalog,
      object: edit(catalog, (o) => {
        o.spec.backupPolicy.schedule = '@hourly';
        o.spec.size = '20Gi';
      }),
      expect: 'valid',
    },
    {
      name: 'table name changed',
      kind: 'DuckLakeTable',
      oldObject: table,
      object: edit(table, (o) => {
        o.spec.name = 'people';
      }),
      expect: /name is immutable/,
    },
    {
      name: 'table schema changed',
      kind: 'DuckLakeTable',
      oldObject: table,
      object: edit(table, (o) => {
        o.spec.schema = 'crm';
      }),
      expect: /schema is immutable/,
    },
    {
      name: 'table catalogRef changed',
      kind: 'DuckLakeTable',
      oldObject: table,
      object: edit(table, (o) => {
        o.spec.catalogRef = 'other';
      }),
      expect: /catalogRef is immutable/,
    },
    {
      name: 'table column added',
      kind: 'DuckLakeTable',
      oldObject: table,
      object: edit(table, (o) => {
        o.spec.columns.push({ name: 'email', type: 'VARCHAR' });
      }),
      expect: 'valid',
    },
    {
      name: 'duplicate column',
      kind: 'DuckLakeTable',
      object: edit(table, (o) => {
        o.spec.columns.push({ name: 'id', type: 'VARCHAR' });
      }),
      expect: /Duplicate value/,
    },
    {
      name: 'pool minSize above maxSize',
      kind: 'DuckLakePool',
      object: edit(pool, (o) => {
        o.spec.minSize = 20;
      }),
      expect: /minSize must not be greater than maxSize/,
    },
    {
      name: 'pool unknown field',
      kind: 'DuckLakePool',
      object: edit(pool, (o) => {
        o.spec.lifecyclePolicies = {};
      }),
      expect: /unknown field/,
    },
    {
      name: 'bad bucket',
      kind: 'DuckLakeCatalog',
      object: edit(catalog, (o) => {
        o.spec.objectStore.bucket = 'Bad_Bucket';
      }),
      expect: /spec.objectStore.bucket/,
    },
    {
      name: 'bad deletionPolicy',
      kind: 'DuckLakeTable',
      object: edit(table, (o) => {
        o.spec.deletionPolicy = 'Destroy';
      }),
      expect: /Unsupported value: "Destroy"/,
    },
    {
      name: 'backup includeData changed',
      kind: 'DuckLakeBackup',
      oldObject: backup,
      object: edit(backup, (o) => {
        o.spec.includeData = false;
      }),
      expect: /spec is immutable: create a new DuckLakeBackup instead/,
    },
    {
      name: 'backup deletionPolicy changed',
      kind: 'DuckLakeBackup',
      oldObject: backup,
      object: edit(backup, (o) => {
        o.spec.deletionPolicy = 'Delete';
      }),
      expect: /spec is immutable/,
    },
    {
      name: 'backup catalogRef changed',
      kind: 'DuckLakeBackup',
      oldObject: backup,
      object: edit(backup, (o) => {
        o.spec.catalogRef = 'other';
      }),
      expect: /catalogRef is immutable/,
    },
    { name: 'backup re-applied unchanged', kind: 'DuckLakeBackup', oldObject: backup, object: clone(backup), expect: 'valid' },
    {
      name: 'restoreFrom.catalog added',
      kind: 'DuckLakeCatalog',
      oldObject: edit(catalog, (o) => {
        o.spec.restoreFrom = { backup: 'latest' };
      }),
      object: edit(catalog, (o) => {
        o.spec.restoreFrom = { backup: 'latest', catalog: 'old' };
      }),
      expect: /restoreFrom can only be set when the catalog is created/,
    },
    {
      name: 'a backup target and the maintenance fields',
      kind: 'DuckLakeCatalog',
      object: edit(catalog, (o) => {
        o.spec.backupPolicy.includeData = true;
        o.spec.backupPolicy.target = {
          bucket: 'lake-backups',
          prefix: 'x',
          endpoint: 'minio:9000',
          region: 'eu-west-1',
          urlStyle: 'path',
          credentialsSecret: { name: 'k' },
        };
        o.spec.maintenance = {
          schedule: '@weekly',
          maxCompactedFiles: 10,
          targetFileSize: '512Mi',
          rewriteDeleteThreshold: 0.5,
          rewriteDataFiles: true,
          flushInlinedData: false,
        };
      }),
      expect: 'valid',
    },
    {
      name: 'rewriteDeleteThreshold above 1',
      kind: 'DuckLakeCatalog',
      object: edit(catalog, (o) => {
        o.spec.maintenance = { schedule: '@weekly', rewriteDeleteThreshold: 2 };
      }),
      expect: /rewriteDeleteThreshold/,
    },
  ];
  const input = {
    crds: Object.fromEntries(KINDS.map((k) => [k, join(ROOT, 'crds', crdFileName(k))])),
    cases: cases.map(({ name, kind, object, oldObject }) => ({
      name,
      kind,
      object: clone(object),
      ...(oldObject ? { oldObject: clone(oldObject) } : {}),
    })),
  };
  const output = JSON.parse(execFileSync(binary, { input: JSON.stringify(input), maxBuffer: 64 << 20 }).toString()) as {
    crdErrors: Record<string, string[]>;
    results: { name: string; errors: string[]; defaulted?: Obj }[];
  };

  t.same(
    output.crdErrors,
    { DuckLakeCatalog: [], DuckLakeTable: [], DuckLakePool: [], DuckLakeBackup: [] },
    'the API server accepts the four CRDs (structural, CEL cost within budget)',
  );
  cases.forEach((c, i) => {
    const result = output.results[i]!;
    if (c.expect === 'valid') t.same(result.errors, [], c.name);
    else t.match(result.errors.join('\n'), c.expect, `${c.name}: refused by the API server`);
  });
  t.test('the API server and the webhook apply the same defaults', async (t) => {
    cases.forEach((c, i) => {
      if (c.oldObject || c.expect !== 'valid') return;
      t.same(output.results[i]!.defaulted!.spec, withDefaults(KIND_INFO[c.kind].spec, c.object.spec), c.name);
    });
  });
}
