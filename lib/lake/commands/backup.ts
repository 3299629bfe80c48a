// `featherman backup [--retention-days N] [--include-data] [--name NAME] [--owner TEXT]`,
// `featherman backup list|verify NAME|delete NAME`, `featherman restore --backup NAME|latest [--force] [--from-catalog C]`
//
// A backup is a transactionally consistent copy of the catalog's ducklake_* tables into a plain
// DuckDB file, read through the attached catalog in one transaction (never a copy of a live
// file), plus a manifest naming every data file its snapshot reads and a checksum of every table,
// computed by reading that copy's data: a backup is known to restore at the moment it is taken.
// The same format serves DuckDB, SQLite and Postgres catalogs. lib/lake/backups.ts has the layout.
import { mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BadInputError } from '../../errors.js';
import {
  BACKUP_NAME,
  BackupSet,
  MANIFEST_FORMAT,
  backupName,
  contentMismatches,
  describeFileProblems,
  fileProblems,
  isExternal,
  nameTime,
  snapshotFiles,
  tableContents,
  type BackedUpFile,
  type BackupManifest,
} from '../backups.js';
import { CATALOG_NAME, loadConfig, type LakeConfig } from '../config.js';
import { lakeReport, summarizeLake, type LakeSummary } from '../inspect.js';
import { claimDataPath } from '../ownership.js';
import { attachLake, attachWithLockWait, catalogDatabaseSql, openDuckDB, type LakeSession } from '../session.js';
import { ident, literal } from '../sql.js';
import { blobStore, objectsByKey, type BlobStore, type ObjectInfo } from '../storage.js';
import { parse, positiveInt } from './args.js';

const COPY_CONCURRENCY = 8;

/** Run `fn` over `items`, at most `limit` at a time. */
async function eachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

