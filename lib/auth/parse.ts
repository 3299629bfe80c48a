// The service's own parser, for the cold path (no worker has the lake bound yet): an in-memory
// DuckDB with nothing attached and no file or network access, used only for json_serialize_sql,
// which parses without binding, so it reads nothing whatever the SQL says.
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { LAKE } from '../lake/sql.js';
import { tablesFromParseTree, type TableRef } from './tables.js';

let connection: Promise<DuckDBConnection> | undefined;

function parser(): Promise<DuckDBConnection> {
  connection ??= (async () => {
    const db = await DuckDBInstance.create(':memory:', {
      enable_external_access: 'false',
      autoload_known_extensions: 'false',
      autoinstall_known_extensions: 'false',
      lock_configuration: 'true',
      threads: '1',
    });
    return db.connect();
  })();
  return connection;
}

/**
 * The lake tables a SELECT names (its CTEs left out), or `undefined` for another statement (an
 * INSERT, UPDATE, DELETE or MERGE, which DuckDB's parser does not serialise): its tables are
 * known only once bound. SQL that does not parse gives no tables; the process says why.
 */
export async function selectTables(sql: string): Promise<{ read: TableRef[]; catalog: boolean } | undefined> {
  const c = await parser();
  const reader = await c.runAndReadAll('SELECT json_serialize_sql($1::VARCHAR)', [sql]);
  const ast = JSON.parse(String(reader.getRows()[0]?.[0])) as { error: boolean; error_message?: string; statements?: unknown[] };
  if (ast.error) return /Only SELECT statements/i.test(ast.error_message ?? '') ? undefined : { read: [], catalog: false };
  // DuckLake's table functions (snapshots(), table_changes(), ...) name their tables in arguments,
  // seen only once bound: here they count as reading the catalog.
  const catalog = /"function_name":"(ducklake_)?(snapshots|table_info|table_changes|table_insertions|table_deletions)"/i.test(
    JSON.stringify(ast.statements),
  );
  return { read: tablesFromParseTree(ast.statements, LAKE), catalog };
}
