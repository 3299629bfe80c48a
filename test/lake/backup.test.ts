// Backups that restore, on real MinIO: maintenance with ages of 0 keeps what retained backups
// need, restores and `backup verify` read the data and name a missing file, backups with the data
// survive the loss of the bucket, and one catalog owns a data path.
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { backupName } from '../../lib/lake/backups.js';
import { Minio } from '../helpers/minio.js';
import { featherman } from '../helpers/cli.js';

const minio = await Minio.start();
const work = mkdtempSync(join(tmpdir(), 'fm-backup-'));
t.teardown(async () => {
  await minio.stop();
  rmSync(work, { recursive: true, force: true });
});
await minio.createBucket('lake');
await minio.createBucket('vault');

async function keys(bucket: string, prefix: string): Promise<{ key: string; size: number }[]> {
  const c = minio.client();
  const out: { key: string; size: number }[] = [];
  let token: string | undefined;
  do {
    const page = await c.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) out.push({ key: o.Key!, size: Number(o.Size) });
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  c.destroy();
  return out;
}

async function remove(bucket: string, key: string) {
  const c = minio.client();
  await c.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  c.destroy();
}

async function manifestOf(bucket: string, key: string) {
  const c = minio.client();
  const out = await c.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const text = await out.Body!.transformToString();
  c.destroy();
  return JSON.parse(text) as { files: { path: string; size: number }[]; tables: { rows: number; checksum: string }[] };
}

function lakeEnv(id: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...minio.env(),
    FEATHERMAN_METADATA: `duckdb:${join(work, id, 'metadata.ducklake')}`,
    FEATHERMAN_DATA_PATH: `s3://lake/${id}/data/`,
    FEATHERMAN_CATALOG: id,
    ...extra,
  };
}

async function ok(t: Test, args: string[], env: Record<string, string>) {
  const r = await featherman(args, env);
  t.equal(r.code, 0, `featherman ${args.join(' ')}: ${r.stderr.slice(-400)}`);
  return r.json as Record<string, unknown>;
}

const query = async (t: Test, sql: string, env: Record<string, string>) =>
  (await ok(t, ['query', '--sql', sql], env)).rows as Record<string, string>[];
const write = (t: Test, sql: string, env: Record<string, string>) => ok(t, ['query', '--write', '--sql', sql], env);

t.test("maintenance's worst case: ages of 0 leave the old backup restorable, with its data", async (t) => {
  const env = lakeEnv('scenario');
  await ok(t, ['catalog', 'init'], env);
  await write(t, 'CREATE TABLE t (id INTEGER)', env);
  await write(t, 'INSERT INTO t SELECT range FROM range(1000)', env);
  const backup = await ok(t, ['backup'], env);
  t.equal(backup.rows, 1000);
  t.ok(Number(backup.files) >= 1, 'the manifest lists the data files');
  await write(t, 'DELETE FROM t', env);
  await write(t, 'INSERT INTO t SELECT range FROM range(5)', env);
  // More small files, so the merge step has work and old files are scheduled for deletion.
  for (let i = 0; i < 4; i++) await write(t, `INSERT INTO t SELECT range FROM range(${10 + i * 10}, ${20 + i * 10})`, env);
  const maintained = await ok(t, ['maintain', '--expire-older-than', '0s', '--cleanup-older-than', '0s'], env);
  t.ok(Number(maintained.snapshotsKeptBack) >= 1, "the backup's snapshot is kept back");
  t.same(maintained.keptBackFor, [backup.backup], 'and the report names the backup holding it');

  const restored = await ok(t, ['restore', '--backup', String(backup.backup), '--force'], env);
  t.equal(restored.verified, true);
  t.same(
    await query(t, 'SELECT sum(id)::BIGINT AS s, count(*) AS n FROM t', env),
    [{ s: '499500', n: '1000' }],
    'sum(id) reads the old rows from their Parquet files',
  );

  // A data file only the backup reads, deleted by hand: verify and restore name it, and the live
  // catalog stays as it is.
  await write(t, 'DELETE FROM t', env);
  await write(t, 'INSERT INTO t VALUES (7)', env);
  const before = await query(t, 'SELECT sum(id)::BIGINT AS s, count(*) AS n FROM t', env);
  const snapshot = (await ok(t, ['catalog', 'info'], env)).snapshotId;
  const manifest = await manifestOf('lake', `scenario/backups/scenario/${backup.backup}/manifest.json`);
  const lost = manifest.files[0]!.path;
  await remove('lake', `scenario/data/${lost}`);
  const verify = await featherman(['backup', 'verify', String(backup.backup)], env);
  t.equal(verify.code, 1);
  t.match(
    verify.json.error,
    `backup ${backup.backup} cannot be restored: 1 data file missing or changed under s3://lake/scenario/data/: ${lost} (missing)`,
  );
  const refused = await featherman(['restore', '--backup', String(backup.backup), '--force'], env);
  t.equal(refused.code, 1);
  t.match(refused.json.error, lost, 'restore names the missing file');
  t.same(await query(t, 'SELECT sum(id)::BIGINT AS s, count(*) AS n FROM t', env), before, 'the live catalog is unchanged');
  t.same(before, [{ s: '7', n: '1' }]);
  t.equal((await ok(t, ['catalog', 'info'], env)).snapshotId, snapshot, 'at the same snapshot');
});

