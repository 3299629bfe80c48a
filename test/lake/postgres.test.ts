// A Postgres catalog (the multi-writer back-end) with data on MinIO: two runner processes
// insert into the same table at the same time and both commit.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Minio } from '../helpers/minio.js';
import { Postgres } from '../helpers/postgres.js';
import { featherman } from '../helpers/cli.js';

const [minio, pg] = await Promise.all([Minio.start(), Postgres.start()]);
const work = mkdtempSync(join(tmpdir(), 'fm-pg-lake-'));
t.teardown(async () => {
  await Promise.all([minio.stop(), pg.stop()]);
  rmSync(work, { recursive: true, force: true });
});
await minio.createBucket('lake');
pg.createDatabase('catalog');

const env = {
  ...minio.env(),
  FEATHERMAN_METADATA: `postgres:${pg.connection('catalog')}`,
  PGPASSWORD: pg.password,
  FEATHERMAN_DATA_PATH: 's3://lake/pg/data/',
  FEATHERMAN_CATALOG: 'pg',
};
const spec = join(work, 'events.yaml');
writeFileSync(
  spec,
  JSON.stringify({
    name: 'events',
    columns: [
      { name: 'writer', type: 'INTEGER' },
      { name: 'seq', type: 'BIGINT' },
    ],
  }),
);

t.test('a Postgres catalog accepts two concurrent writers without losing rows', async (t) => {
  const init = await featherman(['catalog', 'init'], env);
  t.equal(init.code, 0, init.stderr);
  t.equal(init.json.metadataType, 'postgres');
  t.equal((await featherman(['table', 'apply', '-f', spec], env)).code, 0);

  const rounds = 5;
  const writer = async (id: number) => {
    const codes = [];
    for (let i = 0; i < rounds; i++) {
      const r = await featherman(
        ['query', '--write', '--sql', `INSERT INTO events SELECT ${id}, s FROM range(${i * 1000}, ${(i + 1) * 1000}) r(s)`],
        env,
      );
      codes.push(r.code === 0 ? 0 : `${r.code}: ${r.stderr}`);
    }
    return codes;
  };
  const [a, b] = await Promise.all([writer(1), writer(2)]);
  t.same(a, Array(rounds).fill(0), 'every commit of writer 1 succeeded');
  t.same(b, Array(rounds).fill(0), 'every commit of writer 2 succeeded');
  const q = await featherman(
    ['query', '--sql', 'SELECT writer, count(*) AS n, count(DISTINCT seq) AS d FROM events GROUP BY writer ORDER BY writer'],
    env,
  );
  t.same(
    q.json.rows,
    [
      { writer: 1, n: '5000', d: '5000' },
      { writer: 2, n: '5000', d: '5000' },
    ],
    'no rows lost',
  );
  t.notMatch(q.stdout + q.stderr, new RegExp(pg.password), 'the catalog password never appears in output');
});

t.test('backup and restore a Postgres catalog into an empty database', async (t) => {
  const backup = await featherman(['backup'], env);
  t.equal(backup.code, 0, backup.stderr);
  pg.createDatabase('restored');
  const restoredEnv = { ...env, FEATHERMAN_METADATA: `postgres:${pg.connection('restored')}` };
  const restore = await featherman(['restore', '--backup', String(backup.json.backup)], restoredEnv);
  t.equal(restore.code, 0, restore.stderr);
  t.equal(restore.json.snapshotId, backup.json.snapshotId);
  const q = await featherman(['query', '--sql', 'SELECT count(*) AS n FROM events'], restoredEnv);
  t.same(q.json.rows, [{ n: '10000' }]);
  const again = await featherman(['restore', '--backup', 'latest'], restoredEnv);
  t.equal(again.code, 2, 'restore refuses a database that already holds a catalog');
});

t.test('maintenance on a Postgres catalog keeps what a retained backup reads', async (t) => {
  const backup = await featherman(['backup'], env);
  t.equal(backup.code, 0, backup.stderr);
  const maintained = await featherman(['maintain', '--expire-older-than', '0s', '--cleanup-older-than', '0s'], env);
  t.equal(maintained.code, 0, maintained.stderr);
  t.ok(Number(maintained.json.filesMerged) >= 2, `the small files are merged (${maintained.json.filesMerged})`);
  t.equal(maintained.json.filesDeleted, 0, "none of the backup's files is deleted");
  t.equal(maintained.json.filesKeptBack, maintained.json.filesMerged);
  const verify = await featherman(['backup', 'verify', String(backup.json.backup)], env);
  t.equal(verify.code, 0, verify.stderr);
  t.same(verify.json.tables, [{ schema: 'main', name: 'events', rows: 10000 }]);
  // Every backup of the catalog (the test above took one too) is deleted: nothing holds the files.
  for (const b of (await featherman(['backup', 'list'], env)).json.backups as { name: string }[]) {
    t.equal((await featherman(['backup', 'delete', b.name], env)).code, 0);
  }
  const released = await featherman(['maintain', '--cleanup-older-than', '0s'], env);
  t.equal(released.json.filesDeleted, maintained.json.filesKeptBack, 'once the backup is deleted its files go');
});

t.test('a password in FEATHERMAN_METADATA is refused: it belongs in PGPASSWORD', async (t) => {
  const r = await featherman(['catalog', 'info'], {
    ...env,
    FEATHERMAN_METADATA: `postgres:${pg.connection('catalog')} password=hunter22`,
  });
  t.equal(r.code, 2);
  t.match(r.json.error, /FEATHERMAN_METADATA: must not contain a password; put it in PGPASSWORD/);
  t.notMatch(r.stderr, /hunter22/);
});
