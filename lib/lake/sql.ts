// The one place where names and values are turned into SQL text.
import { identifierProblem } from '../api/names.js';
import { BadInputError } from '../errors.js';

/** The alias the lake is attached under in every session. */
export const LAKE = 'lake';
/** The DuckDB database holding the DuckLake catalog tables for LAKE (DuckLake's default name). */
export const LAKE_METADATA = `__ducklake_metadata_${LAKE}`;
/**
 * The in-memory database a warm worker keeps copies of small lake tables in (lib/lake/table-copies.ts).
 * No schema can be named so (identifiers have no '-'), so attaching it never changes what a lake name means.
 */
export const IN_MEMORY = 'featherman-in-memory';

/** Quote a validated identifier. Throws (exit 2) for names that break the identifier rule. */
export function ident(name: string, field = 'name'): string {
  const problem = identifierProblem(name);
  if (problem) throw new BadInputError(`${field}: ${JSON.stringify(name)} ${problem}`);
  return `"${name.replace(/"/g, '""')}"`;
}

/** A string literal. */
export function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** A DuckLake catalog table (ducklake_*) in the schema that holds them (METADATA_SCHEMA, if set). */
export function metaTable(metadataSchema: string | undefined, table: string): string {
  return metadataSchema ? `${LAKE_METADATA}.${ident(metadataSchema, 'FEATHERMAN_METADATA_SCHEMA')}.${table}` : `${LAKE_METADATA}.${table}`;
}

/** lake."schema"."table" */
export function tableRef(schema: string, table: string): string {
  return `${LAKE}.${ident(schema, 'schema')}.${ident(table, 'name')}`;
}