t.test('pruning a backup releases its hold: the next maintenance deletes what only it needed', async (t) => {
  const env = lakeEnv('release');
  await ok(t, ['catalog', 'init'], env);
  await write(t, 'CREATE TABLE t (id INTEGER, v VARCHAR)', env);
  for (let i = 0; i < 6; i++) await write(t, `INSERT INTO t SELECT range, 'v' || range FROM range(${i * 100}, ${i * 100 + 100})`, env);
  const first = await ok(t, ['backup'], env);
  const merged = await ok(t, ['maintain', '--cleanup-older-than', '0s'], env);
  t.ok(Number(merged.filesMerged) >= 6, `small files merged (${merged.filesMerged})`);
  t.equal(merged.filesDeleted, 0, 'nothing the backup reads is deleted');
  t.equal(merged.filesKeptBack, first.files, 'every file of the backup is kept back');
  t.equal((await ok(t, ['backup', 'verify', String(first.backup)], env)).verified, true);

  const dropped = await ok(t, ['backup', 'delete', String(first.backup)], env);
  t.equal(dropped.existed, true);
  const again = await ok(t, ['maintain', '--cleanup-older-than', '0s'], env);
  t.equal(again.filesDeleted, first.files, 'released files are deleted');
  t.ok(Number(again.bytesReclaimed) > 0);
  t.equal(again.filesKeptBack, 0);
  t.same(await query(t, 'SELECT count(*) AS n, sum(id)::BIGINT AS s FROM t', env), [{ n: '600', s: '179700' }]);
  t.equal((await ok(t, ['backup', 'delete', String(first.backup)], env)).existed, false, 'deleting twice is not an error');

  // A backup being taken (its start mark, no manifest yet) holds everything: nothing is deleted.
  for (let i = 0; i < 3; i++) await write(t, `INSERT INTO t SELECT range, 'w' FROM range(${1000 + i * 100}, ${1100 + i * 100})`, env);
  const inFlight = backupName(new Date());
  const c = minio.client();
  await c.send(new PutObjectCommand({ Bucket: 'lake', Key: `release/backups/release/${inFlight}/started.json`, Body: '{}' }));
  c.destroy();
  const held = await ok(t, ['maintain', '--cleanup-older-than', '0s'], env);
  t.ok(Number(held.filesMerged) >= 3);
  t.equal(held.filesDeleted, 0);
  t.equal(held.deletionSkipped, `backup ${inFlight} is being taken; files are deleted in a later run`);
  await remove('lake', `release/backups/release/${inFlight}/started.json`);
  const after = await ok(t, ['maintain', '--cleanup-older-than', '0s'], env);
  t.equal(after.filesDeleted, held.filesMerged, 'once the backup is done (here: gone) the merged files go');
});

