// A DuckDB session with the pinned extensions loaded from a fixed directory, the S3 secret
// created in memory, and the lake attached as `lake`. Runner subcommands and (later) the warm
// worker both start here; nothing else opens DuckDB.
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { DuckDBInstance, type DuckDBConnection, type DuckDBValue } from '@duckdb/node-api';
import type { LakeConfig } from './config.js';
import { classify, isLockError } from './failures.js';
import { LAKE, literal } from './sql.js';
import { TemporaryError } from '../errors.js';

export interface OpenOptions {
  readOnly?: boolean;
  /** Create the lake if it does not exist (only `catalog init` and `restore` do). */
  create?: boolean;
  snapshotVersion?: number;
  snapshotTime?: string;
}

export interface Timings {
  openMs: number;
  extensionsMs: number;
  attachMs: number;
}

export type Row = Record<string, unknown>;

export class LakeSession {
  constructor(
    readonly config: LakeConfig,
    readonly instance: DuckDBInstance,
    readonly connection: DuckDBConnection,
    readonly timings: Timings,
  ) {}

  async run(sql: string, params?: DuckDBValue[]): Promise<void> {
    await this.connection.run(sql, params);
  }

  /** Rows as JSON-safe objects (BIGINT and DECIMAL come back as strings). */
  async rows(sql: string, params?: DuckDBValue[]): Promise<Row[]> {
    const reader = await this.connection.runAndReadAll(sql, params);
    return reader.getRowObjectsJson() as Row[];
  }

  async value<T = unknown>(sql: string, params?: DuckDBValue[]): Promise<T> {
    const rows = await this.rows(sql, params);
    const first = rows[0];
    return (first ? Object.values(first)[0] : undefined) as T;
  }

