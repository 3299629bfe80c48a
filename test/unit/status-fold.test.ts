// How runner reports become status: a table of reports per case, folded by the pure functions the
// hooks use. Newest wins; a failed backup or maintenance keeps the last good figures and records
// the failure; a report no newer than the status changes nothing; malformed reports are ignored.
import t from 'tap';
import { foldBackup, foldMaintenance } from '../../hooks/catalog.js';
import * as table from '../../hooks/table.js';
import { resultLine } from '../../lib/cli.js';
import { lakeReport } from '../../lib/lake/inspect.js';
import { foldLakeFigures, lakeFiguresOf, tableFiguresFromCatalog } from '../../lib/k8s/lake-report.js';
import type { PodResult } from '../../lib/k8s/job-status.js';
import { ctx, jobPod, jobSucceeded, observed, syncRequest, tableObject, catalogObject } from '../helpers/hook-fixtures.js';

const backupRun = (finishedAt: string, ok: boolean, extra: Record<string, unknown> = {}): PodResult =>
  ok
    ? { ok, command: 'backup', backup: `b-${finishedAt}`, bytes: 100, snapshotId: 4, durationSeconds: 2.5, finishedAt, ...extra }
    : { ok, exitCode: 75, error: 'storage unreachable: connect ECONNREFUSED\nmore detail', finishedAt };
const newestFirst = (runs: PodResult[]) => [...runs].sort((a, b) => String(b.finishedAt).localeCompare(String(a.finishedAt)));

t.test('lastBackup: a table of report sequences', async (t) => {
  const cases: { name: string; previous?: Record<string, unknown>; runs: PodResult[]; want: Record<string, unknown> | undefined }[] = [
    { name: 'no runs, no status', runs: [], want: undefined },
    {
      name: 'one success',
      runs: [backupRun('2026-11-24T02:00:10Z', true)],
      want: {
        name: 'b-2026-11-24T02:00:10Z',
        outcome: 'Succeeded',
        time: '2026-11-24T02:00:10Z',
        bytes: 100,
        snapshotId: 4,
        durationSeconds: 2.5,
      },
    },
    {
      name: 'newest of two successes wins',
      runs: [backupRun('2026-11-24T02:00:10Z', true), backupRun('2026-11-25T02:00:10Z', true, { snapshotId: 9 })],
      want: { name: 'b-2026-11-25T02:00:10Z', snapshotId: 9, outcome: 'Succeeded' },
    },
    {
      name: 'a failure after a success keeps the good one and records the failure',
      runs: [backupRun('2026-11-24T02:00:10Z', true), backupRun('2026-11-25T02:00:10Z', false)],
      previous: { name: 'b-2026-11-24T02:00:10Z', time: '2026-11-24T02:00:10Z', bytes: 100, snapshotId: 4, outcome: 'Succeeded' },
      want: {
        name: 'b-2026-11-24T02:00:10Z',
        time: '2026-11-24T02:00:10Z',
        bytes: 100,
        snapshotId: 4,
        outcome: 'Failed',
        message: 'storage unreachable: connect ECONNREFUSED',
        attemptTime: '2026-11-25T02:00:10Z',
      },
    },
    {
      name: 'a success after a failure clears it',
      previous: { name: 'b1', time: '2026-11-24T02:00:10Z', outcome: 'Failed', message: 'x', attemptTime: '2026-11-25T02:00:10Z' },
      runs: [backupRun('2026-11-26T02:00:10Z', true)],
      want: { name: 'b-2026-11-26T02:00:10Z', outcome: 'Succeeded', time: '2026-11-26T02:00:10Z' },
    },
    {
      name: "a pod no newer than the status changes nothing (a retried Job's earlier pod)",
      previous: { name: 'b9', time: '2026-11-27T02:00:10Z', outcome: 'Succeeded' },
      runs: [backupRun('2026-11-26T02:00:10Z', false)],
      want: { name: 'b9', time: '2026-11-27T02:00:10Z', outcome: 'Succeeded' },
    },
  ];
  for (const c of cases) {
    const got = foldBackup(c.previous, newestFirst(c.runs));
    if (c.want === undefined) t.equal(got, undefined, c.name);
    else t.match(got, c.want, c.name);
    if (c.want?.outcome === 'Succeeded') t.notOk(got && ('message' in got || 'attemptTime' in got), `${c.name}: no failure fields left`);
  }
});

