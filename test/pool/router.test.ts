// The warm pool end to end without a cluster: two local worker processes on a lake in MinIO,
// the router and /v1/query in front. Concurrency, queueing, a killed worker, deadlines, the
// sandbox, tokens, metrics, and a table Job writing while the workers read.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../lib/server/server.js';
import { LocalFallback, LocalPool } from '../../lib/pool/local.js';
import { Router, type PoolSettings, type WorkerDirectory } from '../../lib/pool/router.js';
import { Minio } from '../helpers/minio.js';
import { featherman } from '../helpers/cli.js';
import { promtoolCheckMetrics } from '../helpers/prometheus.js';

const TOKEN = 'test-token-0123456789';
const minio = await Minio.start();
const work = mkdtempSync(join(tmpdir(), 'fm-pool-'));
await minio.createBucket('lake');
const env: Record<string, string> = {
  PATH: process.env.PATH!,
  HOME: process.env.HOME ?? '/tmp',
  ...minio.env(),
  FEATHERMAN_METADATA: `duckdb:${join(work, 'meta.ducklake')}`,
  FEATHERMAN_DATA_PATH: 's3://lake/pool/data/',
  FEATHERMAN_CATALOG: 'lake1',
  // Workers start in about a second; one that hangs gives up and is replaced (worker-start.test.ts).
  FEATHERMAN_STARTUP_TIMEOUT: '20s',
};
t.equal((await featherman(['catalog', 'init'], env)).code, 0);
const specFile = join(work, 'events.json');
writeFileSync(
  specFile,
  JSON.stringify({
    name: 'events',
    columns: [
      { name: 'id', type: 'BIGINT' },
      { name: 'kind', type: 'VARCHAR' },
    ],
  }),
);
t.equal((await featherman(['table', 'apply', '-f', specFile], env)).code, 0);
const seed = "INSERT INTO events SELECT i, CASE WHEN i % 2 = 0 THEN 'even' ELSE 'odd' END FROM range(10000) r(i)";
t.equal((await featherman(['query', '--write', '--sql', seed], env)).code, 0);

const settings: PoolSettings = {
  namespace: 'local',
  pool: 'p1',
  catalog: 'lake1',
  readOnly: true,
  queueMaxLength: 1000,
  queueMaxWaitMs: 60_000,
  maxQueryMs: 30_000,
  workerConcurrency: 1,
};
const pool = new LocalPool(settings, env);
await pool.scaleTo(2);
const router = new Router(pool, new LocalFallback(env));
const app: FastifyInstance = await buildServer({ plugins: ['health', 'query', 'metrics'], router, apiTokens: [TOKEN] });
const base = await app.listen({ port: 0, host: '127.0.0.1' });
t.teardown(async () => {
  await app.close();
  await pool.stop();
  await minio.stop();
  rmSync(work, { recursive: true, force: true });
});

async function query(body: Record<string, unknown>, token = TOKEN) {
  const res = await fetch(`${base}/v1/query`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ catalog: 'lake1', ...body }),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

t.test('200 concurrent queries through two workers all return the right rows', async (t) => {
  const started = performance.now();
  const results = await Promise.all(
    Array.from({ length: 200 }, (_, i) => query({ sql: `SELECT count(*) AS n, sum(id) AS s FROM events WHERE id % 200 = ${i}` })),
  );
  const seconds = (performance.now() - started) / 1000;
  t.same(
    results.map((r) => r.status),
    Array(200).fill(200),
    'every query answered 200',
  );
  results.forEach((r, i) => {
    const rows = JSON.parse(r.text).rows;
    const expected = Array.from({ length: 50 }, (_, k) => k * 200 + i).reduce((a, b) => a + b, 0);
    if (rows[0].n !== '50' || rows[0].s !== String(expected)) t.fail(`query ${i}: ${r.text}`);
  });
  const pods = new Set(results.map((r) => r.headers.get('x-featherman-pod')));
  // By the pool's own names: a worker whose start failed was replaced under another name.
  t.same(
    [...pods].sort(),
    pool
      .alive()
      .map((w) => w.name)
      .sort(),
    'both workers served',
  );
  t.ok(
    results.every((r) => Number(r.headers.get('x-featherman-duration')) >= 0),
    'X-Featherman-Duration is set',
  );
  t.comment(`200 queries in ${seconds.toFixed(2)} s`);
});

