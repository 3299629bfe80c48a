// The backups of a catalog as stored objects, and what they need from the lake.
//
// Layout under the backup root (FEATHERMAN_BACKUP_PATH):
//   <catalog>/<name>/metadata.duckdb   the ducklake_* tables, copied in one read transaction
//   <catalog>/<name>/manifest.json     written last: a backup without one is incomplete and ignored
//   <catalog>/data/<path>              Parquet files of backups taken with includeData, shared by them:
//                                      DuckLake never rewrites a file, so a path copied once stays right
//
// A manifest lists every data and delete file its snapshot reads (path, size, ETag) and a checksum
// of each table's rows. Maintenance keeps those files and snapshots while the backup is retained
// (holds); restores and `backup verify` check them before changing anything.
import { BadInputError } from '../errors.js';
import type { LakeConfig } from './config.js';
import type { LakeSummary, TableSummary } from './inspect.js';
import type { LakeSession } from './session.js';
import { literal, tableRef } from './sql.js';
import { blobStore, objectsByKey, type BlobStore, type ObjectInfo } from './storage.js';

export const METADATA_FILE = 'metadata.duckdb';
export const MANIFEST_FILE = 'manifest.json';
/** Written first and removed last: while it is there, maintenance deletes nothing (the backup's files are not held yet). */
export const STARTED_FILE = 'started.json';
/** A backup Job runs at most an hour; a start mark older than this is a crashed backup's, and ignored. */
const STARTED_MARK_TTL_MS = 6 * 3600_000;
export const BACKUP_NAME = /^\d{8}T\d{6}(\d{3})?Z(-[a-z0-9]{1,16})?$/;
export const MANIFEST_FORMAT = 2;

/** A file the backed-up snapshot reads: its path relative to the data path (or a full URL outside it). */
export interface BackedUpFile {
  path: string;
  size: number;
  etag?: string;
}

export interface TableContents extends TableSummary {
  /** count and sum of row hashes, read from the data (not statistics): equal checksums mean equal rows. */
  checksum: string;
}

export interface BackupManifest extends LakeSummary {
  formatVersion?: number; // absent in backups made before data verification (format 1)
  name: string;
  catalog: string;
  catalogId?: string;
  /** Who asked for it (e.g. DuckLakeBackup/ns/name): such a backup is never pruned by retention. */
  owner?: string;
  metadataType: string;
  createdAt: string;
  durationSeconds?: number;
  metadataBytes: number;
  tables: (TableSummary & { checksum?: string })[];
  files?: BackedUpFile[];
  dataBytes?: number;
  includeData?: boolean;
}

export function backupName(now: Date): string {
  return now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.(\d{3})Z$/, '$1Z');
}

export function nameTime(name: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})?Z/.exec(name)!;
  return new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!, +(m[7] ?? 0)));
}

/** A file registered from outside the data path (ducklake_add_data_files): its path is a full URL or absolute. */
export const isExternal = (f: BackedUpFile) => /^[a-z0-9]+:\/\/|^\//i.test(f.path);

/** The full URL of a manifest's file. */
export const fileUrl = (m: { dataPath: string }, f: BackedUpFile) => (isExternal(f) ? f.path : m.dataPath + f.path);

/** The backups of one catalog in its backup root. */
export class BackupSet {
  readonly store: BlobStore;
  constructor(
    readonly config: LakeConfig,
    readonly catalog = config.catalogName,
  ) {
    this.store = blobStore(config.backupS3, config.backupPath);
  }

  get location(): string {
    return `${this.store.url}${this.catalog}/`;
  }

  /** Complete backups (those with a manifest), oldest first. */
  async names(): Promise<string[]> {
    const names = new Set<string>();
    for (const key of await this.store.list(`${this.catalog}/`)) {
      const [, name, file] = key.split('/');
      if (name && BACKUP_NAME.test(name) && file === MANIFEST_FILE) names.add(name);
    }
    return [...names].sort();
  }

