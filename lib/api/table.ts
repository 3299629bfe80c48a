// The DuckLakeTable spec as the runner and the admission webhook both read it, and the rules
// the OpenAPI schema cannot express (cross-field checks, the type grammar, safe evolution).
import { ColumnTypeError, formatColumnType, isLosslessWidening, parseColumnType, sameColumnType, type ColumnType } from './column-type.js';
import { identifierProblem } from './names.js';
import type { FieldProblem } from '../errors.js';
import { COMPRESSIONS } from './schema.js';
import type { WrittenSpec } from './types.js';

/**
 * A table spec as the runner and the webhook read it: as written (lib/api/types.ts WrittenSpec, the
 * schema's defaults not applied), and looser in two ways for `featherman table apply -f`, which
 * takes a bare spec from a file: catalogRef may be absent and compression may be in any case.
 */
export type TableSpec = Omit<WrittenSpec<'DuckLakeTable'>, 'catalogRef' | 'format'> & {
  catalogRef?: string;
  format?: { compression?: string; partitioning?: string[] };
};
export type ColumnSpec = TableSpec['columns'][number];

export type { FieldProblem };

export const PARTITION_TRANSFORMS = ['year', 'month', 'day', 'hour'] as const;
export type PartitionTransform = (typeof PARTITION_TRANSFORMS)[number];
export const PARTITION_KEY_PATTERN =
  '^\\s*(?:(year|month|day|hour)\\s*\\(\\s*([A-Za-z_][A-Za-z0-9_]*)\\s*\\)|([A-Za-z_][A-Za-z0-9_]*))\\s*$';
const PARTITION_KEY = new RegExp(PARTITION_KEY_PATTERN, 'i');
const TEMPORAL = new Set(['DATE', 'TIMESTAMP', 'TIMESTAMPTZ', 'TIMESTAMP_S', 'TIMESTAMP_MS', 'TIMESTAMP_NS']);

export interface PartitionKey {
  column: string;
  transform?: PartitionTransform;
}

export function parsePartitionKey(text: string): PartitionKey | undefined {
  const m = PARTITION_KEY.exec(text);
  if (!m) return undefined;
  if (m[3]) return { column: m[3] };
  return { column: m[2]!, transform: m[1]!.toLowerCase() as PartitionTransform };
}

export function formatPartitionKey(k: PartitionKey, quote: (name: string) => string): string {
  return k.transform ? `${k.transform}(${quote(k.column)})` : quote(k.column);
}

/** Every problem with a table spec on its own (no knowledge of the lake's current state). */
export function tableSpecProblems(spec: unknown, path = 'spec'): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const add = (field: string, message: string) => problems.push({ field: `${path}.${field}`, message });
  if (!spec || typeof spec !== 'object') return [{ field: path, message: 'must be an object' }];
  const s = spec as Partial<TableSpec>;

  const nameProblem = identifierProblem(s.name);
  if (nameProblem) add('name', nameProblem);
  if (s.schema !== undefined) {
    const p = identifierProblem(s.schema);
    if (p) add('schema', p);
  }
  if (s.comment !== undefined && typeof s.comment !== 'string') add('comment', 'must be a string');

  const types = new Map<string, ColumnType>();
  const seen = new Set<string>();
  if (!Array.isArray(s.columns) || s.columns.length === 0) {
    add('columns', 'must list at least one column');
  } else {
    s.columns.forEach((c, i) => {
      const at = `columns[${i}]`;
      if (!c || typeof c !== 'object') return add(at, 'must be an object with name and type');
      const p = identifierProblem(c.name);
      if (p) add(`${at}.name`, p);
      else if (seen.has(c.name.toLowerCase()))
        add(`${at}.name`, `duplicate column name ${JSON.stringify(c.name)} (names are case-insensitive)`);
      if (!p) seen.add(c.name.toLowerCase());
      try {
        const t = parseColumnType(c.type);
        if (!p) types.set(c.name.toLowerCase(), t);
      } catch (e) {
        add(`${at}.type`, e instanceof ColumnTypeError ? `invalid DuckDB type ${JSON.stringify(c.type)}: ${e.message}` : String(e));
      }
      if (c.nullable !== undefined && typeof c.nullable !== 'boolean') add(`${at}.nullable`, 'must be true or false');
      if (c.comment !== undefined && typeof c.comment !== 'string') add(`${at}.comment`, 'must be a string');
    });
  }

  const format = s.format;
  if (format !== undefined) {
    if (typeof format !== 'object' || format === null) add('format', 'must be an object');
    else {
      if (format.compression !== undefined && !COMPRESSIONS.includes(String(format.compression).toUpperCase() as never)) {
        add('format.compression', `must be one of ${COMPRESSIONS.join(', ')}`);
      }
      if (format.partitioning !== undefined) {
        if (!Array.isArray(format.partitioning)) add('format.partitioning', 'must be a list of partition keys');
        else
          format.partitioning.forEach((key, i) => {
            const at = `format.partitioning[${i}]`;
            const k = typeof key === 'string' ? parsePartitionKey(key) : undefined;
            if (!k) return add(at, `${JSON.stringify(key)} is not a partition key: use a column name or year|month|day|hour(column)`);
            const t = types.get(k.column.toLowerCase());
            if (!seen.has(k.column.toLowerCase()))
              return add(at, `partition column ${JSON.stringify(k.column)} is not one of the table's columns`);
            if (!t) return; // the column's type is invalid and reported above
            if (k.transform && !(t.kind === 'scalar' && TEMPORAL.has(t.name))) {
              add(at, `${k.transform}() needs a DATE or TIMESTAMP column, but ${k.column} is ${formatColumnType(t)}`);
            }
            if (!k.transform && t.kind !== 'scalar' && t.kind !== 'decimal')
              add(at, `cannot partition by ${k.column}: ${formatColumnType(t)} is a nested type`);
          });
      }
    }
  }
  if (s.deletionPolicy !== undefined && s.deletionPolicy !== 'Retain' && s.deletionPolicy !== 'Delete') {
    add('deletionPolicy', 'must be Retain or Delete');
  }
  return problems;
}

