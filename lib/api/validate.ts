// Admission rules: the schema (lib/api/schema.ts, through Ajv) plus what a schema cannot say:
// the DuckDB type grammar, partition keys that refer to columns, cron schedules, quantities,
// cross-field limits, and on UPDATE the fields that must not change and the column changes
// DuckLake can make in place. Every rule reports a FieldProblem; nothing stops at the first.
import { parseColumnType, type ColumnType } from './column-type.js';
import { cronScheduleProblem } from './cron.js';
import { parseDuration } from './duration.js';
import { endpointProblem } from './endpoint.js';
import { labelKeyProblem, labelValueProblem } from './k8s-names.js';
import { MAX_SPEC_DEPTH, structureProblem } from './limits.js';
import { GIBIBYTE, parseQuantity } from './quantity.js';
import { SPEC_DEFAULTS as DEFAULTS } from './defaults.js';
import type { Kind } from './schema.js';
import { keyPath, specSchemaProblems } from './schema-validator.js';
import {
  columnChangeProblems,
  parsePartitionKey,
  tableSpecProblems,
  type ColumnSpec,
  type ExistingColumn,
  type FieldProblem,
} from './table.js';

type Obj = Record<string, unknown>;

export interface Verdict {
  problems: FieldProblem[];
  warnings: string[];
}

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const get = (v: unknown, ...path: string[]): unknown => path.reduce<unknown>((node, key) => (isObj(node) ? node[key] : undefined), v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const q = (v: unknown) => JSON.stringify(v);

/** Problems with `spec` (and, on UPDATE, with the move from `oldSpec`), and warnings worth showing. */
export function validateSpec(kind: Kind, spec: unknown, oldSpec?: unknown): Verdict {
  // Checked first: the schema messages and the update rules below walk values recursively.
  const structure = structureProblem(spec, MAX_SPEC_DEPTH, 'spec') ?? structureProblem(oldSpec, MAX_SPEC_DEPTH, 'oldObject.spec');
  if (structure) return { problems: [structure], warnings: [] };
  const schema = specSchemaProblems(kind, spec);
  const v: Verdict = { problems: [], warnings: [] };
  if (isObj(spec)) {
    if (kind === 'DuckLakeCatalog') catalogRules(spec, v);
    if (kind === 'DuckLakeTable') tableRules(spec, v);
    if (kind === 'DuckLakePool') poolRules(spec, v);
    if (kind === 'DuckLakeBackup') backupRules(spec, v);
    if (isObj(oldSpec)) {
      if (kind === 'DuckLakeCatalog') catalogUpdateRules(oldSpec, spec, v);
      if (kind === 'DuckLakeTable') tableUpdateRules(oldSpec, spec, v);
      if (kind === 'DuckLakeBackup') backupUpdateRules(oldSpec, spec, v);
    }
  }
  // One report per field: when the schema already refused a field, its message stands alone.
  const refused = new Set(schema.map((p) => p.field));
  const seen = new Set<string>();
  const problems = [...schema, ...v.problems.filter((p) => !refused.has(p.field))].filter((p) => {
    const key = `${p.field}\u0000${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  // A spec with thousands of bad entries gets the first MAX_PROBLEMS and a count, not a reply
  // (and a log line) as large as itself.
  if (problems.length > MAX_PROBLEMS) {
    const more = problems.length - MAX_PROBLEMS;
    problems.splice(MAX_PROBLEMS, more, {
      field: 'spec',
      message: `and ${more} more problems (only the first ${MAX_PROBLEMS} are listed)`,
    });
  }
  return { problems, warnings: v.warnings.slice(0, MAX_PROBLEMS) };
}

/** How many problems one verdict lists. */
export const MAX_PROBLEMS = 50;

// ---- DuckLakeCatalog ----------------------------------------------------------------------------

function catalogRules(spec: Obj, v: Verdict): void {
  const add = (field: string, message: string) => v.problems.push({ field: `spec.${field}`, message });
  const size = str(spec.size);
  const bytes = parseQuantity(size);
  if (size !== undefined && bytes !== undefined && bytes < GIBIBYTE) add('size', `must be at least 1Gi, got ${q(size)}`);

  // The object store and the backup target follow the same rules for endpoint, bucket and prefix.
  const location = (at: string, where: unknown) => {
    if (!isObj(where)) return;
    if (where.endpoint !== undefined) {
      const p = endpointProblem(where.endpoint);
      if (p) add(`${at}.endpoint`, p);
    }
    const bucket = str(where.bucket);
    if (bucket) {
      if (bucket.includes('..') || /\.-|-\./.test(bucket))
        add(`${at}.bucket`, `${q(bucket)}: dots may not be next to each other or to a hyphen`);
      if (/^\d+\.\d+\.\d+\.\d+$/.test(bucket)) add(`${at}.bucket`, `${q(bucket)}: must not be formatted as an IP address`);
      if (bucket.startsWith('xn--') || bucket.endsWith('-s3alias') || bucket.endsWith('--ol-s3'))
        add(`${at}.bucket`, `${q(bucket)}: uses a prefix or suffix S3 reserves`);
    }
    const prefix = str(where.prefix);
    if (prefix) {
      if (prefix.startsWith('/')) add(`${at}.prefix`, `${q(prefix)}: must not start with "/"`);
      if (prefix.includes('//')) add(`${at}.prefix`, `${q(prefix)}: must not contain empty segments ("//")`);
      if (prefix.split('/').some((s) => s === '.' || s === '..'))
        add(`${at}.prefix`, `${q(prefix)}: must not contain "." or ".." segments`);
    }
  };
  const store = spec.objectStore;
  location('objectStore', store);
  const target = get(spec, 'backupPolicy', 'target');
  location('backupPolicy.target', target);
  // Backups inside the data path would be deleted by orphan cleanup and counted as lake files.
  const dataPrefix = str(get(store, 'prefix'));
  const targetPrefix = str(get(target, 'prefix'));
  if (isObj(target) && dataPrefix !== undefined && targetPrefix !== undefined && target.bucket === get(store, 'bucket')) {
    const trim = (p: string) => p.replace(/^\/+|\/+$/g, '');
    const data = `${trim(dataPrefix) ? `${trim(dataPrefix)}/` : ''}data`;
    const t = trim(targetPrefix);
    if (t === data || t.startsWith(`${data}/`))
      add(
        'backupPolicy.target.prefix',
        `${q(targetPrefix)} is inside the data path (${data}/): maintenance would delete the backups there; use a prefix beside it`,
      );
  }

  const metadataType = str(get(spec, 'metadata', 'type')) ?? DEFAULTS.catalog.metadata.type;
  const connection = get(spec, 'metadata', 'connectionSecret');
  if (metadataType === 'duckdb' && connection !== undefined)
    add('metadata.connectionSecret', 'is only used when metadata.type is postgres');
  if (metadataType === 'postgres' && (spec.size !== undefined || spec.storageClass !== undefined)) {
    v.warnings.push('spec.size and spec.storageClass are not used when metadata.type is postgres: the metadata lives in the database');
  }

  for (const block of ['backupPolicy', 'maintenance', 'inspection'] as const) {
    const s = get(spec, block, 'schedule');
    if (typeof s === 'string') {
      const p = cronScheduleProblem(s);
      if (p) add(`${block}.schedule`, p);
    }
  }
  const orphans = parseDuration(str(get(spec, 'maintenance', 'orphansOlderThan')) ?? '');
  if (orphans !== undefined && orphans < 3600) {
    add('maintenance.orphansOlderThan', 'must be at least 1h: younger unreferenced files may belong to a write still in flight');
  }
  const threshold = num(get(spec, 'maintenance', 'rewriteDeleteThreshold'));
  if (threshold !== undefined && threshold < 0.000001)
    add('maintenance.rewriteDeleteThreshold', `must be above 0 (a file with no deleted rows is never rewritten), got ${threshold}`);
  const fileSize = get(spec, 'maintenance', 'targetFileSize');
  const fileBytes = parseQuantity(fileSize);
  if (fileSize !== undefined && fileBytes !== undefined && (fileBytes < 2 ** 20 || !Number.isInteger(fileBytes))) {
    add('maintenance.targetFileSize', `must be a whole number of bytes of at least 1Mi, got ${q(fileSize)}`);
  }
}

const MOVED_DATA = "the lake's data files live there; create a new catalog to move it";

/** Catalog fields fixed once it exists: the path under spec, the value an unset field means, and why. */
const IMMUTABLE_CATALOG_FIELDS: [path: string[], unset: unknown, why: string][] = [
  [['objectStore', 'bucket'], null, MOVED_DATA],
  [['objectStore', 'prefix'], '', MOVED_DATA],
  [
    ['metadata', 'type'],
    DEFAULTS.catalog.metadata.type,
    'the metadata cannot be moved between backends in place; back up and restore into a new catalog',
  ],
  [['metadata', 'schema'], '', 'the metadata tables live there'],
  [['encryption', 'enabled'], DEFAULTS.catalog.encryption.enabled, 'DuckLake fixes encryption when the lake is created'],
  [['storageClass'], '', "a volume's storage class cannot change"],
];

function catalogUpdateRules(old: Obj, spec: Obj, v: Verdict): void {
  for (const [path, unset, why] of IMMUTABLE_CATALOG_FIELDS) {
    const before = get(old, ...path) ?? unset;
    const after = get(spec, ...path) ?? unset;
    if (JSON.stringify(before) !== JSON.stringify(after))
      v.problems.push({ field: `spec.${path.join('.')}`, message: `is immutable (was ${q(before)}, now ${q(after)}): ${why}` });
  }

  const before = parseQuantity(str(old.size));
  const after = parseQuantity(str(spec.size));
  if (before !== undefined && after !== undefined && after < before) {
    v.problems.push({ field: 'spec.size', message: `cannot shrink from ${old.size} to ${spec.size}: volumes only grow` });
  }
  const restoreBefore = q([get(old, 'restoreFrom', 'backup'), get(old, 'restoreFrom', 'catalog')]);
  const restoreAfter = q([get(spec, 'restoreFrom', 'backup'), get(spec, 'restoreFrom', 'catalog')]);
  if (get(spec, 'restoreFrom') !== undefined && restoreAfter !== restoreBefore) {
    v.problems.push({
      field: 'spec.restoreFrom',
      message: 'can only be set when the catalog is created; restore into a new catalog instead',
    });
  }
}

// ---- DuckLakeTable ------------------------------------------------------------------------------

function tableRules(spec: Obj, v: Verdict): void {
  v.problems.push(...tableSpecProblems(spec, 'spec'));
  if (spec.deletionPolicy === 'Delete')
    v.warnings.push('deletionPolicy Delete: deleting this object drops the table and its data from the lake');
}

function wellFormedColumns(columns: unknown): ColumnSpec[] | undefined {
  if (!Array.isArray(columns)) return undefined;
  const ok = columns.every(
    (c) =>
      isObj(c) && typeof c.name === 'string' && typeof c.type === 'string' && (c.nullable === undefined || typeof c.nullable === 'boolean'),
  );
  return ok ? (columns as ColumnSpec[]) : undefined;
}

function tableUpdateRules(old: Obj, spec: Obj, v: Verdict): void {
  const immutable = (field: string, before: unknown, after: unknown) => {
    if (JSON.stringify(before) !== JSON.stringify(after)) {
      v.problems.push({
        field: `spec.${field}`,
        message: `is immutable (was ${q(before ?? null)}, now ${q(after ?? null)}); create a new DuckLakeTable instead`,
      });
    }
  };
  immutable('name', old.name, spec.name);
  immutable('schema', old.schema ?? DEFAULTS.table.schema, spec.schema ?? DEFAULTS.table.schema);
  immutable('catalogRef', old.catalogRef, spec.catalogRef);

  const before = wellFormedColumns(old.columns);
  const after = wellFormedColumns(spec.columns);
  if (!before || !after) return;
  const existing: ExistingColumn[] = [];
  for (const c of before) {
    let type: ColumnType;
    try {
      type = parseColumnType(c.type);
    } catch {
      continue;
    }
    existing.push({ name: c.name, type, nullable: c.nullable !== false });
  }
  const partitioning = get(old, 'format', 'partitioning');
  const partitionColumns = Array.isArray(partitioning)
    ? partitioning.flatMap((k) => (typeof k === 'string' ? [parsePartitionKey(k)?.column ?? ''] : [])).filter(Boolean)
    : [];
  v.problems.push(...columnChangeProblems(existing, after, partitionColumns, { allowDrop: true, path: 'spec' }));
}

// ---- DuckLakeBackup -----------------------------------------------------------------------------

function backupRules(spec: Obj, v: Verdict): void {
  if (spec.deletionPolicy === 'Delete') v.warnings.push('deletionPolicy Delete: deleting this object deletes the backup from the bucket');
}

function backupUpdateRules(old: Obj, spec: Obj, v: Verdict): void {
  // The object records one backup run: another catalog or policy would be another backup.
  for (const field of ['catalogRef', 'includeData', 'deletionPolicy'] as const) {
    const dflt = field === 'deletionPolicy' ? 'Retain' : undefined;
    const before = old[field] ?? dflt;
    const after = spec[field] ?? dflt;
    if (JSON.stringify(before) !== JSON.stringify(after)) {
      v.problems.push({
        field: `spec.${field}`,
        message: `is immutable (was ${q(before ?? null)}, now ${q(after ?? null)}); create a new DuckLakeBackup instead`,
      });
    }
  }
}

// ---- DuckLakePool -------------------------------------------------------------------------------

function poolRules(spec: Obj, v: Verdict): void {
  const add = (field: string, message: string) => v.problems.push({ field: `spec.${field}`, message });
  const min = num(spec.minSize) ?? (spec.minSize === undefined ? 1 : undefined);
  const max = num(spec.maxSize) ?? (spec.maxSize === undefined ? 10 : undefined);
  if (min !== undefined && max !== undefined && min > max) {
    add('minSize', `${min} is greater than maxSize (${max}${spec.maxSize === undefined ? ', the default' : ''})`);
  }
  const target = num(spec.targetUtilization);
  if (target !== undefined && target <= 0) add('targetUtilization', `must be greater than 0 and at most 1, got ${target}`);

  const minimum: [string, number, string][] = [
    ['scaleInterval', 1, '1s'],
    ['maxQueryDuration', 1, '1s'],
    ['maxIdleTime', 1, '1s'],
    ['maxLifetime', 60, '1m'],
  ];
  for (const [field, least, text] of minimum) {
    const seconds = parseDuration(str(spec[field]) ?? '');
    if (seconds !== undefined && seconds < least) add(field, `must be at least ${text}, got ${q(spec[field])}`);
  }

  const template = spec.template;
  if (!isObj(template)) return;
  const resources = template.resources;
  if (isObj(resources)) {
    const requests = isObj(resources.requests) ? resources.requests : {};
    const limits = isObj(resources.limits) ? resources.limits : {};
    for (const [section, map] of [
      ['requests', requests],
      ['limits', limits],
    ] as const) {
      for (const [name, value] of Object.entries(map)) {
        const at = keyPath(`template.resources.${section}`, name);
        const keyProblem = labelKeyProblem(name);
        if (keyProblem) add(at, keyProblem.replace(/^label key/, 'resource name'));
        const amount = parseQuantity(value);
        if (amount !== undefined && amount < 0) add(at, `must not be negative, got ${q(value)}`);
      }
    }
    for (const [name, value] of Object.entries(requests)) {
      const request = parseQuantity(value);
      const limit = parseQuantity(limits[name]);
      if (request !== undefined && limit !== undefined && request > limit) {
        add(keyPath('template.resources.requests', name), `${q(value)} is more than the limit ${q(limits[name])}`);
      }
    }
  }
  if (isObj(template.nodeSelector)) {
    for (const [key, value] of Object.entries(template.nodeSelector)) {
      const p = labelKeyProblem(key) ?? (typeof value === 'string' ? labelValueProblem(value) : undefined);
      if (p) add(keyPath('template.nodeSelector', key), p);
    }
  }
  if (Array.isArray(template.tolerations)) {
    template.tolerations.forEach((t, i) => {
      if (!isObj(t)) return;
      const at = `template.tolerations[${i}]`;
      const operator = t.operator ?? 'Equal';
      if (operator === 'Exists' && t.value !== undefined && t.value !== '') add(`${at}.value`, 'must be empty when operator is Exists');
      if ((t.key === undefined || t.key === '') && operator !== 'Exists') add(`${at}.operator`, 'must be Exists when key is empty');
      if (t.tolerationSeconds !== undefined && t.effect !== 'NoExecute')
        add(`${at}.tolerationSeconds`, 'is only valid with effect NoExecute');
      if (typeof t.key === 'string' && t.key !== '') {
        const p = labelKeyProblem(t.key);
        if (p) add(`${at}.key`, p);
      }
      if (typeof t.value === 'string' && t.value !== '') {
        const p = labelValueProblem(t.value);
        if (p) add(`${at}.value`, p);
      }
    });
  }
}
