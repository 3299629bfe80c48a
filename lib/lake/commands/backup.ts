// `featherman backup [--retention-days N]`, `featherman backup list`, `featherman restore --backup NAME|latest [--force]`
//
// A backup is a transactionally consistent copy of the catalog's ducklake_* tables into a plain
// DuckDB file, read through the attached catalog in one transaction (never a copy of a live
// file), plus a manifest. The same format serves DuckDB, SQLite and Postgres catalogs.
// Layout: <backupPath>/<catalog>/<YYYYMMDDTHHMMSSZ>/{metadata.duckdb,manifest.json}
import { mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BadInputError } from '../../errors.js';
import { loadConfig, type LakeConfig } from '../config.js';
import { summarizeLake, type LakeSummary } from '../inspect.js';
import { attachLake, attachWithLockWait, catalogDatabaseSql, openDuckDB, openLake } from '../session.js';
import { ident, literal } from '../sql.js';
import { blobStore, type BlobStore } from '../storage.js';
import { parse, positiveInt } from './args.js';

const METADATA_FILE = 'metadata.duckdb';
const MANIFEST_FILE = 'manifest.json';
const NAME = /^\d{8}T\d{6}(\d{3})?Z$/;

export interface BackupManifest extends LakeSummary {
  name: string;
  catalog: string;
  metadataType: string;
  createdAt: string;
  metadataBytes: number;
}

function backupName(now: Date): string {
  return now.toISOString().replace(/[-:]/g, '').replace(/\.(\d{3})Z$/, '$1Z');
}

function nameTime(name: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})?Z$/.exec(name)!;
  return new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!, +(m[7] ?? 0)));
}

async function listBackups(store: BlobStore, catalog: string): Promise<string[]> {
  const keys = await store.list(`${catalog}/`);
  const names = new Set<string>();
  for (const k of keys) {
    const [, name, file] = k.split('/');
    if (name && NAME.test(name) && file === MANIFEST_FILE) names.add(name); // only complete backups
  }
  return [...names].sort();
}

async function createBackup(config: LakeConfig, retentionDays: number | undefined) {
  const store = blobStore(config, config.backupPath);
  const work = await mkdtemp(join(tmpdir(), 'featherman-backup-'));
  try {
    const file = join(work, METADATA_FILE);
    const session = await openDuckDB(config);
    let summary: LakeSummary;
    try {
      // Copy the ducklake_* tables in one read transaction of the catalog database...
      await attachWithLockWait(session, catalogDatabaseSql(config, 'featherman_catalog', true), config.lockTimeoutMs);
      await session.run(`ATTACH ${literal(file)} AS featherman_backup`);
      const schema = metadataSchema(config);
      await session.run('BEGIN TRANSACTION');
      for (const table of await catalogTables(session.rows.bind(session), 'featherman_catalog', schema)) {
        await session.run(`CREATE TABLE featherman_backup.main.${ident(table)} AS SELECT * FROM featherman_catalog.${ident(schema)}.${ident(table)}`);
      }
      await session.run('COMMIT');
      await session.run('DETACH featherman_catalog');
      await session.run('DETACH featherman_backup');
      // ...then describe the copy itself, so the manifest matches the backup exactly.
      await attachLake(session, { readOnly: true }, `ducklake:duckdb:${file}`);
      summary = await summarizeLake(session);
    } finally {
      session.close();
    }
    const now = new Date();
    const name = backupName(now);
    const manifest: BackupManifest = {
      name,
      catalog: config.catalogName,
      metadataType: config.metadata.type,
      createdAt: now.toISOString(),
      metadataBytes: (await stat(file)).size,
      ...summary,
    };
    // The manifest goes last: a backup without one is incomplete and never listed or restored.
    await store.put(`${config.catalogName}/${name}/${METADATA_FILE}`, await readFile(file));
    await store.put(`${config.catalogName}/${name}/${MANIFEST_FILE}`, JSON.stringify(manifest, null, 2));
    const pruned = retentionDays === undefined ? [] : await prune(store, config.catalogName, retentionDays, now, name);
    return { command: 'backup', backup: name, location: `${store.url}${config.catalogName}/${name}/`, snapshotId: summary.snapshotId, tables: summary.tables, metadataBytes: manifest.metadataBytes, pruned };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Delete backups older than the retention; the newest backup is always kept. */
async function prune(store: BlobStore, catalog: string, days: number, now: Date, keep: string): Promise<string[]> {
  const cutoff = now.getTime() - days * 86_400_000;
  const all = await listBackups(store, catalog);
  const old = all.filter((n) => n !== keep && n !== all[all.length - 1] && nameTime(n).getTime() < cutoff);
  for (const n of old) await store.deletePrefix(`${catalog}/${n}/`);
  return old;
}

async function readManifest(store: BlobStore, catalog: string, name: string): Promise<BackupManifest> {
  return JSON.parse((await store.get(`${catalog}/${name}/${MANIFEST_FILE}`)).toString('utf8')) as BackupManifest;
}

export async function backupCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values, positionals } = parse(argv, { 'retention-days': { type: 'string' } }, true);
  const config = loadConfig(env);
  if (positionals[0] === 'list') {
    const store = blobStore(config, config.backupPath);
    const names = await listBackups(store, config.catalogName);
    const backups = [];
    for (const n of names) {
      const m = await readManifest(store, config.catalogName, n);
      backups.push({ name: n, createdAt: m.createdAt, snapshotId: m.snapshotId, tables: m.tables.length, rows: m.tables.reduce((a, t) => a + t.rows, 0), bytes: m.tables.reduce((a, t) => a + t.bytes, 0) });
    }
    return { command: 'backup list', catalog: config.catalogName, location: `${store.url}${config.catalogName}/`, backups };
  }
  if (positionals.length) throw new BadInputError(`backup: unexpected argument ${JSON.stringify(positionals[0])}; use \`backup\` or \`backup list\``);
  const retention = positiveInt('--retention-days', values['retention-days']);
  if (retention === 0) throw new BadInputError('--retention-days: must be at least 1');
  return createBackup(config, retention);
}

