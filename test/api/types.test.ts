// The spec types and the defaults the code falls back on come from the one schema: SPEC_DEFAULTS
// holds exactly the `default` keywords of the committed CRDs, a defaulted spec passes the
// webhook's own checks, and the derived types refuse what the schema refuses (checked by tsc,
// which `npm run check` runs over the tests: an @ts-expect-error that no longer errs fails it).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { crdFileName } from '../../lib/api/crds.js';
import { SPEC_DEFAULTS, withDefaults } from '../../lib/api/defaults.js';
import { KIND_INFO, type Kind } from '../../lib/api/schema.js';
import type { CatalogSpec, PoolSpec, TableSpec, WrittenSpec } from '../../lib/api/types.js';
import { validateSpec } from '../../lib/api/validate.js';
import { ROOT } from '../helpers/admission.js';

type Obj = Record<string, unknown>;

/** Every `default` under a CRD's spec schema, by path: "queue.maxLength" → 100. */
function crdDefaults(kind: Kind): Map<string, unknown> {
  const crd = parse(readFileSync(join(ROOT, 'crds', crdFileName(kind)), 'utf8')) as Obj;
  const versions = (crd.spec as { versions: { schema: { openAPIV3Schema: Obj } }[] }).versions;
  const found = new Map<string, unknown>();
  const walk = (schema: Obj, path: string) => {
    if (schema.default !== undefined && path) found.set(path, schema.default);
    for (const [key, child] of Object.entries((schema.properties ?? {}) as Record<string, Obj>)) walk(child, path ? `${path}.${key}` : key);
    if (schema.items) walk(schema.items as Obj, `${path}[]`);
  };
  walk((versions[0]!.schema.openAPIV3Schema.properties as Record<string, Obj>).spec!, '');
  return found;
}

/** The leaf values of SPEC_DEFAULTS by path, skipping the required fields it was built around. */
function leaves(value: unknown, path: string, out: Map<string, unknown>): Map<string, unknown> {
  if (Array.isArray(value)) value.forEach((item) => leaves(item, `${path}[]`, out));
  else if (value && typeof value === 'object' && Object.keys(value).length > 0)
    for (const [key, child] of Object.entries(value)) leaves(child, path ? `${path}.${key}` : key, out);
  else out.set(path, value);
  return out;
}

t.test('SPEC_DEFAULTS are the CRD defaults, every one of them', async (t) => {
  const cases: [Kind, unknown][] = [
    ['DuckLakeCatalog', SPEC_DEFAULTS.catalog],
    ['DuckLakeTable', SPEC_DEFAULTS.table],
    ['DuckLakePool', SPEC_DEFAULTS.pool],
    ['DuckLakeBackup', SPEC_DEFAULTS.backup],
  ];
  for (const [kind, defaults] of cases) {
    const fromCrd = [...crdDefaults(kind)].filter(([, v]) => !(v && typeof v === 'object' && Object.keys(v).length === 0));
    const ours = leaves(defaults, '', new Map());
    for (const [path, value] of fromCrd) t.same(ours.get(path), value, `${kind} ${path}`);
    t.ok(fromCrd.length > 0, `${kind} has defaults to compare`);
  }
  t.equal(SPEC_DEFAULTS.pool.maxSize, 10);
  t.equal(SPEC_DEFAULTS.pool.queue.maxWaitTime, '30s');
  t.equal(SPEC_DEFAULTS.catalog.metadata.type, 'duckdb');
  t.equal(SPEC_DEFAULTS.table.schema, 'main');
});

t.test('a spec with its defaults applied has the derived type and passes the webhook', async (t) => {
  const written: WrittenSpec<'DuckLakePool'> = { catalogRef: { name: 'lake' }, minSize: 0 };
  const pool = withDefaults(KIND_INFO.DuckLakePool.spec, written) as PoolSpec;
  t.equal(pool.queue.maxLength, 100, 'a nested default is present');
  t.equal(pool.catalogRef.readOnly, true);
  t.equal(pool.minSize, 0, 'a value given is kept');
  t.same(validateSpec('DuckLakePool', pool).problems, []);

  const table: TableSpec = SPEC_DEFAULTS.table;
  t.equal(table.format.compression, 'ZSTD');
  const catalog: CatalogSpec = SPEC_DEFAULTS.catalog;
  t.equal(catalog.maintenance?.cleanupOlderThan, '1h');

  // Compile-time checks: each line below must be a type error.
  // @ts-expect-error a field the schema does not declare
  t.equal(pool.minReplicas, undefined);
  // @ts-expect-error a value outside the schema's enum
  const badCompression: TableSpec['format']['compression'] = 'XZ';
  t.equal(badCompression, 'XZ');
  // @ts-expect-error a required field (catalogRef) is missing
  const noCatalog: WrittenSpec<'DuckLakePool'> = { minSize: 1 };
  t.ok(noCatalog);
});
