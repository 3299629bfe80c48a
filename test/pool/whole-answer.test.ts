// A worker's small answer is read whole by the router and sent on in one piece with a
// Content-Length (one write, no chunked end a write later); a large one streams through intact;
// one cut before the router has read it says so with a 502 instead of a half answer.
// A real worker on a real lake (local data path), behind the real HTTP front.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { Router, RouterError, type PoolSettings, type WorkerEndpoint } from '../../lib/pool/router.js';
import { buildWorker, workerOptionsFromEnv } from '../../lib/pool/worker.js';
import { buildServer } from '../../lib/server/server.js';
import { featherman } from '../helpers/cli.js';

const work = mkdtempSync(join(tmpdir(), 'fm-whole-answer-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));
const env: Record<string, string> = {
  PATH: process.env.PATH!,
  HOME: process.env.HOME ?? '/tmp',
  ...(process.env.FEATHERMAN_CACHE ? { FEATHERMAN_CACHE: process.env.FEATHERMAN_CACHE } : {}),
  FEATHERMAN_METADATA: `duckdb:${join(work, 'meta.ducklake')}`,
  FEATHERMAN_DATA_PATH: join(work, 'data/'),
  FEATHERMAN_CATALOG: 'lake1',
};
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
const TOKEN = 'whole-answer-token';
const noFallback = {
  run: async () => {
    throw new Error('no fallback in this test');
  },
};
const routerTo = (workers: WorkerEndpoint[]) => new Router({ pools: async () => [settings], workers: async () => workers }, noFallback);

let workerUrl = '';
let front = '';
t.before(async () => {
  for (const args of [
    ['catalog', 'init'],
    ['query', '--write', '--sql', 'CREATE TABLE events AS SELECT i AS id FROM range(1000) r(i)'],
  ]) {
    const r = await featherman(args, env);
    if (r.code !== 0) throw new Error(`featherman ${args.join(' ')}: ${r.stderr}`);
  }
  const { app, start } = await buildWorker(workerOptionsFromEnv(env));
  workerUrl = await app.listen({ port: 0, host: '127.0.0.1' });
  await start();
  t.teardown(() => app.close());
  const server = await buildServer({
    plugins: ['query'],
    router: routerTo([{ name: 'w', url: workerUrl }]),
    apiTokens: [TOKEN],
    queryLog: () => undefined,
  });
  front = await server.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(() => server.close());
});

interface Answer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}
function ask(sql: string): Promise<Answer> {
  const payload = JSON.stringify({ catalog: 'lake1', sql });
  const u = new URL(front);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: '/v1/query',
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(payload),
          authorization: `Bearer ${TOKEN}`,
        },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

t.test('a small answer goes out whole, with its length', async (t) => {
  const a = await ask('SELECT id FROM events WHERE id < 3 ORDER BY id');
  t.equal(a.status, 200, a.body);
  t.same(JSON.parse(a.body).rows, [{ id: 0 }, { id: 1 }, { id: 2 }]);
  t.equal(a.headers['content-length'], String(Buffer.byteLength(a.body)), 'Content-Length is the body');
  t.equal(a.headers['transfer-encoding'], undefined, 'not chunked');

  const refused = await ask("SELECT * FROM read_text('/etc/passwd')");
  t.equal(refused.status, 403, refused.body);
  t.equal(refused.headers['content-length'], String(Buffer.byteLength(refused.body)), 'a refusal too');
});

t.test('a large answer streams through, every row intact', async (t) => {
  const sql = "SELECT i, repeat('x', 100) AS pad FROM range(5000) r(i) ORDER BY i";
  const direct = await routerTo([{ name: 'w', url: workerUrl }]).query(settings, { sql, format: 'json' });
  t.equal(direct.status, 200);
  t.equal(direct.whole, undefined, 'above 64 KiB: not read whole');
  let streamed = '';
  for await (const piece of direct.body) streamed += String(piece);
  const rows = JSON.parse(streamed).rows as { i: number; pad: string }[];
  t.equal(rows.length, 5000);
  t.same(rows[4999], { i: 4999, pad: 'x'.repeat(100) }, 'the last row, after the part read ahead');

  const a = await ask(sql);
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
