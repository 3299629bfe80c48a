// Backup and maintenance on real MinIO, each beside plain DuckDB doing the same work with COPY,
// every step a separate process measured for wall time and peak memory (max RSS):
//  1. merge: `featherman maintain` on a table of 1,000 small files, beside a plain DuckDB
//     COPY of those files into one Parquet file (the least any merge has to do);
//  2. a backup with its data (about 1 GB of Parquet): `featherman backup --include-data`, copied
//     inside MinIO and streamed through the runner to another endpoint, beside a plain DuckDB
//     COPY of the table to the same bucket.
// Run: npm run bench backup. BENCH_SMALL_FILES and BENCH_BACKUP_MB change the sizes.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../lib/lake/config.js';
import { openLake } from '../lib/lake/session.js';
import { Minio } from '../test/helpers/minio.js';
import { CLI } from '../test/helpers/cli.js';
import { fmt } from './load.js';

const SMALL_FILES = Number(process.env.BENCH_SMALL_FILES ?? 1000);
const BACKUP_MB = Number(process.env.BENCH_BACKUP_MB ?? 1024);

/** Run a process to its end; its wall time and peak RSS (from the kernel's rusage of the child, through python3). */
function measure(args: string[], env: NodeJS.ProcessEnv): Promise<{ seconds: number; peakMb: number; stdout: string }> {
  const wrapper =
    'import resource,subprocess,sys\nr=subprocess.run(sys.argv[1:])\n' +
    'print("maxrss", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\nsys.exit(r.returncode)';
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn('python3', ['-c', wrapper, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('close', (code) => {
      const seconds = (performance.now() - t0) / 1000;
      const kb = Number(/maxrss (\d+)/.exec(stderr)?.[1] ?? NaN);
      if (code !== 0) reject(new Error(`${args.slice(0, 3).join(' ')} exited ${code}: ${stderr.slice(-500)}`));
      else resolve({ seconds, peakMb: kb / 1024, stdout });
    });
  });
}

/** A plain DuckDB process (the same @duckdb/node-api, httpfs and S3 secret) running one statement. */
function plainDuckDB(work: string, minio: Minio, sql: string): string[] {
  const file = join(work, `plain-${Math.random().toString(36).slice(2)}.mjs`);
  const nodeApi = new URL('../../node_modules/@duckdb/node-api/lib/index.js', import.meta.url).pathname;
  const { extensionDirectory } = loadConfig({ ...process.env, FEATHERMAN_METADATA: 'duckdb:/x/m', FEATHERMAN_DATA_PATH: '/x/data' });
  writeFileSync(
    file,
    `
import { DuckDBInstance } from ${JSON.stringify(nodeApi)};
const db = await DuckDBInstance.create(':memory:', { extension_directory: ${JSON.stringify(extensionDirectory)}, ` +
      `autoinstall_known_extensions: 'false', autoload_known_extensions: 'false' });
const c = await db.connect();
await c.run('LOAD httpfs');
await c.run(\`CREATE SECRET (TYPE s3, KEY_ID '${minio.accessKey}', SECRET '${minio.secretKey}', ` +
      `ENDPOINT '${minio.endpoint}', URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')\`);
await c.run(${JSON.stringify(sql)});
`,
  );
  return [process.execPath, file];
}

function row(label: string, r: { seconds: number; peakMb: number }, extra = '') {
  console.log(`${label.padEnd(52)} ${fmt(r.seconds, 2).padStart(8)} s ${fmt(r.peakMb, 0).padStart(7)} MB  ${extra}`);
}

