// The sandbox's allowlists against DuckDB itself: every allowed function exists, every allowed
// macro expands only to allowed functions, and the checks of a write pool's statements (which
// have no parse tree, only a plan) refuse what is not a write to the lake.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { ALLOWED_FUNCTIONS } from '../../lib/lake/allowed-functions.js';
import { loadConfig } from '../../lib/lake/config.js';
import { AllowedQueries, checkReadOnlyQuery, checkWriteQuery, SandboxError } from '../../lib/lake/sandbox.js';
import { BadInputError } from '../../lib/errors.js';

const work = mkdtempSync(join(tmpdir(), 'fm-sandbox-'));
const config = loadConfig({ FEATHERMAN_METADATA: `duckdb:${join(work, 'meta.ducklake')}`, FEATHERMAN_DATA_PATH: join(work, 'data') });
const instance = await DuckDBInstance.create(':memory:', {
  extension_directory: config.extensionDirectory,
  autoinstall_known_extensions: 'false',
  autoload_known_extensions: 'false',
});
const connection: DuckDBConnection = await instance.connect();
for (const ext of ['ducklake', 'httpfs', 'postgres', 'sqlite']) await connection.run(`LOAD ${ext}`);
await connection.run(`ATTACH 'ducklake:${join(work, 'meta.ducklake')}' AS lake (DATA_PATH '${join(work, 'data')}/')`);
await connection.run('USE lake');
await connection.run('CREATE TABLE users (id INTEGER, name VARCHAR)');
await connection.run('CREATE SCHEMA sales');
await connection.run('CREATE TABLE sales.orders (id INTEGER)');
await connection.run('CREATE VIEW big_users AS SELECT * FROM users WHERE id > 10');
// As lockDown() leaves a worker: files outside the data path are unreachable.
await connection.run(`SET allowed_directories = ['${join(work, 'data')}/']`);
await connection.run('SET enable_external_access = false');
t.teardown(() => {
  connection.closeSync();
  instance.closeSync();
  rmSync(work, { recursive: true, force: true });
});

/** The error a check throws (or undefined), to assert on its class. */
const refusal = (check: Promise<void>) =>
  check.then(
    () => undefined,
    (err: unknown) => err,
  );
const rows = async (sql: string) => (await connection.runAndReadAll(sql)).getRowObjectsJson() as Record<string, unknown>[];

t.test('every allowed function is one DuckDB has', async (t) => {
  const known = new Set((await rows('SELECT DISTINCT function_name AS f FROM duckdb_functions()')).map((r) => String(r.f)));
  t.same(
    [...ALLOWED_FUNCTIONS].filter((f) => !known.has(f)),
    [],
    'no unknown names (a DuckDB upgrade that renames one fails here)',
  );
  t.ok(ALLOWED_FUNCTIONS.size > 500, `${ALLOWED_FUNCTIONS.size} functions allowed`);
});

t.test('allowed macros expand only to allowed functions', async (t) => {
  const macros = await rows("SELECT function_name AS name, macro_definition AS body FROM duckdb_functions() WHERE function_type = 'macro'");
  const allowed = macros.filter((m) => ALLOWED_FUNCTIONS.has(String(m.name)));
  t.ok(allowed.length > 40, `${allowed.length} macros allowed`);
  const hidden: string[] = [];
  for (const m of allowed) {
    const parsed = (await rows(`SELECT json_serialize_sql('SELECT ' || ${`'${String(m.body).replace(/'/g, "''")}'`}) AS ast`))[0]!
      .ast as string;
    const names = [...parsed.matchAll(/"function_name":"([^"]+)"/g)].map((x) => x[1]!.toLowerCase());
    for (const n of names) if (!ALLOWED_FUNCTIONS.has(n)) hidden.push(`${String(m.name)} calls ${n}`);
  }
  t.same(hidden, [], 'no allowed macro hides a refused function');
});

