// A parser for DuckDB's column type grammar, limited to the types a DuckLake table can store.
// Admission and the runner both use it: a type is accepted only if it parses, and the DDL is
// written from the parsed tree (formatColumnType), never from the user's text.

export type ColumnType =
  | { kind: 'scalar'; name: ScalarName }
  | { kind: 'decimal'; precision: number; scale: number }
  | { kind: 'list'; element: ColumnType }
  | { kind: 'struct'; fields: { name: string; type: ColumnType }[] }
  | { kind: 'map'; key: ColumnType; value: ColumnType };

export type ScalarName =
  | 'BOOLEAN'
  | 'TINYINT'
  | 'SMALLINT'
  | 'INTEGER'
  | 'BIGINT'
  | 'HUGEINT'
  | 'UTINYINT'
  | 'USMALLINT'
  | 'UINTEGER'
  | 'UBIGINT'
  | 'UHUGEINT'
  | 'FLOAT'
  | 'DOUBLE'
  | 'VARCHAR'
  | 'BLOB'
  | 'DATE'
  | 'TIME'
  | 'TIMETZ'
  | 'TIMESTAMP'
  | 'TIMESTAMPTZ'
  | 'TIMESTAMP_S'
  | 'TIMESTAMP_MS'
  | 'TIMESTAMP_NS'
  | 'INTERVAL'
  | 'UUID'
  | 'JSON'
  | 'VARIANT'
  | 'GEOMETRY';

export class ColumnTypeError extends Error {}

// DuckDB's aliases (see `duckdb_types()`), mapped to the name DuckDB itself reports.
const SCALARS: Record<string, ScalarName> = {
  BOOLEAN: 'BOOLEAN',
  BOOL: 'BOOLEAN',
  LOGICAL: 'BOOLEAN',
  TINYINT: 'TINYINT',
  INT1: 'TINYINT',
  SMALLINT: 'SMALLINT',
  INT2: 'SMALLINT',
  SHORT: 'SMALLINT',
  INTEGER: 'INTEGER',
  INT: 'INTEGER',
  INT4: 'INTEGER',
  SIGNED: 'INTEGER',
  BIGINT: 'BIGINT',
  INT8: 'BIGINT',
  LONG: 'BIGINT',
  HUGEINT: 'HUGEINT',
  INT128: 'HUGEINT',
  UTINYINT: 'UTINYINT',
  USMALLINT: 'USMALLINT',
  UINTEGER: 'UINTEGER',
  UBIGINT: 'UBIGINT',
  UHUGEINT: 'UHUGEINT',
  FLOAT: 'FLOAT',
  FLOAT4: 'FLOAT',
  REAL: 'FLOAT',
  DOUBLE: 'DOUBLE',
  FLOAT8: 'DOUBLE',
  VARCHAR: 'VARCHAR',
  STRING: 'VARCHAR',
  TEXT: 'VARCHAR',
  CHAR: 'VARCHAR',
  BPCHAR: 'VARCHAR',
  NVARCHAR: 'VARCHAR',
  BLOB: 'BLOB',
  BYTEA: 'BLOB',
  BINARY: 'BLOB',
  VARBINARY: 'BLOB',
  DATE: 'DATE',
  TIME: 'TIME',
  TIMETZ: 'TIMETZ',
  TIMESTAMP: 'TIMESTAMP',
  DATETIME: 'TIMESTAMP',
  TIMESTAMPTZ: 'TIMESTAMPTZ',
  TIMESTAMP_S: 'TIMESTAMP_S',
  TIMESTAMP_MS: 'TIMESTAMP_MS',
  TIMESTAMP_NS: 'TIMESTAMP_NS',
  TIMESTAMP_US: 'TIMESTAMP',
  INTERVAL: 'INTERVAL',
  UUID: 'UUID',
  JSON: 'JSON',
  VARIANT: 'VARIANT',
  GEOMETRY: 'GEOMETRY',
};

// Types DuckDB knows but DuckLake cannot store; named so the message can say why.
const UNSUPPORTED = new Set(['UNION', 'ENUM', 'BIT', 'BITSTRING', 'VARINT', 'BIGNUM', 'NULL', 'ANY']);

type Token = { text: string; pos: number };

