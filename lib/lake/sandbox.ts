// What user SQL may do in a warm worker or a sandboxed `featherman query`. Allowlists, checked twice:
//  1. Before binding, on DuckDB's parse tree (json_serialize_sql, SELECT only): every table a query
//     names must be a lake table or view (or one of its own CTEs), every table function and
//     every function or macro it calls must be on an allowlist. Binding may read files (a CSV
//     sniffer, a Parquet footer) or evaluate functions, so nothing unknown is bound at all.
//  2. After binding, on the logical plan (json_serialize_plan, reads and writes): every operator
//     is of an allowed kind, every scan is a DuckLake scan of the lake or an allowed table
//     function, every function in it is allowed, and writes target lake tables. Macros and views
//     are expanded here, so what a macro or view hides is checked too.
// Beneath both, DuckDB's own switches (lockDown): enable_external_access = false with only the
// lake's data path allowed, and lock_configuration = true.
import type { DuckDBConnection } from '@duckdb/node-api';
import { BadInputError } from '../errors.js';
import { RecentlyUsed } from '../recently-used.js';
import { ALLOWED_FUNCTIONS } from './allowed-functions.js';
import { usesS3, type LakeSession } from './session.js';
import { LAKE, literal } from './sql.js';

/** The query asks for something outside what user SQL may do: 403 on the query API. */
export class SandboxError extends Error {
  override name = 'SandboxError';
}

/** Largest plan, in operators, that a query may bind to; ten times that in operators, expressions and their parts. */
export const MAX_PLAN_NODES = 20_000;

/** Table functions a query may call: generators, JSON rows, and DuckLake's read-only views of the lake. */
const TABLE_FUNCTIONS = new Set([
  'range',
  'generate_series',
  'unnest',
  'json_each',
  'json_tree',
  'snapshots',
  'table_info',
  'table_changes',
  'table_insertions',
  'table_deletions',
  'ducklake_snapshots',
  'ducklake_table_info',
  'ducklake_table_changes',
  'ducklake_table_insertions',
  'ducklake_table_deletions',
]);
/** Of those, the DuckLake ones: their first argument names the catalog, which must be the lake. */
const LAKE_TABLE_FUNCTIONS = /^(ducklake_)?(snapshots|table_info|table_changes|table_insertions|table_deletions)$/;
/** What the parse tree's FROM clauses may hold. SHOW_REF (DESCRIBE, SHOW) and anything new are refused. */
const TABLE_REFS = new Set([
  'BASE_TABLE',
  'JOIN',
  'SUBQUERY',
  'TABLE_FUNCTION',
  'EXPRESSION_LIST',
  'EMPTY_FROM',
  'EMPTY',
  'PIVOT',
  'COLUMN_DATA',
]);
/** Logical operators a read may plan to. */
const READ_OPERATORS = new Set([
  'LOGICAL_PROJECTION',
  'LOGICAL_FILTER',
  'LOGICAL_AGGREGATE_AND_GROUP_BY',
  'LOGICAL_WINDOW',
  'LOGICAL_UNNEST',
  'LOGICAL_LIMIT',
  'LOGICAL_ORDER_BY',
  'LOGICAL_TOP_N',
  'LOGICAL_DISTINCT',
  'LOGICAL_SAMPLE',
  'LOGICAL_PIVOT',
  'LOGICAL_GET',
  'LOGICAL_DELIM_GET',
  'LOGICAL_EXPRESSION_GET',
  'LOGICAL_DUMMY_SCAN',
  'LOGICAL_EMPTY_RESULT',
  'LOGICAL_CTE_REF',
  'LOGICAL_MATERIALIZED_CTE',
  'LOGICAL_RECURSIVE_CTE',
  'LOGICAL_COMPARISON_JOIN',
  'LOGICAL_ANY_JOIN',
  'LOGICAL_CROSS_PRODUCT',
  'LOGICAL_POSITIONAL_JOIN',
  'LOGICAL_ASOF_JOIN',
  'LOGICAL_DEPENDENT_JOIN',
  'LOGICAL_DELIM_JOIN',
  'LOGICAL_UNION',
  'LOGICAL_EXCEPT',
  'LOGICAL_INTERSECT',
]);
/** And a write, on a pool that may write. */
const WRITE_OPERATORS = new Set(['LOGICAL_INSERT', 'LOGICAL_UPDATE', 'LOGICAL_DELETE', 'LOGICAL_MERGE_INTO']);
/** Expressions in a plan; those naming a function are checked against ALLOWED_FUNCTIONS. */
const EXPRESSIONS = new Set([
  'BOUND_FUNCTION',
  'BOUND_AGGREGATE',
  'BOUND_WINDOW',
  'BOUND_REF',
  'BOUND_COLUMN_REF',
  'BOUND_CONSTANT',
  'BOUND_CAST',
  'BOUND_CASE',
  'BOUND_COMPARISON',
  'BOUND_CONJUNCTION',
  'BOUND_OPERATOR',
  'BOUND_BETWEEN',
  'BOUND_SUBQUERY',
  'BOUND_UNNEST',
  'BOUND_LAMBDA',
  'BOUND_LAMBDA_REF',
  'BOUND_PARAMETER',
  'BOUND_DEFAULT',
  'BOUND_REFERENCE',
]);
/** Table names shaped like a file or URL: DuckDB would read them as files (replacement scans). */
const PATH_SHAPED = /[/\\:*?{}[\]]|\.(parquet|csv|tsv|json|jsonl|ndjson|txt|gz|zst|arrow|avro|duckdb|db|sqlite|ducklake|xlsx)$/i;
/** Error kinds whose message may quote what a failed read saw (a line of a file): never shown. */
const OPAQUE_ERRORS = /^(io|invalid input|conversion|http|permission|serialization|internal|fatal)/i;

