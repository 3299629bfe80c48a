// Reading the lake's state: version, snapshot, tables with their rows, files and bytes, and one
// table's columns, partitioning and compression. Used by `catalog info`, `table apply`, backups.
import { parseColumnType } from '../api/column-type.js';
import type { ExistingColumn, PartitionKey, PartitionTransform } from '../api/table.js';
import type { LakeSession } from './session.js';
import { LAKE, literal, metaTable, tableRef } from './sql.js';

export interface TableSummary {
  schema: string;
  name: string;
  rows: number;
  files: number;
  bytes: number;
}

export interface LakeSummary {
  ducklakeVersion: string;
  dataPath: string;
  encrypted: boolean;
  snapshotId: number;
  tables: TableSummary[];
}

/**
 * What a runner command saw of the lake, for the hooks to fold into the catalog's and tables'
 * status. It travels in the pod's termination message (4 KiB in all), so the per-table figures
 * are compact ([schema, name, rows, files, bytes]) and stop at TABLE_FIGURES_BUDGET characters;
 * tablesComplete says whether every table is in them. The totals always cover every table.
 */
export interface LakeReport {
  snapshotId: number;
  tableCount: number;
  totalRows: number;
  totalFiles: number;
  totalBytes: number;
  tables: [string, string, number, number, number][];
  tablesComplete: boolean;
}

export const TABLE_FIGURES_BUDGET = 1800;

export function lakeReport(s: { snapshotId: number; tables: TableSummary[] }, budget = TABLE_FIGURES_BUDGET): LakeReport {
  const tables: LakeReport['tables'] = [];
  let used = 0;
  for (const t of s.tables) {
    const entry: LakeReport['tables'][number] = [t.schema, t.name, t.rows, t.files, t.bytes];
    used += JSON.stringify(entry).length + 1;
    if (used > budget) break;
    tables.push(entry);
  }
  const sum = (k: 'rows' | 'files' | 'bytes') => s.tables.reduce((n, t) => n + t[k], 0);
  return {
    snapshotId: s.snapshotId,
    tableCount: s.tables.length,
    totalRows: sum('rows'),
    totalFiles: sum('files'),
    totalBytes: sum('bytes'),
    tables,
    tablesComplete: tables.length === s.tables.length,
  };
}

export async function lakeOptions(session: LakeSession): Promise<Record<string, string>> {
  const rows = await session.rows(`SELECT option_name, value FROM ${LAKE}.options() WHERE scope = 'GLOBAL'`);
  return Object.fromEntries(rows.map((r) => [String(r.option_name), String(r.value)]));
}

export async function listTables(session: LakeSession): Promise<{ schema: string; name: string; files: number; bytes: number }[]> {
  const rows = await session.rows(
    `SELECT s.schema_name AS schema, i.table_name AS name, i.file_count AS files, i.file_size_bytes AS bytes
       FROM ${LAKE}.table_info() i
       JOIN ${metaTable(session.config.metadataSchema, 'ducklake_schema')} s ON s.schema_id = i.schema_id AND s.end_snapshot IS NULL
      ORDER BY 1, 2`,
  );
  return rows.map((r) => ({ schema: String(r.schema), name: String(r.name), files: Number(r.files), bytes: Number(r.bytes) }));
}

export async function summarizeLake(session: LakeSession): Promise<LakeSummary> {
  const options = await lakeOptions(session);
  const tables: TableSummary[] = [];
  for (const t of await listTables(session)) {
    const rows = Number(await session.value(`SELECT count(*) FROM ${tableRef(t.schema, t.name)}`));
    tables.push({ ...t, rows });
  }
  return {
    ducklakeVersion: options.version ?? 'unknown',
    dataPath: options.data_path ?? session.config.dataPath,
    encrypted: options.encrypted === 'true',
    snapshotId: await session.currentSnapshot(),
    tables,
  };
}

export interface TableState {
  schema: string;
  name: string;
  tableId: number;
  comment: string | null;
  columns: (ExistingColumn & { comment: string | null })[];
  partitioning: PartitionKey[];
  compression: string | null;
}

/** The table as the lake has it now, or undefined if there is no such table. */
export async function inspectTable(session: LakeSession, schema: string, name: string): Promise<TableState | undefined> {
  const found = await session.rows(
    `SELECT t.table_id, t.table_name, s.schema_name
       FROM ${metaTable(session.config.metadataSchema, 'ducklake_table')} t
       JOIN ${metaTable(session.config.metadataSchema, 'ducklake_schema')} s ON s.schema_id = t.schema_id AND s.end_snapshot IS NULL
      WHERE t.end_snapshot IS NULL AND lower(t.table_name) = lower($1) AND lower(s.schema_name) = lower($2)`,
    [name, schema],
  );
  const row = found[0];
  if (!row) return undefined;
  const tableId = Number(row.table_id);
  const realName = String(row.table_name);
  const realSchema = String(row.schema_name);
  const cols = await session.rows(
    `SELECT column_name, data_type, is_nullable, comment FROM duckdb_columns()
      WHERE database_name = '${LAKE}' AND schema_name = $1 AND table_name = $2 ORDER BY column_index`,
    [realSchema, realName],
  );
  const tableComment = await session.value<string | null>(
    `SELECT comment FROM duckdb_tables() WHERE database_name = '${LAKE}' AND schema_name = $1 AND table_name = $2`,
    [realSchema, realName],
  );
  const meta = (table: string) => metaTable(session.config.metadataSchema, table);
  const parts = await session.rows(
    `SELECT c.column_name, pc.transform
       FROM ${meta('ducklake_partition_info')} p
       JOIN ${meta('ducklake_partition_column')} pc ON pc.partition_id = p.partition_id AND pc.table_id = p.table_id
       JOIN ${meta('ducklake_column')} c ON c.table_id = p.table_id AND c.column_id = pc.column_id AND c.end_snapshot IS NULL
      WHERE p.table_id = $1 AND p.end_snapshot IS NULL
      ORDER BY pc.partition_key_index`,
    [tableId],
  );
  const compression = await session.value<string | null>(
    `SELECT value FROM ${LAKE}.options() WHERE option_name = 'parquet_compression' AND scope = 'TABLE' ` +
      `AND scope_entry = ${literal(`${realSchema}.${realName}`)}`,
  );
  return {
    schema: realSchema,
    name: realName,
    tableId,
    comment: tableComment ?? null,
    columns: cols.map((c) => ({
      name: String(c.column_name),
      type: parseColumnType(String(c.data_type)),
      nullable: Boolean(c.is_nullable),
      comment: (c.comment as string | null) ?? null,
    })),
    partitioning: parts.map((p) => {
      const transform = String(p.transform);
      return transform === 'identity'
        ? { column: String(p.column_name) }
        : { column: String(p.column_name), transform: transform as PartitionTransform };
    }),
    compression: compression ? String(compression).toUpperCase() : null,
  };
}