function tokenize(input: string): Token[] {
  const tokens: Token[] = [];
  // Single-quoted strings are tokens only so that ENUM('a') reaches the parser and gets a clear refusal.
  const re = /\s*(?:([A-Za-z_][A-Za-z0-9_]*)|("(?:[^"]|"")*"|'(?:[^']|'')*')|(\d+)|([()[\],]))/y;
  let pos = 0;
  while (pos < input.length) {
    if (/^\s*$/.test(input.slice(pos))) break;
    re.lastIndex = pos;
    const m = re.exec(input);
    if (!m) {
      const at = input.length - input.slice(pos).trimStart().length;
      throw new ColumnTypeError(`unexpected character ${JSON.stringify(input[at])} at position ${at + 1}`);
    }
    const text = m[1] ?? m[2] ?? m[3] ?? m[4] ?? '';
    tokens.push({ text, pos: m.index + m[0].length - text.length });
    pos = re.lastIndex;
  }
  return tokens;
}

class Parser {
  private i = 0;
  constructor(private readonly tokens: Token[]) {}

  parseAll(): ColumnType {
    const t = this.parseType();
    const rest = this.peek();
    if (rest) throw new ColumnTypeError(`unexpected ${JSON.stringify(rest.text)} at position ${rest.pos + 1}`);
    return t;
  }

  private peek(): Token | undefined {
    return this.tokens[this.i];
  }
  private upper(): string {
    return this.peek()?.text.toUpperCase() ?? '';
  }
  private next(): Token {
    const t = this.tokens[this.i++];
    if (!t) throw new ColumnTypeError('type ends too early');
    return t;
  }
  private expect(text: string): void {
    const t = this.next();
    if (t.text.toUpperCase() !== text)
      throw new ColumnTypeError(`expected ${JSON.stringify(text)} at position ${t.pos + 1}, found ${JSON.stringify(t.text)}`);
  }
  private accept(text: string): boolean {
    if (this.upper() !== text) return false;
    this.i++;
    return true;
  }
  private integer(what: string): number {
    const t = this.next();
    if (!/^\d+$/.test(t.text)) throw new ColumnTypeError(`${what} must be a whole number, found ${JSON.stringify(t.text)}`);
    return Number(t.text);
  }

  private parseType(): ColumnType {
    let type = this.parseBase();
    while (this.accept('[')) {
      if (this.peek() && /^\d+$/.test(this.peek()!.text)) {
        throw new ColumnTypeError('fixed-size arrays (T[n]) cannot be stored in DuckLake; use a list (T[])');
      }
      this.expect(']');
      type = { kind: 'list', element: type };
    }
    return type;
  }

