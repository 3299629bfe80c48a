// The warm pool against cold starts, side by side in one run, on a lake in MinIO:
//  1. latency (p50/p99) of `SELECT 1` and of a small aggregate on the lake: cold (a fresh
//     `featherman query` process per query: process start, DuckDB open, extensions, attach)
//     beside warm (through the router to local workers), with the ratio;
//  2. throughput of the small aggregate with 1, 2 and 4 workers;
//  3. router overhead: the same query straight to a worker vs through /v1/query.
// Run: node dist/bench/pool.js (after `npm test` or `npm start` has built). BENCH_* override sizes.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'node:http';
import { LocalFallback, LocalPool } from '../lib/pool/local.js';
import { Router, type PoolSettings } from '../lib/pool/router.js';
import { buildServer } from '../lib/server/server.js';
import { quietSdkWarnings } from '../lib/warnings.js';
import { CLI } from '../test/helpers/cli.js';
import { Minio } from '../test/helpers/minio.js';
import { fmt } from './load.js';

const COLD_RUNS = Number(process.env.BENCH_COLD_RUNS ?? 15);
const WARM_RUNS = Number(process.env.BENCH_WARM_RUNS ?? 400);
const THROUGHPUT_SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 8);
const TOKEN = 'bench-token';
const QUERIES = {
  'SELECT 1': 'SELECT 1 AS one',
  'small aggregate': 'SELECT kind, count(*) AS n, avg(amount) AS a FROM events GROUP BY kind ORDER BY kind',
};

const pct = (xs: number[], q: number) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))]!; };

function post(agent: Agent, url: string, body: unknown, headers: Record<string, string> = {}): Promise<number> {
  const u = new URL(url);
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...headers } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

export async function run(): Promise<void> {
  const minio = await Minio.start();
  const work = mkdtempSync(join(tmpdir(), 'fm-bench-pool-'));
  const pools: LocalPool[] = [];
  try {
    await minio.createBucket('lake');
    const env: Record<string, string> = {
      PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', ...minio.env(),
      FEATHERMAN_METADATA: `duckdb:${join(work, 'meta.ducklake')}`, FEATHERMAN_DATA_PATH: 's3://lake/bench/data/',
    };
    const cli = (args: string[]) => {
      const r = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`featherman ${args.join(' ')}: ${r.stderr}`);
      return r;
    };
    cli(['catalog', 'init']);
    cli(['query', '--write', '--sql', "CREATE TABLE events AS SELECT i AS id, ['a','b','c','d'][i % 4 + 1] AS kind, i * 0.5 AS amount FROM range(100000) r(i)"]);

    // 1. cold vs warm latency
    const cold: Record<string, number[]> = {};
    for (const [label, sql] of Object.entries(QUERIES)) {
      cold[label] = [];
      for (let i = 0; i < COLD_RUNS; i++) {
        const t0 = performance.now();
        cli(['query', '--sql', sql]);
        cold[label]!.push(performance.now() - t0);
      }
    }
    const settings: PoolSettings = { namespace: 'bench', pool: 'bench', catalog: 'bench', readOnly: true, queueMaxLength: 10_000, queueMaxWaitMs: 60_000, maxQueryMs: 60_000, workerConcurrency: 1 };
    const pool = new LocalPool(settings, env);
    pools.push(pool);
    await pool.scaleTo(2);
    const app = await buildServer({ plugins: ['query'], router: new Router(pool, new LocalFallback(env)), apiTokens: [TOKEN], queryLog: () => undefined });
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    const agent = new Agent({ keepAlive: true, maxSockets: 64 });
    const viaRouter = (sql: string) => post(agent, `${base}/v1/query`, { catalog: 'bench', sql }, { authorization: `Bearer ${TOKEN}` });
    const warm: Record<string, number[]> = {};
    for (const [label, sql] of Object.entries(QUERIES)) {
      for (let i = 0; i < 20; i++) await viaRouter(sql); // warm-up
      warm[label] = [];
      for (let i = 0; i < WARM_RUNS; i++) warm[label]!.push(await viaRouter(sql));
    }
    console.log(`\nlatency, cold (${COLD_RUNS} fresh \`featherman query\` processes) vs warm (${WARM_RUNS} queries through the router to 2 local workers); lake: DuckDB catalog, 100,000 rows on MinIO`);
    console.log(`${'query'.padEnd(18)}${'cold p50'.padStart(10)}${'cold p99'.padStart(10)}${'warm p50'.padStart(10)}${'warm p99'.padStart(10)}${'p50 ratio'.padStart(11)}   (ms)`);
    for (const label of Object.keys(QUERIES)) {
      const c = cold[label]!;
      const w = warm[label]!;
      console.log(`${label.padEnd(18)}${fmt(pct(c, 0.5), 1).padStart(10)}${fmt(pct(c, 0.99), 1).padStart(10)}${fmt(pct(w, 0.5), 2).padStart(10)}${fmt(pct(w, 0.99), 2).padStart(10)}${`${fmt(pct(c, 0.5) / pct(w, 0.5), 0)}x`.padStart(11)}`);
    }

    // 3. router overhead
    const worker = pool.alive()[0]!;
    const direct: number[] = [];
    const routed: number[] = [];
    for (let i = 0; i < WARM_RUNS; i++) {
      direct.push(await post(agent, `${worker.url}/query`, { sql: QUERIES['SELECT 1'] }));
      routed.push(await viaRouter(QUERIES['SELECT 1']));
    }
    console.log(`\nrouter overhead on SELECT 1 (${WARM_RUNS} each, alternating)`);
    console.log(`${'path'.padEnd(26)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}`);
    console.log(`${'worker directly'.padEnd(26)}${fmt(pct(direct, 0.5), 2).padStart(9)}${fmt(pct(direct, 0.99), 2).padStart(9)}`);
    console.log(`${'through /v1/query'.padEnd(26)}${fmt(pct(routed, 0.5), 2).padStart(9)}${fmt(pct(routed, 0.99), 2).padStart(9)}`);
    console.log(`${'router adds (p50)'.padEnd(26)}${fmt(pct(routed, 0.5) - pct(direct, 0.5), 2).padStart(9)}`);

    // 2. throughput by pool size
    console.log(`\nthroughput of the small aggregate, ${CLIENTS} concurrent clients for ${THROUGHPUT_SECONDS} s (this machine: 2 cores)`);
    console.log(`${'workers'.padEnd(10)}${'queries/s'.padStart(11)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}`);
    for (const size of [1, 2, 4]) {
      await pool.scaleTo(size);
      const latencies: number[] = [];
      const deadline = performance.now() + THROUGHPUT_SECONDS * 1000;
      const started = performance.now();
      await Promise.all(Array.from({ length: CLIENTS }, async () => {
        while (performance.now() < deadline) latencies.push(await viaRouter(QUERIES['small aggregate']));
      }));
      const seconds = (performance.now() - started) / 1000;
      console.log(`${String(size).padEnd(10)}${fmt(latencies.length / seconds, 0).padStart(11)}${fmt(pct(latencies, 0.5), 2).padStart(9)}${fmt(pct(latencies, 0.99), 2).padStart(9)}`);
    }
    agent.destroy();
    await app.close();
  } finally {
    for (const p of pools) await p.stop();
    await minio.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  quietSdkWarnings();
  run().catch((err) => { console.error(err); process.exitCode = 1; });
}
