// The TypeScript type of each kind's spec, derived from its schema in lib/api/schema.ts (the same
// objects the CRDs and the webhook's validator are built from), so a field is declared once.
// json-schema-to-ts works on types only: nothing here exists at run time.
import type { FromSchema } from 'json-schema-to-ts';
import type { backupSpec, catalogSpec, Kind, poolSpec, tableSpec } from './schema.js';

/**
 * A schema as a strict validator sees it (lib/api/schema-validator.ts strictSchema): an object with
 * declared properties has no others, unless it preserves unknown fields. The API server prunes
 * undeclared fields, so a stored spec has none; without this every object type would take any key.
 */
type Strict<S> = S extends { readonly properties: infer P }
  ? Omit<S, 'properties'> & { properties: { [K in keyof P]: Strict<P[K]> } } & (S extends {
        readonly 'x-kubernetes-preserve-unknown-fields': true;
      }
        ? unknown
        : { additionalProperties: false })
  : S extends { readonly items: infer I }
    ? Omit<S, 'items'> & { items: Strict<I> }
    : S;

interface Specs {
  DuckLakeCatalog: typeof catalogSpec;
  DuckLakeTable: typeof tableSpec;
  DuckLakePool: typeof poolSpec;
  DuckLakeBackup: typeof backupSpec;
}

/**
 * A kind's spec as the API server stores it: the schema's defaults applied (lib/api/defaults.ts
 * withDefaults does the same, e.g. SPEC_DEFAULTS), so a field with a default is present. Defaults
 * computed from other fields (a catalog's size and prefix) stay optional.
 */
export type SpecOf<K extends Kind> = FromSchema<Strict<Specs[K]>>;

/**
 * A spec as written, before defaults: a field with a default may be absent. The hooks type their
 * parents with it: the API server defaults what they get, but they also take specs it has not (the
 * tests' objects) and fall back on SPEC_DEFAULTS.
 */
export type WrittenSpec<K extends Kind> = FromSchema<Strict<Specs[K]>, { keepDefaultedPropertiesOptional: true }>;

export type CatalogSpec = SpecOf<'DuckLakeCatalog'>;
export type TableSpec = SpecOf<'DuckLakeTable'>;
export type PoolSpec = SpecOf<'DuckLakePool'>;
export type BackupSpec = SpecOf<'DuckLakeBackup'>;
