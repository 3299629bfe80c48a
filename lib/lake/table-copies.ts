// In-memory copies of small lake tables, for a warm worker, and queries pointed at them.
//
// A worker's engine reads a frozen copy of a DuckDB catalog file (lib/pool/engine.ts), so a table
// copied into memory stays exactly that lake table for the engine's life; a new snapshot brings a
// new engine with new copies. Decoding Parquet is most of a small aggregate's time (a DECIMAL
// column especially): on a copy in DuckDB's own format the same query runs 2-3 times faster.
//
// A query reads the copies only where that cannot change its answer:
//  - names are changed on DuckDB's own parse tree (json_serialize_sql), and the text that runs must
//    parse back to exactly the changed tree, or the query runs as sent;
//  - only tables of schema main named as `t`, `main.t` or `lake.main.t`, never a CTE's name;
//  - never with time travel (AT), sampling, or DuckLake's virtual columns (rowid, filename, ...),
//    which a copy does not have or has with other values, nor with a column named through the
//    lake (lake.main.t.c).
// The sandbox checks the text as sent, on the lake: the change only says which database the same
// tables are read from.
import type { DuckDBConnection } from '@duckdb/node-api';
import { jsonSql, lower, objects, type Json } from './sandbox.js';
import { ident, IN_MEMORY, LAKE, literal, tableRef } from './sql.js';

/** DuckLake's virtual columns: a copy has none of them, and its rowid counts from 0. */
const VIRTUAL_COLUMNS = new Set(['rowid', 'filename', 'file_row_number', 'file_index', 'snapshot_id']);
/** The in-memory database of the copies, as SQL. */
export const COPIES = `"${IN_MEMORY}"`;

/** Bytes DuckDB's in-memory tables hold (the copies: user SQL cannot create tables in a worker). */
async function copiesBytes(connection: DuckDBConnection): Promise<number> {
  const reader = await connection.runAndReadAll("SELECT memory_usage_bytes FROM duckdb_memory() WHERE tag = 'IN_MEMORY_TABLE'");
  return Number(reader.getRows()[0]?.[0] ?? 0);
}

/**
 * Copy the lake's tables of schema main into memory, fewest cells first, while the copies take at
 * most `budgetBytes`; the first that does not fit is dropped and copying stops. A table that cannot
 * be copied stays in the lake. `stopped` is asked between tables (the engine may retire meanwhile).
 * Returns the copied names, lower case.
 */
export async function copySmallTables(connection: DuckDBConnection, budgetBytes: number, stopped: () => boolean): Promise<Set<string>> {
  const copied = new Set<string>();
  await connection.run(`ATTACH ':memory:' AS ${COPIES}`);
  const reader = await connection.runAndReadAll(
    `SELECT table_name FROM duckdb_tables() WHERE database_name = ${literal(LAKE)} AND schema_name = 'main' ` +
      'ORDER BY estimated_size * column_count, table_name',
  );
  for (const [name] of reader.getRows()) {
    const table = String(name);
    if (stopped()) break;
    let target: string;
    try {
      target = `${COPIES}.main.${ident(table)}`;
    } catch {
      continue; // a name outside the identifier rule (made by SQL, not by a DuckLakeTable): read from the lake
    }
    try {
      await connection.run(`CREATE TABLE ${target} AS FROM ${tableRef('main', table)}`);
    } catch {
      // A column type the copy cannot hold, or memory: whatever DuckDB made of it goes, the table is read from the lake.
      await connection.run(`DROP TABLE IF EXISTS ${target}`);
      continue;
    }
    if ((await copiesBytes(connection)) > budgetBytes) {
      await connection.run(`DROP TABLE ${target}`);
      break;
    }
    copied.add(table.toLowerCase());
  }
  return copied;
}

/**
 * DuckDB's parse tree of `sql`, as its compact JSON text, without where each part stood in the text
 * (`query_location`: a changed text moves them, and their "unknown" value does not fit a JavaScript number).
 */
async function parseTree(connection: DuckDBConnection, sql: string): Promise<string> {
  return (await jsonSql(connection, 'json_serialize_sql', sql)).replace(/,"query_location":\d+|"query_location":\d+,/g, '');
}

/**
 * The SQL to run instead of `sql` so that it reads the in-memory copies of `copied` tables, or
 * undefined when it would read none of them (or could not be pointed at them exactly).
 */
export async function readingCopies(connection: DuckDBConnection, sql: string, copied: ReadonlySet<string>): Promise<string | undefined> {
  const original = await parseTree(connection, sql);
  const tree = JSON.parse(original) as { error: boolean; statements?: unknown[] };
  if (tree.error || tree.statements?.length !== 1) return undefined;
  // JavaScript numbers hold 53 bits: a tree that does not print back to the same text (a large
  // integer literal, say) is left alone rather than changed.
  if (JSON.stringify(tree) !== original) return undefined;
  const cteNames = new Set<string>();
  const refs: Json[] = [];
  for (const n of objects(tree.statements)) {
    if (n.at_clause || n.sample) return undefined;
    if (n.class === 'COLUMN_REF' && Array.isArray(n.column_names)) {
      const parts = n.column_names.map(lower);
      if (VIRTUAL_COLUMNS.has(parts.at(-1)!)) return undefined;
      // lake.main.events.id names the table through its catalog, which the copy does not have.
      if (parts.slice(0, -1).includes(LAKE)) return undefined;
    }
    const ctes = (n.cte_map as { map?: { key?: unknown }[] } | undefined)?.map;
    for (const cte of ctes ?? []) cteNames.add(lower(cte.key));
    if (n.type === 'BASE_TABLE' && 'table_name' in n) refs.push(n);
  }
  let changed = false;
  for (const ref of refs) {
    const [catalog, schema, table] = [lower(ref.catalog_name), lower(ref.schema_name), lower(ref.table_name)];
    if (cteNames.has(table) || !copied.has(table)) continue;
    if (!((catalog === '' && (schema === '' || schema === 'main')) || (catalog === LAKE && schema === 'main'))) continue;
    ref.catalog_name = IN_MEMORY;
    ref.schema_name = 'main';
    changed = true;
  }
  if (!changed) return undefined;
  const target = JSON.stringify(tree);
  const text = await jsonSql(connection, 'json_deserialize_sql', target);
  // The text that runs parses to exactly the changed tree, or the query runs as sent.
  return (await parseTree(connection, text)) === target ? text : undefined;
}