export type Json = Record<string, unknown>;

/** A lake table a query reads or writes, as the bound plan names it (lower case). */
export interface TableRef {
  schema: string;
  table: string;
}

/**
 * What a query touches, from its bound plan: the lake tables it scans (table_changes() and the
 * like are scans too), the tables it writes, and whether it reads the catalog's own metadata
 * (snapshots(), table_info()). The query API authorises each (lib/auth/).
 */
export interface QueryTables {
  kind: 'select' | 'insert' | 'update' | 'delete' | 'merge';
  read: TableRef[];
  write: TableRef[];
  /** snapshots() or table_info(): metadata of every table of the catalog. */
  catalog: boolean;
}

const WRITE_KINDS: Record<string, QueryTables['kind']> = {
  LOGICAL_INSERT: 'insert',
  LOGICAL_UPDATE: 'update',
  LOGICAL_DELETE: 'delete',
  LOGICAL_MERGE_INTO: 'merge',
};

function addTable(list: TableRef[], schema: unknown, table: unknown): void {
  const ref = { schema: lower(schema) || 'main', table: lower(table) };
  if (!list.some((t) => t.schema === ref.schema && t.table === ref.table)) list.push(ref);
}

/** Every object in a JSON tree, without recursion (a plan may be thousands of levels deep). */
export function* objects(root: unknown): Generator<Json> {
  const stack: unknown[] = [root];
  while (stack.length) {
    const node = stack.pop();
    if (Array.isArray(node)) {
      for (let i = node.length - 1; i >= 0; i--) stack.push(node[i]);
    } else if (node && typeof node === 'object') {
      yield node as Json;
      for (const v of Object.values(node)) if (v && typeof v === 'object') stack.push(v);
    }
  }
}

export const lower = (v: unknown) => (typeof v === 'string' ? v.toLowerCase() : '');