async function withScratch<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The lake config pointing at another data path (a restore elsewhere, or a backup's own data copy). */
const atDataPath = (config: LakeConfig, dataPath: string): LakeConfig => ({ ...config, dataPath });

/**
 * Attach a backup's metadata file as the lake, read-only, and read every table's rows and checksum:
 * proof that the metadata and the data files it names (at session.config.dataPath) are all there.
 * One DuckDB session serves every step of a command: starting one costs a third of a second.
 */
async function readBackupCopy(
  session: LakeSession,
  file: string,
): Promise<{ summary: LakeSummary; files: BackedUpFile[]; tables: Awaited<ReturnType<typeof tableContents>> }> {
  await attachLake(session, { readOnly: true }, `ducklake:duckdb:${file}`);
  try {
    const summary = await summarizeLake(session);
    const files = await snapshotFiles(session, summary);
    const tables = await tableContents(session, summary.tables);
    return { summary, files, tables };
  } finally {
    await detachLake(session);
  }
}

async function detachLake(session: LakeSession): Promise<void> {
  await session.run('USE memory');
  await session.run('DETACH lake');
}

/** Copy the catalog's ducklake_* tables into `file` in one read transaction of the catalog database. */
async function copyMetadata(session: LakeSession, file: string): Promise<void> {
  const config = session.config;
  await attachWithLockWait(session, catalogDatabaseSql(config, 'featherman_catalog', true), config.lockTimeoutMs);
  await session.run(`ATTACH ${literal(file)} AS featherman_backup`);
  const schema = metadataSchema(config);
  await session.run('BEGIN TRANSACTION');
  for (const table of await catalogTables(session.rows.bind(session), 'featherman_catalog', schema)) {
    await session.run(
      `CREATE TABLE featherman_backup.main.${ident(table)} AS SELECT * FROM featherman_catalog.${ident(schema)}.${ident(table)}`,
    );
  }
  await session.run('COMMIT');
  await session.run('DETACH featherman_catalog');
  await session.run('DETACH featherman_backup');
}

/** A DuckDB session (extensions and secrets, nothing attached) for the length of `fn`. */
async function withSession<T>(config: LakeConfig, fn: (session: LakeSession) => Promise<T>): Promise<T> {
  const session = await openDuckDB(config);
  try {
    return await fn(session);
  } finally {
    session.close();
  }
}

interface BackupOptions {
  retentionDays?: number;
  includeData: boolean;
  name?: string;
  owner?: string;
}

function backupSummary(set: BackupSet, m: BackupManifest, extra: Record<string, unknown>) {
  return {
    command: 'backup',
    backup: m.name,
    location: `${set.location}${m.name}/`,
    snapshotId: m.snapshotId,
    tableCount: m.tables.length,
    rows: m.tables.reduce((n, t) => n + t.rows, 0),
    bytes: m.dataBytes ?? 0,
    files: m.files?.length ?? 0,
    metadataBytes: m.metadataBytes,
    includeData: Boolean(m.includeData),
    durationSeconds: m.durationSeconds,
    verified: true,
    ...extra,
  };
}

/** A new backup's summary: the figures of the lake as it backed it up (a retry's existing backup may be older). */
function newBackupSummary(set: BackupSet, m: BackupManifest, extra: Record<string, unknown>) {
  return { ...backupSummary(set, m, extra), lake: lakeReport(m) };
}

async function createBackup(config: LakeConfig, o: BackupOptions) {
  const started = new Date();
  const set = new BackupSet(config);
  if (o.name && (await set.names()).includes(o.name)) {
    // A retried Job: the backup it was asked for exists and is complete.
    return backupSummary(set, await set.manifest(o.name), { existing: true, dataBytesCopied: 0, filesCopied: 0, pruned: [] });
  }
  const name = o.name ?? backupName(started);
  await set.store.put(set.startedKey(name), JSON.stringify({ startedAt: started.toISOString() }));
  return withScratch('featherman-backup-', async (work) => {
    try {
      return await takeBackup(config, set, o, name, started, work);
    } catch (err) {
      // A failed backup leaves nothing behind: no start mark to hold up maintenance, no half a backup.
      if (!(await set.names()).includes(name)) await set.store.deletePrefix(`${config.catalogName}/${name}/`).catch(() => undefined);
      throw err;
    }
  });
}

async function takeBackup(config: LakeConfig, set: BackupSet, o: BackupOptions, name: string, started: Date, work: string) {
  const file = join(work, 'metadata.duckdb');
  // Describe the copy itself, reading all of its data: the manifest matches the backup exactly.
  const { summary, files, tables } = await withSession(config, async (session) => {
    await copyMetadata(session, file);
    return readBackupCopy(session, file);
  });
  const dataStore = blobStore(config.s3, summary.dataPath);
  const listing = await objectsByKey(dataStore);
  for (const f of files) f.etag = listing.get(f.path)?.etag;
  // Files registered from outside the data path (ducklake_add_data_files) are neither listed nor copied here.
  const inside = files.filter((f) => !isExternal(f));
  const vanished = fileProblems(inside, listing, (f) => f.path, false);
  if (vanished.length) throw new Error(`the backup is incomplete and was not kept: ${describeFileProblems(vanished, summary.dataPath)}`);

  let dataBytesCopied = 0;
  let filesCopied = 0;
  if (o.includeData) {
    const copies = await set.copiesOfData();
    const missing = inside.filter((f) => copies.get(set.dataKey(f))?.size !== f.size);
    await eachLimited(missing, COPY_CONCURRENCY, async (f) => {
      await dataStore.copyTo(f.path, set.store, set.dataKey(f), f.size);
      dataBytesCopied += f.size;
      filesCopied += 1;
    });
  }
  const manifest: BackupManifest = {
    formatVersion: MANIFEST_FORMAT,
    name,
    catalog: config.catalogName,
    catalogId: config.catalogId,
    ...(o.owner ? { owner: o.owner } : {}),
    metadataType: config.metadata.type,
    createdAt: new Date().toISOString(),
    metadataBytes: (await stat(file)).size,
    ...summary,
    tables,
    files,
    dataBytes: files.reduce((n, f) => n + f.size, 0),
    includeData: o.includeData,
  };
  manifest.durationSeconds = (Date.now() - started.getTime()) / 1000;
  await set.store.put(set.metadataKey(name), await readFile(file));
  await set.store.put(`${config.catalogName}/${name}/manifest.json`, JSON.stringify(manifest, null, 1));
  // The manifest holds the files from now on; the start mark kept maintenance from deleting any until now.
  await set.store.deleteKeys([set.startedKey(name)]);
  const pruned = o.retentionDays === undefined ? [] : await prune(set, o.retentionDays, new Date(), name);
  return newBackupSummary(set, manifest, {
    dataBytesCopied,
    filesCopied,
    pruned,
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
  });
}

/** Delete backups older than the retention, except the newest and those owned by an object (a DuckLakeBackup deletes its own). */
async function prune(set: BackupSet, days: number, now: Date, keep: string): Promise<string[]> {
  const cutoff = now.getTime() - days * 86_400_000;
  const all = await set.names();
  const old: string[] = [];
  for (const n of all) {
    if (n === keep || n === all[all.length - 1] || nameTime(n).getTime() >= cutoff) continue;
    if ((await set.manifest(n)).owner) continue;
    old.push(n);
  }
  if (old.length) await set.remove(old);
  return old;
}

/**
 * Whether a backup can be restored with all its data, without changing anything: its files are
 * where it will read them (its own data copy for an includeData backup, else the data path), and
 * reading every table through its metadata gives the rows it recorded.
 */
async function verifyBackup(config: LakeConfig, set: BackupSet, name: string) {
  const manifest = await set.manifest(name);
  return withScratch('featherman-verify-', async (work) => {
    const file = join(work, 'metadata.duckdb');
    await writeFile(file, await set.store.get(set.metadataKey(name)));
    let readFrom = manifest.dataPath;
    if (manifest.includeData) {
      const copies = await set.copiesOfData();
      const problems = fileProblems(
        (manifest.files ?? []).filter((f) => !isExternal(f)),
        copies,
        (f) => set.dataKey(f),
        false,
      );
      if (problems.length) throw new Error(`backup ${name} cannot be restored: ${describeFileProblems(problems, set.dataUrl)}`);
      readFrom = set.dataUrl;
    } else {
      await checkDataFiles(config, manifest, manifest.dataPath, name);
    }
    const read = await withSession(atDataPath(withBackupReads(config), readFrom), async (session) => {
      await pointMetadataAt(session, file, manifest.dataPath, readFrom);
      return readBackupCopy(session, file);
    }).catch((err: Error) => {
      throw new Error(`backup ${name} cannot be restored: reading its data failed: ${err.message.split('\n')[0]}`);
    });
    const mismatches = contentMismatches(manifest, read.tables);
    if (mismatches.length) throw new Error(`backup ${name} cannot be restored: ${mismatches.join('; ')}`);
    return { manifest, tables: read.tables };
  });
}

/** Reading data from the backup root needs the backup connection when it differs (one S3 secret serves one endpoint). */
function withBackupReads(config: LakeConfig): LakeConfig {
  return config.backupS3 === config.s3 ? config : { ...config, s3: config.backupS3 };
}

async function checkDataFiles(config: LakeConfig, manifest: BackupManifest, dataPath: string, name: string): Promise<void> {
  if (!manifest.files) return; // format 1: no file list; reading the tables is the check
  const listing = await objectsByKey(blobStore(config.s3, dataPath));
  const problems = fileProblems(manifest.files, listing, (f) => f.path, true);
  if (problems.length) throw new Error(`backup ${name} cannot be restored: ${describeFileProblems(problems, dataPath)}`);
}

/** Rewrite a backup's metadata copy so the lake reads its files under `to` instead of `from`. */
async function pointMetadataAt(session: LakeSession, file: string, from: string, to: string): Promise<void> {
  if (from === to) return;
  {
    await session.run(`ATTACH ${literal(file)} AS featherman_backup`);
    const tables = new Set(await catalogTables(session.rows.bind(session), 'featherman_backup', 'main'));
    await session.run(
      `UPDATE featherman_backup.main.ducklake_metadata SET value = ${literal(to)} WHERE key = 'data_path' AND scope IS NULL`,
    );
    for (const t of ['ducklake_schema', 'ducklake_table', 'ducklake_data_file', 'ducklake_delete_file']) {
      if (!tables.has(t)) continue;
      await session.run(
        `UPDATE featherman_backup.main.${t} SET path = ${literal(to)} || path[${from.length + 1}:] ` +
          `WHERE NOT path_is_relative AND starts_with(path, ${literal(from)})`,
      );
    }
    await session.run('DETACH featherman_backup');
  }
}

export async function backupCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values, positionals } = parse(
    argv,
    {
      'retention-days': { type: 'string' },
      'include-data': { type: 'boolean', default: false },
      name: { type: 'string' },
      owner: { type: 'string' },
    },
    true,
  );
  const config = loadConfig(env);
  const [action, target, ...extra] = positionals;
  if (extra.length) throw new BadInputError(`backup: unexpected argument ${JSON.stringify(extra[0])}`);
  const set = new BackupSet(config);
  if (action === 'list') {
    const backups = [];
    for (const m of await set.manifests()) {
      backups.push({
        name: m.name,
        createdAt: m.createdAt,
        snapshotId: m.snapshotId,
        tables: m.tables.length,
        rows: m.tables.reduce((a, t) => a + t.rows, 0),
        bytes: m.dataBytes ?? m.tables.reduce((a, t) => a + t.bytes, 0),
        includeData: Boolean(m.includeData),
        ...(m.owner ? { owner: m.owner } : {}),
      });
    }
    return { command: 'backup list', catalog: config.catalogName, location: set.location, backups };
  }
  if (action === 'verify') {
    if (!target) throw new BadInputError('backup verify: give a backup name (from `featherman backup list`) or latest');
    const name = await set.resolve(target, 'backup verify');
    const { manifest, tables } = await verifyBackup(config, set, name);
    return {
      command: 'backup verify',
      backup: name,
      verified: true,
      snapshotId: manifest.snapshotId,
      files: manifest.files?.length ?? 0,
      bytes: manifest.dataBytes ?? 0,
      includeData: Boolean(manifest.includeData),
      tables: tables.map(({ schema, name: table, rows }) => ({ schema, name: table, rows })),
    };
  }
  if (action === 'delete') {
    if (!target || !BACKUP_NAME.test(target)) throw new BadInputError('backup delete: give a backup name (like 20261124T120000123Z)');
    if (!(await set.names()).includes(target))
      return { command: 'backup delete', backup: target, existed: false, filesDeleted: 0, bytesReleased: 0 };
    return { command: 'backup delete', backup: target, existed: true, ...(await set.remove([target])) };
  }
  if (action !== undefined)
    throw new BadInputError(
      `backup: unexpected argument ${JSON.stringify(action)}; ` +
        'use `backup`, `backup list`, `backup verify NAME` or `backup delete NAME`',
    );
  const retention = positiveInt('--retention-days', values['retention-days']);
  if (retention === 0) throw new BadInputError('--retention-days: must be at least 1');
  if (values.name !== undefined && !BACKUP_NAME.test(values.name))
    throw new BadInputError(
      `--name: ${JSON.stringify(values.name)} must be a UTC time like 20261124T120000Z, ` +
        'optionally with -suffix (lowercase letters and digits)',
    );
  if (values.owner !== undefined && !/^[A-Za-z][A-Za-z0-9./-]{0,300}$/.test(values.owner))
    throw new BadInputError('--owner: must be like DuckLakeBackup/<namespace>/<name>');
  return createBackup(config, { retentionDays: retention, includeData: values['include-data'], name: values.name, owner: values.owner });
}