t.test('lastMaintenance keeps the last good figures after a failure', async (t) => {
  const good: PodResult = {
    ok: true,
    command: 'maintain',
    filesMerged: 3,
    filesDeleted: 2,
    bytesReclaimed: 512,
    snapshotsExpired: 1,
    durationSeconds: 4,
    finishedAt: '2026-11-24T03:30:09Z',
  };
  const first = foldMaintenance(undefined, [good]);
  t.match(first, { outcome: 'Succeeded', filesMerged: 3, bytesReclaimed: 512, time: '2026-11-24T03:30:09Z' });
  const failed = foldMaintenance(first, [{ ok: false, exitCode: 1, error: 'boom', finishedAt: '2026-11-25T03:30:09Z' }, good]);
  t.match(failed, {
    outcome: 'Failed',
    message: 'boom',
    filesMerged: 3,
    time: '2026-11-24T03:30:09Z',
    attemptTime: '2026-11-25T03:30:09Z',
  });
});

const report = (
  finishedAt: string,
  command: string,
  snapshotId: number,
  tables: [string, string, number, number, number][],
  ok = true,
): PodResult => ({
  ok,
  command,
  finishedAt,
  lake: lakeReport({ snapshotId, tables: tables.map(([schema, name, rows, files, bytes]) => ({ schema, name, rows, files, bytes })) }),
});

t.test("the lake's figures: the newest report wins, whichever command wrote it", async (t) => {
  const init = report('2026-11-24T12:00:00Z', 'catalog init', 1, []);
  const apply = report('2026-11-24T12:05:00Z', 'table apply', 2, [['main', 'users', 0, 0, 0]]);
  const backup = report('2026-11-25T02:00:00Z', 'backup', 5, [
    ['main', 'users', 100, 1, 2048],
    ['main', 'events', 10, 1, 512],
  ]);
  const inspect = report('2026-11-25T02:15:00Z', 'catalog info', 6, [
    ['main', 'users', 120, 2, 4096],
    ['main', 'events', 10, 1, 512],
  ]);
  const failedInspect = report('2026-11-25T02:30:00Z', 'catalog info', 7, [], false);
  const rows: { name: string; previous?: Record<string, unknown>; runs: PodResult[]; want: Record<string, unknown> }[] = [
    { name: 'init alone', runs: [init], want: { snapshotId: 1, tableCount: 0, totalRows: 0, lakeReportCommand: 'catalog init' } },
    {
      name: 'any order in, newest out',
      runs: [apply, inspect, init, backup],
      want: {
        snapshotId: 6,
        tableCount: 2,
        totalRows: 130,
        totalFiles: 3,
        totalBytes: 4608,
        lakeReportCommand: 'catalog info',
        lakeReportTime: '2026-11-25T02:15:00Z',
        tablesComplete: true,
      },
    },
    { name: 'a failed run reports nothing', runs: [backup, failedInspect], want: { snapshotId: 5, lakeReportCommand: 'backup' } },
    {
      name: 'the status is newer than every pod: kept',
      previous: { snapshotId: 9, tableCount: 3, totalRows: 7, lakeReportTime: '2026-11-26T00:00:00Z' },
      runs: [backup, inspect],
      want: { snapshotId: 9, tableCount: 3, totalRows: 7 },
    },
    {
      name: 'pods gone: the status carries over',
      previous: { snapshotId: 6, totalBytes: 4608, lakeReportTime: '2026-11-25T02:15:00Z' },
      runs: [],
      want: { snapshotId: 6, totalBytes: 4608 },
    },
    {
      name: 'a malformed report is ignored',
      runs: [init, { ok: true, command: 'catalog info', finishedAt: '2026-11-30T00:00:00Z', lake: { snapshotId: -1, tableCount: 'x' } }],
      want: { snapshotId: 1 },
    },
  ];
  for (const r of rows) t.match(foldLakeFigures(r.previous, r.runs), r.want, r.name);
  t.same(
    tableFiguresFromCatalog(foldLakeFigures(undefined, [inspect]), 'MAIN', 'Users'),
    { rows: 120, files: 2, bytes: 4096, time: '2026-11-25T02:15:00Z' },
    "a table's figures from the catalog, names case-insensitive",
  );
  t.equal(
    tableFiguresFromCatalog(foldLakeFigures(undefined, [inspect]), 'main', 'orders'),
    undefined,
    'a table the report does not list has none',
  );
  t.equal(lakeFiguresOf({ ...inspect, finishedAt: undefined }), undefined, 'no finish time, no report');
});

