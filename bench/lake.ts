// Data-plane benchmarks, printed side by side in one run:
//  1. ingest: N rows into a DuckLake table on MinIO vs plain DuckDB COPY ... TO 's3://...' (FORMAT parquet)
//     on the same MinIO, same rows, same ZSTD compression;
//  2. one cold `featherman query --sql 'select 1'` process, split into process start, DuckDB open,
//     extension load, attach and the query itself.
// Run: npm run bench (or node dist/bench/lake.js). BENCH_ROWS and BENCH_RUNS override the sizes.
import { mkdtempSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../lib/lake/config.js';
import { openDuckDB, openLake } from '../lib/lake/session.js';
import { Minio } from '../test/helpers/minio.js';
import { CLI } from '../test/helpers/cli.js';
import { quietSdkWarnings } from '../lib/warnings.js';
import { fmt } from './load.js';

const ROWS = Number(process.env.BENCH_ROWS ?? 2_000_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const COLD_RUNS = Number(process.env.BENCH_COLD_RUNS ?? 10);
const ROW_SQL = `SELECT i AS id, 'user-' || i AS name, TIMESTAMP '2026-01-01' + to_seconds(i) AS created_at FROM range(${ROWS}) r(i)`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function run(): Promise<void> {
  const minio = await Minio.start();
  const work = mkdtempSync(join(tmpdir(), 'fm-bench-'));
  try {
    await minio.createBucket('bench');
    const env = {
      ...process.env,
      ...minio.env(),
      FEATHERMAN_METADATA: `duckdb:${join(work, 'meta.ducklake')}`,
      FEATHERMAN_DATA_PATH: 's3://bench/lake/data/',
    };
    const config = loadConfig(env);
    const lake = await openLake(config, { create: true });
    await lake.run('CREATE TABLE users (id BIGINT, name VARCHAR, created_at TIMESTAMP)');
    await lake.run("CALL lake.set_option('parquet_compression', 'zstd', schema => 'main', table_name => 'users')");

    const ducklake: number[] = [];
    const plain: number[] = [];
    const plainSession = await openDuckDB(config);
    for (let r = 0; r < RUNS; r++) {
      let t0 = performance.now();
      await lake.run(`INSERT INTO users ${ROW_SQL}`);
      ducklake.push(performance.now() - t0);
      t0 = performance.now();
      await plainSession.run(`COPY (${ROW_SQL}) TO 's3://bench/plain/run${r}.parquet' (FORMAT parquet, COMPRESSION zstd)`);
      plain.push(performance.now() - t0);
    }
    lake.close();
    plainSession.close();

    console.log(`\ningest of ${ROWS.toLocaleString('en-US')} rows (id, name, created_at) into MinIO on loopback, ZSTD, median of ${RUNS}`);
    console.log('path                          seconds     rows/s');
    const line = (label: string, ms: number) =>
      console.log(`${label.padEnd(28)} ${fmt(ms / 1000, 2).padStart(8)} ${fmt(ROWS / (ms / 1000), 0).padStart(11)}`);
    line('DuckLake INSERT (featherman)', median(ducklake));
    line('plain DuckDB COPY TO s3://', median(plain));
    console.log(`ratio DuckLake / plain COPY: ${fmt(median(ducklake) / median(plain), 2)}x the time`);

    const samples: Record<string, number[]> = { wall: [], processStart: [], open: [], extensions: [], attach: [], query: [] };
    for (let i = 0; i < COLD_RUNS; i++) {
      const t0 = performance.now();
      const r = spawnSync(process.execPath, [CLI, 'query', '--sql', 'select 1'], { env, encoding: 'utf8' });
      const wall = performance.now() - t0;
      if (r.status !== 0) throw new Error(`cold query failed: ${r.stderr}`);
      const s = JSON.parse(r.stdout.trim());
      samples.wall!.push(wall);
      samples.processStart!.push(s.timings.processStartMs);
      samples.open!.push(s.timings.openMs);
      samples.extensions!.push(s.timings.extensionsMs);
      samples.attach!.push(s.timings.attachMs);
      samples.query!.push(s.durationMs);
    }
    console.log(
      `\ncold \`featherman query --sql 'select 1'\` (a new process each time; catalog: DuckDB file, data: MinIO), median of ${COLD_RUNS}`,
    );
    console.log('phase                         ms');
    const phases = [
      ['process start + modules', 'processStart'],
      ['DuckDB open', 'open'],
      ['extension load + secret', 'extensions'],
      ['attach lake', 'attach'],
      ['query', 'query'],
    ] as const;
    for (const [label, key] of phases) console.log(`${label.padEnd(28)} ${fmt(median(samples[key]!), 1).padStart(8)}`);
    const accounted = phases.reduce((a, [, key]) => a + median(samples[key]!), 0);
    console.log(`${'spawn, close and exit'.padEnd(28)} ${fmt(median(samples.wall!) - accounted, 1).padStart(8)}`);
    console.log(`${'total wall clock'.padEnd(28)} ${fmt(median(samples.wall!), 1).padStart(8)}`);
  } finally {
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
