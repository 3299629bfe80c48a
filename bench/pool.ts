// The warm pool against cold starts and against its floor and its peer, side by side in one run,
// on one lake in MinIO (100,000 rows, DuckDB catalog):
//  1. latency (p50/p99) of `SELECT 1` and of a small aggregate: cold (a fresh `featherman query`
//     process per query) beside warm through the router (/v1/query, 2 local workers), a worker
//     called directly, the floor (bench/floor.ts: Fastify + @duckdb/node-api on in-memory copies
//     of the tables, no router, no sandbox; it also says what DuckDB alone took) and DuckDB's Quack
//     (bench/quack.ts: one DuckDB process, a Python client);
//     a bare HTTP proxy in front of the same worker (bench/bare-proxy.ts) says what the hop alone costs;
//  2. where the time of a warm SELECT 1 goes, phase by phase (Server-Timing from router and worker);
//  3. the warm-path goals, each with its figure;
//  4. throughput of the small aggregate with 1, 2 and 4 workers.
// Run: node dist/bench/pool.js (after a build). BENCH_* override sizes; BENCH_QUACK=0 skips Quack.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { Authenticator, parseStaticTokens } from '../lib/auth/authenticate.js';
import { packageRoot } from '../lib/lake/config.js';
import { LocalFallback, LocalPool } from '../lib/pool/local.js';
import { Router, type PoolSettings } from '../lib/pool/router.js';
import { fetchWorkerStats } from '../lib/pool/stats.js';
import { buildServer } from '../lib/server/server.js';
import { quietSdkWarnings } from '../lib/warnings.js';
import { CLI } from '../test/helpers/cli.js';
import { freePort, Minio } from '../test/helpers/minio.js';
import { startBareProxy, type BareProxy } from './bare-proxy.js';
import { fmt } from './load.js';
import { runQuack } from './quack.js';

const COLD_RUNS = Number(process.env.BENCH_COLD_RUNS ?? 15);
const WARM_RUNS = Number(process.env.BENCH_WARM_RUNS ?? 1000);
// Queries each warm path answers before it is measured: a warm pool has long since compiled its hot
// code (V8's JIT needs a few thousand calls), so the first ones would measure a cold process instead.
const WARM_UP = Number(process.env.BENCH_WARM_UP ?? 2000);
const THROUGHPUT_SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 8);
const TOKEN = 'bench-token';
const QUERIES = {
  'SELECT 1': 'SELECT 1 AS one',
  'small aggregate': 'SELECT kind, count(*) AS n, avg(amount) AS a FROM events GROUP BY kind ORDER BY kind',
};
type Label = keyof typeof QUERIES;
// Quack serves each client a fresh connection whose default database is not the lake: the table is named in full.
const QUACK_QUERIES: Record<Label, string> = {
  ...QUERIES,
  'small aggregate': QUERIES['small aggregate'].replace('FROM events', 'FROM lake.events'),
};

const pct = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
};
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

interface Answer {
  ms: number;
  headers: IncomingHttpHeaders;
  trailers: NodeJS.Dict<string>;
}