t.test('includeData: the lake comes back at a new prefix after its bucket is lost; the second backup copies only new files', async (t) => {
  const vault = {
    FEATHERMAN_BACKUP_PATH: 's3://vault/backups/',
    FEATHERMAN_BACKUP_ENDPOINT: minio.url,
    FEATHERMAN_BACKUP_ACCESS_KEY_ID: minio.accessKey,
    FEATHERMAN_BACKUP_SECRET_ACCESS_KEY: minio.secretKey,
  };
  const env = lakeEnv('lost', vault);
  await ok(t, ['catalog', 'init'], env);
  await write(t, 'CREATE TABLE t (id INTEGER, v VARCHAR)', env);
  await write(t, "INSERT INTO t SELECT range, repeat('x', 100) || range FROM range(50000)", env);
  const first = await ok(t, ['backup', '--include-data'], env);
  t.equal(first.filesCopied, first.files, 'the first backup copies every file');
  t.ok(Number(first.dataBytesCopied) > 0);
  await write(t, "INSERT INTO t SELECT range, 'new' || range FROM range(50000, 50100)", env);
  const second = await ok(t, ['backup', '--include-data'], env);
  t.equal(second.filesCopied, Number(second.files) - Number(first.files), 'the second copies only the files added since');
  t.ok(
    Number(second.dataBytesCopied) < Number(first.dataBytesCopied) / 10,
    `second copy ${second.dataBytesCopied} bytes, first ${first.dataBytesCopied}`,
  );
  t.comment(
    `includeData: first backup copied ${first.dataBytesCopied} bytes in ${first.filesCopied} files, ` +
      `the second ${second.dataBytesCopied} bytes in ${second.filesCopied}`,
  );

  // The whole source is lost: every object of the lake's prefix, and the catalog file.
  for (const o of await keys('lake', 'lost/')) await remove('lake', o.key);
  rmSync(join(work, 'lost'), { recursive: true, force: true });
  t.same(await keys('lake', 'lost/'), []);

  const elsewhere = {
    ...lakeEnv('lost', vault),
    FEATHERMAN_DATA_PATH: 's3://lake/reborn/data/',
    FEATHERMAN_METADATA: `duckdb:${join(work, 'reborn', 'metadata.ducklake')}`,
  };
  const restored = await ok(t, ['restore', '--backup', 'latest'], elsewhere);
  t.equal(restored.filesCopied, second.files, 'every file comes back from the backup');
  t.equal(restored.dataPath, 's3://lake/reborn/data/');
  t.same(await query(t, 'SELECT count(*) AS n, sum(id)::BIGINT AS s, count(DISTINCT v) AS d FROM t', elsewhere), [
    { n: '50100', s: String((50100 * 50099) / 2), d: '50100' },
  ]);
  await write(t, "INSERT INTO t VALUES (-1, 'after')", elsewhere);
  t.same(await query(t, 'SELECT count(*) AS n FROM t', elsewhere), [{ n: '50101' }], 'the restored lake takes writes at its new path');
  t.ok((await keys('lake', 'reborn/data/')).length >= Number(second.files));
});

t.test('one catalog per data path: a second catalog is refused with the owner named; the owner restores in place', async (t) => {
  const env = lakeEnv('owned', { FEATHERMAN_CATALOG_ID: 'team-a/owned' });
  const init = await ok(t, ['catalog', 'init'], env);
  t.equal(init.owner, 'team-a/owned');
  t.same((await keys('lake', 'owned/data.featherman-owner.json')).length, 1, 'the marker sits beside the data folder, not in it');
  const intruder = {
    ...env,
    FEATHERMAN_CATALOG_ID: 'team-b/other',
    FEATHERMAN_CATALOG: 'other',
    FEATHERMAN_METADATA: `duckdb:${join(work, 'intruder', 'metadata.ducklake')}`,
  };
  const refused = await featherman(['catalog', 'init'], intruder);
  t.equal(refused.code, 2);
  t.match(refused.json.error, 'FEATHERMAN_DATA_PATH: s3://lake/owned/data/ belongs to catalog team-a/owned');
  t.equal((await ok(t, ['catalog', 'init'], env)).dataPathClaimed, false, 'the owner initialises again');
  await write(t, 'CREATE TABLE t (id INTEGER)', env);
  await write(t, 'INSERT INTO t VALUES (1), (2)', env);
  const backup = await ok(t, ['backup'], env);
  const restore = await ok(t, ['restore', '--backup', String(backup.backup), '--force'], env);
  t.equal(restore.verified, true, 'the same catalog restores in place');
  const stolen = await featherman(['restore', '--backup', String(backup.backup), '--from-catalog', 'owned'], {
    ...intruder,
    FEATHERMAN_BACKUP_PATH: 's3://lake/owned/backups/',
  });
  t.equal(stolen.code, 2, 'another catalog cannot restore onto the owned data path');
});
