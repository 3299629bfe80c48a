// The wire front's pure parts: where statements and parameters are in SQL, and how a bound value
// becomes a literal (malformed values refused, quotes kept inside the value).
import t from 'tap';
import { bindParameters, parameterCasts, parameterCount, splitStatements } from '../../lib/pgwire/sql.js';
import { binaryValue, column, decodeBinaryParameter, literal, numericBinary, oidOfTypeName, parseArray } from '../../lib/pgwire/types.js';
import { duckTypeName } from '../../lib/lake/duck-type-name.js';
import { DuckDBInstance } from '@duckdb/node-api';
import { sqlstate } from '../../lib/pgwire/result.js';
import { rewriteCatalogSql } from '../../lib/pgwire/catalog.js';

t.test('statements and parameters outside strings, names, comments and dollar quotes', async (t) => {
  t.same(splitStatements('SELECT \'a;b\'; SELECT "x;" -- c;\n; /* ; */ SELECT $$;$$'), [
    "SELECT 'a;b'",
    ' SELECT "x;" -- c;\n',
    ' /* ; */ SELECT $$;$$',
  ]);
  t.equal(parameterCount('SELECT $1, \'$2\', "$3", $$ $4 $$, $2 -- $9'), 2);
  t.equal(bindParameters("SELECT $1 || '$1'", ["'x'"]), "SELECT 'x' || '$1'");
  t.throws(() => bindParameters('SELECT $2', ['1']), RangeError);
});

t.test('bound values become typed literals', async (t) => {
  t.equal(literal("x' OR '1'='1", 0), "'x'' OR ''1''=''1'", 'quotes stay in the value');
  t.equal(literal('42', 23), '(42)::INTEGER');
  t.throws(() => literal('1; DROP TABLE users', 23), /invalid input syntax for type integer/);
  t.throws(() => literal('1e3); --', 1700), /invalid input syntax for type numeric/);
  t.equal(literal('t', 16), 'TRUE');
  t.equal(literal(null, 25), 'NULL');
  t.equal(literal('2024-01-02', 1082), "CAST('2024-01-02' AS DATE)");
  t.equal(literal('{1,NULL}', 1007), 'CAST([(1)::INTEGER, NULL] AS INTEGER[])');
  t.same(parseArray('{a,"b c","x\\"y",NULL}'), ['a', 'b c', 'x"y', null]);
  t.equal(decodeBinaryParameter(Buffer.from([0, 0, 0, 7]), 23), '7');
  t.equal(decodeBinaryParameter(numericBinary('-12345.678'), 1700), '-12345.678', 'numeric binary both ways');
  t.equal(decodeBinaryParameter(numericBinary('0.0001'), 1700), '0.0001');
});

t.test('SQLSTATEs from answers', async (t) => {
  t.equal(sqlstate(403, 'sql: read_csv() is not allowed'), '42501');
  t.equal(sqlstate(429, 'pool busy'), '53300');
  t.equal(sqlstate(504, 'query exceeded its deadline'), '57014');
  t.equal(sqlstate(400, 'sql: Parser Error: syntax error at or near "x"'), '42601');
  t.equal(sqlstate(400, 'sql: Catalog Error: Table with name x does not exist!'), '42P01');
  t.equal(sqlstate(400, 'sql: Binder Error: Referenced column "x" not found'), '42703');
  t.equal(sqlstate(400, "sql: Conversion Error: Could not convert string 'a' to INT32"), '22P02');
  t.equal(sqlstate(400, 'sql: Constraint Error: Duplicate key'), '23505');
});

t.test("catalog SQL is pointed at the mirror's own pg_catalog", async (t) => {
  t.equal(
    rewriteCatalogSql(
      'SELECT pg_catalog.format_type(a.atttypid, NULL) FROM pg_catalog.pg_attribute a ' +
        "WHERE c.relname OPERATOR(pg_catalog.~) '^(users)$' COLLATE pg_catalog.default",
    ),
    "SELECT fm.pgc.format_type(a.atttypid, NULL) FROM fm.pgc.pg_attribute a WHERE c.relname  ~  '^(users)$'",
  );
});

t.test('untyped parameters take the type of their cast; binary arrays decode', async (t) => {
  t.same(
    [...parameterCasts("SELECT $1::text[], CAST($2 AS double precision), '$3::int', $4 :: timestamp with time zone")],
    [
      [1, 'text[]'],
      [2, 'double precision'],
      [4, 'timestamp with time zone'],
    ],
  );
  t.equal(oidOfTypeName('text[]'), 1009);
  t.equal(oidOfTypeName('Double Precision'), 701);
  t.equal(oidOfTypeName('pg_catalog.int4'), 23);
  t.equal(oidOfTypeName('mood'), undefined, 'unknown names leave the parameter untyped');
  // text[] as Postgres sends it in binary: the same bytes our own encoder writes for a VARCHAR[] column.
  const bytes = binaryValue(['a', null, 'b "c"', ''], column('v', 'v', 'VARCHAR[]'));
  t.equal(decodeBinaryParameter(bytes, 1009), '{a,NULL,"b \\"c\\"",""}');
  t.equal(literal(decodeBinaryParameter(bytes, 1009), 1009), "CAST(['a', NULL, 'b \"c\"', ''] AS VARCHAR[])");
  t.throws(() => decodeBinaryParameter(bytes, 1007), /element type does not match/);
  t.equal(decodeBinaryParameter(Buffer.from('\u0001{"a":1}'), 3802), '{"a":1}', 'jsonb: a version byte, then the text');
});

t.test('JSON columns keep their name through the node API (its toString() says VARCHAR)', async (t) => {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  const r = await c.run(`SELECT '{}'::JSON AS j, ['1']::JSON[] AS l, ['x', 'y']::VARCHAR[2] AS a, 1::DECIMAL(9,2) AS d`);
  t.same(r.columnTypes().map(duckTypeName), ['JSON', 'JSON[]', 'VARCHAR[2]', 'DECIMAL(9,2)']);
  c.closeSync();
  db.closeSync();
});