  private parseBase(): ColumnType {
    const tok = this.next();
    const name = tok.text.toUpperCase();
    if (!/^[A-Z_]/.test(name))
      throw new ColumnTypeError(`expected a type name at position ${tok.pos + 1}, found ${JSON.stringify(tok.text)}`);
    if (UNSUPPORTED.has(name)) throw new ColumnTypeError(`${name} cannot be stored in a DuckLake table`);
    switch (name) {
      case 'DECIMAL':
      case 'NUMERIC': {
        if (!this.accept('(')) return { kind: 'decimal', precision: 18, scale: 3 };
        const precision = this.integer('DECIMAL precision');
        const scale = this.accept(',') ? this.integer('DECIMAL scale') : 0;
        this.expect(')');
        if (precision < 1 || precision > 38) throw new ColumnTypeError(`DECIMAL precision must be between 1 and 38, got ${precision}`);
        if (scale > precision) throw new ColumnTypeError(`DECIMAL scale (${scale}) must not exceed its precision (${precision})`);
        return { kind: 'decimal', precision, scale };
      }
      case 'LIST': {
        this.expect('(');
        const element = this.parseType();
        this.expect(')');
        return { kind: 'list', element };
      }
      case 'MAP': {
        this.expect('(');
        const key = this.parseType();
        this.expect(',');
        const value = this.parseType();
        this.expect(')');
        return { kind: 'map', key, value };
      }
      case 'STRUCT':
      case 'ROW': {
        this.expect('(');
        const fields: { name: string; type: ColumnType }[] = [];
        do {
          const f = this.next();
          const fieldName = f.text.startsWith('"') ? f.text.slice(1, -1).replace(/""/g, '"') : f.text;
          if (!/^[A-Za-z_"]/.test(f.text)) throw new ColumnTypeError(`expected a STRUCT field name at position ${f.pos + 1}`);
          if (fields.some((x) => x.name.toLowerCase() === fieldName.toLowerCase()))
            throw new ColumnTypeError(`STRUCT field ${JSON.stringify(fieldName)} appears twice`);
          fields.push({ name: fieldName, type: this.parseType() });
        } while (this.accept(','));
        this.expect(')');
        return { kind: 'struct', fields };
      }
      case 'DOUBLE':
        this.accept('PRECISION');
        return { kind: 'scalar', name: 'DOUBLE' };
      case 'CHARACTER':
        this.accept('VARYING');
        this.lengthSuffix();
        return { kind: 'scalar', name: 'VARCHAR' };
      case 'TIMESTAMP':
      case 'TIME': {
        if (name === 'TIMESTAMP' && this.accept('(')) {
          this.integer('TIMESTAMP precision');
          this.expect(')');
        }
        if (this.accept('WITH')) {
          this.expect('TIME');
          this.expect('ZONE');
          return { kind: 'scalar', name: name === 'TIME' ? 'TIMETZ' : 'TIMESTAMPTZ' };
        }
        if (this.accept('WITHOUT')) {
          this.expect('TIME');
          this.expect('ZONE');
        }
        return { kind: 'scalar', name };
      }
    }
    const scalar = SCALARS[name];
    if (!scalar) throw new ColumnTypeError(`unknown type ${JSON.stringify(tok.text)}`);
    if (scalar === 'VARCHAR') this.lengthSuffix();
    return { kind: 'scalar', name: scalar };
  }

  // VARCHAR(n): DuckDB accepts and ignores the length, so we do too.
  private lengthSuffix(): void {
    if (this.accept('(')) {
      this.integer('VARCHAR length');
      this.expect(')');
    }
  }
}

export function parseColumnType(text: string): ColumnType {
  if (typeof text !== 'string' || text.trim() === '') throw new ColumnTypeError('type must be a non-empty string');
  if (text.length > 1000) throw new ColumnTypeError('type is longer than 1000 characters');
  return new Parser(tokenize(text)).parseAll();
}

/** The canonical DuckDB spelling; the only form that reaches SQL. */
export function formatColumnType(t: ColumnType): string {
  switch (t.kind) {
    case 'scalar':
      return t.name;
    case 'decimal':
      return `DECIMAL(${t.precision},${t.scale})`;
    case 'list':
      return `${formatColumnType(t.element)}[]`;
    case 'map':
      return `MAP(${formatColumnType(t.key)}, ${formatColumnType(t.value)})`;
    case 'struct':
      return `STRUCT(${t.fields.map((f) => `"${f.name.replace(/"/g, '""')}" ${formatColumnType(f.type)}`).join(', ')})`;
  }
}

export function sameColumnType(a: ColumnType, b: ColumnType): boolean {
  return formatColumnType(a) === formatColumnType(b);
}

// Bits of exact integer range, for the integer and floating widenings below.
const INTEGER_BITS: Partial<Record<ScalarName, { bits: number; signed: boolean }>> = {
  TINYINT: { bits: 8, signed: true },
  SMALLINT: { bits: 16, signed: true },
  INTEGER: { bits: 32, signed: true },
  BIGINT: { bits: 64, signed: true },
  HUGEINT: { bits: 128, signed: true },
  UTINYINT: { bits: 8, signed: false },
  USMALLINT: { bits: 16, signed: false },
  UINTEGER: { bits: 32, signed: false },
  UBIGINT: { bits: 64, signed: false },
  UHUGEINT: { bits: 128, signed: false },
};
const FLOAT_MANTISSA: Partial<Record<ScalarName, number>> = { FLOAT: 24, DOUBLE: 53 };

/**
 * True when every value of `from` is exactly representable in `to`, and DuckLake can make the change
 * in place (it never rewrites files; old files are read through the new type).
 */
export function isLosslessWidening(from: ColumnType, to: ColumnType): boolean {
  if (from.kind === 'list' && to.kind === 'list')
    return sameColumnType(from.element, to.element) || isLosslessWidening(from.element, to.element);
  if (from.kind === 'decimal' && to.kind === 'decimal') {
    return to.scale === from.scale && to.precision > from.precision;
  }
  if (from.kind !== 'scalar' || to.kind !== 'scalar') return false;
  if (from.name === 'DATE' && to.name === 'TIMESTAMP') return true;
  const a = INTEGER_BITS[from.name];
  const b = INTEGER_BITS[to.name];
  if (a && b) {
    if (a.signed === b.signed) return b.bits > a.bits;
    return !a.signed && b.signed && b.bits > a.bits; // unsigned fits a strictly wider signed type
  }
  const mantissa = FLOAT_MANTISSA[to.name];
  if (a && mantissa) return (a.signed ? a.bits - 1 : a.bits) <= mantissa;
  if (from.name === 'FLOAT' && to.name === 'DOUBLE') return true;
  return false;
}