export async function restoreCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values } = parse(argv, { backup: { type: 'string' }, force: { type: 'boolean', default: false } });
  if (!values.backup) throw new BadInputError('--backup: required (a backup name from `featherman backup list`, or latest)');
  if (values.backup !== 'latest' && !NAME.test(values.backup)) throw new BadInputError(`--backup: ${JSON.stringify(values.backup)} is not a backup name (like 20261124T120000123Z) or latest`);
  const config = loadConfig(env);
  const store = blobStore(config, config.backupPath);
  const names = await listBackups(store, config.catalogName);
  const name = values.backup === 'latest' ? names[names.length - 1] : names.find((n) => n === values.backup);
  if (!name) throw new BadInputError(`--backup: no ${values.backup === 'latest' ? '' : `backup ${values.backup} `}found under ${store.url}${config.catalogName}/`);
  const manifest = await readManifest(store, config.catalogName, name);

  const work = await mkdtemp(join(tmpdir(), 'featherman-restore-'));
  try {
    const file = join(work, METADATA_FILE);
    await writeFile(file, await store.get(`${config.catalogName}/${name}/${METADATA_FILE}`));
    await installMetadata(config, file, values.force);
  } finally {
    await rm(work, { recursive: true, force: true });
  }

  // Verify against the manifest before reporting success.
  const session = await openLake(config, { readOnly: true });
  let restored: LakeSummary;
  try {
    restored = await summarizeLake(session);
  } finally {
    session.close();
  }
  const mismatches: string[] = [];
  if (restored.snapshotId !== manifest.snapshotId) mismatches.push(`snapshot ${restored.snapshotId} != ${manifest.snapshotId}`);
  const key = (t: { schema: string; name: string }) => `${t.schema}.${t.name}`;
  const want = new Map(manifest.tables.map((t) => [key(t), t]));
  for (const t of restored.tables) {
    const w = want.get(key(t));
    if (!w) mismatches.push(`unexpected table ${key(t)}`);
    else if (w.rows !== t.rows) mismatches.push(`${key(t)} has ${t.rows} rows, backup had ${w.rows}`);
    want.delete(key(t));
  }
  for (const k of want.keys()) mismatches.push(`table ${k} missing`);
  if (mismatches.length) throw new Error(`restore of ${name} does not match its manifest: ${mismatches.join('; ')}`);
  return { command: 'restore', backup: name, snapshotId: restored.snapshotId, tables: restored.tables, verified: true };
}

/** The schema DuckLake keeps its tables in: the catalog database's default schema. */
function metadataSchema(config: LakeConfig): string {
  return config.metadataSchema ?? (config.metadata.type === 'postgres' ? 'public' : 'main');
}

/** The DuckLake tables (ducklake_*) of a catalog database; other tables in a shared database are left alone. */
async function catalogTables(rows: (sql: string, params?: string[]) => Promise<Record<string, unknown>[]>, database: string, schema: string): Promise<string[]> {
  const found = await rows(
    `SELECT table_name FROM duckdb_tables() WHERE database_name = $1 AND schema_name = $2 AND starts_with(table_name, 'ducklake_') ORDER BY 1`,
    [database, schema],
  );
  return found.map((r) => String(r.table_name));
}

/**
 * Rebuild the catalog from a backup file: let DuckLake create a fresh, empty catalog (so every
 * table has its keys and constraints), then replace the rows of each table with the backup's,
 * in one transaction.
 */
async function installMetadata(config: LakeConfig, file: string, force: boolean): Promise<void> {
  const m = config.metadata;
  const session = await openDuckDB(config);
  const conn = session.connection;
  const rows = session.rows.bind(session);
  const attachTarget = catalogDatabaseSql(config, 'featherman_target', false);
  try {
    if (m.type === 'duckdb') {
      if (existsSync(m.path)) {
        if (!force) throw new BadInputError(`FEATHERMAN_METADATA: ${m.path} already exists; restore refuses to overwrite a catalog (use --force to move it aside)`);
        await rename(m.path, `${m.path}.replaced-${backupName(new Date())}`);
      }
    } else if (m.type === 'postgres' || existsSync(m.path)) {
      await conn.run(attachTarget);
      const existing = await catalogTables(rows, 'featherman_target', metadataSchema(config));
      await conn.run('DETACH featherman_target');
      if (existing.length) throw new BadInputError(`FEATHERMAN_METADATA: the target ${m.type} database already holds a DuckLake catalog; restore into an empty one`);
    }
    (await openLake(config, { create: true })).close();

    await conn.run(`ATTACH ${literal(file)} AS featherman_backup (READ_ONLY)`);
    await conn.run(attachTarget);
    const schema = metadataSchema(config);
    const fresh = new Set(await catalogTables(rows, 'featherman_target', schema));
    await conn.run('BEGIN TRANSACTION');
    for (const table of await catalogTables(rows, 'featherman_backup', 'main')) {
      const into = `featherman_target.${ident(schema)}.${ident(table)}`;
      const from = `featherman_backup.main.${ident(table)}`;
      if (fresh.has(table)) {
        await conn.run(`DELETE FROM ${into}`);
        await conn.run(`INSERT INTO ${into} BY NAME SELECT * FROM ${from}`);
      } else {
        await conn.run(`CREATE TABLE ${into} AS SELECT * FROM ${from}`); // inlined-data tables
      }
    }
    await conn.run('COMMIT');
  } finally {
    session.close();
  }
}
