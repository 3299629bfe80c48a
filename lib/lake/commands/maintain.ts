// `featherman maintain [--expire-older-than D] [--cleanup-older-than D] [--delete-orphans --orphans-older-than D]
//                      [--no-flush] [--no-merge] [--max-compacted-files N] [--target-file-size SIZE]
//                      [--no-rewrite] [--rewrite-delete-threshold F]`
//
// DuckLake's maintenance chain, in CHECKPOINT's order: flush inlined rows to Parquet, expire old
// snapshots, merge small adjacent files, rewrite files with many deleted rows, delete the files no
// snapshot needs any more, and (only when asked, since it lists the whole data path and can race
// writers in flight) delete files DuckLake never recorded.
//
// Retained backups hold what they read: a snapshot a backup points at is never expired, and a
// file a backup's manifest lists is never deleted, whatever the ages given. Such files stay
// scheduled for deletion in the catalog and go in the first run after their last backup is pruned.
import { parseDuration } from '../../api/duration.js';
import { parseQuantity } from '../../api/quantity.js';
import { BadInputError, TemporaryError } from '../../errors.js';
import { BackupSet, retainedHolds, type Holds } from '../backups.js';
import { loadConfig } from '../config.js';
import { lakeReport, listTables, summarizeLake } from '../inspect.js';
import { markerLocation } from '../ownership.js';
import type { LakeSession } from '../session.js';
import { openLake } from '../session.js';
import { LAKE, literal, metaTable } from '../sql.js';
import { blobStore, objectsByKey, type BlobStore, type ObjectInfo } from '../storage.js';
import { parse, positiveInt } from './args.js';

function interval(flag: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const seconds = parseDuration(value);
  if (seconds === undefined) throw new BadInputError(`${flag}: ${JSON.stringify(value)} is not a duration like 30m, 12h or 7d`);
  return `now() - INTERVAL ${literal(`${seconds} seconds`)}`;
}

const sum = (rows: Record<string, unknown>[], column: string) => rows.reduce((n, r) => n + Number(r[column] ?? 0), 0);

interface Deletion {
  deleted: number;
  bytes: number;
  keptBack: number;
  keptBackFor: Set<string>;
}

/** The data path's objects, listed at most once a run and before anything is deleted: the sizes of what goes. */
class DataFiles {
  private listing?: Promise<Map<string, ObjectInfo>>;
  constructor(
    readonly store: BlobStore,
    readonly dataPath: string,
  ) {}

  key(url: string): string {
    return url.slice(this.dataPath.length);
  }

  async bytes(urls: string[]): Promise<number> {
    if (!urls.length) return 0;
    const listing = await (this.listing ??= objectsByKey(this.store));
    return urls.reduce((n, u) => n + (listing.get(this.key(u))?.size ?? 0), 0);
  }
}

/** Split files DuckLake would delete into those a retained backup holds and the rest; delete the rest from the data path. */
async function deleteUnheld(files: DataFiles, urls: string[], holds: Holds): Promise<Deletion> {
  const held = urls.filter((u) => holds.files.has(u));
  const free = urls.filter((u) => !holds.files.has(u) && u.startsWith(files.dataPath));
  const bytes = await files.bytes(free);
  await files.store.deleteKeys(free.map((u) => files.key(u)));
  const keptBackFor = new Set(held.flatMap((u) => holds.files.get(u) ?? []));
  return { deleted: free.length, bytes, keptBack: held.length, keptBackFor };
}

/** Files scheduled for deletion and past `olderThan`: DuckLake's own cleanup when nothing is held, ours otherwise. */
async function cleanUp(session: LakeSession, files: DataFiles, olderThan: string, holds: Holds): Promise<Deletion> {
  const dataPath = session.config.dataPath;
  const due = (
    await session.rows(`SELECT path FROM ducklake_cleanup_old_files(${literal(LAKE)}, older_than => ${olderThan}, dry_run => true)`)
  ).map((r) => String(r.path));
  if (!due.some((u) => holds.files.has(u))) {
    const bytes = await files.bytes(due);
    await session.rows(`SELECT * FROM ducklake_cleanup_old_files(${literal(LAKE)}, older_than => ${olderThan})`);
    return { deleted: due.length, bytes, keptBack: 0, keptBackFor: new Set() };
  }
  // Take the rows of the files about to go out of the catalog first: if we stop half-way, what is
  // left is orphan files (collected later), never a catalog naming files that are gone.
  const table = metaTable(session.config.metadataSchema, 'ducklake_files_scheduled_for_deletion');
  const scheduled = await session.rows(`SELECT data_file_id, path, path_is_relative FROM ${table}`);
  const urlOf = (r: Record<string, unknown>) => (r.path_is_relative ? dataPath + String(r.path) : String(r.path));
  const deletable = new Set(due.filter((u) => !holds.files.has(u)));
  const ids = scheduled.filter((r) => deletable.has(urlOf(r))).map((r) => Number(r.data_file_id));
  if (ids.length) await session.run(`DELETE FROM ${table} WHERE data_file_id IN (${ids.join(', ')})`);
  return deleteUnheld(files, due, holds);
}

