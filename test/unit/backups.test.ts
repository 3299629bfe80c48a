// The pure parts of backups: where the ownership marker goes, how a manifest's files and tables
// are compared with what is found.
import t from 'tap';
import { contentMismatches, describeFileProblems, fileProblems, type BackupManifest } from '../../lib/lake/backups.js';
import { markerLocation } from '../../lib/lake/ownership.js';

t.test('the marker sits beside the data folder, never inside it, except at a bucket root', async (t) => {
  t.same(markerLocation('s3://bucket/ns/lake/data/'), { root: 's3://bucket/ns/lake/', key: 'data.featherman-owner.json' });
  t.same(markerLocation('s3://bucket/data/'), { root: 's3://bucket/', key: 'data.featherman-owner.json' });
  t.same(markerLocation('s3://bucket/'), { root: 's3://bucket/', key: 'featherman-owner.json' });
  t.same(markerLocation('/var/lake/data/'), { root: '/var/lake/', key: 'data.featherman-owner.json' });
});

t.test('files: missing, another size, another ETag (only where ETags are comparable)', async (t) => {
  const files = [
    { path: 'a.parquet', size: 10, etag: 'x' },
    { path: 'b.parquet', size: 20, etag: 'y' },
    { path: 'c.parquet', size: 30, etag: 'z' },
    { path: 'd.parquet', size: 5 },
  ];
  const listing = new Map([
    ['b.parquet', { key: 'b.parquet', size: 21, etag: 'y' }],
    ['c.parquet', { key: 'c.parquet', size: 30, etag: 'other' }],
    ['d.parquet', { key: 'd.parquet', size: 5, etag: 'any' }],
  ]);
  const found = fileProblems(files, listing, (f) => f.path, true);
  t.same(
    found.map((p) => [p.file.path, p.problem]),
    [
      ['a.parquet', 'missing'],
      ['b.parquet', '21 bytes, expected 20'],
      ['c.parquet', 'content changed'],
    ],
  );
  t.same(
    fileProblems(files, listing, (f) => f.path, false).map((p) => p.file.path),
    ['a.parquet', 'b.parquet'],
    'a copy elsewhere has other ETags: sizes only',
  );
  const many = Array.from({ length: 8 }, (_, i) => ({ file: { path: `f${i}`, size: 1 }, problem: 'missing' }));
  t.equal(
    describeFileProblems(many, 's3://b/data/'),
    '8 data files missing or changed under s3://b/data/: f0 (missing), f1 (missing), f2 (missing), f3 (missing), f4 (missing), and 3 more',
  );
});

t.test('tables: rows and checksums must match; extra and missing tables are named', async (t) => {
  const manifest = {
    tables: [
      { schema: 'main', name: 'a', rows: 2, files: 1, bytes: 1, checksum: '2:9' },
      { schema: 'main', name: 'b', rows: 1, files: 1, bytes: 1, checksum: '1:3' },
    ],
  } as unknown as BackupManifest;
  t.same(
    contentMismatches(manifest, [
      { schema: 'main', name: 'a', rows: 2, files: 1, bytes: 1, checksum: '2:9' },
      { schema: 'main', name: 'b', rows: 1, files: 1, bytes: 1, checksum: '1:3' },
    ]),
    [],
  );
  t.same(
    contentMismatches(manifest, [
      { schema: 'main', name: 'a', rows: 2, files: 1, bytes: 1, checksum: '2:8' },
      { schema: 'main', name: 'c', rows: 0, files: 0, bytes: 0, checksum: '0:0' },
    ]),
    ['main.a has different rows than when it was backed up', 'unexpected table main.c', 'table main.b missing'],
  );
});