function checkFunction(name: string): void {
  if (!ALLOWED_FUNCTIONS.has(name)) throw new SandboxError(`sql: function ${name}() is not allowed; queries compute over lake data only`);
}

/**
 * DuckDB's parse tree or plan of `text` (SQL) as JSON text, or the SQL text of `text` (a parse
 * tree) for json_deserialize_sql. Named through `system.main` and given as a literal: an
 * unqualified name would first be looked up in the lake (the default database), which costs a
 * DuckLake catalog read, and a parameter costs a prepared statement.
 */
export async function jsonSql(
  connection: DuckDBConnection,
  fn: 'json_serialize_sql' | 'json_serialize_plan' | 'json_deserialize_sql',
  text: string,
): Promise<string> {
  const reader = await connection.runAndReadAll(`SELECT system.main.${fn}(${literal(text)})`);
  return String(reader.getRows()[0]?.[0]);
}

/** Stage 1: the parse tree of a SELECT. */
async function checkParseTree(connection: DuckDBConnection, sql: string): Promise<void> {
  const ast = JSON.parse(await jsonSql(connection, 'json_serialize_sql', sql)) as {
    error: boolean;
    error_message?: string;
    statements?: unknown[];
  };
  if (ast.error) {
    if (/Only SELECT statements/i.test(ast.error_message ?? ''))
      throw new SandboxError('sql: only read queries (a single SELECT) are allowed on a read-only pool');
    // Not a refusal: SQL the parser cannot read is bad input (400, exit 2), like any statement error.
    throw new BadInputError(`sql: Parser Error: ${ast.error_message}`);
  }
  if ((ast.statements ?? []).length !== 1) throw new SandboxError('sql: send exactly one statement');

  const tables: Json[] = [];
  // A table function's call is a FUNCTION node too; it is checked as a table function, its arguments as functions.
  const tableFunctionCalls = new Set<unknown>();
  for (const n of objects(ast.statements)) {
    if ((n.class === 'FUNCTION' || (n.class === 'WINDOW' && n.type === 'WINDOW_AGGREGATE')) && !tableFunctionCalls.has(n)) {
      // Built-in functions resolve from any of these; a name elsewhere would be a user's macro.
      if (!['', 'system'].includes(lower(n.catalog)) || !['', 'main'].includes(lower(n.schema))) {
        throw new SandboxError(`sql: ${[n.catalog, n.schema, n.function_name].filter(Boolean).join('.')}() is outside the lake`);
      }
      checkFunction(lower(n.function_name));
    }
    const refType = typeof n.type === 'string' && 'sample' in n && 'alias' in n && !('class' in n) ? n.type : undefined;
    if (refType !== undefined && !TABLE_REFS.has(refType))
      throw new SandboxError(`sql: ${refType.toLowerCase().replace(/_/g, ' ')} is not allowed; queries read lake tables`);
    if (refType === 'TABLE_FUNCTION') {
      const fn = n.function as Json | undefined;
      tableFunctionCalls.add(fn);
      const name = lower(fn?.function_name);
      if (!TABLE_FUNCTIONS.has(name)) throw new SandboxError(`sql: table function ${name}() is not allowed; queries read lake tables`);
      // lake.snapshots() parses as schema "lake"; the catalog's own functions may be named through it.
      const qualifier = [lower(fn?.catalog), lower(fn?.schema)].filter((q) => q && q !== 'main' && q !== 'system');
      if (qualifier.some((q) => q !== LAKE)) throw new SandboxError(`sql: ${qualifier.join('.')}.${name}() is outside the lake`);
    }
    if (refType === 'BASE_TABLE') tables.push(n);
  }
  for (const ref of tables) {
    const catalog = lower(ref.catalog_name);
    const shown = [ref.catalog_name, ref.schema_name, ref.table_name].filter(Boolean).join('.');
    // A name DuckDB cannot find in a catalog may be read as a file (a replacement scan): refused unbound.
    if (PATH_SHAPED.test(lower(ref.table_name)) || PATH_SHAPED.test(lower(ref.schema_name))) {
      throw new SandboxError(`sql: ${JSON.stringify(shown)} is not a lake table; files and URLs cannot be read`);
    }
    if (catalog !== '' && catalog !== LAKE) throw new SandboxError(`sql: ${shown} is outside the lake`);
  }
  // Which table each name resolves to (a lake table, a CTE, a system view) is settled by the binder:
  // stage 2 lets only DuckLake scans of the lake through.
}

