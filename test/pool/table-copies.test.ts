// A warm worker answers small tables from in-memory copies (lib/lake/table-copies.ts) with the
// rows the lake holds: the same answers as a read of the Parquet files, time travel and DuckLake's
// virtual columns still read the lake, a CTE keeps its name, the copies cannot be named by user
// SQL, a table over the memory budget stays in the lake, and a new snapshot brings new copies.
// A real worker on a lake in real MinIO, over HTTP.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sizeInBytes } from '../../lib/lake/config.js';
import { buildWorker, workerOptionsFromEnv } from '../../lib/pool/worker.js';
import type { WorkerStats } from '../../lib/pool/stats.js';
import { featherman } from '../helpers/cli.js';
import { Minio } from '../helpers/minio.js';

const minio = await Minio.start();
const work = mkdtempSync(join(tmpdir(), 'fm-copies-'));
await minio.createBucket('lake');
const env: Record<string, string> = {
  PATH: process.env.PATH!,
  HOME: process.env.HOME ?? '/tmp',
  ...(process.env.FEATHERMAN_CACHE ? { FEATHERMAN_CACHE: process.env.FEATHERMAN_CACHE } : {}),
  ...minio.env(),
  FEATHERMAN_METADATA: `duckdb:${join(work, 'meta.ducklake')}`,
  FEATHERMAN_DATA_PATH: 's3://lake/copies/data/',
  FEATHERMAN_CATALOG: 'lake1',
  // Room for the 1,000-row table, not for the 1,000,000-row one.
  FEATHERMAN_TABLE_COPIES_BYTES: String(4 * 1024 * 1024),
};
const write = async (sql: string) => {
  const r = await featherman(['query', '--write', '--sql', sql], env);
  if (r.code !== 0) throw new Error(`${sql}: ${r.stderr}`);
};
await (async () => {
  const r = await featherman(['catalog', 'init'], env);
  if (r.code !== 0) throw new Error(r.stderr);
})();
// Snapshot 1 creates events with 1,000 rows (in a Parquet file); snapshot 2 adds 10 more (inlined in the catalog); big has 1,000,000 rows.
await write("CREATE TABLE events AS SELECT i AS id, ['a','b','c','d'][i % 4 + 1] AS kind, i * 0.5 AS amount FROM range(1000) r(i)");
await write("INSERT INTO events SELECT 1000 + i, 'e', 1.5 FROM range(10) r(i)");
await write('CREATE TABLE big AS SELECT i AS id, i % 1000 AS event_id, md5(i::VARCHAR) AS tag FROM range(1000000) r(i)');

const { app, start } = await buildWorker(workerOptionsFromEnv({ ...env, FEATHERMAN_REFRESH_INTERVAL: '200ms' }));
const base = await app.listen({ port: 0, host: '127.0.0.1' });
await start();
// In this order: a worker still refreshing would log MinIO's absence.
t.teardown(async () => {
  await app.close();
  await minio.stop();
  rmSync(work, { recursive: true, force: true });
});

