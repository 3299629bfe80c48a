// A result column's DuckDB type as SQL, with JSON kept: DuckDB's JSON is a VARCHAR with the alias
// JSON, and the node API's toString() drops aliases, so a JSON column would read as VARCHAR (and the
// Postgres wire front would describe it as text, not json).
import { DuckDBTypeId, type DuckDBType } from '@duckdb/node-api';

export function duckTypeName(type: DuckDBType): string {
  if (type.alias?.toUpperCase() === 'JSON') return 'JSON';
  if (type.typeId === DuckDBTypeId.LIST) return `${duckTypeName(type.valueType)}[]`;
  if (type.typeId === DuckDBTypeId.ARRAY) return `${duckTypeName(type.valueType)}[${type.length}]`;
  return String(type);
}
