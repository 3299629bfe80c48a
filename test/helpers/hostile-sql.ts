// Queries an attacker with a valid API token would try, by class, each in several spellings
// (nesting, CTEs, lateral joins, subqueries in WHERE, case). Every one must be refused: 403 for
// what the sandbox refuses, 400 for SQL that does not parse or bind. The lake they run against
// has a table `users` (id, name); `{data}` is the lake's data path and `{canaryFile}` the URL of
// a file beside it.

export interface HostileQuery {
  class: string;
  sql: string;
  status: 400 | 403;
}

/** Scalar expressions that would read a setting, a secret, the catalog or the machine. */
const EXPRESSIONS: [string, string][] = [
  ['settings', "current_setting('s3_secret_access_key')"],
  ['settings', "current_setting('s3_access_key_id')"],
  ['settings', "current_setting('extension_directory')"],
  ['settings', "getvariable('x')"],
  ['settings', "main.current_setting('s3_secret_access_key')"],
  ['settings', '"current_setting"(\'s3_secret_access_key\')'],
  ['settings', "list_transform(['s3_secret_access_key'], k -> current_setting(k))[1]"],
  ['settings', "format('{}', current_setting('temp_directory'))"],
  ['macros', 'pg_get_viewdef(1)'],
  ['macros', "has_table_privilege('users', 'select')"],
  ['macros', 'col_description(1, 1)'],
  ['macros', 'current_schemas(true)'],
  ['macros', "in_search_path('system', 'main')"],
  ['serializer', "json_serialize_plan('SELECT current_setting(''s3_secret_access_key'')')"],
  ['serializer', "json_serialize_sql('SELECT 1')"],
  ['state', "nextval('s')"],
  ['state', "write_log('x')"],
  ['state', 'setseed(0.5)'],
  ['time', 'sleep_ms(100000)'],
  ['time', 'pg_sleep(100)'],
];

/** FROM items outside the lake: system views, table functions, files, URLs, the metadata catalog. */
const RELATIONS: [string, string, 400 | 403][] = [
  ['system views', 'pg_settings', 403],
  ['system views', 'duckdb_databases', 403],
  ['system views', 'pragma_database_list', 403],
  ['system views', 'duckdb_tables', 403],
  ['system views', 'pg_class', 403],
  ['system views', 'duckdb_logs', 403],
  ['system views', 'information_schema.tables', 403],
  ['system views', 'pg_catalog.pg_settings', 403],
  ['system views', 'system.main.duckdb_settings()', 403],
  ['system views', 'temp.main.x', 403],
  ['table functions', 'duckdb_settings()', 403],
  ['table functions', 'duckdb_secrets()', 403],
  ['table functions', "which_secret('s3://lake/x', 's3')", 403],
  ['table functions', "query('SELECT current_setting(''s3_secret_access_key'')')", 403],
  ['table functions', "query_table('users')", 403],
  ['table functions', 'duckdb_functions()', 403],
  ['table functions', "sql_auto_complete('SELECT')", 403],
  ['table functions', "ducklake_list_files('lake', 'users')", 403],
  ['table functions', "ducklake_snapshots('__ducklake_metadata_lake')", 400],
  ['table functions', 'histogram(users, id)', 403],
  ['metadata catalog', '__ducklake_metadata_lake.ducklake_data_file', 403],
  ['metadata catalog', '__ducklake_metadata_lake.main.ducklake_table', 403],
  ['files', "read_text('{canaryFile}')", 403],
  ['files', "read_csv('{canaryFile}')", 403],
  ['files', "read_blob('{canaryFile}')", 403],
  ['files', "read_parquet('{data}**/*.parquet')", 403],
  ['files', "glob('{data}**')", 403],
  ['files', "parquet_metadata('{data}**/*.parquet')", 403],
  ['files', "sniff_csv('{canaryFile}')", 403],
  ['files', "'{data}**/*.parquet'", 403],
  ['files', "'{data}../canary.txt'", 403],
  ['files', '"{data}main/users/x.parquet"', 403],
  ['files', "'/etc/passwd'", 403],
  ['files', "'users.csv'", 403],
];

