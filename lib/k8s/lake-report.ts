// The lake's figures as runner pods report them (the `lake` field of a summary, written by
// lakeReport() in lib/lake/inspect.ts), folded into the catalog's and the tables' status. The
// newest report wins, whichever command wrote it; a report no newer than the status changes nothing.
import type { PodResult } from './job-status.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
/** A figure a runner reported: a non-negative safe integer, else undefined. */
export const count = (v: unknown): number | undefined => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined);

export interface TableFigures {
  schema: string;
  name: string;
  rows: number;
  files: number;
  bytes: number;
}

/** The catalog status fields one report sets. */
export interface LakeFigures {
  snapshotId: number;
  tableCount: number;
  totalRows: number;
  totalFiles: number;
  totalBytes: number;
  lakeReportTime: string;
  lakeReportCommand?: string;
  tables: TableFigures[];
  tablesComplete: boolean;
}

/** A pod's report, if it is a well-formed one from a successful run with a finish time. */
export function lakeFiguresOf(result: PodResult): LakeFigures | undefined {
  const lake = isObj(result.lake) ? result.lake : legacyReport(result);
  if (!result.ok || !isObj(lake) || typeof result.finishedAt !== 'string') return undefined;
  const totals = [lake.snapshotId, lake.tableCount, lake.totalRows, lake.totalFiles, lake.totalBytes].map(count);
  if (totals.some((x) => x === undefined)) return undefined;
  const [snapshotId, tableCount, totalRows, totalFiles, totalBytes] = totals as number[];
  const tables = (Array.isArray(lake.tables) ? lake.tables : [])
    .flatMap((e): TableFigures[] => {
      if (!Array.isArray(e) || typeof e[0] !== 'string' || typeof e[1] !== 'string') return [];
      const [rows, files, bytes] = [e[2], e[3], e[4]].map(count);
      return rows === undefined || files === undefined || bytes === undefined ? [] : [{ schema: e[0], name: e[1], rows, files, bytes }];
    })
    .slice(0, 1000);
  return {
    snapshotId: snapshotId!,
    tableCount: tableCount!,
    totalRows: totalRows!,
    totalFiles: totalFiles!,
    totalBytes: totalBytes!,
    lakeReportTime: result.finishedAt,
    ...(typeof result.command === 'string' ? { lakeReportCommand: result.command.slice(0, 64) } : {}),
    tables,
    tablesComplete: lake.tablesComplete === true && tables.length === tableCount,
  };
}

/** Runners before the `lake` field: `catalog init|info` and `restore` summaries list every table. */
function legacyReport(result: PodResult): Obj | undefined {
  if (!['catalog init', 'catalog info', 'restore'].includes(String(result.command)) || !Array.isArray(result.tables)) return undefined;
  const tables = result.tables.filter(isObj);
  const sum = (k: string) => tables.reduce((n, t) => n + (count(t[k]) ?? 0), 0);
  return {
    snapshotId: result.snapshotId,
    tableCount: tables.length,
    totalRows: sum('rows'),
    totalFiles: sum('files'),
    totalBytes: sum('bytes'),
    tables: tables.map((t) => [t.schema, t.name, t.rows, t.files, t.bytes]),
    tablesComplete: true,
  };
}

const FIELDS = [
  'snapshotId',
  'tableCount',
  'totalRows',
  'totalFiles',
  'totalBytes',
  'lakeReportTime',
  'lakeReportCommand',
  'tables',
  'tablesComplete',
] as const;

/**
 * The catalog's lake figures: from the newest report among `results` (any order) when it is newer
 * than the status' lakeReportTime, else the status' own (carried over: pods come and go).
 */
export function foldLakeFigures(previous: Obj | undefined, results: PodResult[]): Partial<LakeFigures> {
  const seen = typeof previous?.lakeReportTime === 'string' ? previous.lakeReportTime : '';
  const newest = results
    .map(lakeFiguresOf)
    .filter((x): x is LakeFigures => x !== undefined)
    .sort((a, b) => b.lakeReportTime.localeCompare(a.lakeReportTime))[0];
  if (newest && newest.lakeReportTime > seen) return newest;
  return Object.fromEntries(FIELDS.filter((k) => previous?.[k] !== undefined).map((k) => [k, previous![k]])) as Partial<LakeFigures>;
}

/** One table's figures and their time from a catalog's status, if its newest report listed it. */
export function tableFiguresFromCatalog(
  catalogStatus: unknown,
  schema: string,
  name: string,
): (Omit<TableFigures, 'schema' | 'name'> & { time: string }) | undefined {
  if (!isObj(catalogStatus) || typeof catalogStatus.lakeReportTime !== 'string' || !Array.isArray(catalogStatus.tables)) return undefined;
  const lower = (s: string) => s.toLowerCase();
  const entry = catalogStatus.tables.find(
    (t): t is TableFigures =>
      isObj(t) &&
      typeof t.schema === 'string' &&
      typeof t.name === 'string' &&
      lower(t.schema) === lower(schema) &&
      lower(t.name) === lower(name),
  );
  const [rows, files, bytes] = [entry?.rows, entry?.files, entry?.bytes].map(count);
  if (rows === undefined || files === undefined || bytes === undefined) return undefined;
  return { rows, files, bytes, time: catalogStatus.lakeReportTime };
}