export async function maintainCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values } = parse(argv, {
    'expire-older-than': { type: 'string' },
    'cleanup-older-than': { type: 'string', default: '1h' },
    'delete-orphans': { type: 'boolean', default: false },
    'orphans-older-than': { type: 'string', default: '7d' },
    'no-flush': { type: 'boolean', default: false },
    'no-merge': { type: 'boolean', default: false },
    'max-compacted-files': { type: 'string', default: '1000' },
    'target-file-size': { type: 'string' },
    'no-rewrite': { type: 'boolean', default: false },
    'rewrite-delete-threshold': { type: 'string', default: '0.95' },
  });
  const started = new Date();
  const expire = interval('--expire-older-than', values['expire-older-than']);
  const cleanup = interval('--cleanup-older-than', values['cleanup-older-than'])!;
  const orphans = interval('--orphans-older-than', values['orphans-older-than'])!;
  const maxCompacted = positiveInt('--max-compacted-files', values['max-compacted-files'])!;
  if (maxCompacted < 2) throw new BadInputError('--max-compacted-files: must be at least 2');
  const targetSize = values['target-file-size'] === undefined ? undefined : parseQuantity(values['target-file-size'].replace(/B$/i, ''));
  if (values['target-file-size'] !== undefined && !(targetSize && targetSize >= 1024 * 1024)) {
    throw new BadInputError(
      `--target-file-size: ${JSON.stringify(values['target-file-size'])} must be a size of at least 1Mi, like 128Mi or 512M`,
    );
  }
  const threshold = Number(values['rewrite-delete-threshold']);
  if (!/^\d*\.?\d+$/.test(values['rewrite-delete-threshold']) || !(threshold > 0 && threshold <= 1)) {
    throw new BadInputError('--rewrite-delete-threshold: must be a fraction above 0 and at most 1, like 0.95');
  }
  const config = loadConfig(env);
  // Without the list of retained backups nothing may be deleted: fail (and retry) instead.
  const holds = await retainedHolds(config).catch((err: Error) => {
    throw new TemporaryError(`maintenance needs the list of retained backups and could not read it: ${err.message.split('\n')[0]}`);
  });
  const files = new DataFiles(blobStore(config.s3, config.dataPath), config.dataPath);
  const session = await openLake(config);
  try {
    const before = await listTables(session);
    const call = (fn: string, args: string[] = []) => session.rows(`SELECT * FROM ${fn}(${[literal(LAKE), ...args].join(', ')})`);

    const rowsFlushed = values['no-flush'] ? 0 : sum(await call('ducklake_flush_inlined_data'), 'rows_flushed');

    let snapshotsExpired = 0;
    let keptSnapshots: number[] = [];
    if (expire) {
      const candidates = (await call('ducklake_expire_snapshots', [`older_than => ${expire}`, 'dry_run => true'])).map((r) =>
        Number(r.snapshot_id),
      );
      keptSnapshots = candidates.filter((id) => holds.snapshots.has(id));
      const expiring = candidates.filter((id) => !holds.snapshots.has(id));
      if (expiring.length) snapshotsExpired = (await call('ducklake_expire_snapshots', [`versions => [${expiring.join(', ')}]`])).length;
    }

    let filesMerged = 0;
    let filesCreated = 0;
    if (!values['no-merge']) {
      const merged = await call('ducklake_merge_adjacent_files', [
        `max_compacted_files => ${maxCompacted}`,
        ...(targetSize ? [`max_file_size => ${targetSize}`] : []),
      ]);
      filesMerged = sum(merged, 'files_processed');
      filesCreated += sum(merged, 'files_created');
    }
    let filesRewritten = 0;
    if (!values['no-rewrite']) {
      const rewritten = await call('ducklake_rewrite_data_files', [`delete_threshold => ${threshold}`]);
      filesRewritten = sum(rewritten, 'files_processed');
      filesCreated += sum(rewritten, 'files_created');
    }

    // Deletion decides on the backups as they are now: one finished since the start holds its
    // files, and while one is being taken (its files not yet held) nothing is deleted.
    const backups = new BackupSet(config);
    const busy = await backups.inProgress();
    const current = await retainedHolds(config);
    const nothing: Deletion = { deleted: 0, bytes: 0, keptBack: 0, keptBackFor: new Set() };
    const cleaned = busy.length ? nothing : await cleanUp(session, files, cleanup, current);

    let orphansDeleted = 0;
    let orphanBytes = 0;
    const orphanKeptFor = new Set<string>();
    let orphansKept = 0;
    if (values['delete-orphans'] && !busy.length) {
      const { root, key } = markerLocation(config.dataPath);
      const marker = root + key;
      const found = (await call('ducklake_delete_orphaned_files', [`older_than => ${orphans}`, 'dry_run => true']))
        .map((r) => String(r.path))
        .filter((u) => u !== marker);
      const out = await deleteUnheld(files, found, current);
      orphansDeleted = out.deleted;
      orphanBytes = out.bytes;
      orphansKept = out.keptBack;
      for (const n of out.keptBackFor) orphanKeptFor.add(n);
    }
    const lake = await summarizeLake(session);
    const after = lake.tables;
    const keptBackFor = [
      ...new Set([...cleaned.keptBackFor, ...orphanKeptFor, ...keptSnapshots.flatMap((id) => holds.snapshots.get(id) ?? [])]),
    ].sort();
    return {
      command: 'maintain',
      durationSeconds: (Date.now() - started.getTime()) / 1000,
      snapshotId: lake.snapshotId,
      filesBefore: before.reduce((a, t) => a + t.files, 0),
      filesAfter: after.reduce((a, t) => a + t.files, 0),
      rowsFlushed,
      snapshotsExpired,
      snapshotsKeptBack: keptSnapshots.length,
      filesMerged,
      filesRewritten,
      filesCreated,
      filesDeleted: cleaned.deleted,
      bytesReclaimed: cleaned.bytes + orphanBytes,
      filesKeptBack: cleaned.keptBack + orphansKept,
      keptBackFor,
      orphansDeleted,
      ...(busy.length ? { deletionSkipped: `backup ${busy.join(', ')} is being taken; files are deleted in a later run` } : {}),
      startedAt: started.toISOString(),
      finishedAt: new Date().toISOString(),
      lake: lakeReport(lake),
    };
  } finally {
    session.close();
  }
}