t.test('streams NDJSON and CSV', async (t) => {
  const nd = await query({ sql: 'SELECT id, kind FROM events ORDER BY id LIMIT 3', format: 'ndjson' });
  t.equal(nd.text, '{"id":"0","kind":"even"}\n{"id":"1","kind":"odd"}\n{"id":"2","kind":"even"}\n');
  const csv = await query({ sql: 'SELECT id, kind FROM events ORDER BY id LIMIT 2', format: 'csv' });
  t.equal(csv.text, 'id,kind\n0,even\n1,odd\n');
});

t.test('a full queue gets 429 with Retry-After; a long wait gets 503', async (t) => {
  const tiny: PoolSettings = { ...settings, pool: 'tiny', queueMaxLength: 1, queueMaxWaitMs: 1500 };
  const directory: WorkerDirectory = { pools: async () => [tiny], workers: () => pool.workers() };
  const heard: number[] = [];
  const r2 = new Router(directory, new LocalFallback(env), { waiting: (p, queued) => heard.push(queued), fellBack: () => heard.push(-1) });
  const app2 = await buildServer({ plugins: ['query'], router: r2, apiTokens: [TOKEN] });
  t.teardown(() => app2.close());
  const until = async (what: () => boolean) => {
    while (!what()) await new Promise((r) => setImmediate(r));
  };
  const send = (sql: string, timeoutMs = 60_000) =>
    app2.inject({
      method: 'POST',
      url: '/v1/query',
      headers: { authorization: `Bearer ${TOKEN}` },
      payload: { catalog: 'lake1', sql, timeoutMs },
    });
  // Both workers held by queries that end at their deadline, well after the queued query's wait:
  // the outcome does not depend on how fast this machine counts.
  const busy = [send('SELECT count(*) FROM range(1e13::BIGINT)', 6000), send('SELECT count(*) FROM range(1e13::BIGINT)', 6000)];
  await until(() => r2.snapshot()[0]?.busy === 2);
  const queued = send('SELECT 1 AS one'); // waits in the queue (length 1)
  await until(() => heard.includes(1));
  const rejected = await send('SELECT 2 AS two');
  t.equal(rejected.statusCode, 429);
  t.ok(Number(rejected.headers['retry-after']) >= 1, 'Retry-After is set');
  t.match(rejected.json().message, /pool tiny is busy/);
  const waited = await queued;
  t.equal(waited.statusCode, 503, 'the queued query gave up after maxWaitTime');
  t.match(waited.json().message, /no worker of pool tiny became free within 1500 ms/);
  for (const b of await Promise.all(busy)) t.equal(b.statusCode, 504, 'the busy queries ended at their deadline');
  t.same(heard, [1, 0], 'the queue the pool hook scales on: one waited, then none');
});

t.test('a query the pool cannot serve is demand too: the router reports it while the fallback runs', async (t) => {
  const empty: PoolSettings = { ...settings, pool: 'empty' };
  const heard: (number | string)[] = [];
  const r3 = new Router({ pools: async () => [empty], workers: async () => [] }, new LocalFallback(env), {
    waiting: (p, queued) => heard.push(queued),
    fellBack: (p) => heard.push(`fell back: ${p.pool}`),
  });
  const res = await r3.query(empty, { sql: 'SELECT 7 AS seven', format: 'json' });
  t.equal(res.status, 200);
  t.equal(res.headers['x-featherman-pod'], 'fallback');
  t.same(heard, ['fell back: empty', 1, 0], 'the pool had no worker; one query waited on the fallback, then none');
});

t.test('a deadline interrupts DuckDB itself; the worker stays healthy', async (t) => {
  const replacedBefore = pool.replaced;
  const workersBefore = pool.alive().map((w) => w.process.pid);
  const started = performance.now();
  const r = await query({ sql: 'SELECT count(*) FROM range(1e13::BIGINT)', timeoutMs: 1000 });
  t.equal(r.status, 504);
  // The worker's own clock decides, not this test's: "was interrupted" is its answer only when
  // DuckDB stopped within the kill grace after the deadline; otherwise it says so and restarts.
  t.match(JSON.parse(r.text).error, /exceeded its deadline of 1000 ms and was interrupted/);
  t.comment(`answered after ${((performance.now() - started) / 1000).toFixed(2)} s`);
  const after = await Promise.all([query({ sql: 'SELECT 42 AS x' }), query({ sql: 'SELECT 43 AS x' })]);
  t.same(
    after.map((a) => a.status),
    [200, 200],
    'both workers answer afterwards',
  );
  for (const w of pool.alive()) t.equal((await fetch(`${w.url}/healthz`)).status, 200);
  t.equal(pool.replaced, replacedBefore, 'no worker restarted');
  t.same(
    pool.alive().map((w) => w.process.pid),
    workersBefore,
    'the same worker processes',
  );
});

