// The data plane on real MinIO: round trip, partitioned ZSTD Parquet, evolution, encryption,
// backup/restore with retention, time travel, and storage failures.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { CopyObjectCommand, GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { parquetMetadata } from 'hyparquet';
import { stringify } from 'yaml';
import { Minio } from '../helpers/minio.js';
import { featherman } from '../helpers/cli.js';

const minio = await Minio.start();
const work = mkdtempSync(join(tmpdir(), 'fm-lake-'));
t.teardown(async () => {
  await minio.stop();
  rmSync(work, { recursive: true, force: true });
});
await minio.createBucket('lake');

let lakes = 0;
/** A fresh lake: its own catalog file and its own prefix in the bucket. */
function newLake(extra: Record<string, string> = {}) {
  const id = `lake${++lakes}`;
  return {
    id,
    env: {
      ...minio.env(),
      FEATHERMAN_METADATA: `duckdb:${join(work, id, 'metadata.ducklake')}`,
      FEATHERMAN_DATA_PATH: `s3://lake/${id}/data/`,
      FEATHERMAN_CATALOG: id,
      ...extra,
    } as Record<string, string>,
  };
}

function specFile(name: string, spec: object): string {
  const file = join(work, `${name}-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, stringify({ apiVersion: 'ducklake.featherman.dev/v1alpha1', kind: 'DuckLakeTable', metadata: { name }, spec }));
  return file;
}

const usersSpec = {
  catalogRef: 'example',
  name: 'users',
  columns: [
    { name: 'id', type: 'INTEGER' },
    { name: 'name', type: 'VARCHAR' },
    { name: 'created_at', type: 'TIMESTAMP' },
  ],
  format: { compression: 'ZSTD', partitioning: ['day(created_at)'] },
};
const N = 100_000;
const insertUsers = (from: number, to: number) =>
  `INSERT INTO users SELECT i, 'user-' || i, TIMESTAMP '2026-01-01' + to_minutes(i) FROM range(${from}, ${to}) r(i)`;

async function listKeys(prefix: string): Promise<string[]> {
  const c = minio.client();
  const out = await c.send(new ListObjectsV2Command({ Bucket: 'lake', Prefix: prefix }));
  c.destroy();
  return (out.Contents ?? []).map((o) => o.Key!);
}
async function getObject(key: string): Promise<Uint8Array> {
  const c = minio.client();
  const out = await c.send(new GetObjectCommand({ Bucket: 'lake', Key: key }));
  const bytes = await out.Body!.transformToByteArray();
  c.destroy();
  return bytes;
}

t.test('round trip: 100,000 rows into partitioned ZSTD Parquet on MinIO and back', async (t) => {
  const lake = newLake();
  const init = await featherman(['catalog', 'init'], lake.env);
  t.equal(init.code, 0, init.stderr);
  t.equal(init.json.dataPath, `s3://lake/${lake.id}/data/`);
  t.equal(init.json.ducklakeVersion, '1.0');

  const apply = await featherman(['table', 'apply', '-f', specFile('users', usersSpec)], lake.env);
  t.equal(apply.code, 0, apply.stderr);
  t.equal(apply.json.action, 'create');

  const ins = await featherman(['query', '--write', '--sql', insertUsers(0, N)], lake.env);
  t.equal(ins.code, 0, ins.stderr);

  const q = await featherman(
    ['query', '--sql', "SELECT count(*) AS n, sum(id) AS s, md5(string_agg(name, ',' ORDER BY id)) AS h FROM users"],
    lake.env,
  );
  t.equal(q.code, 0, q.stderr);
  const expectedHash = createHash('md5')
    .update(Array.from({ length: N }, (_, i) => `user-${i}`).join(','))
    .digest('hex');
  t.same(q.json.rows, [{ n: String(N), s: String((N * (N - 1)) / 2), h: expectedHash }]);

  const keys = (await listKeys(`${lake.id}/data/main/users/`)).filter((k) => k.endsWith('.parquet'));
  t.ok(keys.length >= 2, `several Parquet objects under the table prefix (${keys.length})`);
  t.ok(
    keys.every((k) => /\/day=\d+\//.test(k)),
    'every object sits in a day= partition folder',
  );
  const meta = parquetMetadata((await getObject(keys[0]!)).buffer as ArrayBuffer);
  const codecs = new Set(meta.row_groups.flatMap((g) => g.columns.map((c) => c.meta_data?.codec)));
  t.same([...codecs], ['ZSTD'], 'the Parquet footer says every column chunk is ZSTD');

  const info = await featherman(['catalog', 'info'], lake.env);
  t.equal(info.code, 0, info.stderr);
  const users = (info.json.tables as { name: string; rows: number; files: number; bytes: number }[]).find((x) => x.name === 'users');
  t.equal(users?.rows, N);
  t.equal(users?.files, keys.length);
  t.ok((users?.bytes ?? 0) > 0);
  // The report the hooks fold into the status: the same figures, compact, with totals.
  t.same(
    info.json.lake,
    {
      snapshotId: info.json.snapshotId,
      tableCount: 1,
      totalRows: N,
      totalFiles: keys.length,
      totalBytes: users?.bytes,
      tables: [['main', 'users', N, keys.length, users?.bytes]],
      tablesComplete: true,
    },
    "catalog info reports the lake's figures for the status",
  );
});

t.test('evolution: add a column and widen INTEGER to BIGINT; lossy changes refused with the lake unchanged', async (t) => {
  const lake = newLake();
  t.equal((await featherman(['catalog', 'init'], lake.env)).code, 0);
  t.equal((await featherman(['table', 'apply', '-f', specFile('users', usersSpec)], lake.env)).code, 0);
  t.equal((await featherman(['query', '--write', '--sql', insertUsers(0, 1000)], lake.env)).code, 0);

  const evolved = {
    ...usersSpec,
    columns: [
      { name: 'id', type: 'BIGINT' },
      usersSpec.columns[1],
      usersSpec.columns[2],
      { name: 'email', type: 'VARCHAR', comment: 'added later' },
    ],
  };
  const dry = await featherman(['table', 'apply', '--dry-run', '-f', specFile('users', evolved)], lake.env);
  t.equal(dry.code, 0, dry.stderr);
  t.same(
    dry.json.ddl,
    [
      'ALTER TABLE lake."main"."users" ALTER COLUMN "id" SET DATA TYPE BIGINT',
      'ALTER TABLE lake."main"."users" ADD COLUMN "email" VARCHAR',
      `COMMENT ON COLUMN lake."main"."users"."email" IS 'added later'`,
    ],
    '--dry-run prints the exact DDL',
  );
  const before = (await featherman(['catalog', 'info'], lake.env)).json.snapshotId;
  t.equal((await featherman(['catalog', 'info'], lake.env)).json.snapshotId, before, 'dry run changed nothing');

  const apply = await featherman(['table', 'apply', '-f', specFile('users', evolved)], lake.env);
  t.equal(apply.code, 0, apply.stderr);
  t.same(apply.json.columns, [
    { name: 'id', type: 'BIGINT', nullable: true },
    { name: 'name', type: 'VARCHAR', nullable: true },
    { name: 'created_at', type: 'TIMESTAMP', nullable: true },
    { name: 'email', type: 'VARCHAR', nullable: true },
  ]);
  t.equal(
    (
      await featherman(
        ['query', '--write', '--sql', "INSERT INTO users VALUES (5000000000, 'big', TIMESTAMP '2026-02-01', 'b@example.com')"],
        lake.env,
      )
    ).code,
    0,
  );
  const q = await featherman(
    ['query', '--sql', 'SELECT count(*) AS n, sum(id) FILTER (WHERE id < 1000) AS s, count(email) AS e, max(id) AS m FROM users'],
    lake.env,
  );
  t.same(q.json.rows, [{ n: '1001', s: '499500', e: '1', m: '5000000000' }], 'old rows read through the wider type');

  const snapshot = (await featherman(['catalog', 'info'], lake.env)).json.snapshotId;
  const lossy = { ...evolved, columns: evolved.columns.map((c) => (c!.name === 'name' ? { name: 'name', type: 'INTEGER' } : c)) };
  const r1 = await featherman(['table', 'apply', '-f', specFile('users', lossy)], lake.env);
  t.equal(r1.code, 2);
  t.match(r1.json.error, /spec\.columns\[1\]\.type: cannot change name from VARCHAR to INTEGER/);

  const noPartitionColumn = {
    ...evolved,
    columns: evolved.columns.filter((c) => c!.name !== 'created_at'),
    format: { compression: 'ZSTD' },
  };
  const r2 = await featherman(['table', 'apply', '--allow-drop', '-f', specFile('users', noPartitionColumn)], lake.env);
  t.equal(r2.code, 2);
  t.match(r2.json.error, /"created_at" is a partition column .* cannot be removed/);

  const dropWithout = { ...evolved, columns: evolved.columns.filter((c) => c!.name !== 'email') };
  const r3 = await featherman(['table', 'apply', '-f', specFile('users', dropWithout)], lake.env);
  t.equal(r3.code, 2);
  t.match(r3.json.error, /would be dropped; dropping columns needs --allow-drop/);

  const after = await featherman(['catalog', 'info'], lake.env);
  t.equal(after.json.snapshotId, snapshot, 'refused changes left the lake at the same snapshot');
  const cols = await featherman(
    [
      'query',
      '--sql',
      "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = 'lake' AND table_name = 'users' ORDER BY column_index",
    ],
    lake.env,
  );
  t.same(cols.json.rows, [
    { column_name: 'id', data_type: 'BIGINT' },
    { column_name: 'name', data_type: 'VARCHAR' },
    { column_name: 'created_at', data_type: 'TIMESTAMP' },
    { column_name: 'email', data_type: 'VARCHAR' },
  ]);

  const drop = await featherman(['table', 'apply', '--allow-drop', '-f', specFile('users', dropWithout)], lake.env);
  t.equal(drop.code, 0, drop.stderr);
  t.notOk(
    (drop.json.columns as { name: string }[]).some((c) => c.name === 'email'),
    '--allow-drop drops the column',
  );
});

t.test('encryption: objects in MinIO are unreadable, the lake still answers', async (t) => {
  const lake = newLake({ FEATHERMAN_ENCRYPTED: 'true' });
  const init = await featherman(['catalog', 'init'], lake.env);
  t.equal(init.code, 0, init.stderr);
  t.equal(init.json.encrypted, true);
  t.equal((await featherman(['table', 'apply', '-f', specFile('users', usersSpec)], lake.env)).code, 0);
  t.equal((await featherman(['query', '--write', '--sql', insertUsers(0, 5000)], lake.env)).code, 0);
  const q = await featherman(['query', '--sql', "SELECT count(*) AS n, max(name) AS m FROM users WHERE name LIKE 'user-4999'"], lake.env);
  t.same(q.json.rows, [{ n: '1', m: 'user-4999' }]);

  const keys = (await listKeys(`${lake.id}/data/main/users/`)).filter((k) => k.endsWith('.parquet'));
  t.ok(keys.length > 0);
  const bytes = await getObject(keys[0]!);
  t.equal(Buffer.from(bytes.slice(-4)).toString('latin1'), 'PARE', 'the footer is encrypted (PARE magic)');
  t.throws(() => parquetMetadata(bytes.buffer as ArrayBuffer), 'a Parquet reader cannot open the object');
  t.notOk(Buffer.from(bytes).includes(Buffer.from('user-4999')), 'row values are not in the object in clear');
  const direct = await featherman(['query', '--sql', `SELECT count(*) FROM read_parquet('s3://lake/${keys[0]}')`], lake.env);
  t.not(direct.code, 0, 'DuckDB itself cannot read the object without the catalog key');
});

t.test('backup, delete the metadata, restore; retention prunes old backups', async (t) => {
  const lake = newLake();
  t.equal((await featherman(['catalog', 'init'], lake.env)).code, 0);
  t.equal((await featherman(['table', 'apply', '-f', specFile('users', usersSpec)], lake.env)).code, 0);
  t.equal(
    (
      await featherman(
        [
          'table',
          'apply',
          '-f',
          specFile('events', {
            name: 'events',
            columns: [
              { name: 'at', type: 'TIMESTAMP WITH TIME ZONE' },
              { name: 'payload', type: 'JSON' },
              { name: 'amount', type: 'DECIMAL(12,2)' },
              { name: 'tags', type: 'VARCHAR[]' },
              { name: 'uid', type: 'UUID' },
            ],
          }),
        ],
        lake.env,
      )
    ).code,
    0,
  );
  t.equal((await featherman(['query', '--write', '--sql', insertUsers(0, 2500)], lake.env)).code, 0);
  t.equal(
    (
      await featherman(
        [
          'query',
          '--write',
          '--sql',
          "INSERT INTO events SELECT TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_seconds(i), " +
            `'{"i":' || i || '}', i / 100, ['a', 'b'], uuid() FROM range(300) r(i)`,
        ],
        lake.env,
      )
    ).code,
    0,
  );

  const backup = await featherman(['backup', '--retention-days', '7'], lake.env);
  t.equal(backup.code, 0, backup.stderr);
  const name = String(backup.json.backup);
  t.match(backup.json.location, new RegExp(`^s3://lake/${lake.id}/backups/${lake.id}/${name}/$`));
  const objects = await listKeys(`${lake.id}/backups/${lake.id}/${name}/`);
  t.same(objects.map((k) => k.split('/').pop()).sort(), ['manifest.json', 'metadata.duckdb']);
  const manifest = JSON.parse(Buffer.from(await getObject(`${lake.id}/backups/${lake.id}/${name}/manifest.json`)).toString());
  t.equal(manifest.snapshotId, backup.json.snapshotId);
  t.same(
    manifest.tables.map((x: { name: string; rows: number }) => [x.name, x.rows]),
    [
      ['events', 300],
      ['users', 2500],
    ],
  );

  const before = await featherman(['catalog', 'info'], lake.env);
  rmSync(join(work, lake.id, 'metadata.ducklake'));
  t.equal((await featherman(['catalog', 'info'], lake.env)).code, 1, 'without metadata the lake is gone');
  const restore = await featherman(['restore', '--backup', 'latest'], lake.env);
  t.equal(restore.code, 0, restore.stderr);
  t.equal(restore.json.verified, true);
  const after = await featherman(['catalog', 'info'], lake.env);
  t.equal(after.json.snapshotId, before.json.snapshotId, 'same snapshot id');
  t.same(after.json.tables, before.json.tables, 'same tables, rows, files and bytes');
  const q = await featherman(['query', '--sql', 'SELECT count(*) AS n, sum(amount) AS a FROM events'], lake.env);
  t.same(q.json.rows, [{ n: '300', a: '448.50' }], 'rows readable after restore');

  t.equal((await featherman(['restore', '--backup', 'latest'], lake.env)).code, 2, 'restore refuses to overwrite an existing catalog');

  // An old backup: the same objects under a name from 2020 (backup names are their UTC creation time).
  const c = minio.client();
  for (const f of ['metadata.duckdb', 'manifest.json']) {
    await c.send(
      new CopyObjectCommand({
        Bucket: 'lake',
        CopySource: `lake/${lake.id}/backups/${lake.id}/${name}/${f}`,
        Key: `${lake.id}/backups/${lake.id}/20200101T000000000Z/${f}`,
      }),
    );
  }
  c.destroy();
  const listed = await featherman(['backup', 'list'], lake.env);
  t.same(
    (listed.json.backups as { name: string }[]).map((b) => b.name),
    ['20200101T000000000Z', name],
  );
  const second = await featherman(['backup', '--retention-days', '7'], lake.env);
  t.equal(second.code, 0, second.stderr);
  t.same(second.json.pruned, ['20200101T000000000Z']);
  t.same(await listKeys(`${lake.id}/backups/${lake.id}/20200101T000000000Z/`), [], 'old backup objects deleted');
  const relisted = await featherman(['backup', 'list'], lake.env);
  t.same(
    (relisted.json.backups as { name: string }[]).map((b) => b.name),
    [name, second.json.backup],
  );
});

t.test('time travel: a query at an earlier snapshot sees the earlier rows', async (t) => {
  const lake = newLake();
  t.equal((await featherman(['catalog', 'init'], lake.env)).code, 0);
  t.equal((await featherman(['table', 'apply', '-f', specFile('users', usersSpec)], lake.env)).code, 0);
  const first = await featherman(['query', '--write', '--sql', insertUsers(0, 100)], lake.env);
  const snapshotAfterFirst = Number(first.json.snapshotId);
  t.equal((await featherman(['query', '--write', '--sql', insertUsers(100, 350)], lake.env)).code, 0);
  const now = await featherman(['query', '--sql', 'SELECT count(*) AS n FROM users'], lake.env);
  t.same(now.json.rows, [{ n: '350' }]);
  const then = await featherman(
    ['query', '--as-of-version', String(snapshotAfterFirst), '--sql', 'SELECT count(*) AS n FROM users'],
    lake.env,
  );
  t.equal(then.code, 0, then.stderr);
  t.same(then.json.rows, [{ n: '100' }]);
  const ro = await featherman(['query', '--as-of-version', String(snapshotAfterFirst), '--sql', insertUsers(1, 2)], lake.env);
  t.equal(ro.code, 2, 'past snapshots are read-only');
  const readOnly = await featherman(['query', '--sql', insertUsers(1000, 1001)], lake.env);
  t.equal(readOnly.code, 2, 'queries are read-only without --write');
  t.match(readOnly.json.error, /read-only/i);
});

t.test('storage failures: MinIO down gives exit 75, wrong credentials a clear error; no secret in output', async (t) => {
  const lake = newLake();
  t.equal((await featherman(['catalog', 'init'], lake.env)).code, 0);
  t.equal((await featherman(['table', 'apply', '-f', specFile('users', usersSpec)], lake.env)).code, 0);

  const wrong = { ...lake.env, AWS_SECRET_ACCESS_KEY: 'not-the-right-secret-value' };
  // More rows than DuckLake inlines into the catalog (10), so the insert must write to storage.
  const bad = await featherman(['query', '--write', '--sql', insertUsers(0, 1000)], wrong);
  t.equal(bad.code, 1);
  t.match(bad.json.error, /rejected the credentials/);
  t.notMatch(bad.stdout + bad.stderr, /not-the-right-secret-value/);
  const badInit = await featherman(['catalog', 'init'], { ...wrong, FEATHERMAN_METADATA: `duckdb:${join(work, 'other', 'm.ducklake')}` });
  t.equal(badInit.code, 1);
  t.match(badInit.json.error, /rejected the credentials/);

  // Mid-run: the insert has computed its rows and begun writing its first data file when the
  // server goes away. The insert talks to MinIO through a pass-through proxy only to learn that
  // moment (its first request under the table's data folder); the outage itself is real: MinIO is
  // killed and the proxy stops listening, so every later connection is refused as MinIO's would be.
  let writing = false;
  const proxy = createServer((req, res) => {
    if (!writing && /^(PUT|POST)$/.test(req.method ?? '') && req.url?.startsWith(`/lake/${lake.id}/data/main/users/`)) {
      writing = true;
      proxy.close();
      void minio.pause().then(() => {
        res.destroy();
        proxy.closeAllConnections();
      });
      return;
    }
    const upstream = httpRequest(
      { host: '127.0.0.1', port: minio.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    proxy.close();
    proxy.closeAllConnections();
  });
  const proxied = { ...lake.env, AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}` };
  // Its bound only catches a hang: the insert gives up on its own once retries are refused.
  const mid = await featherman(['query', '--write', '--sql', insertUsers(0, 1_000_000)], proxied, { timeoutMs: 600_000 });
  t.ok(writing, 'storage went away while the insert was writing');
  t.equal(mid.code, 75, `exit 75 when storage disappears mid-run: ${mid.stderr}`);
  t.match(mid.json.error, /unreachable; retry later/);
  for (const out of [mid.stdout, mid.stderr]) {
    t.notMatch(out, new RegExp(minio.secretKey.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')), 'no secret in output');
  }
  const down = await featherman(['catalog', 'init'], { ...lake.env, FEATHERMAN_METADATA: `duckdb:${join(work, 'down', 'm.ducklake')}` });
  t.equal(down.code, 75);
  t.notOk(existsSync(join(work, 'down', 'm.ducklake')), 'init created no catalog while storage was down');
  await minio.resume();
  const ok = await featherman(['query', '--sql', 'SELECT count(*) AS n FROM users'], lake.env);
  t.same(ok.json.rows, [{ n: '0' }], 'the interrupted insert left no rows behind');
});
