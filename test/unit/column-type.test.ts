// The type grammar, checked against DuckDB itself: every type we accept must be one DuckDB
// accepts and spells the way we do, and every widening we call lossless DuckLake must perform.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatColumnType, isLosslessWidening, parseColumnType } from '../../lib/api/column-type.js';
import { loadConfig } from '../../lib/lake/config.js';
import { openLake } from '../../lib/lake/session.js';

const accepted: [string, string][] = [
  ['integer', 'INTEGER'],
  ['INT', 'INTEGER'],
  ['int8', 'BIGINT'],
  ['bool', 'BOOLEAN'],
  ['text', 'VARCHAR'],
  ['VARCHAR(255)', 'VARCHAR'],
  ['character varying(20)', 'VARCHAR'],
  ['double precision', 'DOUBLE'],
  ['real', 'FLOAT'],
  ['decimal(12, 2)', 'DECIMAL(12,2)'],
  ['NUMERIC', 'DECIMAL(18,3)'],
  ['decimal(5)', 'DECIMAL(5,0)'],
  ['timestamp with time zone', 'TIMESTAMPTZ'],
  ['TIMESTAMP WITHOUT TIME ZONE', 'TIMESTAMP'],
  ['time with time zone', 'TIMETZ'],
  ['timestamp_ns', 'TIMESTAMP_NS'],
  ['uuid', 'UUID'],
  ['json', 'JSON'],
  ['blob', 'BLOB'],
  ['interval', 'INTERVAL'],
  ['hugeint', 'HUGEINT'],
  ['utinyint', 'UTINYINT'],
  ['varchar[]', 'VARCHAR[]'],
  ['INTEGER[][]', 'INTEGER[][]'],
  ['list(bigint)', 'BIGINT[]'],
  ['map(varchar, integer)', 'MAP(VARCHAR, INTEGER)'],
  ['struct(a integer, "B c" varchar[])', 'STRUCT("a" INTEGER, "B c" VARCHAR[])'],
  ['STRUCT(x MAP(VARCHAR, DECIMAL(10,2)))[]', 'STRUCT("x" MAP(VARCHAR, DECIMAL(10,2)))[]'],
];
const refused: [string, RegExp][] = [
  ['STRNG', /unknown type "STRNG"/],
  ['INTEGER[3]', /fixed-size arrays/],
  ["ENUM('a')", /ENUM cannot be stored/],
  ['UNION(a INT, b VARCHAR)', /UNION cannot be stored/],
  ['BIT', /BIT cannot be stored/],
  ['DECIMAL(40,2)', /precision must be between 1 and 38/],
  ['DECIMAL(5,6)', /scale \(6\) must not exceed/],
  ['INTEGER); DROP TABLE x; --', /unexpected/],
  ['', /non-empty/],
  ['MAP(VARCHAR)', /expected ","/],
  ['STRUCT(a INT, A INT)', /appears twice/],
  ['VARCHAR(', /ends too early/],
  ["VARCHAR'", /unexpected character/],
];

t.test("accepted types parse to DuckDB's canonical spelling", async (t) => {
  for (const [input, canonical] of accepted) t.equal(formatColumnType(parseColumnType(input)), canonical, input);
});

t.test('refused types say why', async (t) => {
  for (const [input, message] of refused) t.throws(() => parseColumnType(input), message, JSON.stringify(input));
});

t.test('DuckDB agrees: every canonical type is valid, spelled the same, and storable in DuckLake', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fm-types-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const lake = await openLake(
    loadConfig({ FEATHERMAN_METADATA: `duckdb:${join(dir, 'm.ducklake')}`, FEATHERMAN_DATA_PATH: join(dir, 'data') }),
    { create: true },
  );
  t.teardown(() => lake.close());
  let i = 0;
  for (const [, canonical] of accepted) {
    const table = `t${i++}`;
    await lake.run(`CREATE TABLE ${table} (c ${canonical})`);
    const spelled = await lake.value<string>(
      `SELECT data_type FROM duckdb_columns() WHERE database_name = 'lake' AND table_name = '${table}'`,
    );
    t.equal(formatColumnType(parseColumnType(spelled)), canonical, `${canonical} round-trips through DuckDB's own spelling ${spelled}`);
  }
});

t.test('widenings we call lossless are exactly the ones DuckLake performs in place', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fm-widen-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const lake = await openLake(
    loadConfig({ FEATHERMAN_METADATA: `duckdb:${join(dir, 'm.ducklake')}`, FEATHERMAN_DATA_PATH: join(dir, 'data') }),
    { create: true },
  );
  t.teardown(() => lake.close());
  const types = [
    'TINYINT',
    'SMALLINT',
    'INTEGER',
    'BIGINT',
    'UTINYINT',
    'USMALLINT',
    'UINTEGER',
    'UBIGINT',
    'FLOAT',
    'DOUBLE',
    'DECIMAL(10,2)',
    'DECIMAL(18,2)',
    'DATE',
    'TIMESTAMP',
    'VARCHAR',
    'INTEGER[]',
    'BIGINT[]',
  ];
  let n = 0;
  for (const from of types) {
    for (const to of types) {
      if (from === to || !isLosslessWidening(parseColumnType(from), parseColumnType(to))) continue;
      n++;
      const table = `w${n}`;
      await lake.run(`CREATE TABLE ${table} (c ${from})`);
      await t.resolves(lake.run(`ALTER TABLE ${table} ALTER COLUMN c SET DATA TYPE ${to}`), `${from} -> ${to}`);
    }
  }
  t.ok(n >= 20, `${n} lossless widenings checked against DuckLake`);
  for (const [from, to] of [
    ['BIGINT', 'INTEGER'],
    ['VARCHAR', 'INTEGER'],
    ['INTEGER', 'VARCHAR'],
    ['BIGINT', 'DOUBLE'],
    ['DOUBLE', 'FLOAT'],
    ['TIMESTAMP', 'DATE'],
    ['DECIMAL(10,2)', 'DECIMAL(10,3)'],
    ['UBIGINT', 'BIGINT'],
    ['INTEGER', 'UINTEGER'],
  ]) {
    t.notOk(isLosslessWidening(parseColumnType(from!), parseColumnType(to!)), `${from} -> ${to} is not lossless`);
  }
});