export async function restoreCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values } = parse(argv, {
    backup: { type: 'string' },
    force: { type: 'boolean', default: false },
    'from-catalog': { type: 'string' },
  });
  if (!values.backup) throw new BadInputError('--backup: required (a backup name from `featherman backup list`, or latest)');
  const config = loadConfig(env);
  const from = values['from-catalog'];
  if (from !== undefined && !CATALOG_NAME.test(from)) throw new BadInputError('--from-catalog: must be a catalog name');
  const set = new BackupSet(config, from ?? config.catalogName);
  const name = await set.resolve(values.backup);
  const manifest = await set.manifest(name);
  // Refuse a data path another catalog owns before anything is copied into it.
  await claimDataPath(config);

  return withScratch('featherman-restore-', async (work) => {
    const file = join(work, 'metadata.duckdb');
    await writeFile(file, await set.store.get(set.metadataKey(name)));
    const copied = await bringBackData(config, set, manifest);
    return withSession(config, async (session) => {
      await pointMetadataAt(session, file, manifest.dataPath, config.dataPath);
      // Read every table from the prepared copy before the live catalog is touched.
      const read = await readBackupCopy(session, file).catch((err: Error) => {
        throw new Error(`backup ${name} cannot be restored: reading its data failed: ${err.message.split('\n')[0]}`);
      });
      const mismatches = contentMismatches(manifest, read.tables);
      if (mismatches.length) throw new Error(`backup ${name} cannot be restored: ${mismatches.join('; ')}`);
      await installMetadata(session, file, values.force);
      await attachLake(session, { readOnly: true });
      const snapshotId = await session.currentSnapshot();
      if (snapshotId !== manifest.snapshotId)
        throw new Error(`restore of ${name}: the catalog is at snapshot ${snapshotId}, the backup at ${manifest.snapshotId}`);
      return {
        command: 'restore',
        backup: name,
        snapshotId,
        dataPath: config.dataPath,
        tables: read.tables.map(({ schema, name: table, rows, files, bytes }) => ({ schema, name: table, rows, files, bytes })),
        filesCopied: copied.files,
        dataBytesCopied: copied.bytes,
        verified: true,
        lake: lakeReport({ snapshotId, tables: read.tables }),
      };
    });
  });
}