function post(agent: Agent, url: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const u = new URL(url);
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...headers },
      },
      (res) => {
        res.resume();
        res.on('error', reject);
        res.on('end', () =>
          res.statusCode === 200
            ? resolve({ ms: performance.now() - t0, headers: res.headers, trailers: res.trailers })
            : reject(new Error(`HTTP ${res.statusCode}`)),
        );
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** Server-Timing entries (`name;dur=ms`, from headers and trailers) as name → ms. */
function timings(...values: (string | string[] | undefined)[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values.flat()) {
    for (const entry of (v ?? '').split(',')) {
      const m = /^\s*([\w-]+)\s*;\s*dur=([\d.]+)/.exec(entry);
      if (m) out[m[1]!] = Number(m[2]);
    }
  }
  return out;
}

/**
 * Until every worker of `pool` answers from its in-memory copy of events: a worker copies its small
 * tables after it is ready (lib/pool/engine.ts), and until then it reads the Parquet file.
 */
async function copiesMade(pool: LocalPool): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (const worker of pool.alive()) {
    for (;;) {
      const stats = await fetchWorkerStats(`${worker.url}/stats`, 1000);
      if (stats?.tablesInMemory?.includes('events')) break;
      if (Date.now() > deadline) throw new Error(`worker ${worker.name} has not copied events into memory in 60 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** bench/floor.ts as its own process, on the lake of `env`. */
async function startFloor(env: Record<string, string>): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [join(packageRoot(), 'dist', 'bench', 'floor.js')], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', (line) => {
      try {
        resolve(String(JSON.parse(line).listening));
      } catch {
        reject(new Error(`floor: ${line}`));
      }
    });
    child.once('exit', (code) => reject(new Error(`the floor server exited with ${code}`)));
  });
  return { url, child };
}

const row = (cells: string[], widths: number[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('');

export async function run(): Promise<void> {
  console.log(`load average at start: ${load()} (this machine: 2 cores, shared)`);
  const minio = await Minio.start();
  const work = mkdtempSync(join(tmpdir(), 'fm-bench-pool-'));
  const pools: LocalPool[] = [];
  let floor: ChildProcess | undefined;
  let proxy: BareProxy | undefined;
  try {
    await minio.createBucket('lake');
    const env: Record<string, string> = {
      PATH: process.env.PATH!,
      HOME: process.env.HOME ?? '/tmp',
      ...minio.env(),
      FEATHERMAN_METADATA: `duckdb:${join(work, 'meta.ducklake')}`,
      FEATHERMAN_DATA_PATH: 's3://lake/bench/data/',
      ...(process.env.FEATHERMAN_CACHE ? { FEATHERMAN_CACHE: process.env.FEATHERMAN_CACHE } : {}),
    };
    const cli = (args: string[]) => {
      const r = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`featherman ${args.join(' ')}: ${r.stderr}`);
      return r;
    };
    cli(['catalog', 'init']);
    cli([
      'query',
      '--write',
      '--sql',
      "CREATE TABLE events AS SELECT i AS id, ['a','b','c','d'][i % 4 + 1] AS kind, i * 0.5 AS amount FROM range(100000) r(i)",
    ]);

    // 1. cold
    const cold: Record<string, number[]> = {};
    for (const [label, sql] of Object.entries(QUERIES)) {
      cold[label] = [];
      for (let i = 0; i < COLD_RUNS; i++) {
        const t0 = performance.now();
        cli(['query', '--sql', sql]);
        cold[label]!.push(performance.now() - t0);
      }
    }

    // Warm: the router, a worker directly and the floor, each query in turn, so load hits all alike.
    const settings: PoolSettings = {
      namespace: 'bench',
      pool: 'bench',
      catalog: 'bench',
      readOnly: true,
      queueMaxLength: 10_000,
      queueMaxWaitMs: 60_000,
      maxQueryMs: 60_000,
      workerConcurrency: 1,
    };
    const pool = new LocalPool(settings, env);
    pools.push(pool);
    await pool.scaleTo(2);
    await copiesMade(pool);
    const app = await buildServer({
      plugins: ['query'],
      router: new Router(pool, new LocalFallback(env)),
      apiTokens: [TOKEN],
      queryLog: () => undefined,
    });
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    const started = await startFloor(env);
    floor = started.child;
    let agent = new Agent({ keepAlive: true, maxSockets: 64 });
    const viaRouter = (sql: string) => post(agent, `${base}/v1/query`, { catalog: 'bench', sql }, { authorization: `Bearer ${TOKEN}` });
    const worker = pool.alive()[0]!;
    const direct = (sql: string) => post(agent, `${worker.url}/query`, { sql });
    const toFloor = (sql: string) => post(agent, `${started.url}/query`, { sql });
    proxy = await startBareProxy(worker.url);
    const bare = proxy.url;
    const viaProxy = (sql: string) => post(agent, `${bare}/query`, { sql });
    const paths = { router: viaRouter, worker: direct, floor: toFloor, proxy: viaProxy };
    type Path = keyof typeof paths;
    const warm = {} as Record<Path, Record<string, number[]>>;
    const phases: Record<string, number[]> = {};
    /** Worker answers that read the in-memory copy of events (lib/lake/table-copies.ts), by query. */
    const fromMemory: Record<string, number> = {};
    /** DuckDB's own time in the floor's answers (Server-Timing engine), by query: no HTTP, no JSON. */
    const engine: Record<string, number[]> = {};
    const addPhase = (name: string, ms: number) => (phases[name] ??= []).push(ms);
    for (const path of Object.keys(paths) as Path[]) warm[path] = {};
    for (const [label, sql] of Object.entries(QUERIES)) {
      // The second query takes the same code path, compiled by then: a short warm-up does.
      const warmUp = label === 'SELECT 1' ? WARM_UP : Math.min(WARM_UP, 100);
      for (let i = 0; i < warmUp; i++) for (const send of Object.values(paths)) await send(sql);
      for (const path of Object.keys(paths) as Path[]) warm[path][label] = [];
      engine[label] = [];
      for (let i = 0; i < WARM_RUNS; i++) {
        for (const [path, send] of Object.entries(paths) as [Path, typeof viaRouter][]) {
          const a = await send(sql);
          warm[path][label]!.push(a.ms);
          if (path === 'worker' && a.headers['x-featherman-in-memory'] === 'true') fromMemory[label] = (fromMemory[label] ?? 0) + 1;
          if (path === 'floor') engine[label]!.push(timings(a.headers['server-timing']).engine ?? NaN);
          if (label !== 'SELECT 1') continue;
          if (path === 'router') {
            const t = timings(a.headers['server-timing']);
            addPhase('queue', t.queue ?? NaN);
            addPhase('routerWorker', t.worker ?? NaN);
            addPhase('routerTotal', a.ms);
          } else if (path === 'worker') {
            const t = timings(a.headers['server-timing'], a.trailers['server-timing']);
            for (const name of ['connect', 'sandbox', 'execute', 'encode']) addPhase(name, t[name] ?? NaN);
            addPhase('workerOwn', Number(a.trailers['x-featherman-duration']));
            addPhase('workerTotal', a.ms);
          }
        }
      }
    }
    // Authentication is in the service's onRequest hook: timed here on the same static token.
    const authenticator = new Authenticator({ staticTokens: parseStaticTokens(TOKEN) });
    for (let i = 0; i < WARM_RUNS; i++) {
      const t0 = performance.now();
      await authenticator.authenticate(`Bearer ${TOKEN}`);
      addPhase('auth', performance.now() - t0);
    }

    // Quack, on the same lake, while nothing else of ours runs queries.
    const quack =
      process.env.BENCH_QUACK === '0'
        ? { missing: 'skipped (BENCH_QUACK=0)' }
        : await runQuack(env, QUACK_QUERIES, WARM_RUNS, await freePort(), WARM_UP);

    const p50 = (xs: number[] | undefined) => (xs ? pct(xs, 0.5) : NaN);
    const p99 = (xs: number[] | undefined) => (xs ? pct(xs, 0.99) : NaN);
    const cell = (xs: number[] | undefined) => (xs ? `${fmt(p50(xs), 2)} / ${fmt(p99(xs), 2)}` : 'n/a');
    console.log(
      `\nlatency p50 / p99 in ms: cold (${COLD_RUNS} fresh \`featherman query\` processes), ` +
        `warm (${WARM_RUNS} each, interleaved, after ${WARM_UP} unmeasured); ` +
        `lake: DuckDB catalog, 100,000 rows on MinIO`,
    );
    const widths = [18, 18, 20, 18, 18, 18, 18, 11];
    console.log(row(['query', 'cold', 'via router', 'worker direct', 'floor', 'quack', 'DuckDB alone', 'cold/warm'], widths));
    for (const label of Object.keys(QUERIES) as Label[]) {
      const q = 'latencies' in quack ? quack.latencies[label] : undefined;
      console.log(
        row(
          [
            label,
            cell(cold[label]),
            cell(warm.router[label]),
            cell(warm.worker[label]),
            cell(warm.floor[label]),
            cell(q),
            cell(engine[label]),
            `${fmt(p50(cold[label]) / p50(warm.router[label]), 0)}x`,
          ],
          widths,
        ),
      );
    }
    if ('missing' in quack) console.log(`quack: not available: ${quack.missing}`);
    else
      console.log(
        "quack: DuckDB's quack extension (its PyPI wheel at the pinned version), one DuckDB process serving, " +
          'a Python client, quack_query() per query',
      );
    console.log(
      'floor: one process, Fastify + @duckdb/node-api, one connection, in-memory copies of the tables, ' +
        'no router, no sandbox, no limits (bench/floor.ts)',
    );
    console.log("DuckDB alone: the floor's own time in DuckDB for each of its answers (Server-Timing engine): no HTTP, no JSON");
    console.log(
      `the small aggregate: ${fromMemory['small aggregate'] ?? 0} of ${WARM_RUNS} worker answers read the worker's in-memory copy of ` +
        'events (X-Featherman-In-Memory); the floor reads its own copy, Quack the Parquet file in MinIO',
    );

    // 2. phases
    const worker50 = p50(phases.workerOwn);
    const routerWorker50 = p50(phases.routerWorker);
    const rows: [string, number, string][] = [
      ['auth', p50(phases.auth), 'service: static token checked (timed in process)'],
      ['queue', p50(phases.queue), 'router: arrival to a free worker (Server-Timing queue)'],
      ['connect', p50(phases.connect), 'worker: a DuckDB connection (reused when idle)'],
      ['sandbox check', p50(phases.sandbox), 'worker: the sandbox (a cached verdict for a repeated text)'],
      ['execute', p50(phases.execute), 'worker: DuckDB runs the query, to its first chunk'],
      ['encode', p50(phases.encode), 'worker: rows to JSON, envelope, end of answer (trailer)'],
      ['worker HTTP', p50(phases.workerTotal) - worker50, 'worker called directly: its total less its own time (HTTP, Fastify, body)'],
      [
        'route',
        routerWorker50 - (p50(phases.connect) + p50(phases.sandbox) + p50(phases.execute)),
        "router to the worker's headers, less the worker's phases before them",
      ],
      [
        'service + transfer',
        p50(phases.routerTotal) - p50(phases.queue) - routerWorker50 - p50(phases.auth),
        'the rest: client to service HTTP, Fastify, query log, body piped out',
      ],
    ];
    console.log(
      `\nwhere a warm SELECT 1 through the router spends its time ` +
        `(p50 of each phase, ${WARM_RUNS} queries; phases overlap their neighbours' rounding)`,
    );
    for (const [name, ms, where] of rows) console.log(`${name.padEnd(20)}${fmt(ms, 3).padStart(8)} ms  ${where}`);
    console.log(`${'total'.padEnd(20)}${fmt(p50(phases.routerTotal), 3).padStart(8)} ms`);

    // 3. the warm-path goals
    const s1 = 'SELECT 1';
    const agg = 'small aggregate';
    // Each goal with its figure, and where it helps, what the same run measured beside it.
    const targets: [string, number, number, string, string?][] = [
      ['warm SELECT 1 via router p50', p50(warm.router[s1]), 1.5, 'ms'],
      ['warm SELECT 1 via router p99', p99(warm.router[s1]), 5, 'ms'],
      [
        'router adds over a worker (p50)',
        p50(warm.router[s1]) - p50(warm.worker[s1]),
        0.4,
        'ms',
        `a bare HTTP proxy in front of the same worker adds ${fmt(p50(warm.proxy[s1]) - p50(warm.worker[s1]), 2)} ms ` +
          '(one more HTTP hop from this process, nothing else: bench/bare-proxy.ts)',
      ],
      ['worker p50 / floor p50', p50(warm.worker[s1]) / p50(warm.floor[s1]), 1.5, 'x'],
      [
        'small aggregate via router p50',
        p50(warm.router[agg]),
        5,
        'ms',
        `DuckDB alone takes ${fmt(p50(engine[agg]), 2)} ms for it (the floor's Server-Timing engine)`,
      ],
    ];
    console.log('\nwarm-path goals');
    for (const [name, value, limit, unit, beside] of targets) {
      console.log(`${name.padEnd(34)}${fmt(value, 2).padStart(9)} ${unit.padEnd(3)} ≤ ${limit}  ${value <= limit ? 'met' : 'NOT met'}`);
      if (beside) console.log(`  beside it: ${beside}`);
    }
    const ratio = p50(cold[s1]) / p50(warm.router[s1]);
    console.log(
      `${'cold/warm p50 ratio (SELECT 1)'.padEnd(34)}${fmt(ratio, 0).padStart(9)} x   ≥ 200  ${ratio >= 200 ? 'met' : 'NOT met'}`,
    );
    console.log(`load average now: ${load()}`);

    // 4. throughput by pool size, on fresh client connections (those to the floor and to the
    // worker called directly may have idled past their servers' keep-alive during Quack's run).
    agent.destroy();
    agent = new Agent({ keepAlive: true, maxSockets: 64 });
    console.log(`\nthroughput of the small aggregate, ${CLIENTS} concurrent clients for ${THROUGHPUT_SECONDS} s (this machine: 2 cores)`);
    console.log(`${'workers'.padEnd(10)}${'queries/s'.padStart(11)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}`);
    for (const size of [1, 2, 4]) {
      await pool.scaleTo(size);
      await copiesMade(pool);
      const latencies: number[] = [];
      const deadline = performance.now() + THROUGHPUT_SECONDS * 1000;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: CLIENTS }, async () => {
          while (performance.now() < deadline) latencies.push((await viaRouter(QUERIES[agg])).ms);
        }),
      );
      const seconds = (performance.now() - t0) / 1000;
      console.log(
        `${String(size).padEnd(10)}${fmt(latencies.length / seconds, 0).padStart(11)}` +
          `${fmt(pct(latencies, 0.5), 2).padStart(9)}${fmt(pct(latencies, 0.99), 2).padStart(9)}`,
      );
    }
    agent.destroy();
    await app.close();
  } finally {
    await proxy?.close();
    floor?.kill('SIGTERM');
    for (const p of pools) await p.stop();
    await minio.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  quietSdkWarnings();
  run().catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