/** Whole statements that are not one read of the lake. */
const STATEMENTS: [string, string, 400 | 403][] = [
  ['statements', "SET s3_secret_access_key = 'x'", 403],
  ['statements', 'RESET threads', 403],
  ['statements', 'PRAGMA database_list', 403],
  ['statements', "ATTACH ':memory:' AS m", 403],
  ['statements', 'DETACH lake', 403],
  ['statements', "COPY users TO '{data}../out.csv'", 403],
  ['statements', "COPY users FROM '{canaryFile}'", 403],
  ['statements', 'INSTALL httpfs', 403],
  ['statements', 'LOAD httpfs', 403],
  ['statements', 'CREATE SECRET s (TYPE s3)', 403],
  ['statements', 'CREATE MACRO m() AS 1', 403],
  ['statements', 'CREATE TABLE t2 AS SELECT 1', 403],
  ['statements', "INSERT INTO users VALUES (9, 'x')", 403],
  ['statements', 'DELETE FROM users', 403],
  ['statements', "EXPORT DATABASE '{data}../export'", 403],
  ['statements', 'EXPLAIN SELECT 1', 403],
  ['statements', 'DESCRIBE users', 403],
  ['statements', 'SHOW TABLES', 403],
  ['statements', 'SUMMARIZE pg_settings', 403],
  ['statements', 'CALL duckdb_settings()', 403],
  ['statements', 'USE memory', 403],
  ['statements', 'CHECKPOINT', 403],
  ['statements', "SELECT 1; SELECT current_setting('s3_secret_access_key')", 403],
  ['statements', "SELECT 1; ATTACH ':memory:' AS m", 403],
  ['statements', "SELEC current_setting('s3_secret_access_key')", 400],
];

const expressionWrappers = [
  (e: string) => `SELECT ${e}`,
  (e: string) => `SELECT x FROM (SELECT ${e} AS x)`,
  (e: string) => `WITH c AS (SELECT ${e} AS x) SELECT * FROM c`,
  (e: string) => `SELECT u.id, l.* FROM users u, LATERAL (SELECT ${e} AS x) l`,
  (e: string) => `SELECT id FROM users WHERE (${e}) IS NOT NULL`,
  (e: string) => `select (select ${e.toUpperCase()})`,
];

const relationWrappers = [
  (r: string) => `SELECT * FROM ${r}`,
  (r: string) => `WITH c AS (SELECT * FROM ${r}) SELECT * FROM c`,
  (r: string) => `SELECT u.id FROM users u, LATERAL (SELECT * FROM ${r}) l`,
  (r: string) => `SELECT id FROM users WHERE id IN (SELECT 1 FROM ${r})`,
  (r: string) => `select * from (select * from (select * from ${r}))`,
];

/**
 * The corpus. `spellings` limits how many spellings of each expression and relation are taken
 * (the cold path starts a process per query, so it runs a smaller share of the same corpus).
 */
export function hostileQueries(vars: { data: string; canaryFile: string }, spellings = Infinity): HostileQuery[] {
  const fill = (s: string) => s.replaceAll('{data}', vars.data).replaceAll('{canaryFile}', vars.canaryFile);
  const out: HostileQuery[] = [];
  for (const [cls, e] of EXPRESSIONS) {
    // Upper-casing a string literal changes what it names, not whether the call is refused.
    for (const wrap of expressionWrappers.slice(0, spellings)) out.push({ class: cls, sql: fill(wrap(e)), status: 403 });
  }
  for (const [cls, r, status] of RELATIONS) {
    for (const wrap of relationWrappers.slice(0, spellings)) out.push({ class: cls, sql: fill(wrap(r)), status });
  }
  for (const [cls, sql, status] of STATEMENTS) out.push({ class: cls, sql: fill(sql), status });
  return out;
}

/** Queries that must keep working: they read only the lake. */
export const LAKE_QUERIES: { sql: string; rows: unknown[] }[] = [
  {
    sql: 'SELECT id, name FROM users ORDER BY id',
    rows: [
      { id: 1, name: 'ada' },
      { id: 2, name: 'bob' },
      { id: 3, name: 'cy' },
    ],
  },
  { sql: 'WITH pg_settings AS (SELECT count(*) AS n FROM users) SELECT n FROM pg_settings', rows: [{ n: '3' }] },
  { sql: 'SELECT count(*) AS n FROM lake.main.users u, LATERAL (SELECT u.id + 1 AS next) l WHERE l.next > 2', rows: [{ n: '2' }] },
  { sql: 'SELECT upper(name) AS n FROM users WHERE id IN (SELECT max(id) FROM users)', rows: [{ n: 'CY' }] },
  { sql: 'SELECT list_transform([1, 2], x -> x * 2) AS l', rows: [{ l: [2, 4] }] },
  { sql: 'SELECT count(*) AS n FROM range(10) r, unnest([1, 2]) u', rows: [{ n: '20' }] },
];