/**
 * Make every file the backup reads present at the data path: those missing or changed come from
 * the backup's own copy when it has one; without one, the restore stops here, having changed
 * nothing, and names the files.
 */
async function bringBackData(config: LakeConfig, set: BackupSet, manifest: BackupManifest): Promise<{ files: number; bytes: number }> {
  if (!manifest.files) return { files: 0, bytes: 0 };
  const dataStore = blobStore(config.s3, config.dataPath);
  const listing = await objectsByKey(dataStore);
  const samePlace = manifest.dataPath === config.dataPath;
  const problems = fileProblems(manifest.files, listing, (f) => f.path, samePlace);
  if (!problems.length) return { files: 0, bytes: 0 };
  if (!manifest.includeData)
    throw new Error(`backup ${manifest.name} cannot be restored: ${describeFileProblems(problems, config.dataPath)}`);
  const copies: Map<string, ObjectInfo> = await set.copiesOfData();
  const lost = fileProblems(
    problems.map((p) => p.file).filter((f) => !isExternal(f)),
    copies,
    (f) => set.dataKey(f),
    false,
  );
  if (lost.length) throw new Error(`backup ${manifest.name} cannot be restored: ${describeFileProblems(lost, set.dataUrl)}`);
  let bytes = 0;
  await eachLimited(
    problems.map((p) => p.file),
    COPY_CONCURRENCY,
    async (f) => {
      await set.store.copyTo(set.dataKey(f), dataStore as BlobStore, f.path, f.size);
      bytes += f.size;
    },
  );
  return { files: problems.length, bytes };
}