t.test('user SQL is sandboxed', async (t) => {
  const refused: [string, RegExp][] = [
    ["SELECT * FROM read_text('/etc/passwd')", /read_text\(\) is not allowed/],
    ["SELECT getenv('AWS_SECRET_ACCESS_KEY')", /function getenv\(\) is not allowed/],
    ["COPY (SELECT 1) TO '/tmp/x'", /only read queries/],
    ["ATTACH '/tmp/other.db' AS other", /only read queries/],
    ['INSTALL httpfs', /only read queries/],
    ['LOAD httpfs', /only read queries/],
    ['SET threads = 1', /only read queries/],
    ["CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')", /only read queries/],
    ['SELECT * FROM duckdb_secrets()', /duckdb_secrets\(\) is not allowed/],
    // The exact wording is the sandbox's (test/pool/hostile-sql.test.ts pins it); here: refused.
    ['SELECT * FROM __ducklake_metadata_lake.ducklake_data_file', /^sql: /],
    ["SELECT * FROM glob('/tmp/*')", /glob\(\) is not allowed/],
    ["SELECT * FROM query('SELECT 1')", /query\(\) is not allowed/],
    ["SELECT * FROM read_parquet('s3://lake/pool/data/main/events/*.parquet')", /read_parquet\(\) is not allowed/],
    ['SELECT 1; SELECT 2', /exactly one statement/],
    ['DELETE FROM events', /only read queries/],
  ];
  for (const [sql, message] of refused) {
    const r = await query({ sql });
    t.equal(r.status, 403, `${sql} refused`);
    t.match(JSON.parse(r.text).error, message, sql);
    t.notMatch(r.text, new RegExp(minio.secretKey), 'no secret in the answer');
  }
  const ok = await query({ sql: 'SELECT count(*) AS n FROM events' });
  t.equal(ok.status, 200, 'ordinary queries still work');
  const typo = await query({ sql: 'SELEC count(*) FROM events' });
  t.equal(typo.status, 400, 'SQL that does not parse is bad input, not a refusal');
  t.match(JSON.parse(typo.text).error, /^sql: Parser Error: syntax error at or near "SELEC"/);
});

t.test('a request without a valid token gets 401', async (t) => {
  t.equal((await query({ sql: 'SELECT 1' }, 'wrong-token')).status, 401);
  const none = await fetch(`${base}/v1/query`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ catalog: 'lake1', sql: 'SELECT 1' }),
  });
  t.equal(none.status, 401);
  t.equal(none.headers.get('www-authenticate'), 'Bearer');
  const bad = await query({ sql: 'SELECT 1', catalog: 'nope' });
  t.equal(bad.status, 404, 'unknown catalog: 404');
  const invalid = await query({ sql: undefined, format: 'xml' } as never);
  t.equal(invalid.status, 400, 'bad body: 400');
});