  /** Run statements in one transaction: all of them happen, or none. */
  async transaction(statements: string[]): Promise<void> {
    await this.run('BEGIN TRANSACTION');
    try {
      for (const s of statements) await this.run(s);
      await this.run('COMMIT');
    } catch (err) {
      await this.run('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }

  async currentSnapshot(): Promise<number> {
    return Number(await this.value(`SELECT max(snapshot_id) FROM ${LAKE}.snapshots()`));
  }

  close(): void {
    this.connection.closeSync();
    this.instance.closeSync();
  }
}

function metadataUrl(config: LakeConfig): string {
  const m = config.metadata;
  return m.type === 'postgres' ? `ducklake:postgres:${m.connection}` : `ducklake:${m.type}:${m.path}`;
}

function s3SecretSql(config: LakeConfig): string {
  const s3 = config.s3;
  const parts = [`TYPE s3`, `REGION ${literal(s3.region)}`, `URL_STYLE ${literal(s3.urlStyle)}`, `USE_SSL ${s3.useSsl}`];
  if (s3.endpoint) parts.push(`ENDPOINT ${literal(s3.endpoint)}`);
  if (s3.accessKeyId) parts.push(`KEY_ID ${literal(s3.accessKeyId)}`);
  if (s3.secretAccessKey) parts.push(`SECRET ${literal(s3.secretAccessKey)}`);
  if (s3.sessionToken) parts.push(`SESSION_TOKEN ${literal(s3.sessionToken)}`);
  // A temporary (in-memory) secret: never written to ~/.duckdb/stored_secrets.
  return `CREATE OR REPLACE TEMPORARY SECRET featherman_s3 (${parts.join(', ')})`;
}

function attachSql(config: LakeConfig, opts: OpenOptions, metadataOverride?: string): string {
  const options = [`DATA_PATH ${literal(config.dataPath)}`];
  if (!opts.create) options.push('CREATE_IF_NOT_EXISTS false');
  if (opts.create && config.encrypted) options.push('ENCRYPTED true');
  if (opts.snapshotVersion !== undefined) options.push(`SNAPSHOT_VERSION ${Math.trunc(opts.snapshotVersion)}`);
  if (opts.snapshotTime !== undefined) options.push(`SNAPSHOT_TIME ${literal(opts.snapshotTime)}`);
  else if (opts.readOnly && opts.snapshotVersion === undefined) options.push('READ_ONLY');
  if (config.metadata.type === 'sqlite') options.push("META_JOURNAL_MODE 'WAL'", 'META_BUSY_TIMEOUT 10000');
  if (config.metadataSchema) options.push(`METADATA_SCHEMA ${literal(config.metadataSchema)}`);
  return `ATTACH ${literal(metadataOverride ?? metadataUrl(config))} AS ${LAKE} (${options.join(', ')})`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The raw catalog database (not the lake): what backups copy from and restores write to. */
export function catalogDatabaseSql(config: LakeConfig, alias: string, readOnly: boolean): string {
  const m = config.metadata;
  const target = m.type === 'postgres' ? m.connection : m.path;
  return `ATTACH ${literal(target)} AS ${alias} (TYPE ${m.type === 'duckdb' ? 'duckdb' : m.type}${readOnly ? ', READ_ONLY' : ''})`;
}

/**
 * Interrupt what `connection` runs now, and again every 100 ms until the returned function is
 * called: a query is several statements (the sandbox's checks, then the query itself), and one
 * interrupt stops only the statement running at that moment.
 */
export function keepInterrupting(connection: DuckDBConnection): () => void {
  connection.interrupt();
  const timer = setInterval(() => connection.interrupt(), 100);
  timer.unref();
  return () => clearInterval(timer);
}

/** Whether the lake's data or backups are on S3 (then httpfs is loaded). */
export const usesS3 = (config: LakeConfig) => config.dataPath.startsWith('s3://') || config.backupPath.startsWith('s3://');

/** DuckDB with the extensions and the S3 secret, nothing attached yet. */
export async function openDuckDB(config: LakeConfig): Promise<LakeSession> {
  const t0 = performance.now();
  const scratch = join(tmpdir(), 'featherman');
  mkdirSync(scratch, { recursive: true });
  const settings: Record<string, string> = {
    extension_directory: config.extensionDirectory,
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'false',
    allow_community_extensions: 'false',
    // One spill directory per process: DuckDB deletes the directory it created when it closes,
    // which would pull the files out from under another process sharing it (local workers do).
    temp_directory: join(scratch, `spill-${process.pid}`),
    secret_directory: join(scratch, 'no-persistent-secrets'),
  };
  if (config.memoryLimit) settings.memory_limit = config.memoryLimit;
  if (config.threads) settings.threads = String(config.threads);
  const instance = await DuckDBInstance.create(':memory:', settings);
  const connection = await instance.connect();
  const t1 = performance.now();
  const session = new LakeSession(config, instance, connection, { openMs: t1 - t0, extensionsMs: 0, attachMs: 0 });
  try {
    const needsS3 = usesS3(config);
    if (needsS3) await session.run('LOAD httpfs');
    await session.run('LOAD ducklake');
    if (config.metadata.type === 'postgres') await session.run('LOAD postgres');
    if (config.metadata.type === 'sqlite') await session.run('LOAD sqlite');
    if (needsS3) await session.run(s3SecretSql(config));
    // The default postgres secret: libpq then needs no PGPASSWORD, and DuckDB redacts the value.
    if (config.metadata.type === 'postgres' && config.pgPassword)
      await session.run(`CREATE TEMPORARY SECRET (TYPE postgres, PASSWORD ${literal(config.pgPassword)})`);
    session.timings.extensionsMs = performance.now() - t1;
    return session;
  } catch (err) {
    session.close();
    throw classify(err, 'starting DuckDB');
  }
}

/** Attach the lake as `lake` (and USE it) in a session from openDuckDB. */
export async function attachLake(session: LakeSession, opts: OpenOptions = {}, metadataOverride?: string): Promise<void> {
  const config = session.config;
  const t0 = performance.now();
  if (config.metadata.type !== 'postgres' && opts.create) mkdirSync(dirname(config.metadata.path), { recursive: true });
  if (!config.dataPath.startsWith('s3://') && opts.create) mkdirSync(config.dataPath, { recursive: true });
  await attachWithLockWait(session, attachSql(config, opts, metadataOverride), config.lockTimeoutMs);
  await session.run(`USE ${LAKE}`);
  session.timings.attachMs = performance.now() - t0;
}

/** DuckDB with the lake attached. `beforeAttach` may look at the catalog first, on the same session. */
export async function openLake(
  config: LakeConfig,
  opts: OpenOptions = {},
  beforeAttach?: (session: LakeSession) => Promise<void>,
): Promise<LakeSession> {
  const session = await openDuckDB(config);
  try {
    await beforeAttach?.(session);
    await attachLake(session, opts);
    return session;
  } catch (err) {
    session.close();
    throw classify(err, `opening the lake (${config.metadata.type} catalog, data at ${config.dataPath})`);
  }
}

/**
 * A DuckDB-file catalog admits one writing process at a time. Rather than fail a Job because
 * another one holds the file, wait with a bounded, jittered backoff and then give up with exit 75.
 */
export async function attachWithLockWait(session: LakeSession, sql: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let wait = 100;
  for (;;) {
    try {
      await session.run(sql);
      return;
    } catch (err) {
      if (!isLockError(err)) {
        if (/does not exist|CREATE_IF_NOT_EXISTS|Cannot open database .* in read-only mode/i.test(String((err as Error).message))) {
          throw new Error(
            `the lake has not been created yet: run \`featherman catalog init\` first (${(err as Error).message.split('\n')[0]})`,
          );
        }
        throw err;
      }
      if (Date.now() + wait > deadline)
        throw new TemporaryError(
          `the catalog is locked by another process and stayed locked for ${Math.round(timeoutMs / 1000)}s; retry later`,
        );
      await sleep(wait * (0.5 + Math.random()));
      wait = Math.min(wait * 1.6, 2000);
    }
  }
}
