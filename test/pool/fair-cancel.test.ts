// Fair shares, cancel and the query log, without a cluster: two local worker processes on a lake
// in MinIO, the router and /v1/query in front, static tokens naming two users (alice, bob).
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../lib/server/server.js';
import { LocalFallback, LocalPool } from '../../lib/pool/local.js';
import { Router, type PoolSettings, type WorkerDirectory } from '../../lib/pool/router.js';
import type { QueryLogLine } from '../../lib/auth/query-log.js';
import { Minio } from '../helpers/minio.js';
import { featherman } from '../helpers/cli.js';

const ALICE = 'alice-token-0123456789';
const BOB = 'bob-token-0123456789';
const minio = await Minio.start();
const work = mkdtempSync(join(tmpdir(), 'fm-fair-'));
await minio.createBucket('lake');
const env: Record<string, string> = {
  PATH: process.env.PATH!,
  HOME: process.env.HOME ?? '/tmp',
  ...minio.env(),
  FEATHERMAN_METADATA: `duckdb:${join(work, 'meta.ducklake')}`,
  FEATHERMAN_DATA_PATH: 's3://lake/fair/data/',
  FEATHERMAN_CATALOG: 'lake1',
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
t.equal(
  (await featherman(['query', '--write', '--sql', "INSERT INTO events SELECT i, 'k' || (i % 3) FROM range(1000) r(i)"], env)).code,
  0,
);

const settings: PoolSettings = {
  namespace: 'local',
  pool: 'p1',
  catalog: 'lake1',
  readOnly: true,
  queueMaxLength: 1000,
  queueMaxWaitMs: 120_000,
  maxQueryMs: 60_000,
  workerConcurrency: 1,
  maxQueuedPerPrincipal: 100,
};
const pool = new LocalPool(settings, env);
await pool.scaleTo(2);
const log: QueryLogLine[] = [];
const tokens = [`${ALICE}=alice;analysts`, `${BOB}=bob`];
const serve = async (router: Router) => {
  const app: FastifyInstance = await buildServer({ plugins: ['query'], router, apiTokens: tokens, queryLog: (l) => log.push(l) });
  return { app, base: await app.listen({ port: 0, host: '127.0.0.1' }) };
};
const main = await serve(new Router(pool, new LocalFallback(env)));
t.teardown(async () => {
  await main.app.close();
  await pool.stop();
  await minio.stop();
  rmSync(work, { recursive: true, force: true });
});

const FOREVER = 'SELECT count(*) FROM range(1000000000000) r(i) WHERE i % 7 = 3';
const slow = (n: number) => `SELECT count(*) AS n FROM range(${n}) r(i) WHERE i % 7 = 3`;
const send = (base: string, token: string, sql: string, opts: { id?: string; signal?: AbortSignal } = {}) =>
  fetch(`${base}/v1/query`, {
    method: 'POST',
    signal: opts.signal,
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${token}`,
      ...(opts.id ? { 'x-featherman-query-id': opts.id } : {}),
    },
    body: JSON.stringify({ catalog: 'lake1', sql }),
  });
/**
 * A query whose client goes away: node:http, so closing it closes its socket and nothing else
 * (an aborted fetch leaves undici opening a fresh idle connection, which the server then waits
 * out on close).
 */
function leaving(base: string, token: string, sql: string, id: string): { leave: () => void; closed: Promise<Error> } {
  const u = new URL(`${base}/v1/query`);
  const req = request({
    host: u.hostname,
    port: u.port,
    path: u.pathname,
    method: 'POST',
    agent: false,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'x-featherman-query-id': id },
  });
  const closed = new Promise<Error>((resolve) => req.once('error', resolve));
  req.end(JSON.stringify({ catalog: 'lake1', sql }));
  return { leave: () => req.destroy(new Error('the client left')), closed };
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(what: string, ms: number, check: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}
/** The cold path's `featherman query` processes this test started, by pid. */
function queryProcesses(): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(process.pid), '-f', 'cli.js query --sandbox'], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}
/** A query process that has loaded DuckDB (its native module is mapped): it is past starting Node. */
const inDuckDB = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/maps`, 'utf8').includes('duckdb.node');
  } catch {
    return false; // gone already
  }
};
const stats = async (url: string) => (await (await fetch(`${url}/stats`)).json()) as { activeQueries: number };
const busyWorkers = async () => (await Promise.all(pool.alive().map((w) => stats(w.url)))).filter((s) => s.activeQueries > 0).length;
const cancelAll = async (base: string, token: string) => {
  const listed = (await (await fetch(`${base}/v1/queries`, { headers: { authorization: `Bearer ${token}` } })).json()) as {
    queries: { id: string }[];
  };
  await Promise.all(
    listed.queries.map((q) => fetch(`${base}/v1/queries/${q.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } })),
  );
  return listed.queries.length;
};

// A query of about half a second on this machine, measured rather than assumed.
let size = 20_000_000;
for (;;) {
  const from = performance.now();
  await (await send(main.base, BOB, slow(size))).text();
  const ms = performance.now() - from;
  if (ms > 300 || size > 4e9) break;
  size *= 2;
}

t.test('fair shares: alice sends 50 slow queries, bob 1; bob starts within one query-time', async (t) => {
  // A router of its own over the same workers, with a directory the test can empty: then no
  // waiting query is handed a worker, so the cancel at the end meets only queries still queued.
  let drained = false;
  const fair: WorkerDirectory = { pools: async () => [settings], workers: async () => (drained ? [] : pool.alive()) };
  const router = new Router(fair, new LocalFallback(env));
  const s = await serve(router);
  t.teardown(() => s.app.close());
  const ids = Array.from({ length: 50 }, (_, i) => `alice-${i}`);
  const answers = ids.map((id) => send(s.base, ALICE, slow(size), { id }).then(async (r) => ({ status: r.status, text: await r.text() })));
  await until("alice's queries running and queued", 30_000, async () => ((await busyWorkers()) === 2 ? true : undefined));
  // Let two of alice's finish so a query-time is known, then bob sends his one.
  await until("two of alice's queries done", 60_000, () =>
    log.filter((l) => l.principal.user === 'alice' && l.outcome === 'ok').length >= 2 ? true : undefined,
  );
  const bob = await send(s.base, BOB, slow(size), { id: 'bob-1' });
  t.equal(bob.status, 200, 'bob is answered');
  await bob.text();
  const bobLine = log.find((l) => l.id === 'bob-1')!;
  const aliceDone = log.filter((l) => l.principal.user === 'alice' && l.outcome === 'ok');
  const queryTimes = aliceDone.map((l) => l.durationMs - (l.queueWaitMs ?? 0)).sort((a, b) => a - b);
  const queryTime = queryTimes[Math.floor(queryTimes.length / 2)]!;
  const aliceWaiting = 50 - aliceDone.length;
  const fifo = ((aliceWaiting - 2) / 2) * queryTime;
  t.comment(
    `one query ${queryTime.toFixed(0)} ms; bob waited ${bobLine.queueWaitMs} ms with ${aliceWaiting} of alice's queries ` +
      `still to go (first come first served would be about ${fifo.toFixed(0)} ms)`,
  );
  t.ok(
    bobLine.queueWaitMs! <= queryTime * 1.5 + 100,
    `bob waited ${bobLine.queueWaitMs} ms, within one query-time (${queryTime.toFixed(0)} ms)`,
  );
  t.ok(aliceWaiting >= 10, `alice still had ${aliceWaiting} queries to go when bob's ran`);
  // Empty the directory; a query (which the pool, now without workers, sends to the cold path)
  // makes the router read it. Alice's running queries then finish and the rest stay queued.
  drained = true;
  const refresh = await send(s.base, BOB, 'SELECT 1 AS one', { id: 'bob-refresh' });
  t.equal(refresh.status, 200, await refresh.text());
  t.equal(refresh.headers.get('x-featherman-pod'), 'fallback', 'the router sees no worker now');
  const aliceOk = () => log.filter((l) => l.principal.user === 'alice' && l.outcome === 'ok').map((l) => l.id);
  await until("alice's running queries answered, the rest queued", 60_000, async () =>
    (await busyWorkers()) === 0 && aliceOk().length + router.snapshot()[0]!.queued === 50 ? true : undefined,
  );
  const answered = aliceOk();
  t.equal(await cancelAll(s.base, ALICE), 50 - answered.length, "every query of alice's still queued is cancelled");
  const results = await Promise.all(answers);
  t.same(
    results.map((r) => r.status),
    ids.map((id) => (answered.includes(id) ? 200 : 499)),
    'answered before the cancel: 200; cancelled while queued: 499',
  );
  t.same(
    results.filter((r, i) => r.status === 499 && !r.text.includes(`query ${ids[i]} was cancelled`)),
    [],
    'each 499 says its query was cancelled',
  );
  t.same(
    ids.filter((id) => !answered.includes(id)).map((id) => log.find((l) => l.id === id)?.outcome),
    Array(50 - answered.length).fill('cancelled'),
    'the query log says cancelled',
  );
});

t.test('per-principal limits: running waits its turn, queued past the limit is 429 naming it', async (t) => {
  const limited: PoolSettings = { ...settings, pool: 'limited', maxRunningPerPrincipal: 1, maxQueuedPerPrincipal: 2 };
  const directory: WorkerDirectory = { pools: async () => [limited], workers: () => pool.workers() };
  const router = new Router(directory, new LocalFallback(env));
  const s = await serve(router);
  t.teardown(() => s.app.close());
  // Alice's queries run until cancelled, so her queue stays as sent whatever this machine's speed.
  const first = send(s.base, ALICE, FOREVER, { id: 'lim-1' });
  await until("alice's first running", 30_000, async () => ((await busyWorkers()) === 1 ? true : undefined));
  const queued = [send(s.base, ALICE, FOREVER, { id: 'lim-2' }), send(s.base, ALICE, FOREVER, { id: 'lim-3' })];
  // The router hands out a free worker the moment a query joins its queue; with both queued and
  // a worker free, what runs is decided until alice's first query ends.
  await until('both queued', 30_000, () => (router.snapshot()[0]?.queued === 2 ? true : undefined));
  t.equal(await busyWorkers(), 1, 'alice runs one query although a worker is free (maxRunningPerPrincipal: 1)');
  const refused = await send(s.base, ALICE, slow(size), { id: 'lim-4' });
  t.equal(refused.status, 429);
  t.ok(Number(refused.headers.get('retry-after')) >= 1, 'with Retry-After');
  t.match(((await refused.json()) as { message: string }).message, /queue\.maxQueuedPerPrincipal \(2\)/, 'naming the limit');
  const bob = await send(s.base, BOB, 'SELECT count(*) AS n FROM events', { id: 'lim-bob' });
  t.equal(bob.status, 200, 'bob runs at once on the free worker');
  t.same(((await bob.json()) as { rows: unknown }).rows, [{ n: '1000' }]);
  t.equal(log.find((l) => l.id === 'lim-4')?.outcome, 'rejected', 'the query log says rejected');
  t.equal(await cancelAll(s.base, ALICE), 3, "alice's three queries cancelled");
  const ended = await Promise.all([first, ...queued].map((p) => p.then(async (r) => (await r.text(), r.status))));
  t.same(ended, [499, 499, 499], 'the running one and the queued ones: 499');
  await until('the workers idle', 30_000, async () => ((await busyWorkers()) === 0 ? true : undefined));
});

// Without a cancel, FOREVER would run until its deadline (maxQueryMs, 60 s): a worker idle, or a
// process gone, well before that is the cancel's doing. Half the deadline leaves a loaded machine
// ample room; the times are printed (here: tens to a few hundred ms).
const STOPPED_BEFORE_MS = settings.maxQueryMs / 2;

t.test('cancel on a warm worker: DELETE, and the client going away, leave the worker idle', async (t) => {
  // One worker, so the second query can start only once the first's slot is given back.
  const one: WorkerDirectory = { pools: async () => [{ ...settings, pool: 'one' }], workers: async () => pool.alive().slice(0, 1) };
  const s = await serve(new Router(one, new LocalFallback(env)));
  t.teardown(() => s.app.close());
  const main = s;
  const answer = send(main.base, ALICE, FOREVER, { id: 'warm-del' });
  await until('running', 30_000, async () => ((await busyWorkers()) === 1 ? true : undefined));
  t.equal(
    (await fetch(`${main.base}/v1/queries/warm-del`, { method: 'DELETE', headers: { authorization: `Bearer ${BOB}` } })).status,
    404,
    "bob cannot cancel alice's query",
  );
  const from = performance.now();
  t.equal(
    (await fetch(`${main.base}/v1/queries/warm-del`, { method: 'DELETE', headers: { authorization: `Bearer ${ALICE}` } })).status,
    202,
  );
  await until('the worker idle', STOPPED_BEFORE_MS, async () => ((await busyWorkers()) === 0 ? true : undefined));
  const ms = performance.now() - from;
  t.ok(ms < STOPPED_BEFORE_MS, `idle ${ms.toFixed(0)} ms after DELETE, long before the query's deadline`);
  const res = await answer;
  t.equal(res.status, 499);
  t.equal(res.headers.get('x-featherman-query-id'), 'warm-del', 'the answer carries the id');
  t.match(await res.text(), /query warm-del was cancelled/);

  const client = leaving(main.base, ALICE, FOREVER, 'warm-close');
  await until('running', 30_000, async () => ((await busyWorkers()) === 1 ? true : undefined));
  const from2 = performance.now();
  client.leave();
  await until('the worker idle', STOPPED_BEFORE_MS, async () => ((await busyWorkers()) === 0 ? true : undefined));
  const ms2 = performance.now() - from2;
  t.ok(ms2 < STOPPED_BEFORE_MS, `idle ${ms2.toFixed(0)} ms after the client went away, long before the query's deadline`);
  t.type(await client.closed, Error);
  await until('logged', 30_000, () => (log.some((l) => l.id === 'warm-close') ? true : undefined));
  t.same(
    ['warm-del', 'warm-close'].map((id) => log.find((l) => l.id === id)?.outcome),
    ['cancelled', 'cancelled'],
    'the query log shows both cancelled',
  );
});

t.test('cancel on the cold path: DELETE, and the client going away, kill the query process', async (t) => {
  const empty: WorkerDirectory = { pools: async () => [{ ...settings, pool: 'cold' }], workers: async () => [] };
  const s = await serve(new Router(empty, new LocalFallback(env)));
  t.teardown(() => s.app.close());
  // The query's process, once it has loaded DuckDB (so the kill meets a query, not a starting Node).
  const started = () => until('the query process in DuckDB', 60_000, () => queryProcesses().find(inDuckDB));
  const answer = send(s.base, ALICE, FOREVER, { id: 'cold-del' });
  const pid = await started();
  const from = performance.now();
  t.equal((await fetch(`${s.base}/v1/queries/cold-del`, { method: 'DELETE', headers: { authorization: `Bearer ${ALICE}` } })).status, 202);
  const res = await answer;
  const ms = performance.now() - from;
  // The cold path answers only once its process has exited; 499 (not its deadline's 504) says it was killed for the caller.
  t.equal(res.status, 499);
  t.match(await res.text(), /query cold-del was cancelled/);
  t.notOk(existsSync(`/proc/${pid}`), 'the process is gone');
  t.ok(ms < STOPPED_BEFORE_MS, `the caller answered ${ms.toFixed(0)} ms after DELETE, long before the query's deadline`);

  const client = leaving(s.base, ALICE, FOREVER, 'cold-close');
  const pid2 = await started();
  const from2 = performance.now();
  client.leave();
  const line = await until('logged', STOPPED_BEFORE_MS, () => log.find((l) => l.id === 'cold-close'));
  const ms2 = performance.now() - from2;
  t.equal(line.outcome, 'cancelled');
  t.equal(line.status, 499, 'logged once the process was killed for the caller');
  t.notOk(existsSync(`/proc/${pid2}`), 'the process is gone');
  t.ok(ms2 < STOPPED_BEFORE_MS, `logged ${ms2.toFixed(0)} ms after the client went away, long before the query's deadline`);
  t.equal(log.find((l) => l.id === 'cold-del')?.outcome, 'cancelled');
  t.type(await client.closed, Error);
});

t.test('the query log: one line per query, principals and tables, no literals, no tokens', async (t) => {
  const res = await send(main.base, BOB, "SELECT count(*) AS n FROM events WHERE kind = 'k1-secret-literal'", { id: 'log-1' });
  t.equal(res.status, 200);
  await res.text();
  const refused = await send(main.base, BOB, "SELECT * FROM read_text('/etc/passwd')", { id: 'log-2' });
  t.equal(refused.status, 403);
  const bad = await fetch(`${main.base}/v1/query`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer wrong-token-000' },
    body: '{}',
  });
  t.equal(bad.status, 401, 'a bad token is refused');
  t.ok(bad.headers.get('x-featherman-query-id'), 'even a refusal carries a query id');
  const line = await until('logged', 5_000, () => log.find((l) => l.id === 'log-1'));
  t.match(line, {
    msg: 'query',
    principal: { user: 'bob', groups: ['featherman:static-tokens'] },
    catalog: 'lake1',
    namespace: 'local',
    pool: 'p1',
    tables: { read: ['events'], write: [], catalog: false },
    kind: 'select',
    rows: 1,
    outcome: 'ok',
    status: 200,
  });
  t.ok(
    line.bytes > 0 && line.durationMs > 0 && line.queueWaitMs! >= 0 && /^p1-local-\d$/.test(String(line.worker)),
    'bytes, duration, queue wait, worker',
  );
  t.ok(!Number.isNaN(Date.parse(line.time)), 'a time');
  t.equal(log.find((l) => l.id === 'log-2')?.status, 403, "the sandbox's refusal is logged too");
  t.equal(log.filter((l) => l.id === 'log-1').length, 1, 'one line per query');
  const text = JSON.stringify(log);
  t.notOk(text.includes('secret-literal'), 'no SQL literal');
  t.notOk(text.includes('/etc/passwd'), 'no SQL at all');
  for (const token of [ALICE, BOB, 'wrong-token-000']) t.notOk(text.includes(token), 'no token');
  t.ok(
    log.every((l) => l.sql === undefined),
    'no sql field unless FEATHERMAN_LOG_SQL=true',
  );
  t.equal(new Set(log.map((l) => l.id)).size, log.length, 'ids are unique');
});

t.test('FEATHERMAN_LOG_SQL=true puts the SQL in the log', async (t) => {
  process.env.FEATHERMAN_LOG_SQL = 'true';
  t.teardown(() => {
    delete process.env.FEATHERMAN_LOG_SQL;
  });
  const s = await serve(new Router(pool, new LocalFallback(env)));
  t.teardown(() => s.app.close());
  await (await send(s.base, BOB, "SELECT 'shown' AS x", { id: 'log-sql' })).text();
  t.equal(log.find((l) => l.id === 'log-sql')?.sql, "SELECT 'shown' AS x");
});