  /** Backups being taken now: a start mark, no manifest yet, not older than the longest a backup runs. */
  async inProgress(now = new Date()): Promise<string[]> {
    const keys = new Set(await this.store.list(`${this.catalog}/`));
    const names: string[] = [];
    for (const key of keys) {
      const [, name, file] = key.split('/');
      if (!name || file !== STARTED_FILE || keys.has(`${this.catalog}/${name}/${MANIFEST_FILE}`)) continue;
      if (BACKUP_NAME.test(name) && now.getTime() - nameTime(name).getTime() < STARTED_MARK_TTL_MS) names.push(name);
    }
    return names.sort();
  }

  startedKey(name: string): string {
    return `${this.catalog}/${name}/${STARTED_FILE}`;
  }

  /** `name`, or the newest for "latest"; a clear bad-input error when there is none. */
  async resolve(name: string, flag = '--backup'): Promise<string> {
    if (name !== 'latest' && !BACKUP_NAME.test(name))
      throw new BadInputError(`${flag}: ${JSON.stringify(name)} is not a backup name (like 20261124T120000123Z) or latest`);
    const names = await this.names();
    const found = name === 'latest' ? names[names.length - 1] : names.find((n) => n === name);
    if (!found) throw new BadInputError(`${flag}: no ${name === 'latest' ? '' : `backup ${name} `}found under ${this.location}`);
    return found;
  }

  /** A backup's manifest; its name is where it is stored (a copied backup keeps the name it was found under). */
  async manifest(name: string): Promise<BackupManifest> {
    return { ...(JSON.parse((await this.store.get(`${this.catalog}/${name}/${MANIFEST_FILE}`)).toString('utf8')) as BackupManifest), name };
  }

  async manifests(): Promise<BackupManifest[]> {
    const out: BackupManifest[] = [];
    for (const name of await this.names()) out.push(await this.manifest(name));
    return out;
  }

  metadataKey(name: string): string {
    return `${this.catalog}/${name}/${METADATA_FILE}`;
  }

  /** Where an includeData backup keeps a file of the data path (a key in `store`; external files are not copied). */
  dataKey(f: BackedUpFile): string {
    return `${this.catalog}/data/${f.path}`;
  }

  get dataUrl(): string {
    return `${this.location}data/`;
  }

  async copiesOfData(): Promise<Map<string, ObjectInfo>> {
    return objectsByKey(this.store, `${this.catalog}/data/`);
  }

  /**
   * Remove backups: the manifest first (so the backup stops being listed and holding anything),
   * then its metadata, then the data copies no remaining backup refers to.
   */
  async remove(names: string[]): Promise<{ filesDeleted: number; bytesReleased: number }> {
    const removed: BackupManifest[] = [];
    for (const name of names) {
      removed.push(await this.manifest(name));
      await this.store.deleteKeys([`${this.catalog}/${name}/${MANIFEST_FILE}`]);
      await this.store.deletePrefix(`${this.catalog}/${name}/`);
    }
    const stillNeeded = new Set<string>();
    const copied = (m: BackupManifest) => (m.includeData ? (m.files ?? []).filter((f) => !isExternal(f)) : []);
    for (const m of await this.manifests()) for (const f of copied(m)) stillNeeded.add(this.dataKey(f));
    const copies = removed.some((m) => m.includeData) ? await this.copiesOfData() : new Map<string, ObjectInfo>();
    const release = new Set<string>();
    for (const m of removed)
      for (const f of copied(m)) if (!stillNeeded.has(this.dataKey(f)) && copies.has(this.dataKey(f))) release.add(this.dataKey(f));
    await this.store.deleteKeys([...release]);
    return { filesDeleted: release.size, bytesReleased: [...release].reduce((n, k) => n + (copies.get(k)?.size ?? 0), 0) };
  }
}

/** What retained backups need kept in the lake: the files they read (full URLs) and their snapshots. */
export interface Holds {
  files: Map<string, string[]>; // file URL -> backups holding it
  snapshots: Map<number, string[]>;
}

export async function retainedHolds(config: LakeConfig): Promise<Holds> {
  const holds: Holds = { files: new Map(), snapshots: new Map() };
  const add = <K>(map: Map<K, string[]>, key: K, name: string) => map.set(key, [...(map.get(key) ?? []), name]);
  for (const m of await new BackupSet(config).manifests()) {
    if (m.dataPath !== config.dataPath) continue; // taken before a restore to another data path
    add(holds.snapshots, m.snapshotId, m.name);
    for (const f of m.files ?? []) add(holds.files, fileUrl(m, f), m.name);
  }
  return holds;
}