/** Stage 2: the bound logical plan, for reads and writes; what it reads and writes. */
async function checkPlan(connection: DuckDBConnection, sql: string, write: boolean): Promise<QueryTables> {
  const plan = JSON.parse(await jsonSql(connection, 'json_serialize_plan', sql)) as {
    error: boolean;
    error_type?: string;
    error_message?: string;
    plans?: unknown[];
  };
  if (plan.error) {
    const kind = plan.error_type ?? 'error';
    if (/not implemented/i.test(kind))
      throw new SandboxError(
        `sql: only ${write ? 'SELECT, INSERT, UPDATE, DELETE or MERGE statements' : 'SELECT queries'} over lake tables are allowed`,
      );
    if (OPAQUE_ERRORS.test(kind)) throw new BadInputError(`sql: the query does not bind (${kind} error)`);
    throw new BadInputError(`sql: ${kind[0]!.toUpperCase()}${kind.slice(1)} Error: ${plan.error_message}`);
  }
  let operators = 0;
  let nodes = 0;
  const tables: QueryTables = { kind: 'select', read: [], write: [], catalog: false };
  for (const n of objects(plan.plans)) {
    if (++nodes > MAX_PLAN_NODES * 10) throw new BadInputError(`sql: the query's plan is too large; simplify it`);
    const type = n.type;
    const expression = n.expression_class;
    if (typeof expression === 'string') {
      if (!EXPRESSIONS.has(expression)) throw new SandboxError(`sql: ${expression.toLowerCase()} expressions are not allowed`);
      if (
        (expression === 'BOUND_FUNCTION' || expression === 'BOUND_AGGREGATE' || (expression === 'BOUND_WINDOW' && n.name)) &&
        typeof n.name === 'string'
      ) {
        checkFunction(n.name.toLowerCase());
      }
    } else if (typeof type === 'string' && type.startsWith('LOGICAL_')) {
      if (++operators > MAX_PLAN_NODES)
        throw new BadInputError(`sql: the query plans to more than ${MAX_PLAN_NODES} operators; simplify it`);
      if (!READ_OPERATORS.has(type) && !(write && WRITE_OPERATORS.has(type))) {
        throw new SandboxError(
          `sql: ${type.slice(8).toLowerCase().replace(/_/g, ' ')} is not allowed${write ? '' : ' on a read-only pool'}`,
        );
      }
      if (type === 'LOGICAL_GET') checkScan(n, tables);
      if (WRITE_OPERATORS.has(type)) {
        const info = n.table_info as Json | undefined;
        if (lower(info?.catalog) !== LAKE)
          throw new SandboxError(`sql: writes go to lake tables only, not ${String(info?.catalog ?? 'that table')}`);
        addTable(tables.write, info?.schema, info?.table);
        tables.kind = WRITE_KINDS[type]!;
      }
    }
  }
  return tables;
}

function checkScan(get: Json, tables: QueryTables): void {
  const name = lower(get.name);
  if (name === 'ducklake_scan') {
    const data = get.function_data as Json | undefined;
    if (lower(data?.catalog_name) !== LAKE) throw new SandboxError('sql: only lake tables may be read');
    addTable(tables.read, data?.schema_name, data?.table_name);
    return;
  }
  if (!TABLE_FUNCTIONS.has(name)) throw new SandboxError(`sql: reading through ${name}() is not allowed; queries read lake tables`);
  if (LAKE_TABLE_FUNCTIONS.test(name)) {
    const first = (get.parameters as { value?: unknown }[] | undefined)?.[0]?.value;
    if (lower(first) !== LAKE) throw new SandboxError(`sql: ${name}() may only look at the lake`);
    // snapshots() and table_info() describe every table; table_changes() and the like plan to ducklake_scans.
    tables.catalog = true;
  }
}