/** The schema DuckLake keeps its tables in: the catalog database's default schema. */
function metadataSchema(config: LakeConfig): string {
  return config.metadataSchema ?? (config.metadata.type === 'postgres' ? 'public' : 'main');
}

/** The DuckLake tables (ducklake_*) of a catalog database; other tables in a shared database are left alone. */
async function catalogTables(
  rows: (sql: string, params?: string[]) => Promise<Record<string, unknown>[]>,
  database: string,
  schema: string,
): Promise<string[]> {
  const found = await rows(
    'SELECT table_name FROM duckdb_tables() WHERE database_name = $1 AND schema_name = $2 ' +
      "AND starts_with(table_name, 'ducklake_') ORDER BY 1",
    [database, schema],
  );
  return found.map((r) => String(r.table_name));
}

/**
 * Rebuild the catalog from a backup file: let DuckLake create a fresh, empty catalog (so every
 * table has its keys and constraints), then replace the rows of each table with the backup's,
 * in one transaction.
 */
async function installMetadata(session: LakeSession, file: string, force: boolean): Promise<void> {
  const m = session.config.metadata;
  let movedAside: string | undefined;
  if (m.type === 'duckdb' && existsSync(m.path)) {
    if (!force)
      throw new BadInputError(
        `FEATHERMAN_METADATA: ${m.path} already exists; restore refuses to overwrite a catalog (use --force to move it aside)`,
      );
    movedAside = `${m.path}.replaced-${backupName(new Date())}`;
    await rename(m.path, movedAside);
  }
  try {
    await replaceCatalogRows(session, file);
  } catch (err) {
    // Put back the catalog moved aside, so a failed restore leaves things as they were.
    if (movedAside && m.type === 'duckdb') {
      await session.run('DETACH DATABASE IF EXISTS featherman_target').catch(() => undefined);
      await rm(m.path, { force: true });
      await rename(movedAside, m.path);
    }
    throw err;
  }
}

