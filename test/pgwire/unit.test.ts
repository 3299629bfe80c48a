// The wire front's pure parts: where statements and parameters are in SQL, and how a bound value
// becomes a literal (malformed values refused, quotes kept inside the value).
import t from 'tap';
import { bindParameters, parameterCount, splitStatements } from '../../lib/pgwire/sql.js';
import { decodeBinaryParameter, literal, numericBinary, parseArray } from '../../lib/pgwire/types.js';
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
      "SELECT pg_catalog.format_type(a.atttypid, NULL) FROM pg_catalog.pg_attribute a WHERE c.relname OPERATOR(pg_catalog.~) '^(users)$' COLLATE pg_catalog.default",
    ),
    "SELECT fm.pgc.format_type(a.atttypid, NULL) FROM fm.pgc.pg_attribute a WHERE c.relname  ~  '^(users)$'",
  );
});