/** The data and delete files each table reads at the session's snapshot, relative to the data path where they are under it. */
export async function snapshotFiles(session: LakeSession, summary: LakeSummary): Promise<BackedUpFile[]> {
  const files = new Map<string, BackedUpFile>();
  const relative = (url: string) => (url.startsWith(summary.dataPath) ? url.slice(summary.dataPath.length) : url);
  for (const t of summary.tables) {
    const rows = await session.rows(
      'SELECT data_file, data_file_size_bytes, delete_file, delete_file_size_bytes ' +
        `FROM ducklake_list_files('lake', ${literal(t.name)}, schema => ${literal(t.schema)})`,
    );
    for (const r of rows) {
      files.set(String(r.data_file), { path: relative(String(r.data_file)), size: Number(r.data_file_size_bytes) });
      if (r.delete_file)
        files.set(String(r.delete_file), { path: relative(String(r.delete_file)), size: Number(r.delete_file_size_bytes) });
    }
  }
  return [...files.values()].sort((a, b) => a.path.localeCompare(b.path));
}

/** Each table's rows and a checksum over their values, read from the data files. */
export async function tableContents(session: LakeSession, tables: TableSummary[]): Promise<TableContents[]> {
  const out: TableContents[] = [];
  for (const t of tables) {
    const row = (
      await session.rows(
        `SELECT count(*) AS n, coalesce(sum(hash(*COLUMNS(*))::HUGEINT), 0)::VARCHAR AS h FROM ${tableRef(t.schema, t.name)}`,
      )
    )[0]!;
    out.push({ ...t, rows: Number(row.n), checksum: `${row.n}:${row.h}` });
  }
  return out;
}

/** Differences between a manifest's tables and what was read: empty when every table has the same rows. */
export function contentMismatches(manifest: BackupManifest, read: TableContents[]): string[] {
  const key = (t: { schema: string; name: string }) => `${t.schema}.${t.name}`;
  const want = new Map(manifest.tables.map((t) => [key(t), t]));
  const problems: string[] = [];
  for (const t of read) {
    const w = want.get(key(t));
    if (!w) problems.push(`unexpected table ${key(t)}`);
    else if (w.rows !== t.rows) problems.push(`${key(t)} has ${t.rows} rows, the backup had ${w.rows}`);
    else if (w.checksum !== undefined && w.checksum !== t.checksum)
      problems.push(`${key(t)} has different rows than when it was backed up`);
    want.delete(key(t));
  }
  for (const k of want.keys()) problems.push(`table ${k} missing`);
  return problems;
}

/**
 * Which of a manifest's files are missing or changed in `store` (a listing of it, keyed like
 * `keyOf`). A file is changed when its size differs, or its ETag when both are known.
 */
export function fileProblems(
  files: BackedUpFile[],
  listing: Map<string, ObjectInfo>,
  keyOf: (f: BackedUpFile) => string,
  compareEtags: boolean,
): { file: BackedUpFile; problem: string }[] {
  const out: { file: BackedUpFile; problem: string }[] = [];
  for (const f of files) {
    const o = listing.get(keyOf(f));
    if (!o) out.push({ file: f, problem: 'missing' });
    else if (o.size !== f.size) out.push({ file: f, problem: `${o.size} bytes, expected ${f.size}` });
    else if (compareEtags && f.etag && o.etag && o.etag !== f.etag) out.push({ file: f, problem: 'content changed' });
  }
  return out;
}

/** One line naming the first few problem files (a termination message has 4 KiB). */
export function describeFileProblems(problems: { file: BackedUpFile; problem: string }[], where: string): string {
  const shown = problems
    .slice(0, 5)
    .map((p) => `${p.file.path} (${p.problem})`)
    .join(', ');
  return (
    `${problems.length} data file${problems.length === 1 ? '' : 's'} missing or changed under ${where}: ` +
    `${shown}${problems.length > 5 ? `, and ${problems.length - 5} more` : ''}`
  );
}
