// From a table spec and the table as the lake has it, the exact DDL that makes them match:
// a pure function, so `--dry-run` prints what `apply` would run and tests need no database.
import { formatColumnType, parseColumnType, sameColumnType } from '../api/column-type.js';
import {
  columnChangeProblems,
  formatPartitionKey,
  parsePartitionKey,
  tableSpecProblems,
  type PartitionKey,
  type TableSpec,
} from '../api/table.js';
import { BadInputError } from '../errors.js';
import type { TableState } from './inspect.js';
import { LAKE, ident, literal, tableRef } from './sql.js';
import { SPEC_DEFAULTS } from '../api/defaults.js';

export interface TablePlan {
  action: 'create' | 'alter' | 'unchanged';
  /** Each inner list is one transaction. Creating takes two: DuckLake cannot set options on a table created in the same transaction. */
  transactions: string[][];
}

const samePartitioning = (a: PartitionKey[], b: PartitionKey[]) =>
  a.length === b.length && a.every((k, i) => k.column.toLowerCase() === b[i]!.column.toLowerCase() && k.transform === b[i]!.transform);

export function planTable(spec: TableSpec, current: TableState | undefined, opts: { allowDrop: boolean }): TablePlan {
  const problems = tableSpecProblems(spec);
  if (problems.length) throw BadInputError.fromProblems(problems);
  const schema = spec.schema ?? SPEC_DEFAULTS.table.schema;
  const ref = tableRef(schema, spec.name);
  const partitioning = (spec.format?.partitioning ?? []).map((k) => parsePartitionKey(k)!);
  const compression = spec.format?.compression?.toUpperCase();
  const setPartitioning = (keys: PartitionKey[]) =>
    keys.length
      ? `ALTER TABLE ${ref} SET PARTITIONED BY (${keys.map((k) => formatPartitionKey(k, (c) => ident(c))).join(', ')})`
      : `ALTER TABLE ${ref} RESET PARTITIONED BY`;
  const setCompression = (c: string) =>
    `CALL ${LAKE}.set_option('parquet_compression', ${literal(c.toLowerCase())}, ` +
    `schema => ${literal(schema)}, table_name => ${literal(spec.name)})`;
  const comment = (target: string, text: string | null | undefined) => `COMMENT ON ${target} IS ${text ? literal(text) : 'NULL'}`;
  const columnDef = (c: TableSpec['columns'][number]) =>
    `${ident(c.name)} ${formatColumnType(parseColumnType(c.type))}${c.nullable === false ? ' NOT NULL' : ''}`;

  if (!current) {
    const statements: string[] = [];
    if (schema.toLowerCase() !== 'main') statements.push(`CREATE SCHEMA IF NOT EXISTS ${LAKE}.${ident(schema, 'schema')}`);
    statements.push(`CREATE TABLE ${ref} (${spec.columns.map(columnDef).join(', ')})`);
    if (spec.comment) statements.push(comment(`TABLE ${ref}`, spec.comment));
    for (const c of spec.columns) if (c.comment) statements.push(comment(`COLUMN ${ref}.${ident(c.name)}`, c.comment));
    if (partitioning.length) statements.push(setPartitioning(partitioning));
    return { action: 'create', transactions: compression ? [statements, [setCompression(compression)]] : [statements] };
  }

  const refusals = columnChangeProblems(
    current.columns,
    spec.columns,
    current.partitioning.map((p) => p.column),
    { allowDrop: opts.allowDrop },
  );
  if (refusals.length) throw BadInputError.fromProblems(refusals);

  const statements: string[] = [];
  const existing = new Map(current.columns.map((c) => [c.name.toLowerCase(), c]));
  for (const c of spec.columns) {
    const had = existing.get(c.name.toLowerCase());
    const col = `${ref}.${ident(c.name)}`;
    if (!had) {
      statements.push(`ALTER TABLE ${ref} ADD COLUMN ${columnDef(c)}`);
      if (c.comment) statements.push(comment(`COLUMN ${col}`, c.comment));
      continue;
    }
    const type = parseColumnType(c.type);
    if (!sameColumnType(had.type, type))
      statements.push(`ALTER TABLE ${ref} ALTER COLUMN ${ident(had.name)} SET DATA TYPE ${formatColumnType(type)}`);
    if (!had.nullable && c.nullable !== false) statements.push(`ALTER TABLE ${ref} ALTER COLUMN ${ident(had.name)} DROP NOT NULL`);
    if (c.comment !== undefined && (c.comment || null) !== had.comment) statements.push(comment(`COLUMN ${col}`, c.comment));
  }
  const wanted = new Set(spec.columns.map((c) => c.name.toLowerCase()));
  for (const c of current.columns)
    if (!wanted.has(c.name.toLowerCase())) statements.push(`ALTER TABLE ${ref} DROP COLUMN ${ident(c.name)}`);
  if (spec.comment !== undefined && (spec.comment || null) !== current.comment) statements.push(comment(`TABLE ${ref}`, spec.comment));
  if (!samePartitioning(partitioning, current.partitioning)) statements.push(setPartitioning(partitioning));
  if (compression && compression !== current.compression) statements.push(setCompression(compression));
  return statements.length ? { action: 'alter', transactions: [statements] } : { action: 'unchanged', transactions: [] };
}