t.test("a table's rows, files and bytes: its own apply or its catalog's newer report", async (t) => {
  const users = tableObject();
  const catalog = (status: Record<string, unknown>) => ({ ...observed(catalogObject()), status: { phase: 'Ready', ...status } });
  const applyJobName = table.applyJob(users, catalogObject(), ctx).metadata.name;
  const applied = jobPod(applyJobName, 0, {
    ok: true,
    command: 'table apply',
    action: 'create',
    snapshotId: 2,
    rows: 0,
    files: 0,
    bytes: 0,
    columns: [],
  });
  const job = observed(table.applyJob(users, catalogObject(), ctx), jobSucceeded);
  const later = { lakeReportTime: '2026-11-25T02:15:00Z', tables: [{ schema: 'main', name: 'users', rows: 120, files: 2, bytes: 4096 }] };
  const earlier = { lakeReportTime: '2026-11-01T00:00:00Z', tables: [{ schema: 'main', name: 'users', rows: 5, files: 1, bytes: 10 }] };

  const own = table.sync(syncRequest(users, [job], [catalog(earlier), applied]), ctx).status;
  t.match(own, { rows: 0, files: 0, bytes: 0, figuresTime: '2026-11-24T11:59:29Z' }, "the apply is newer than the catalog's report");
  const fresh = table.sync(syncRequest({ ...users, status: own }, [job], [catalog(later), applied]), ctx).status;
  t.match(fresh, { rows: 120, files: 2, bytes: 4096, figuresTime: '2026-11-25T02:15:00Z' }, "the catalog's newer report wins");
  const stale = table.sync(syncRequest({ ...users, status: fresh }, [job], [catalog(earlier), applied]), ctx).status;
  t.match(stale, { rows: 120, figuresTime: '2026-11-25T02:15:00Z' }, 'nothing older replaces it');
});

t.test("the runner's result line fits a termination message", async (t) => {
  const tables = Array.from({ length: 300 }, (_, i) => ({
    schema: 'main',
    name: `table_with_a_long_name_${i}`,
    rows: i * 1000,
    files: i,
    bytes: i * 4096,
  }));
  // (an unlimited lake report, so the line must also cut the per-table figures)
  const summary = {
    ok: true,
    command: 'catalog info',
    snapshotId: 77,
    ducklakeVersion: '1.0',
    tables,
    lake: lakeReport({ snapshotId: 77, tables }, Infinity),
  };
  t.equal(summary.lake.tables.length, 300);
  const line = resultLine(summary);
  t.ok(Buffer.byteLength(line) <= 4000, `at most 4,000 bytes (${Buffer.byteLength(line)})`);
  const parsed = JSON.parse(line);
  t.same(parsed.omitted, ['tables'], 'the long table list goes first, and says so');
  t.match(parsed.lake, { snapshotId: 77, tableCount: 300, totalRows: tables.reduce((n, x) => n + x.rows, 0), tablesComplete: false });
  t.ok(
    parsed.lake.tables.length > 10 && parsed.lake.tables.length < 300,
    `the per-table figures are cut (${parsed.lake.tables.length} kept)`,
  );
  t.equal(summary.lake.tables.length, 300, 'the printed summary itself is untouched');
  t.equal(lakeReport({ snapshotId: 77, tables }).tables.length < 300, true, "the runner's own report stays within its budget");
  const small = { ok: true, command: 'table drop', dropped: true, snapshotId: 3 };
  t.equal(resultLine(small), JSON.stringify(small), 'a short summary is unchanged');
});