t.test('a table Job writes while the workers answer, and each worker picks up the commit by refreshing', async (t) => {
  const pids = pool.alive().map((w) => w.process.pid);
  let stop = false;
  let answered = 0;
  const readers = (async () => {
    while (!stop) {
      const r = await query({ sql: 'SELECT count(*) AS n FROM events' });
      if (r.status !== 200) t.fail(`reader got ${r.status}: ${r.text}`);
      answered++;
    }
  })();
  const columns = [
    { name: 'id', type: 'BIGINT' },
    { name: 'kind', type: 'VARCHAR' },
    { name: 'note', type: 'VARCHAR' },
  ];
  writeFileSync(specFile, JSON.stringify({ name: 'events', columns }));
  const apply = await featherman(['table', 'apply', '-f', specFile], env);
  t.equal(apply.code, 0, `table apply succeeded while workers read: ${apply.stderr}`);
  const more = "INSERT INTO events SELECT i, 'new', 'hello' FROM range(10000, 10500) r(i)";
  const insert = await featherman(['query', '--write', '--sql', more], env);
  t.equal(insert.code, 0, insert.stderr);
  const snapshot = Number(insert.json.snapshotId);
  t.ok(snapshot > 0, `the insert committed snapshot ${snapshot}`);
  stop = true;
  await readers;
  // Each worker asked directly: it attaches a fresh copy of the catalog when the file changes
  // (checked every FEATHERMAN_REFRESH_INTERVAL) and says in /stats which snapshot it serves. The
  // event awaited is that switch, not a duration; the bound only catches a worker that never does.
  for (const w of pool.alive()) {
    const deadline = Date.now() + 120_000;
    for (;;) {
      const stats = (await (await fetch(`${w.url}/stats`)).json()) as { snapshotId?: number };
      if ((stats.snapshotId ?? 0) >= snapshot) break;
      if (Date.now() > deadline) throw new Error(`${w.name} still serves snapshot ${stats.snapshotId}, not ${snapshot}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const res = await fetch(`${w.url}/query`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sql: 'SELECT count(*) AS n FROM events' }),
    });
    t.equal(res.status, 200);
    t.equal(Number(res.headers.get('x-featherman-snapshot')), snapshot, `${w.name} answers from the commit's snapshot`);
    t.same(((await res.json()) as { rows: unknown }).rows, [{ n: '10500' }], `${w.name} sees the new rows`);
  }
  t.same(
    pool.alive().map((w) => w.process.pid),
    pids,
    'the same worker processes: they refreshed, none restarted',
  );
  t.ok(answered > 0, `${answered} reads answered during the write`);
  const note = await query({ sql: "SELECT count(note) AS n FROM events WHERE note = 'hello'" });
  t.same(JSON.parse(note.text).rows, [{ n: '500' }], 'the new column is visible too');
});

t.test('a worker killed mid-query: a clear 502, no retry on the other worker, and the pool replaces the dead one', async (t) => {
  const replacedBefore = pool.replaced;
  const pending = query({ sql: 'SELECT count(*) AS n FROM range(1000000000) r(i) WHERE i % 5 = 1', timeoutMs: 30_000 });
  // Wait for the worker that took the query to say so, then kill it.
  let busy: (typeof pool.processes)[number] | undefined;
  while (!busy) {
    for (const w of pool.alive()) {
      const stats = (await (await fetch(`${w.url}/stats`)).json()) as { activeQueries: number };
      if (stats.activeQueries > 0) busy = w;
    }
  }
  const others = pool.alive().filter((w) => w !== busy);
  const served = () =>
    Promise.all(others.map(async (w) => ((await (await fetch(`${w.url}/stats`)).json()) as { queriesServed: number }).queriesServed));
  const servedBefore = await served();
  busy.process.kill('SIGKILL');
  const r = await pending;
  t.equal(r.status, 502, r.text.slice(0, 200));
  t.match(JSON.parse(r.text).message, new RegExp(`worker ${busy.name} failed before answering`));
  const servedAfter = await served();
  t.same(servedAfter, servedBefore, 'the query was not run again on the other worker');
  // The pool notices the exit and starts a replacement by itself.
  while (pool.alive().length < 2 || pool.alive().some((w) => w.name === busy!.name)) await new Promise((r) => setTimeout(r, 100));
  t.equal(pool.replaced, replacedBefore + 1, 'one worker replaced');
  t.ok(pool.ready(), 'the pool is ready');
  const after = await query({ sql: 'SELECT 42 AS x' });
  t.equal(after.status, 200);
});

t.test('with no worker the router falls back to a one-off query process', async (t) => {
  await pool.scaleTo(0);
  const r = await query({ sql: 'SELECT count(*) AS n FROM events' });
  t.equal(r.status, 200, r.text);
  t.equal(r.headers.get('x-featherman-pod'), 'fallback');
  t.same(JSON.parse(r.text).rows, [{ n: '10500' }]);
  for (const [sql, message] of [
    ["SELECT * FROM read_text('/etc/passwd')", /read_text\(\) is not allowed/],
    ["COPY (SELECT 1) TO '/tmp/fallback-x'", /only read queries/],
    ['SELECT * FROM duckdb_secrets()', /duckdb_secrets\(\) is not allowed/],
  ] as const) {
    const refused = await query({ sql });
    t.equal(refused.status, 403, `the cold path is sandboxed too, and refuses as the warm path does: ${sql}`);
    t.match(JSON.parse(refused.text).error, message, sql);
  }
  await pool.scaleTo(2);
});

t.test('/metrics passes promtool check metrics and has the README names', async (t) => {
  const res = await fetch(`${base}/metrics`);
  const text = await res.text();
  const names = [
    'ducklake_pool_size_current',
    'ducklake_pool_pods_idle',
    'ducklake_pool_pods_busy',
    'ducklake_pool_queue_length',
    'ducklake_pool_query_duration_seconds',
    'ducklake_pool_wait_duration_seconds',
    'ducklake_pool_queries_total',
  ];
  for (const name of names) {
    t.match(text, new RegExp(`^${name}`, 'm'), name);
  }
  t.match(text, /ducklake_pool_queries_total\{pool="p1",namespace="local",outcome="ok"\} \d+/);
  const check = promtoolCheckMetrics(text);
  t.equal(check.code, 0, `promtool: ${check.output}`);
});