t.test('reads resolve against the lake', async (t) => {
  for (const sql of [
    'SELECT * FROM users',
    'SELECT * FROM lake.users',
    'SELECT * FROM lake.main.users',
    'SELECT * FROM sales.orders',
    'SELECT * FROM lake.sales.orders',
    'SELECT * FROM big_users',
    'SELECT * FROM lake.snapshots()',
    "SELECT * FROM ducklake_table_info('lake')",
    'WITH duckdb_settings AS (SELECT 1 AS x) SELECT * FROM duckdb_settings',
  ]) {
    await t.resolves(checkReadOnlyQuery(connection, sql), sql);
  }
  for (const sql of [
    'SELECT * FROM memory.main.users',
    'SELECT * FROM pg_settings',
    'SELECT * FROM duckdb_tables',
    'SELECT * FROM information_schema.columns',
  ]) {
    t.type(await refusal(checkReadOnlyQuery(connection, sql)), SandboxError, `${sql}: refused`);
  }
  for (const sql of ['SELECT * FROM orders', 'SELECT * FROM sales.users', 'SELECT * FROM nope']) {
    t.type(await refusal(checkReadOnlyQuery(connection, sql)), BadInputError, `${sql}: no such table (400)`);
  }
});

t.test('a write pool: INSERT, UPDATE, DELETE and MERGE into lake tables, nothing else', async (t) => {
  for (const sql of [
    "INSERT INTO users VALUES (1, 'a')",
    "UPDATE users SET name = 'b' WHERE id = 1",
    'DELETE FROM users WHERE id = 1',
    'INSERT INTO sales.orders SELECT id FROM users',
    "MERGE INTO users USING (SELECT 1 AS id) s ON users.id = s.id WHEN MATCHED THEN UPDATE SET name = 'c'",
    'SELECT count(*) FROM users',
  ]) {
    await t.resolves(checkWriteQuery(connection, sql), sql);
  }
  const refused: [string, typeof SandboxError | typeof BadInputError][] = [
    ["INSERT INTO users SELECT 1, current_setting('threads')", SandboxError],
    ['INSERT INTO users SELECT 1, name FROM duckdb_settings()', SandboxError],
    ['INSERT INTO users SELECT 1, name FROM pg_settings', SandboxError],
    ['CREATE TABLE t2 (a INTEGER)', SandboxError],
    ['DROP TABLE users', SandboxError],
    ["ATTACH ':memory:' AS m", SandboxError],
    ['SET threads = 1', SandboxError],
    ['INSERT INTO memory.main.x VALUES (1)', BadInputError],
    [`COPY users TO '${join(work, 'out.csv')}'`, BadInputError],
    [`INSERT INTO users SELECT * FROM read_csv('${join(work, 'meta.ducklake')}')`, BadInputError],
    ["INSERT INTO users VALUES (1, 'a'); DELETE FROM users", SandboxError],
  ];
  for (const [sql, kind] of refused) t.type(await refusal(checkWriteQuery(connection, sql)), kind, sql);
});

t.test('errors that could quote what a read saw are opaque', async (t) => {
  const err = await checkWriteQuery(connection, `INSERT INTO users SELECT * FROM read_csv('${join(work, 'meta.ducklake')}')`).catch(
    (e: Error) => e,
  );
  t.match(String((err as Error).message), /^sql: the query does not bind \(\w[\w ]* error\)$/);
  t.notMatch(String((err as Error).message), work, 'no internal path');
});

t.test('an engine remembers the texts it allowed, and only those, within a bound', async (t) => {
  const allowed = new AllowedQueries(2);
  await checkReadOnlyQuery(connection, 'SELECT 1', allowed);
  t.ok(allowed.has('SELECT 1'), 'an allowed text is remembered');
  t.type(await refusal(checkReadOnlyQuery(connection, 'SELECT * FROM pg_settings', allowed)), SandboxError);
  t.notOk(allowed.has('SELECT * FROM pg_settings'), 'a refused text is not');
  await checkReadOnlyQuery(connection, 'SELECT 2', allowed);
  await checkReadOnlyQuery(connection, 'SELECT 3', allowed);
  t.same(
    ['SELECT 1', 'SELECT 2', 'SELECT 3'].map((s) => allowed.has(s)),
    [false, true, true],
    'the oldest goes first past the bound',
  );
});
