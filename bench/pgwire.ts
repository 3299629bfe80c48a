// `npm run bench -- pgwire`: p50 latency of SELECT 1 and of a small aggregate, with 1 and 8
// clients, side by side through Featherman's Postgres listener (pgbench -n -f), through POST
// /v1/query (a node:http client loop with keep-alive, same queries), and against a real PostgreSQL
// started on this machine (pgbench -n -f). All on `featherman serve --embedded` with its own lake.
// Each path first runs unmeasured (the service's JIT warm, as a serving pool's is), and DuckDB's
// own time for SELECT 1 in process, with no network at all, is printed as the floor of any DuckDB
// answer: the wire/PG goal cannot be below it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Agent } from 'node:http';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { startWireService, TOKEN } from '../test/pgwire/service.js';
import { Postgres } from '../test/helpers/postgres.js';
import { postTimed } from './post.js';

const QUERIES: Record<string, { featherman: string; postgres: string }> = {
  'SELECT 1': { featherman: 'SELECT 1', postgres: 'SELECT 1' },
  aggregate: {
    featherman: 'SELECT active, count(*), sum(balance) FROM users GROUP BY active',
    postgres: 'SELECT active, count(*), sum(balance) FROM users GROUP BY active',
  },
};
const SECONDS = Number(process.env.BENCH_PGWIRE_SECONDS ?? 5);
const WARM_UP_SECONDS = Number(process.env.BENCH_PGWIRE_WARM_UP_SECONDS ?? 2);

const p50 = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
};

/**
 * p50 in ms of pgbench's transactions, from its per-transaction log (-l): each client runs its
 * transactions back to back, so the gap between two of its completions (time_epoch, time_us) is one
 * transaction as the client saw it. The log's own latency field is not used: pgbench 15 writes 0
 * there for PostgreSQL's 20 µs SELECT 1.
 */
function pgbench(conn: string[], sql: string, clients: number, password: string, dir: string, seconds = SECONDS): number {
  const file = join(dir, 'q.sql');
  writeFileSync(file, `${sql};\n`);
  const logPrefix = join(dir, `pgbench-${clients}-${Math.random().toString(36).slice(2)}`);
  const r = spawnSync(
    'pgbench',
    [
      ...conn,
      '-n',
      '-f',
      file,
      '-c',
      String(clients),
      '-j',
      String(Math.min(clients, 2)),
      '-T',
      String(seconds),
      '-l',
      `--log-prefix=${logPrefix}`,
    ],
    { encoding: 'utf8', cwd: dir, env: { ...process.env, PGPASSWORD: password } },
  );
  if (r.status !== 0) throw new Error(`pgbench failed: ${r.stderr}`);
  const lat: number[] = [];
  const completed = new Map<string, number>(); // client id → its last completion, µs since the epoch
  const ls = spawnSync('bash', ['-c', `cat ${logPrefix}.*`], { encoding: 'utf8', maxBuffer: 1 << 28 });
  for (const line of ls.stdout.split('\n')) {
    const [client, , , , epoch, micros] = line.split(' ');
    if (micros === undefined) continue;
    const at = Number(epoch) * 1e6 + Number(micros);
    const previous = completed.get(client!);
    if (previous !== undefined) lat.push((at - previous) / 1000);
    completed.set(client!, at);
  }
  return p50(lat);
}

/** POST /v1/query in a loop per client, on keep-alive connections (node:http: a lighter client than fetch). */
async function http(url: string, sql: string, clients: number, seconds = SECONDS): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const lat: number[] = [];
  const until = performance.now() + seconds * 1000;
  try {
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (performance.now() < until)
          lat.push(await postTimed(agent, `${url}/v1/query`, { catalog: 'default', sql }, { authorization: `Bearer ${TOKEN}` }));
      }),
    );
  } finally {
    agent.destroy();
  }
  return p50(lat);
}

/** p50 of `SELECT 1` on an in-memory DuckDB in this process, after a warm-up: the engine alone. */
async function duckdbSelectOne(): Promise<number> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  const lat: number[] = [];
  for (let i = 0; i < 3000; i++) {
    const t0 = performance.now();
    await connection.runAndReadAll('SELECT 1');
    if (i >= 1000) lat.push(performance.now() - t0);
  }
  connection.closeSync();
  instance.closeSync();
  return p50(lat);
}

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fm-bench-pgwire-'));
  const service = await startWireService([], { FEATHERMAN_LOCAL_WORKERS: '2' });
  const postgres = await Postgres.start();
  try {
    const pgConn = ['-h', '127.0.0.1', '-p', String(postgres.port), '-U', 'postgres', 'postgres'];
    spawnSync(
      'psql',
      [
        ...pgConn,
        '-c',
        'CREATE TABLE users AS SELECT i AS id, i % 2 = 0 AS active, (i * 1.5)::numeric(10,2) AS balance FROM generate_series(1, 100) i',
      ],
      { env: { ...process.env, PGPASSWORD: postgres.password } },
    );
    const fmConn = ['-h', '127.0.0.1', '-p', String(service.pgPort), '-U', 'bench', 'default'];
    const rows: string[][] = [];
    let pgSelectOne = NaN; // PostgreSQL's own single-client SELECT 1 p50, for the floor line below
    for (const [name, q] of Object.entries(QUERIES)) {
      pgbench(fmConn, q.featherman, 1, TOKEN, dir, WARM_UP_SECONDS);
      await http(service.url, q.featherman, 1, WARM_UP_SECONDS);
      for (const clients of [1, 8]) {
        const wire = pgbench(fmConn, q.featherman, clients, TOKEN, dir);
        const viaHttp = await http(service.url, q.featherman, clients);
        const pgOwn = pgbench(pgConn, q.postgres, clients, postgres.password, dir);
        if (name === 'SELECT 1' && clients === 1) pgSelectOne = pgOwn;
        rows.push([
          name,
          String(clients),
          wire.toFixed(2),
          viaHttp.toFixed(2),
          (wire - viaHttp).toFixed(2),
          pgOwn.toFixed(2),
          (wire / pgOwn).toFixed(1),
        ]);
      }
    }
    const head = ['query', 'clients', 'wire p50 ms', 'HTTP p50 ms', 'wire-HTTP ms', 'PostgreSQL p50 ms', 'wire/PG'];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    for (const r of [head, ...rows]) console.log(r.map((c, i) => c.padStart(widths[i]!)).join('  '));
    console.log('goals: wire-HTTP <= 0.3 ms p50; single-client SELECT 1 wire/PG <= 3');
    const own = await duckdbSelectOne();
    console.log(
      `DuckDB's own SELECT 1 in this process (no network, no server): p50 ${own.toFixed(3)} ms; ` +
        `3x PostgreSQL's is ${(3 * pgSelectOne).toFixed(3)} ms`,
    );
  } finally {
    await postgres.stop();
    await service.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