async function replaceCatalogRows(session: LakeSession, file: string): Promise<void> {
  const config = session.config;
  const m = config.metadata;
  const rows = session.rows.bind(session);
  const attachTarget = catalogDatabaseSql(config, 'featherman_target', false);
  if (m.type === 'postgres' || (m.type === 'sqlite' && existsSync(m.path))) {
    await session.run(attachTarget);
    const existing = await catalogTables(rows, 'featherman_target', metadataSchema(config));
    await session.run('DETACH featherman_target');
    if (existing.length)
      throw new BadInputError(
        `FEATHERMAN_METADATA: the target ${m.type} database already holds a DuckLake catalog; restore into an empty one`,
      );
  }
  await attachLake(session, { create: true });
  await detachLake(session);

  await session.run(`ATTACH ${literal(file)} AS featherman_backup (READ_ONLY)`);
  await session.run(attachTarget);
  const schema = metadataSchema(config);
  const fresh = new Set(await catalogTables(rows, 'featherman_target', schema));
  await session.transaction(
    (await catalogTables(rows, 'featherman_backup', 'main')).flatMap((table) => {
      const into = `featherman_target.${ident(schema)}.${ident(table)}`;
      const from = `featherman_backup.main.${ident(table)}`;
      return fresh.has(table)
        ? [`DELETE FROM ${into}`, `INSERT INTO ${into} BY NAME SELECT * FROM ${from}`]
        : [`CREATE TABLE ${into} AS SELECT * FROM ${from}`]; // inlined-data tables
    }),
  );
  await session.run('DETACH featherman_backup');
  await session.run('DETACH featherman_target');
}
