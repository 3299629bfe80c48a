// DDL planning is a pure function: spec + current table state in, transactions of SQL out.
import t from 'tap';
import { parseColumnType } from '../../lib/api/column-type.js';
import { BadInputError } from '../../lib/errors.js';
import type { TableState } from '../../lib/lake/inspect.js';
import { planTable } from '../../lib/lake/plan.js';

const users = {
  name: 'users',
  columns: [
    { name: 'id', type: 'INTEGER', nullable: false },
    { name: 'name', type: 'VARCHAR' },
    { name: 'created_at', type: 'TIMESTAMP' },
  ],
  format: { compression: 'zstd', partitioning: ['day(created_at)'] },
};
const current: TableState = {
  schema: 'main',
  name: 'users',
  tableId: 1,
  comment: null,
  compression: 'ZSTD',
  columns: [
    { name: 'id', type: parseColumnType('INTEGER'), nullable: false, comment: null },
    { name: 'name', type: parseColumnType('VARCHAR'), nullable: true, comment: null },
    { name: 'created_at', type: parseColumnType('TIMESTAMP'), nullable: true, comment: null },
  ],
  partitioning: [{ column: 'created_at', transform: 'day' }],
};

t.test('create: table, partitioning, then compression in a second transaction', async (t) => {
  t.same(planTable(users, undefined, { allowDrop: false }), {
    action: 'create',
    transactions: [
      [
        'CREATE TABLE lake."main"."users" ("id" INTEGER NOT NULL, "name" VARCHAR, "created_at" TIMESTAMP)',
        'ALTER TABLE lake."main"."users" SET PARTITIONED BY (day("created_at"))',
      ],
      [`CALL lake.set_option('parquet_compression', 'zstd', schema => 'main', table_name => 'users')`],
    ],
  });
  const inSchema = planTable({ ...users, schema: 'sales', comment: "it's ours", format: undefined }, undefined, { allowDrop: false });
  t.equal(inSchema.transactions[0]![0], 'CREATE SCHEMA IF NOT EXISTS lake."sales"');
  t.equal(inSchema.transactions[0]![2], `COMMENT ON TABLE lake."sales"."users" IS 'it''s ours'`);
});

t.test('an unchanged spec plans nothing; case differences in names are not changes', async (t) => {
  t.same(planTable(users, current, { allowDrop: false }), { action: 'unchanged', transactions: [] });
  const upper = {
    ...users,
    columns: users.columns.map((c) => ({ ...c, name: c.name.toUpperCase() })),
    format: { compression: 'ZSTD', partitioning: ['DAY(CREATED_AT)'] },
  };
  t.same(planTable(upper, current, { allowDrop: false }).transactions, []);
});

t.test('evolution: widen, add, relax NOT NULL, repartition, recompress, drop with --allow-drop', async (t) => {
  const next = {
    ...users,
    columns: [
      { name: 'id', type: 'BIGINT' },
      { name: 'created_at', type: 'TIMESTAMP' },
      { name: 'email', type: 'VARCHAR', comment: 'work address' },
    ],
    format: { compression: 'snappy', partitioning: ['month(created_at)', 'id'] },
  };
  t.throws(() => planTable(next, current, { allowDrop: false }), /column "name" would be dropped; dropping columns needs --allow-drop/);
  t.same(planTable(next, current, { allowDrop: true }).transactions, [
    [
      'ALTER TABLE lake."main"."users" ALTER COLUMN "id" SET DATA TYPE BIGINT',
      'ALTER TABLE lake."main"."users" ALTER COLUMN "id" DROP NOT NULL',
      'ALTER TABLE lake."main"."users" ADD COLUMN "email" VARCHAR',
      `COMMENT ON COLUMN lake."main"."users"."email" IS 'work address'`,
      'ALTER TABLE lake."main"."users" DROP COLUMN "name"',
      'ALTER TABLE lake."main"."users" SET PARTITIONED BY (month("created_at"), "id")',
      `CALL lake.set_option('parquet_compression', 'snappy', schema => 'main', table_name => 'users')`,
    ],
  ]);
  const unpartitioned = planTable({ ...users, format: { compression: 'ZSTD', partitioning: [] } }, current, { allowDrop: false });
  t.same(unpartitioned.transactions, [['ALTER TABLE lake."main"."users" RESET PARTITIONED BY']]);
});

t.test('refusals list every problem and name the field', async (t) => {
  const bad = {
    ...users,
    columns: [
      { name: 'id', type: 'SMALLINT', nullable: false },
      { name: 'name', type: 'VARCHAR', nullable: false },
      { name: 'extra', type: 'INTEGER', nullable: false },
    ],
    format: { partitioning: [] },
  };
  try {
    planTable(bad, current, { allowDrop: true });
    t.fail('should refuse');
  } catch (err) {
    t.type(err, BadInputError);
    const fields = (err as BadInputError).problems.map((p) => p.field);
    t.same(fields, ['spec.columns[0].type', 'spec.columns[1].nullable', 'spec.columns', 'spec.columns[2].nullable']);
    t.match((err as Error).message, /"created_at" is a partition column of the existing data and cannot be removed/);
    t.match((err as Error).message, /cannot change id from INTEGER to SMALLINT/);
  }
});

t.test('a pod memory limit in bytes becomes 50% for DuckDB, which DuckDB accepts', async (t) => {
  const { memoryLimit, loadConfig } = await import('../../lib/lake/config.js');
  const { openDuckDB } = await import('../../lib/lake/session.js');
  t.equal(memoryLimit('2147483648'), '1024MiB');
  t.equal(memoryLimit('4GB'), '4GB');
  t.throws(() => memoryLimit('lots'), /FEATHERMAN_MEMORY_LIMIT/);
  const session = await openDuckDB(
    loadConfig({ FEATHERMAN_METADATA: 'duckdb:/tmp/x.ducklake', FEATHERMAN_DATA_PATH: '/tmp/x', FEATHERMAN_MEMORY_LIMIT: '2147483648' }),
  );
  t.teardown(() => session.close());
  t.match(await session.value("SELECT current_setting('memory_limit')"), /^1\.0 GiB$/);
});
