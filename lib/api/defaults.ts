// Defaults for the mutating webhook. The static ones come from the `default` keywords in
// lib/api/schema.ts and are applied the way the API server applies CRD defaults (absent or null
// fields get the default, then nested defaults apply inside it), so an object looks the same
// whether the webhook or the API server defaulted it. A few defaults depend on other fields and
// are computed below. The result is a JSON Patch against the incoming object.
import { backupSpec, catalogSpec, KIND_INFO, poolSpec, tableSpec, type Kind, type Schema } from './schema.js';
import type { BackupSpec, CatalogSpec, PoolSpec, TableSpec } from './types.js';

export type PatchOp =
  { op: 'add'; path: string; value: unknown } | { op: 'replace'; path: string; value: unknown } | { op: 'remove'; path: string };

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A copy of `value` with the schema's defaults filled in. */
export function withDefaults(schema: Schema, value: unknown): unknown {
  if (Array.isArray(value)) return schema.items ? value.map((item) => withDefaults(schema.items!, item)) : value;
  if (!isObj(value)) return value;
  const out: Obj = { ...value };
  for (const [key, prop] of Object.entries(schema.properties ?? {})) {
    if (prop.default !== undefined && (out[key] === undefined || out[key] === null)) out[key] = structuredClone(prop.default);
  }
  for (const [key, child] of Object.entries(out)) {
    const prop = schema.properties?.[key] ?? (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined);
    if (prop) out[key] = withDefaults(prop, child);
  }
  return out;
}

/**
 * Every static default of each spec, read from the schema: withDefaults over a spec with only its
 * required fields (and the optional objects whose fields have defaults). Code that may see a spec
 * the API server has not defaulted (a test's object, a file given to the CLI) falls back on these.
 */
export const SPEC_DEFAULTS = {
  catalog: withDefaults(catalogSpec, {
    objectStore: { bucket: '', credentialsSecret: { name: '' } },
    backupPolicy: { schedule: '', target: { bucket: '', credentialsSecret: { name: '' } } },
    maintenance: { schedule: '' },
  }) as CatalogSpec,
  table: withDefaults(tableSpec, { catalogRef: '', name: '', columns: [{ name: '', type: '' }] }) as TableSpec,
  pool: withDefaults(poolSpec, { catalogRef: { name: '' }, credentialsSecret: { name: '' } }) as PoolSpec,
  backup: withDefaults(backupSpec, { catalogRef: '' }) as BackupSpec,
} as const;

/** The size of a DuckDB catalog's volume when spec.size is unset (a default computed below, not in the schema). */
export const DUCKDB_VOLUME_SIZE = '10Gi';

export interface DefaultingContext {
  operation: 'CREATE' | 'UPDATE';
  name?: string;
  namespace?: string;
}

/**
 * Defaults that depend on other fields or on the object's name, and conversions kept for
 * compatibility with the original API. Name-derived defaults are written once, at CREATE, so
 * where a lake lives is recorded on the object and never changes with a later default.
 */
function computedDefaults(kind: Kind, spec: Obj, ctx: DefaultingContext, warnings: string[]): void {
  if (kind === 'DuckLakeCatalog') {
    const metadata = isObj(spec.metadata) ? spec.metadata : {};
    const type = metadata.type ?? SPEC_DEFAULTS.catalog.metadata.type;
    if (type === 'duckdb' && spec.size === undefined) spec.size = DUCKDB_VOLUME_SIZE;
    if (ctx.operation === 'CREATE' && ctx.name) {
      if (type === 'postgres' && metadata.connectionSecret === undefined && isObj(spec.metadata)) {
        spec.metadata = { ...metadata, connectionSecret: { name: `${ctx.name}-app` } };
      }
      const store = spec.objectStore;
      if (isObj(store) && store.prefix === undefined && ctx.namespace)
        spec.objectStore = { ...store, prefix: `${ctx.namespace}/${ctx.name}` };
    }
    // A backup target without a prefix gets the layout backups have beside the data, recorded on
    // the object like the data prefix (lib/k8s/catalog-runner.ts backupPath computes the same).
    const prefix = isObj(spec.objectStore) ? spec.objectStore.prefix : undefined;
    const policy = spec.backupPolicy;
    if (isObj(policy) && isObj(policy.target) && policy.target.prefix === undefined && typeof prefix === 'string') {
      spec.backupPolicy = { ...policy, target: { ...policy.target, prefix: backupPrefix(prefix) } };
    }
  }
  if (
    kind === 'DuckLakePool' &&
    typeof spec.targetUtilization === 'string' &&
    /^\s*(0?\.[0-9]+|0|1(\.0+)?)\s*$/.test(spec.targetUtilization)
  ) {
    // The original operator stored targetUtilization as a string ("0.8"); it is a number now.
    warnings.push(
      `spec.targetUtilization: the string ${JSON.stringify(spec.targetUtilization)} ` +
        `was converted to the number ${Number(spec.targetUtilization)}`,
    );
    spec.targetUtilization = Number(spec.targetUtilization);
  }
}

/** Where backups go under a prefix: <prefix>/backups, beside <prefix>/data. */
export function backupPrefix(dataPrefix: string): string {
  const p = dataPrefix.replace(/^\/+|\/+$/g, '');
  return p ? `${p}/backups` : 'backups';
}

const escape = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1');

/** The JSON Patch that turns `before` into `after`, for trees that only gained fields or changed leaves. */
export function diff(before: unknown, after: unknown, path = ''): PatchOp[] {
  if (isObj(before) && isObj(after)) {
    const ops: PatchOp[] = [];
    for (const key of Object.keys(before)) if (!(key in after)) ops.push({ op: 'remove', path: `${path}/${escape(key)}` });
    for (const [key, value] of Object.entries(after)) {
      if (!(key in before)) ops.push({ op: 'add', path: `${path}/${escape(key)}`, value });
      else ops.push(...diff(before[key], value, `${path}/${escape(key)}`));
    }
    return ops;
  }
  if (Array.isArray(before) && Array.isArray(after) && before.length === after.length) {
    return before.flatMap((item, i) => diff(item, after[i], `${path}/${i}`));
  }
  return JSON.stringify(before) === JSON.stringify(after) ? [] : [{ op: 'replace', path: path || '', value: after }];
}

/** The patch (against the whole object) that fills in the spec's defaults, and warnings for the user. */
export function defaultsPatch(
  kind: Kind,
  object: unknown,
  ctx: DefaultingContext = { operation: 'CREATE' },
): { patch: PatchOp[]; warnings: string[] } {
  const warnings: string[] = [];
  if (!isObj(object) || !isObj(object.spec)) return { patch: [], warnings };
  const spec = withDefaults(KIND_INFO[kind].spec, object.spec) as Obj;
  computedDefaults(kind, spec, ctx, warnings);
  return { patch: diff(object.spec, spec, '/spec'), warnings };
}