/**
 * SQL texts already allowed on one engine whose catalog cannot change under it (a worker's copy of
 * a DuckDB catalog file): the same text binds to the same lake tables there, so its verdict
 * holds for the engine's life. Not for a Postgres catalog, where a dropped table could let the same
 * name resolve elsewhere. Only allowed texts are kept, at most `max` of them (least recently used
 * out first). The verdict depends on the text alone: grants are checked on its tables afterwards.
 */
export class AllowedQueries {
  private readonly texts: RecentlyUsed<string, QueryTables>;
  constructor(max = 1000) {
    this.texts = new RecentlyUsed(max);
  }
  has(sql: string): boolean {
    return this.texts.has(sql);
  }
  /** The tables an allowed text reads and writes (the same on this engine every time). */
  get(sql: string): QueryTables | undefined {
    return this.texts.get(sql);
  }
  add(sql: string, tables: QueryTables): void {
    this.texts.set(sql, tables);
  }
}

/**
 * Refuses anything but a single read-only query over the lake: SandboxError with the reason, or
 * BadInputError for SQL that does not parse or bind.
 */
export async function checkReadOnlyQuery(connection: DuckDBConnection, sql: string, allowed?: AllowedQueries): Promise<void> {
  await planReadOnlyQuery(connection, sql, allowed);
}

/** For pools that may write: one INSERT, UPDATE, DELETE, MERGE or SELECT over the lake. */
export async function checkWriteQuery(connection: DuckDBConnection, sql: string): Promise<void> {
  await planWriteQuery(connection, sql);
}

/** checkReadOnlyQuery, saying what the allowed query reads. */
export async function planReadOnlyQuery(connection: DuckDBConnection, sql: string, allowed?: AllowedQueries): Promise<QueryTables> {
  const known = allowed?.get(sql);
  if (known) return known;
  await checkParseTree(connection, sql);
  const tables = await checkPlan(connection, sql, false);
  allowed?.add(sql, tables);
  return tables;
}

/** checkWriteQuery, saying what the allowed query reads and writes. */
export async function planWriteQuery(connection: DuckDBConnection, sql: string): Promise<QueryTables> {
  const extracted = await connection.extractStatements(sql);
  if (extracted.count !== 1) throw new SandboxError('sql: send exactly one statement');
  // A SELECT gets both stages. Other statements have no parse tree to look at (DuckDB serialises
  // only SELECTs), so they are checked on their plan alone, where errors that could quote what a
  // read saw are opaque, and anything but INSERT, UPDATE, DELETE and MERGE is refused.
  const isSelect = !(JSON.parse(await jsonSql(connection, 'json_serialize_sql', sql)) as { error: boolean }).error;
  if (isSelect) return planReadOnlyQuery(connection, sql);
  return checkPlan(connection, sql, true);
}

/** DuckDB's own sandbox: only the lake's data files are reachable, and nothing can be re-configured. */
export async function lockDown(session: LakeSession): Promise<void> {
  // httpfs copies AWS_* from the environment into these settings when it loads; the lake reads
  // through the S3 secret, so they are emptied before the configuration is locked.
  if (usesS3(session.config)) {
    for (const setting of ['s3_access_key_id', 's3_secret_access_key', 's3_session_token']) await session.run(`SET ${setting} = ''`);
  }
  await session.run(`SET allowed_directories = [${literal(session.config.dataPath)}]`);
  await session.run('SET enable_external_access = false');
  await session.run('SET lock_configuration = true');
}
