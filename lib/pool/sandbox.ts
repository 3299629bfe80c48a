// What user SQL may do in a warm worker. Two layers:
//  1. DuckDB's own switches (applied in engine.ts): enable_external_access = false with only the
//     lake's data path in allowed_directories, and lock_configuration = true, so no file, network
//     or setting beyond the lake is reachable even if a query slips through;
//  2. DuckDB's parser (json_serialize_sql): one SELECT statement, reading lake tables and a short
//     list of table functions. That refuses ATTACH, COPY, SET, INSTALL, LOAD, PRAGMA and
//     CREATE SECRET (not SELECTs), read_text/glob/read_blob/duckdb_secrets()/query() (not on the
//     list), and the DuckLake metadata catalog, which holds the file encryption keys.
import { StatementType, type DuckDBConnection } from '@duckdb/node-api';
import { BadInputError } from '../errors.js';
import type { LakeSession } from '../lake/session.js';
import { literal } from '../lake/sql.js';

export class SandboxError extends Error {}

/** Table functions a query may call: generators and DuckLake's read-only views of the lake. */
const TABLE_FUNCTIONS = new Set([
  'range', 'generate_series', 'unnest',
  'snapshots', 'table_info', 'table_changes', 'table_insertions', 'table_deletions',
  'ducklake_snapshots', 'ducklake_table_info', 'ducklake_table_changes', 'ducklake_table_insertions', 'ducklake_table_deletions',
]);
/** Catalogs a query may read: the lake (and unqualified names, which resolve to it). */
const CATALOGS = new Set(['', 'lake']);
const HIDDEN_SCHEMAS = /^(__ducklake|information_schema$|pg_catalog$)/i;

function walk(node: unknown, visit: (n: Record<string, unknown>) => void): void {
  if (Array.isArray(node)) for (const n of node) walk(n, visit);
  else if (node && typeof node === 'object') {
    visit(node as Record<string, unknown>);
    for (const v of Object.values(node)) walk(v, visit);
  }
}

/** Refuses anything but a single read-only query over the lake: SandboxError with the reason, or BadInputError for SQL that does not parse. */
export async function checkReadOnlyQuery(connection: DuckDBConnection, sql: string): Promise<void> {
  const reader = await connection.runAndReadAll('SELECT json_serialize_sql($1::VARCHAR) AS ast', [sql]);
  const ast = JSON.parse(String(reader.getRowObjectsJson()[0]?.ast)) as { error: boolean; error_message?: string; statements?: unknown[] };
  if (ast.error) {
    if (/Only SELECT statements/i.test(ast.error_message ?? '')) throw new SandboxError('sql: only read queries (a single SELECT) are allowed on a read-only pool');
    // Not a refusal: SQL the parser cannot read is bad input (400, exit 2), like any statement error.
    throw new BadInputError(`sql: Parser Error: ${ast.error_message}`);
  }
  if ((ast.statements ?? []).length !== 1) throw new SandboxError('sql: send exactly one statement');
  walk(ast.statements, (n) => {
    if (n.type === 'TABLE_FUNCTION') {
      const fn = n.function as { function_name?: string; catalog?: string; schema?: string } | undefined;
      const name = String(fn?.function_name ?? '').toLowerCase();
      if (!TABLE_FUNCTIONS.has(name)) throw new SandboxError(`sql: table function ${name}() is not allowed; queries read lake tables`);
    }
    if (n.type === 'BASE_TABLE') {
      const catalog = String(n.catalog_name ?? '').toLowerCase();
      const schema = String(n.schema_name ?? '');
      if (!CATALOGS.has(catalog) || HIDDEN_SCHEMAS.test(schema) || (catalog === '' && /^(system|temp|memory)$/i.test(schema))) {
        throw new SandboxError(`sql: ${[catalog, schema, n.table_name].filter(Boolean).join('.')} is outside the lake`);
      }
    }
  });
}

/** For pools that may write: one INSERT, UPDATE, DELETE, MERGE or SELECT, by the parser's statement type. */
export async function checkWriteQuery(connection: DuckDBConnection, sql: string): Promise<void> {
  const extracted = await connection.extractStatements(sql);
  if (extracted.count !== 1) throw new SandboxError('sql: send exactly one statement');
  const prepared = await extracted.prepare(0);
  const type = prepared.statementType;
  prepared.destroySync();
  const allowed = [StatementType.SELECT, StatementType.INSERT, StatementType.UPDATE, StatementType.DELETE, StatementType.MERGE_INTO];
  if (!allowed.includes(type)) throw new SandboxError(`sql: ${StatementType[type]} statements are not allowed; use SELECT, INSERT, UPDATE, DELETE or MERGE`);
  if (type === StatementType.SELECT) await checkReadOnlyQuery(connection, sql);
}

/** DuckDB's own sandbox: only the lake's data files are reachable, and nothing can be re-configured. */
export async function lockDown(session: LakeSession): Promise<void> {
  await session.run(`SET allowed_directories = [${literal(session.config.dataPath)}]`);
  await session.run('SET enable_external_access = false');
  await session.run('SET lock_configuration = true');
}