export async function run(): Promise<void> {
  const minio = await Minio.start();
  const work = mkdtempSync(join(tmpdir(), 'fm-bench-backup-'));
  try {
    await minio.createBucket('bench');
    await minio.createBucket('vault');
    const env = {
      ...process.env,
      ...minio.env(),
      FEATHERMAN_METADATA: `duckdb:${join(work, 'meta.ducklake')}`,
      FEATHERMAN_DATA_PATH: 's3://bench/lake/data/',
      FEATHERMAN_CATALOG: 'bench',
    };
    await measure([process.execPath, CLI, 'catalog', 'init'], env);

    // 1. 1,000 small files, merged.
    const lake = await openLake(loadConfig(env));
    await lake.run("CALL lake.set_option('data_inlining_row_limit', 0)");
    await lake.run('CREATE TABLE small (id BIGINT, name VARCHAR, created_at TIMESTAMP)');
    for (let i = 0; i < SMALL_FILES; i++)
      await lake.run(
        `INSERT INTO small SELECT i, 'n' || i, TIMESTAMP '2026-01-01' + to_seconds(i) FROM range(${i * 100}, ${i * 100 + 100}) r(i)`,
      );
    lake.close();
    console.log(`\nmerge of ${SMALL_FILES.toLocaleString('en-US')} small files (100 rows each) on MinIO; one process each`);
    console.log(`${'step'.padEnd(52)} ${'time'.padStart(10)} ${'peak RSS'.padStart(10)}`);
    const plainMerge = await measure(
      plainDuckDB(
        work,
        minio,
        "COPY (SELECT * FROM read_parquet('s3://bench/lake/data/main/small/*.parquet')) " +
          "TO 's3://bench/plain/small.parquet' (FORMAT parquet)",
      ),
      env,
    );
    row('plain DuckDB COPY of the files into one', plainMerge);
    const maintained = await measure(
      [process.execPath, CLI, 'maintain', '--cleanup-older-than', '0s', '--max-compacted-files', String(SMALL_FILES)],
      env,
    );
    const m = JSON.parse(maintained.stdout.trim().split('\n').pop()!);
    row(
      'featherman maintain (merge + cleanup)',
      maintained,
      `${m.filesMerged} files merged into ${m.filesCreated}, ${m.filesDeleted} deleted`,
    );

    // 2. About BACKUP_MB of Parquet (random doubles do not compress), backed up with the data.
    const rows = Math.round((BACKUP_MB * 1024 * 1024) / 48);
    const big = await openLake(loadConfig(env));
    await big.run('CREATE TABLE big (id BIGINT, a DOUBLE, b DOUBLE, c DOUBLE, d DOUBLE, e DOUBLE)');
    await big.run(`INSERT INTO big SELECT i, random(), random(), random(), random(), random() FROM range(${rows}) r(i)`);
    const bytes = Number(await big.value("SELECT sum(file_size_bytes) FROM lake.table_info() WHERE table_name = 'big'"));
    big.close();
    console.log(
      `\nbackup of ${fmt(bytes / 1024 / 1024, 0)} MB of Parquet (${rows.toLocaleString('en-US')} rows) on MinIO; one process each`,
    );
    console.log(`${'step'.padEnd(52)} ${'time'.padStart(10)} ${'peak RSS'.padStart(10)}`);
    const plainCopy = await measure(
      plainDuckDB(
        work,
        minio,
        "COPY (SELECT * FROM read_parquet('s3://bench/lake/data/main/big/*.parquet')) TO 's3://vault/plain/big.parquet' (FORMAT parquet)",
      ),
      env,
    );
    row('plain DuckDB COPY of the table to another bucket', plainCopy, `${fmt(bytes / 1024 / 1024 / plainCopy.seconds, 0)} MB/s`);
    const metadataOnly = await measure([process.execPath, CLI, 'backup'], env);
    row('featherman backup (metadata, data verified)', metadataOnly);
    const inside = await measure([process.execPath, CLI, 'backup', '--include-data'], {
      ...env,
      FEATHERMAN_BACKUP_PATH: 's3://vault/inside/',
    });
    row('featherman backup --include-data (copied in MinIO)', inside, `${fmt(bytes / 1024 / 1024 / inside.seconds, 0)} MB/s`);
    // Another spelling of the endpoint is another connection: the bytes stream through the runner.
    const streamed = await measure([process.execPath, CLI, 'backup', '--include-data'], {
      ...env,
      FEATHERMAN_BACKUP_PATH: 's3://vault/streamed/',
      FEATHERMAN_BACKUP_ENDPOINT: `http://localhost:${minio.port}`,
      FEATHERMAN_BACKUP_ACCESS_KEY_ID: minio.accessKey,
      FEATHERMAN_BACKUP_SECRET_ACCESS_KEY: minio.secretKey,
    });
    row('featherman backup --include-data (streamed)', streamed, `${fmt(bytes / 1024 / 1024 / streamed.seconds, 0)} MB/s`);
    const again = await measure([process.execPath, CLI, 'backup', '--include-data'], {
      ...env,
      FEATHERMAN_BACKUP_PATH: 's3://vault/inside/',
    });
    const a = JSON.parse(again.stdout.trim().split('\n').pop()!);
    row('a second backup --include-data, nothing new', again, `${a.filesCopied} files, ${a.dataBytesCopied} bytes copied`);
  } finally {
    await minio.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