/** The current shape of a column, as the lake (or an older spec) has it. */
export interface ExistingColumn {
  name: string;
  type: ColumnType;
  nullable: boolean;
}

/**
 * What a move from `current` to `desired` columns would break, given the current partition columns.
 * Shared by admission (old spec → new spec) and the runner (lake → spec) so both refuse the same things.
 */
export function columnChangeProblems(
  current: ExistingColumn[],
  desired: ColumnSpec[],
  partitionColumns: string[],
  options: { allowDrop: boolean; path?: string },
): FieldProblem[] {
  const path = options.path ?? 'spec';
  const problems: FieldProblem[] = [];
  const wanted = new Map(desired.map((c, i) => [c.name.toLowerCase(), { c, i }]));
  for (const col of current) {
    const d = wanted.get(col.name.toLowerCase());
    if (!d) {
      if (partitionColumns.some((p) => p.toLowerCase() === col.name.toLowerCase())) {
        problems.push({
          field: `${path}.columns`,
          message: `column ${JSON.stringify(col.name)} is a partition column of the existing data and cannot be removed`,
        });
      } else if (!options.allowDrop) {
        problems.push({
          field: `${path}.columns`,
          message: `column ${JSON.stringify(col.name)} would be dropped; dropping columns needs --allow-drop`,
        });
      }
      continue;
    }
    const at = `${path}.columns[${d.i}]`;
    let next: ColumnType;
    try {
      next = parseColumnType(d.c.type);
    } catch {
      continue;
    } // reported by tableSpecProblems
    if (!sameColumnType(col.type, next) && !isLosslessWidening(col.type, next)) {
      problems.push({
        field: `${at}.type`,
        message:
          `cannot change ${col.name} from ${formatColumnType(col.type)} to ${formatColumnType(next)}: ` +
          'only lossless widenings are allowed (e.g. INTEGER to BIGINT, FLOAT to DOUBLE)',
      });
    }
    if (col.nullable && d.c.nullable === false) {
      problems.push({
        field: `${at}.nullable`,
        message: `cannot make existing column ${col.name} NOT NULL; nullability can only be relaxed`,
      });
    }
  }
  const existing = new Set(current.map((c) => c.name.toLowerCase()));
  desired.forEach((c, i) => {
    if (!existing.has(c.name.toLowerCase()) && c.nullable === false && current.length > 0) {
      problems.push({
        field: `${path}.columns[${i}].nullable`,
        message: `new column ${c.name} must be nullable: existing rows have no value for it`,
      });
    }
  });
  return problems;
}
