// Result serialisation shared by the query command and the worker: rows converted one at a time,
// each row's size known before its values are converted, and CSV lines.
import {
  DuckDBArrayVector,
  DuckDBBlobVector,
  DuckDBListVector,
  DuckDBMapVector,
  DuckDBStructVector,
  DuckDBUnionVector,
  DuckDBVarCharVector,
  JsonDuckDBValueConverter,
  type DuckDBDataChunk,
  type DuckDBResult,
  type DuckDBVector,
  type Json,
} from '@duckdb/node-api';

/** One RFC 4180 CSV line (with CRLF-free "\n" ending); nested values are written as JSON. */
export function csvLine(values: unknown[]): string {
  return (
    values
      .map((v) => {
        if (v === null || v === undefined) return '';
        const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
        return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
      })
      .join(',') + '\n'
  );
}

// The vectors' raw views are private in @duckdb/node-api's types but stable: a string_t is 16
// bytes whose first 4 are the length, so a value's size is known without decoding it.
interface Raw {
  dataView: DataView;
  validity: { itemValid(i: number): boolean };
  childData: DuckDBVector;
  listVector: DuckDBListVector;
  structVector: DuckDBStructVector;
}
const raw = (v: DuckDBVector) => v as unknown as Raw;
/** A fixed-width value (number, date, UUID, ...) as JSON: at least one byte. */
const FIXED = 1;

/**
 * A lower bound on the bytes of value `i` of vector `v` as JSON, read from DuckDB's memory
 * without converting it; counting stops once past `limit`. Strings count their UTF-8 bytes plus
 * quotes, so a value above the limit is refused before it is ever decoded into the JS heap.
 */
export function valueBytes(v: DuckDBVector, i: number, limit: number): number {
  if (v instanceof DuckDBVarCharVector || v instanceof DuckDBBlobVector) {
    const r = raw(v);
    return r.validity.itemValid(i) ? r.dataView.getUint32(i * 16, true) + 2 : 4;
  }
  if (v instanceof DuckDBListVector) {
    if (!raw(v).validity.itemValid(i)) return 4;
    const child = v.childVector;
    const from = v.getEntryOffset(i);
    const to = from + v.getEntryLength(i);
    let total = 2;
    for (let k = from; k < to && total <= limit; k++) total += valueBytes(child, k, limit - total) + 1;
    return total;
  }
  if (v instanceof DuckDBStructVector) {
    if (!v.isItemValid(i)) return 4;
    let total = 2;
    const entries = v.type.entryNames;
    for (let e = 0; e < entries.length && total <= limit; e++)
      total += entries[e]!.length + 4 + valueBytes(v.entryVectorAt(e), i, limit - total);
    return total;
  }
  if (v instanceof DuckDBMapVector) return valueBytes(raw(v).listVector, i, limit);
  if (v instanceof DuckDBUnionVector) return valueBytes(raw(v).structVector, i, limit);
  if (v instanceof DuckDBArrayVector) {
    if (!raw(v).validity.itemValid(i)) return 4;
    const child = raw(v).childData;
    const n = v.type.length;
    let total = 2;
    for (let k = i * n; k < (i + 1) * n && total <= limit; k++) total += valueBytes(child, k, limit - total) + 1;
    return total;
  }
  return FIXED;
}

/**
 * One chunk of a result (up to 2048 rows), read row by row: a row's size as JSON (a lower bound,
 * from DuckDB's memory, counted up to `limit`) is known before any of its values is converted.
 */
export interface RowChunk {
  rowCount: number;
  bytes(row: number, limit: number): number;
  /** The row as an object keyed by (deduplicated) column name. */
  values(row: number): Record<string, Json>;
  /** The row's values in column order (for CSV: object key order puts numeric names first). */
  cells(row: number): Json[];
}

const VARIABLE = [
  DuckDBVarCharVector,
  DuckDBBlobVector,
  DuckDBListVector,
  DuckDBStructVector,
  DuckDBMapVector,
  DuckDBUnionVector,
  DuckDBArrayVector,
];

/**
 * The chunks of a streamed result, as JSON-safe values (BIGINT and DECIMAL as strings, as
 * getRowObjectsJson gives them) converted one row at a time on demand: only DuckDB holds the
 * chunk, so a query returning a few huge values never has them all in the JS heap at once.
 */
export async function* resultChunks(result: DuckDBResult): AsyncGenerator<RowChunk> {
  const names = result.deduplicatedColumnNames();
  const types = result.columnTypes();
  for (;;) {
    const chunk: DuckDBDataChunk | null = await result.fetchChunk();
    if (!chunk || chunk.rowCount === 0) return;
    const vectors = names.map((_, c) => chunk.getColumnVector(c));
    // Fixed-width columns need no measuring: only strings, blobs and nested values vary.
    const measured = vectors.filter((v) => VARIABLE.some((k) => v instanceof k));
    const fixed = (vectors.length - measured.length) * FIXED;
    yield {
      rowCount: chunk.rowCount,
      bytes: (i, limit) => {
        let bytes = fixed;
        for (let m = 0; m < measured.length && bytes <= limit; m++) bytes += valueBytes(measured[m]!, i, limit - bytes);
        return bytes;
      },
      values: (i) => {
        const row: Record<string, Json> = {};
        for (let c = 0; c < vectors.length; c++)
          row[names[c]!] = JsonDuckDBValueConverter(vectors[c]!.getItem(i), types[c]!, JsonDuckDBValueConverter);
        return row;
      },
      cells: (i) => vectors.map((v, c) => JsonDuckDBValueConverter(v.getItem(i), types[c]!, JsonDuckDBValueConverter)),
    };
  }
}
