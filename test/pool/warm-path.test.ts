// The warm path's shortcuts keep the worker's guarantees: a connection serves the next query only
// after a clean answer (never after an interrupt, a refusal or an error), the sandbox's verdict
// cache forgets the least recently used text first, and every answer says where its time went
// (Server-Timing). A real worker on a real lake (local data path), over HTTP.
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AllowedQueries, type QueryTables } from '../../lib/lake/sandbox.js';
import { Router, RouterError, type PoolSettings, type WorkerEndpoint } from '../../lib/pool/router.js';
import { buildWorker, workerOptionsFromEnv } from '../../lib/pool/worker.js';
import { buildServer } from '../../lib/server/server.js';
import { featherman } from '../helpers/cli.js';

const work = mkdtempSync(join(tmpdir(), 'fm-warm-path-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));
const env: Record<string, string> = {
  PATH: process.env.PATH!,
  HOME: process.env.HOME ?? '/tmp',
  ...(process.env.FEATHERMAN_CACHE ? { FEATHERMAN_CACHE: process.env.FEATHERMAN_CACHE } : {}),
  FEATHERMAN_METADATA: `duckdb:${join(work, 'meta.ducklake')}`,
  FEATHERMAN_DATA_PATH: join(work, 'data/'),
  FEATHERMAN_CATALOG: 'lake1',
  FEATHERMAN_KILL_GRACE: '30s',
};
let base = '';
t.before(async () => {
  for (const args of [
    ['catalog', 'init'],
    ['query', '--write', '--sql', 'CREATE TABLE events AS SELECT i AS id FROM range(1000) r(i)'],
  ]) {
    const r = await featherman(args, env);
    if (r.code !== 0) throw new Error(`featherman ${args.join(' ')}: ${r.stderr}`);
  }
  const { app, start } = await buildWorker(workerOptionsFromEnv(env));
  base = await app.listen({ port: 0, host: '127.0.0.1' });
  await start();
  t.teardown(() => app.close());
});

interface Answer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
  trailers: NodeJS.Dict<string>;
}
/** POST a JSON body to `url` and read the whole answer. */
function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const payload = JSON.stringify(body);
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...headers },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          text += d;
        });
        res.on('end', () => resolve({ status: res.statusCode!, body: text, headers: res.headers, trailers: res.trailers }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
/** A query sent to the worker itself. */
const query = (sql: string, extra: Record<string, unknown> = {}) => post(`${base}/query`, { sql, ...extra });
const connectionId = async () => {
  const a = await query('SELECT current_connection_id() AS c');
  t.equal(a.status, 200, a.body);
  return (JSON.parse(a.body) as { rows: { c: string | number }[] }).rows[0]!.c;
};

t.test('a connection that answered cleanly serves the next query', async (t) => {
  const first = await connectionId();
  t.equal(await connectionId(), first, 'the same DuckDB connection');
  const a = await query('SELECT count(*) AS n FROM events');
  t.equal(a.status, 200);
  t.same(JSON.parse(a.body).rows, [{ n: '1000' }]);
});

t.test('a query stopped at its deadline takes its connection with it', async (t) => {
  const before = await connectionId();
  const slow = await query('SELECT count(*) FROM range(1000000000000) a(i), range(1000) b(j) WHERE a.i + b.j < 0', { timeoutMs: 300 });
  t.equal(slow.status, 504, slow.body);
  const after = await connectionId();
  t.not(after, before, 'a fresh connection after the interrupt');
  // And the next query on the pool answers in full (no interrupt left pending anywhere).
  const a = await query('SELECT sum(id) AS s FROM events');
  t.equal(a.status, 200, a.body);
  t.same(JSON.parse(a.body).rows, [{ s: '499500' }]);
});

t.test('refused or failing SQL never leaves state behind, and its connection is not reused', async (t) => {
  const before = await connectionId();
  for (const sql of [
    'SET threads = 1',
    "SET VARIABLE v = 'x'",
    'CREATE TEMP TABLE tmp AS SELECT 1',
    'PREPARE p AS SELECT 1',
    'SELECT setseed(0.5)',
    "SELECT getvariable('v')",
  ]) {
    const r = await query(sql);
    t.equal(r.status, 403, `${sql}: ${r.body}`);
  }
  const broken = await query('SELECT 1/0::INTEGER + no_such_column');
  t.equal(broken.status, 400, broken.body);
  t.not(await connectionId(), before, "the refused queries' connections were closed");
  const a = await query('SELECT count(*) AS n FROM events');
  t.same(JSON.parse(a.body).rows, [{ n: '1000' }]);
});

t.test('a cut answer does not hand its half-read result on', async (t) => {
  const before = await connectionId();
  const cut = await query('SELECT id FROM events ORDER BY id', { maxRows: 10 });
  t.equal(cut.status, 200);
  t.equal(JSON.parse(cut.body).truncated, true);
  t.not(await connectionId(), before);
});

t.test('a repeated text sees new data once the catalog changes (no plan outlives its engine)', async (t) => {
  const count = async () => {
    const a = await query('SELECT count(*) AS n FROM events');
    t.equal(a.status, 200, a.body);
    return (JSON.parse(a.body) as { rows: { n: string }[] }).rows[0]!.n;
  };
  t.equal(await count(), '1000');
  t.equal(await count(), '1000', 'the same text again, from its prepared statement');
  const w = await featherman(['query', '--write', '--sql', 'INSERT INTO events SELECT i + 1000 FROM range(500) r(i)'], env);
  t.equal(w.code, 0, w.stderr);
  // The worker swaps in a new engine within its refresh interval (1 s): wait for it, bounded.
  const deadline = Date.now() + 60_000;
  let n = await count();
  // Polled (the worker announces no swap), a query every 50 ms at most.
  while (n === '1000' && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    n = await count();
  }
  t.equal(n, '1500');
});

t.test('every answer says where its time went', async (t) => {
  const a = await query('SELECT 1 AS one');
  t.equal(a.status, 200);
  const header = String(a.headers['server-timing']);
  for (const phase of ['connect', 'sandbox', 'execute']) t.match(header, new RegExp(`${phase};dur=\\d+\\.\\d+`), phase);
  t.match(String(a.trailers['server-timing']), /^encode;dur=\d+\.\d+$/);
});

const settings: PoolSettings = {
  namespace: 'n',
  pool: 'p',
  catalog: 'lake1',
  readOnly: true,
  queueMaxLength: 10,
  queueMaxWaitMs: 10_000,
  maxQueryMs: 10_000,
  workerConcurrency: 1,
};
// No fallback: the workers are there (a cold query would be a bug here).
const routerTo = (workers: WorkerEndpoint[]) =>
  new Router(
    { pools: async () => [settings], workers: async () => workers },
    {
      run: async () => {
        throw new Error('no fallback in this test');
      },
    },
  );

t.test('the router says how long a query queued and how long its worker took, and no more', async (t) => {
  const router = routerTo([{ name: 'w', url: base }]);
  for (let i = 0; i < 3; i++) {
    const r = await router.query(settings, { sql: 'SELECT 1 AS one', format: 'json' });
    t.equal(r.status, 200);
    t.match(r.headers['server-timing'], /^queue;dur=\d+\.\d+, worker;dur=\d+\.\d+$/, 'no sandbox, connect or execute phase goes out');
    let body = '';
    for await (const piece of r.body) body += String(piece);
    t.same(JSON.parse(body).rows, [{ one: 1 }]);
  }
});

t.test('the verdict cache forgets the least recently used text first', async (t) => {
  const tables = (name: string): QueryTables => ({ kind: 'select', read: [{ schema: 'main', table: name }], write: [], catalog: false });
  const allowed = new AllowedQueries(2);
  allowed.add('a', tables('a'));
  allowed.add('b', tables('b'));
  t.same(allowed.get('a'), tables('a'), 'a used again: b is now the oldest');
  allowed.add('c', tables('c'));
  t.equal(allowed.has('b'), false);
  t.equal(allowed.has('a'), true);
  t.equal(allowed.has('c'), true);
});

// Small answers are read whole by the router and sent on in one write with a Content-Length; a
// large one streams through intact; one cut before the router read it is a 502, not half an answer.
const TOKEN = 'warm-path-token';
async function startFront(t: Test): Promise<string> {
  const server = await buildServer({
    plugins: ['query'],
    router: routerTo([{ name: 'w', url: base }]),
    apiTokens: [TOKEN],
    queryLog: () => undefined,
  });
  t.teardown(() => server.close());
  return server.listen({ port: 0, host: '127.0.0.1' });
}
/** A query sent through the service's HTTP front. */
const ask = (front: string, sql: string) => post(`${front}/v1/query`, { catalog: 'lake1', sql }, { authorization: `Bearer ${TOKEN}` });

t.test('a small answer goes out whole, with its length', async (t) => {
  const front = await startFront(t);
  const a = await ask(front, 'SELECT id FROM events WHERE id < 3 ORDER BY id');
  t.equal(a.status, 200, a.body);
  t.same(JSON.parse(a.body).rows, [{ id: 0 }, { id: 1 }, { id: 2 }]);
  t.equal(a.headers['content-length'], String(Buffer.byteLength(a.body)), 'Content-Length is the body');
  t.equal(a.headers['transfer-encoding'], undefined, 'not chunked');

  const refused = await ask(front, "SELECT * FROM read_text('/etc/passwd')");
  t.equal(refused.status, 403, refused.body);
  t.equal(refused.headers['content-length'], String(Buffer.byteLength(refused.body)), 'a refusal too');
});

t.test('a large answer streams through, every row intact', async (t) => {
  const front = await startFront(t);
  const sql = "SELECT i, repeat('x', 100) AS pad FROM range(5000) r(i) ORDER BY i";
  const direct = await routerTo([{ name: 'w', url: base }]).query(settings, { sql, format: 'json' });
  t.equal(direct.status, 200);
  t.equal(direct.whole, undefined, 'above 64 KiB: not read whole');
  let streamed = '';
  for await (const piece of direct.body) streamed += String(piece);
  const rows = JSON.parse(streamed).rows as { i: number; pad: string }[];
  t.equal(rows.length, 5000);
  t.same(rows[4999], { i: 4999, pad: 'x'.repeat(100) }, 'the last row, after the part read ahead');

  const a = await ask(front, sql);
  t.equal(a.status, 200);
  t.equal(a.headers['transfer-encoding'], 'chunked', 'streamed');
  t.same(JSON.parse(a.body).rows, rows, 'the same rows through the front');
});

t.test('an answer cut before the router read it whole is a 502, not half an answer', async (t) => {
  // A stand-in worker: the only way to cut an answer at a chosen byte (a real worker only cuts
  // when it dies, which a test cannot time). It sends headers and part of a body, then resets.
  const cutter: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      // Destroyed once headers and the part are on the wire.
      res.write('{"columns":["one"],"rows":[{"one":1}', () => res.socket?.destroy());
    });
  });
  await new Promise<void>((resolve) => cutter.listen(0, '127.0.0.1', resolve));
  t.teardown(() => cutter.close());
  const url = `http://127.0.0.1:${(cutter.address() as AddressInfo).port}`;
  const err = await routerTo([{ name: 'cut', url }])
    .query(settings, { sql: 'SELECT 1 AS one', format: 'json' })
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  t.ok(err instanceof RouterError, 'a RouterError');
  t.equal((err as RouterError).status, 502);
  t.match((err as RouterError).message, /worker cut failed while answering/);
});
