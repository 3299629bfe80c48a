// The runner on a local lake (DuckDB catalog file + data directory): input validation before any
// SQL, identifiers that need quoting, concurrent writers on one catalog file, result files.
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { featherman } from '../helpers/cli.js';

const work = mkdtempSync(join(tmpdir(), 'fm-local-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));
let n = 0;
function newLake() {
  const dir = join(work, `lake${++n}`);
  return { dir, env: { FEATHERMAN_METADATA: `duckdb:${join(dir, 'meta.ducklake')}`, FEATHERMAN_DATA_PATH: join(dir, 'data') } };
}
function spec(obj: object): string {
  const f = join(work, `spec${++n}.json`);
  writeFileSync(f, JSON.stringify(obj));
  return f;
}

t.test('hostile names are refused before any SQL runs', async (t) => {
  const lake = newLake();
  t.equal((await featherman(['catalog', 'init'], lake.env)).code, 0);
  const before = readFileSync(join(lake.dir, 'meta.ducklake'));
  const cases: [object, RegExp][] = [
    [{ name: 'users"; DROP TABLE x; --', columns: [{ name: 'id', type: 'INTEGER' }] }, /spec\.name: must match/],
    [{ name: 'users', columns: [{ name: 'id"; DROP TABLE x; --', type: 'INTEGER' }] }, /spec\.columns\[0\]\.name: must match/],
    [{ name: 'users', schema: 'a;b', columns: [{ name: 'id', type: 'INTEGER' }] }, /spec\.schema: must match/],
    [{ name: 'users', columns: [{ name: 'id', type: 'INTEGER); DROP TABLE x; --' }] }, /spec\.columns\[0\]\.type: invalid DuckDB type/],
    [
      { name: 'users', columns: [{ name: 'id', type: 'INTEGER' }], format: { partitioning: ['id); DROP TABLE x; --'] } },
      /spec\.format\.partitioning\[0\]: .* is not a partition key/,
    ],
    [{ name: 'users', columns: [{ name: 'id', type: 'STRNG' }] }, /spec\.columns\[0\]\.type: invalid DuckDB type "STRNG": unknown type/],
    [
      { name: 'users', columns: [{ name: 'id', type: 'INTEGER' }], format: { partitioning: ['created_at'] } },
      /spec\.format\.partitioning\[0\]: partition column "created_at" is not one of the table's columns/,
    ],
    [
      { name: 'users', columns: [{ name: 'id', type: 'INTEGER' }], format: { compression: 'ZIP' } },
      /spec\.format\.compression: must be one of/,
    ],
    [{ name: 'users', columns: [] }, /spec\.columns: must list at least one column/],
  ];
  for (const [body, message] of cases) {
    const r = await featherman(['table', 'apply', '--dry-run', '-f', spec(body)], lake.env);
    t.equal(r.code, 2, `exit 2 for ${JSON.stringify(body).slice(0, 80)}`);
    t.match(r.json.error, message);
  }
  const drop = await featherman(['table', 'drop', 'x"; DROP TABLE y; --'], lake.env);
  t.equal(drop.code, 2);
  t.match(drop.json.error, /^name: .* must match/);
  t.ok(readFileSync(join(lake.dir, 'meta.ducklake')).equals(before), 'the catalog file is byte-for-byte unchanged');
  const missing = await featherman(['table', 'apply', '-f', join(work, 'nope.yaml')], lake.env);
  t.equal(missing.code, 2);
  t.match(missing.json.error, /-f: cannot read/);
  const noMeta = await featherman(['catalog', 'info'], { FEATHERMAN_DATA_PATH: '/tmp/x' });
  t.equal(noMeta.code, 2);
  t.match(noMeta.json.error, /FEATHERMAN_METADATA: required/);
  const badCmd = await featherman(['frobnicate'], lake.env);
  t.equal(badCmd.code, 2);
});

t.test('names that need quoting work end to end: Order, select, MixedCase', async (t) => {
  const lake = newLake();
  t.equal((await featherman(['catalog', 'init'], lake.env)).code, 0);
  const r = await featherman(
    [
      'table',
      'apply',
      '-f',
      spec({
        name: 'Order',
        schema: 'Select',
        columns: [
          { name: 'select', type: 'INTEGER' },
          { name: 'MixedCase', type: 'VARCHAR' },
          { name: 'from', type: 'DATE' },
        ],
        format: { partitioning: ['year(from)'] },
      }),
    ],
    lake.env,
  );
  t.equal(r.code, 0, r.stderr);
  t.equal(r.json.table, 'Order');
  const ins = await featherman(
    ['query', '--write', '--sql', `INSERT INTO "Select"."Order" VALUES (1, 'a', DATE '2025-01-02'), (2, 'b', DATE '2026-03-04')`],
    lake.env,
  );
  t.equal(ins.code, 0, ins.stderr);
  const q = await featherman(['query', '--sql', 'SELECT "select", "MixedCase", "from" FROM "Select"."Order" ORDER BY 1'], lake.env);
  t.same(q.json.rows, [
    { select: 1, MixedCase: 'a', from: '2025-01-02' },
    { select: 2, MixedCase: 'b', from: '2026-03-04' },
  ]);
  t.ok(existsSync(join(lake.dir, 'data', 'Select', 'Order')), 'data lives under the quoted schema and table names');
  const again = await featherman(
    [
      'table',
      'apply',
      '-f',
      spec({
        name: 'Order',
        schema: 'Select',
        columns: [
          { name: 'select', type: 'BIGINT' },
          { name: 'MixedCase', type: 'VARCHAR' },
          { name: 'from', type: 'DATE' },
          { name: 'Where', type: 'DECIMAL(10,2)' },
        ],
        format: { partitioning: ['year(from)'] },
      }),
    ],
    lake.env,
  );
  t.equal(again.code, 0, again.stderr);
  t.equal(again.json.action, 'alter');
  const drop = await featherman(['table', 'drop', 'Order', '--schema', 'Select'], lake.env);
  t.equal(drop.code, 0, drop.stderr);
  t.equal(drop.json.dropped, true);
});

t.test('writers on one DuckDB catalog file wait for the lock instead of failing', async (t) => {
  const lake = newLake();
  t.equal((await featherman(['catalog', 'init'], lake.env)).code, 0);
  const tables = ['t1', 't2', 't3', 't4', 't5'];
  const results = await Promise.all(
    tables.map((name) => featherman(['table', 'apply', '-f', spec({ name, columns: [{ name: 'id', type: 'INTEGER' }] })], lake.env)),
  );
  t.same(
    results.map((r) => r.code),
    tables.map(() => 0),
    results.map((r) => r.stderr).join(''),
  );
  const info = await featherman(['catalog', 'info'], lake.env);
  t.same(
    (info.json.tables as { name: string }[]).map((x) => x.name),
    tables,
  );

  const locked = await featherman(
    ['table', 'apply', '-f', spec({ name: 't6', columns: [{ name: 'id', type: 'INTEGER' }] })],
    { ...lake.env, FEATHERMAN_LOCK_TIMEOUT_SECONDS: '0' },
    {},
  );
  t.equal(locked.code, 0, 'with nobody holding the lock a zero timeout still succeeds');
});

t.test('the summary is written to FEATHERMAN_RESULT_FILE, without query rows', async (t) => {
  const lake = newLake();
  const resultFile = join(work, 'result.json');
  const env = { ...lake.env, FEATHERMAN_RESULT_FILE: resultFile };
  const init = await featherman(['catalog', 'init'], env);
  t.same(JSON.parse(readFileSync(resultFile, 'utf8')), init.json);
  const q = await featherman(['query', '--sql', 'SELECT 42 AS answer'], env);
  t.same(q.json.rows, [{ answer: 42 }]);
  const saved = JSON.parse(readFileSync(resultFile, 'utf8'));
  t.equal(saved.rowCount, 1);
  t.notOk('rows' in saved, 'rows stay out of the termination message');
  const csv = await featherman(['query', '--format', 'csv', '--sql', `SELECT 1 AS a, 'x,"y"' AS b`], env);
  t.equal(csv.stdout, 'a,b\n1,"x,""y"""\n');
  const nd = await featherman(['query', '--format', 'ndjson', '--sql', 'SELECT * FROM range(3) r(i)'], env);
  t.equal(nd.stdout, '{"i":"0"}\n{"i":"1"}\n{"i":"2"}\n');
  const bad = await featherman(['query', '--sql', 'SELEC 1'], env);
  t.equal(bad.code, 2);
  t.match(JSON.parse(readFileSync(resultFile, 'utf8')), { ok: false, exitCode: 2, error: /Parser Error/ });
});

t.test('a statement DuckDB refuses is bad input (exit 2) whatever its error class, and changes nothing', async (t) => {
  const lake = newLake();
  t.equal((await featherman(['catalog', 'init'], lake.env)).code, 0);
  t.equal(
    (
      await featherman(
        ['table', 'apply', '-f', spec({ name: 'people', columns: [{ name: 'id', type: 'INTEGER', nullable: false }] })],
        lake.env,
      )
    ).code,
    0,
  );
  const cases: [string, RegExp][] = [
    ['SELEC 1', /--sql: .*Parser Error/],
    ['SELECT nope FROM people', /--sql: .*Binder Error/],
    ['SELECT 2147483647::INTEGER + 1', /--sql: .*Out of Range Error/],
    ['INSERT INTO people VALUES (NULL)', /--sql: .*Constraint Error: NOT NULL/],
  ];
  for (const [sql, message] of cases) {
    const r = await featherman(['query', '--write', '--sql', sql], lake.env);
    t.equal(r.code, 2, `exit 2 for ${sql}`);
    t.match(r.json.error, message);
  }
  const count = await featherman(['query', '--format', 'csv', '--sql', 'SELECT count(*) AS n FROM people'], lake.env);
  t.match(count.stdout, /^n\n0\n$/, 'the refused insert left no row');
});