const stats = async () => (await (await fetch(`${base}/stats`)).json()) as WorkerStats;
/** Polls /stats (the worker copies in the background) until `ok`, for at most 30 s. */
async function statsWhen(ok: (s: WorkerStats) => boolean): Promise<WorkerStats> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const s = await stats();
    if (ok(s)) return s;
    if (Date.now() > deadline) throw new Error(`worker stats never matched: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
interface Answer {
  status: number;
  inMemory: boolean;
  rows: Record<string, unknown>[];
  error?: string;
}
async function query(sql: string): Promise<Answer> {
  const res = await fetch(`${base}/query`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sql }),
  });
  const body = (await res.json()) as { rows?: Record<string, unknown>[]; error?: string };
  return { status: res.status, inMemory: res.headers.get('x-featherman-in-memory') === 'true', rows: body.rows ?? [], error: body.error };
}

t.test('the worker copies the small table, not the one over its budget', async (t) => {
  const s = await statsWhen((s) => (s.tablesInMemory ?? []).length > 0);
  t.same(s.tablesInMemory, ['events']);
});

t.test('answers from the copies equal answers from the Parquet files', async (t) => {
  const aggregate = 'SELECT kind, count(*) AS n, sum(amount) AS total FROM %s GROUP BY kind ORDER BY kind';
  const expected = [
    { kind: 'a', n: '250', total: '62250.0' },
    { kind: 'b', n: '250', total: '62375.0' },
    { kind: 'c', n: '250', total: '62500.0' },
    { kind: 'd', n: '250', total: '62625.0' },
    { kind: 'e', n: '10', total: '15.0' },
  ];
  for (const name of ['events', 'main.events', 'lake.main.events', 'EVENTS']) {
    const a = await query(aggregate.replace('%s', name));
    t.equal(a.status, 200, a.error ?? name);
    t.ok(a.inMemory, `${name}: read from memory`);
    t.same(a.rows, expected, name);
  }
  // lake.events (catalog.table) is left to the lake: the same rows from the Parquet files.
  const lake = await query(aggregate.replace('%s', 'lake.events'));
  t.notOk(lake.inMemory, 'lake.events: read from the lake');
  t.same(lake.rows, expected);

  const join = await query('SELECT count(*) AS n, count(DISTINCT b.event_id) AS e FROM events e JOIN big b ON b.event_id = e.id');
  t.ok(join.inMemory, 'a join reads the copy of events and big from the lake');
  t.same(join.rows, [{ n: '1000000', e: '1000' }]);
  const lateral = await query('SELECT count(*) AS n FROM lake.main.events e, LATERAL (SELECT e.id + 1 AS next) l WHERE l.next > 2');
  t.ok(lateral.inMemory, 'a lateral join');
  t.same(lateral.rows, [{ n: '1008' }]);
  // 2^53 + 1 has no JavaScript number: the query runs as sent, on the lake, with its literal intact.
  const literal = await query('SELECT count(*) AS n FROM events WHERE id + 9007199254740000 >= 9007199254740993');
  t.equal(literal.status, 200, literal.error ?? 'a large literal');
  t.notOk(literal.inMemory, 'a literal beyond 2^53');
  t.same(literal.rows, [{ n: '17' }], 'ids from 993');
  const big = await query('SELECT count(*) AS n FROM big');
  t.notOk(big.inMemory, 'big is over the budget');
  t.same(big.rows, [{ n: '1000000' }]);
});

t.test('many shapes of query: the same rows from the copies as from the lake', async (t) => {
  // Each is run as written (from memory) and with every `events` as `lake.events` (from the lake).
  const queries = [
    'SELECT * FROM events ORDER BY id LIMIT 5 OFFSET 990',
    'SELECT id, amount, sum(amount) OVER (PARTITION BY kind ORDER BY id) AS running FROM events ORDER BY id DESC LIMIT 7',
    'SELECT kind, amount FROM events QUALIFY row_number() OVER (PARTITION BY kind ORDER BY amount DESC) = 1 ORDER BY ALL',
    'SELECT DISTINCT ON (kind) kind, id FROM events ORDER BY kind, id DESC',
    'SELECT kind, list(id ORDER BY id)[1:3] AS first, max(amount) FILTER (WHERE id % 2 = 0) AS m FROM events GROUP BY ALL ORDER BY ALL',
    'SELECT * EXCLUDE (amount) REPLACE (upper(kind) AS kind) FROM events ' +
      'WHERE id IN (SELECT max(id) FROM events GROUP BY kind) ORDER BY id',
    'SELECT a.kind, count(*) AS n FROM events a JOIN events b ON a.id = b.id + 1 AND a.kind <> b.kind GROUP BY a.kind ORDER BY 1',
    'SELECT id FROM events WHERE id < 3 UNION ALL SELECT id FROM events WHERE id > 1007 EXCEPT SELECT 2 ORDER BY id',
    'WITH t AS (SELECT kind, avg(amount) AS a FROM events GROUP BY kind) ' +
      'SELECT e.id, t.a FROM events e JOIN t USING (kind) WHERE e.id IN (1, 2, 1003) ORDER BY e.id',
    'SELECT * FROM (PIVOT (SELECT kind, id % 2 AS odd, amount FROM events) ON odd IN (0, 1) USING sum(amount) GROUP BY kind) ORDER BY kind',
    "SELECT {'k': kind, 'v': [id, id * 2]} AS s, list_transform([id], x -> x + 1) AS l, CASE WHEN id > 5 THEN 'big' END AS c " +
      'FROM events WHERE id BETWEEN 4 AND 7 ORDER BY id',
    "SELECT kind, string_agg(id::VARCHAR, ',' ORDER BY id DESC) FILTER (WHERE id > 995) AS s FROM events GROUP BY kind ORDER BY kind",
    'SELECT (SELECT count(*) FROM events e2 WHERE e2.kind = e.kind) AS same, e.id FROM events e WHERE e.id < 4 ORDER BY e.id',
    "SELECT COLUMNS(c -> c LIKE '%d') FROM events ORDER BY id LIMIT 3",
    'FROM events SELECT kind, count(*) GROUP BY kind HAVING count(*) > 100 ORDER BY kind',
  ];
  let inMemory = 0;
  for (const sql of queries) {
    const fromCopies = await query(sql);
    const fromLake = await query(sql.replace(/\bevents\b/g, 'lake.events'));
    t.equal(fromCopies.status, 200, fromCopies.error ?? sql);
    t.equal(fromLake.status, 200, fromLake.error ?? sql);
    t.notOk(fromLake.inMemory, `${sql}: the lake`);
    t.same(fromCopies.rows, fromLake.rows, sql);
    if (fromCopies.inMemory) inMemory++;
  }
  t.equal(inMemory, queries.length, 'every one of them read the copies');
});

t.test('what only the lake has is read from the lake', async (t) => {
  const past = await query('SELECT count(*) AS n FROM events AT (VERSION => 1)');
  t.equal(past.status, 200, past.error ?? 'time travel');
  t.notOk(past.inMemory, 'time travel');
  t.same(past.rows, [{ n: '1000' }], 'the rows of snapshot 1, before the insert');
  const virtual = await query('SELECT rowid AS r, filename FROM events WHERE id = 5');
  t.equal(virtual.status, 200, virtual.error ?? 'virtual columns');
  t.notOk(virtual.inMemory, 'DuckLake virtual columns');
  t.equal(virtual.rows[0]?.r, '5');
  t.match(String(virtual.rows[0]?.filename), /^s3:\/\/lake\/copies\/data\/main\/events\/.+\.parquet$/);
  const qualified = await query('SELECT lake.main.events.id FROM lake.main.events WHERE id = 3');
  t.notOk(qualified.inMemory, 'a column named through the catalog');
  t.same(qualified.rows, [{ id: '3' }]);
  const cte = await query('WITH events AS (SELECT 42 AS id) SELECT id FROM events');
  t.notOk(cte.inMemory, 'a CTE named like the table');
  t.same(cte.rows, [{ id: 42 }]);
  const sample = await query('SELECT count(*) AS n FROM events USING SAMPLE 100 ROWS');
  t.notOk(sample.inMemory, 'sampling');
  t.same(sample.rows, [{ n: '100' }]);
});

t.test('user SQL cannot name the copies', async (t) => {
  for (const sql of [
    'SELECT count(*) FROM "featherman-in-memory".main.events',
    'SELECT count(*) FROM "featherman-in-memory".events',
    'SELECT count(*) FROM lake.events UNION ALL SELECT count(*) FROM "featherman-in-memory".events',
  ]) {
    const a = await query(sql);
    t.equal(a.status, 403, `${sql}: ${a.error}`);
  }
});

t.test('a new snapshot brings new copies', async (t) => {
  const before = await stats();
  await write("INSERT INTO events VALUES (2000, 'f', 2.5)");
  await statsWhen((s) => (s.snapshotId ?? 0) > (before.snapshotId ?? 0) && (s.tablesInMemory ?? []).includes('events'));
  const a = await query("SELECT count(*) AS n FROM events WHERE kind = 'f'");
  t.ok(a.inMemory);
  t.same(a.rows, [{ n: '1' }], 'the new row is in the new copy');
});

t.test('an encrypted lake is never copied (DuckDB may spill in-memory tables to disk in the clear)', async (t) => {
  const encrypted = {
    ...env,
    FEATHERMAN_METADATA: `duckdb:${join(work, 'secret.ducklake')}`,
    FEATHERMAN_DATA_PATH: 's3://lake/secret/data/',
  };
  for (const args of [
    ['catalog', 'init'],
    ['query', '--write', '--sql', 'CREATE TABLE events AS SELECT 1 AS id'],
  ]) {
    const r = await featherman(args, { ...encrypted, FEATHERMAN_ENCRYPTED: 'true' });
    t.equal(r.code, 0, r.stderr);
  }
  for (const [label, extra] of [
    ['plain', {}],
    ['encrypted', { FEATHERMAN_ENCRYPTED: 'true' }],
  ] as const) {
    const { holder, start } = await buildWorker(workerOptionsFromEnv({ ...encrypted, ...extra }));
    await start();
    // The copy start() began in the background, awaited here.
    await holder.current!.copySmallTables(4 * 1024 * 1024);
    t.same(holder.current!.tablesInMemory, label === 'plain' ? ['events'] : [], label);
    holder.stop();
  }
});

t.test('the budget is a whole number of bytes; sizes read as DuckDB writes them', async (t) => {
  for (const bad of ['-1', '1.5', 'lots']) {
    t.throws(
      () => workerOptionsFromEnv({ ...env, FEATHERMAN_TABLE_COPIES_BYTES: bad }),
      /FEATHERMAN_TABLE_COPIES_BYTES: must be a non-negative/,
    );
  }
  t.equal(workerOptionsFromEnv({ ...env, FEATHERMAN_TABLE_COPIES_BYTES: '0' }).copiesBytes, 0);
  t.equal(workerOptionsFromEnv({ ...env, FEATHERMAN_MEMORY_LIMIT: '2GB', FEATHERMAN_TABLE_COPIES_BYTES: undefined }).copiesBytes, 5e8);
  t.equal(sizeInBytes('1024MiB'), 2 ** 30);
  t.equal(sizeInBytes('1.5 GiB'), 1.5 * 2 ** 30);
  t.throws(() => sizeInBytes('12 parsecs'), /is not a size/);
});
