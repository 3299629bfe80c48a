// DuckDB result types as Postgres types: the OID a client sees in RowDescription, and each value
// (as the worker's JSON gives it) in Postgres's text or binary form. Parameters go the other way:
// a bound value becomes a typed SQL literal, never text pasted into the SQL unescaped.

export interface PgType {
  oid: number;
  size: number;
  name: string;
}

/** A pg_type row: oid, name, SQL spelling, length, category, array type's oid (0: none), element's oid (0: not an array). */
export type PgTypeRow = [oid: number, name: string, spelling: string, size: number, category: string, array: number, element: number];

/**
 * The built-in types as pg_type has them (name, oid, SQL spelling, length, category, array type's
 * oid): the one source for OIDs on the wire, casts and the mirrored pg_catalog.
 */
const BASE_TYPES = [
  ['bool', 16, 'boolean', 1, 'B', 1000],
  ['bytea', 17, 'bytea', -1, 'U', 1001],
  ['char', 18, '"char"', 1, 'S', 1002],
  ['name', 19, 'name', 64, 'S', 1003],
  ['int8', 20, 'bigint', 8, 'N', 1016],
  ['int2', 21, 'smallint', 2, 'N', 1005],
  ['int4', 23, 'integer', 4, 'N', 1007],
  ['text', 25, 'text', -1, 'S', 1009],
  ['oid', 26, 'oid', 4, 'N', 1028],
  ['json', 114, 'json', -1, 'U', 199],
  ['float4', 700, 'real', 4, 'N', 1021],
  ['float8', 701, 'double precision', 8, 'N', 1022],
  ['bpchar', 1042, 'character', -1, 'S', 1014],
  ['varchar', 1043, 'character varying', -1, 'S', 1015],
  ['date', 1082, 'date', 4, 'D', 1182],
  ['time', 1083, 'time without time zone', 8, 'D', 1183],
  ['timestamp', 1114, 'timestamp without time zone', 8, 'D', 1115],
  ['timestamptz', 1184, 'timestamp with time zone', 8, 'D', 1185],
  ['interval', 1186, 'interval', 16, 'T', 1187],
  ['timetz', 1266, 'time with time zone', 12, 'D', 1270],
  ['numeric', 1700, 'numeric', -1, 'N', 1231],
  ['uuid', 2950, 'uuid', 16, 'U', 2951],
  ['jsonb', 3802, 'jsonb', -1, 'U', 3807],
  ['unknown', 705, 'unknown', -2, 'X', 0],
] as const;
type TypeName = (typeof BASE_TYPES)[number][0];

/** The OIDs of the built-in types (pg_type.oid), by name. */
export const OID = Object.fromEntries(BASE_TYPES.map(([name, oid]) => [name, oid])) as Record<TypeName, number>;

/** Every built-in type's pg_type row, each array type after the base types. */
export const PG_TYPE_ROWS: PgTypeRow[] = [
  ...BASE_TYPES.map(([name, oid, spelling, size, category, array]): PgTypeRow => [oid, name, spelling, size, category, array, 0]),
  ...BASE_TYPES.filter(([, , , , , array]) => array !== 0).map(([name, oid, spelling, , , array]): PgTypeRow => [
    array,
    `_${name}`,
    `${spelling}[]`,
    -1,
    'A',
    0,
    oid,
  ]),
];

/** The types by name, as RowDescription describes them. */
export const PG = Object.fromEntries(BASE_TYPES.map(([name, oid, , size]) => [name, { oid, size, name }])) as Record<TypeName, PgType>;

/** Element OID → array OID, and back. */
const ARRAY_ROWS = PG_TYPE_ROWS.filter(([, , , , , , element]) => element !== 0);
const ARRAY_OF: Record<number, number> = Object.fromEntries(ARRAY_ROWS.map(([oid, , , , , , element]) => [element, oid]));
const ELEMENT_OF: Record<number, number> = Object.fromEntries(ARRAY_ROWS.map(([oid, , , , , , element]) => [oid, element]));

/** What a column of a DuckDB type (its SQL spelling) is on the wire. */
export interface Column {
  name: string;
  key: string;
  duck: string;
  type: PgType;
  element?: PgType;
}

export function pgType(duck: string): { type: PgType; element?: PgType } {
  const d = duck.trim().toUpperCase();
  const list = /^(.*)\[\d*\]$/.exec(d);
  if (list) {
    const element = pgType(list[1]!).type;
    const oid = ARRAY_OF[element.oid];
    return oid ? { type: { oid, size: -1, name: `_${element.name}` }, element } : { type: PG.text };
  }
  if (d === 'BOOLEAN') return { type: PG.bool };
  if (d === 'TINYINT' || d === 'SMALLINT' || d === 'UTINYINT') return { type: PG.int2 };
  if (d === 'INTEGER' || d === 'USMALLINT') return { type: PG.int4 };
  if (d === 'BIGINT' || d === 'UINTEGER') return { type: PG.int8 };
  if (d === 'HUGEINT' || d === 'UBIGINT' || d === 'UHUGEINT' || d === 'VARINT' || d === 'BIGNUM' || d.startsWith('DECIMAL'))
    return { type: PG.numeric };
  if (d === 'FLOAT') return { type: PG.float4 };
  if (d === 'DOUBLE') return { type: PG.float8 };
  if (d === 'BLOB') return { type: PG.bytea };
  if (d === 'DATE') return { type: PG.date };
  if (d === 'TIME' || d === 'TIME_NS') return { type: PG.time };
  if (d === 'TIME WITH TIME ZONE') return { type: PG.timetz };
  if (d === 'TIMESTAMP WITH TIME ZONE') return { type: PG.timestamptz };
  if (d.startsWith('TIMESTAMP')) return { type: PG.timestamp };
  if (d === 'INTERVAL') return { type: PG.interval };
  if (d === 'UUID') return { type: PG.uuid };
  if (d === 'JSON') return { type: PG.json };
  return { type: PG.text }; // VARCHAR, ENUM, STRUCT, MAP, UNION, BIT...: their text
}

export function column(name: string, key: string, duck: string): Column {
  return { name, key, duck, ...pgType(duck) };
}

/** A column when the worker did not say its type (the cold path): text. */
export const textColumn = (name: string): Column => ({ name, key: name, duck: 'VARCHAR', type: PG.text });

// ---------- text form ----------

function intervalText(v: { months: number; days: number; micros: string | number }): string {
  const parts: string[] = [];
  const years = Math.trunc(v.months / 12);
  const months = v.months % 12;
  if (years) parts.push(`${years} year${Math.abs(years) === 1 ? '' : 's'}`);
  if (months) parts.push(`${months} mon${Math.abs(months) === 1 ? '' : 's'}`);
  if (v.days) parts.push(`${v.days} day${Math.abs(v.days) === 1 ? '' : 's'}`);
  let micros = BigInt(v.micros);
  if (micros !== 0n || parts.length === 0) {
    const sign = micros < 0n ? '-' : '';
    if (micros < 0n) micros = -micros;
    const h = micros / 3_600_000_000n;
    const m = (micros / 60_000_000n) % 60n;
    const s = (micros / 1_000_000n) % 60n;
    const f = micros % 1_000_000n;
    const two = (n: bigint) => n.toString().padStart(2, '0');
    parts.push(`${sign}${two(h)}:${two(m)}:${two(s)}${f ? `.${f.toString().padStart(6, '0').replace(/0+$/, '')}` : ''}`);
  }
  return parts.join(' ');
}

/** DuckDB's blob text (printable bytes as themselves, others as \xHH) as bytes. */
export function blobBytes(s: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && s[i + 1] === 'x' && /^[0-9A-Fa-f]{2}$/.test(s.slice(i + 2, i + 4))) {
      out.push(parseInt(s.slice(i + 2, i + 4), 16));
      i += 3;
    } else out.push(s.charCodeAt(i) & 0xff);
  }
  return Buffer.from(out);
}

/** An element of a Postgres array literal: quoted when empty, NULL-like or holding a special character. */
const arrayElement = (s: string | null): string =>
  s === null ? 'NULL' : s === '' || /[{},"\\\s]/.test(s) || /^null$/i.test(s) ? `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"` : s;

function arrayElementText(v: unknown, element: PgType): string {
  return arrayElement(v === null || v === undefined ? null : scalarText(v, element));
}

function scalarText(v: unknown, type: PgType, element?: PgType): string {
  switch (type.oid) {
    case OID.bool:
      return v ? 't' : 'f';
    case OID.bytea:
      return `\\x${blobBytes(String(v)).toString('hex')}`;
    case OID.interval:
      return typeof v === 'object' ? intervalText(v as { months: number; days: number; micros: string }) : String(v);
    default:
      if (element) return `{${(v as unknown[]).map((e) => arrayElementText(e, element)).join(',')}}`;
      return typeof v === 'object' ? JSON.stringify(v) : String(v);
  }
}

/** A non-null value as Postgres text. */
export function textValue(v: unknown, c: Column): Buffer {
  return Buffer.from(scalarText(v, c.type, c.element), 'utf8');
}

// ---------- binary form ----------

const PG_EPOCH_DAYS = 10957; // 2000-01-01 in days since 1970-01-01
const PG_EPOCH_MICROS = 946_684_800_000_000n;

function parseTimestampMicros(s: string): bigint {
  if (/^infinity$/i.test(s)) return 0x7fffffffffffffffn;
  if (/^-infinity$/i.test(s)) return -0x8000000000000000n;
  const m = /^(\d{4,})-(\d\d)-(\d\d)(?:[ T](\d\d):(\d\d):(\d\d)(?:\.(\d+))?)?(?:([+-]\d\d)(?::?(\d\d))?)?/.exec(s);
  if (!m) throw new Error(`not a timestamp: ${s}`);
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4] ?? 0), Number(m[5] ?? 0), Number(m[6] ?? 0));
  let micros = BigInt(ms) * 1000n + BigInt((m[7] ?? '').padEnd(6, '0').slice(0, 6) || '0');
  if (m[8]) micros -= BigInt((Number(m[8]) * 60 + Math.sign(Number(m[8]) || 1) * Number(m[9] ?? 0)) * 60_000_000);
  return micros - PG_EPOCH_MICROS;
}

function timeMicros(s: string): bigint {
  const m = /^(\d\d):(\d\d):(\d\d)(?:\.(\d+))?/.exec(s);
  if (!m) throw new Error(`not a time: ${s}`);
  return (
    BigInt(Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3])) * 1_000_000n + BigInt((m[4] ?? '').padEnd(6, '0').slice(0, 6) || '0')
  );
}

/** A decimal string in Postgres's binary numeric form (base-10000 digits). */
export function numericBinary(s: string): Buffer {
  if (/^nan$/i.test(s)) return Buffer.from([0, 0, 0, 0, 0xc0, 0, 0, 0]);
  const m = /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(s.trim());
  if (!m) throw new Error(`not a number: ${s}`);
  const neg = m[1] === '-';
  const int = (m[2] ?? '').replace(/^0+/, '');
  const frac = m[3] ?? '';
  const dscale = frac.length;
  const intPadded = int.padStart(Math.ceil(int.length / 4) * 4, '0');
  const fracPadded = frac.padEnd(Math.ceil(frac.length / 4) * 4, '0');
  const digits = [...(intPadded.match(/\d{4}/g) ?? []), ...(fracPadded.match(/\d{4}/g) ?? [])].map(Number);
  let weight = intPadded.length / 4 - 1;
  while (digits.length && digits[0] === 0) {
    digits.shift();
    weight--;
  }
  while (digits.length && digits[digits.length - 1] === 0) digits.pop();
  if (!digits.length) weight = 0;
  const b = Buffer.alloc(8 + digits.length * 2);
  b.writeInt16BE(digits.length, 0);
  b.writeInt16BE(weight, 2);
  b.writeUInt16BE(neg && digits.length ? 0x4000 : 0, 4);
  b.writeInt16BE(dscale, 6);
  digits.forEach((d, i) => b.writeInt16BE(d, 8 + i * 2));
  return b;
}

function scalarBinary(v: unknown, type: PgType): Buffer {
  let b: Buffer;
  switch (type.oid) {
    case OID.bool:
      return Buffer.from([v ? 1 : 0]);
    case OID.int2:
      b = Buffer.alloc(2);
      b.writeInt16BE(Number(v));
      return b;
    case OID.int4:
      b = Buffer.alloc(4);
      b.writeInt32BE(Number(v));
      return b;
    case OID.int8:
      b = Buffer.alloc(8);
      b.writeBigInt64BE(BigInt(v as string));
      return b;
    case OID.float4:
      b = Buffer.alloc(4);
      b.writeFloatBE(Number(v));
      return b;
    case OID.float8:
      b = Buffer.alloc(8);
      b.writeDoubleBE(Number(v));
      return b;
    case OID.numeric:
      return numericBinary(String(v));
    case OID.bytea:
      return blobBytes(String(v));
    case OID.uuid:
      return Buffer.from(String(v).replace(/-/g, ''), 'hex');
    case OID.date: {
      b = Buffer.alloc(4);
      const s = String(v);
      if (/infinity/i.test(s)) b.writeInt32BE(s.startsWith('-') ? -0x80000000 : 0x7fffffff);
      else b.writeInt32BE(Number(parseTimestampMicros(s) / 86_400_000_000n));
      return b;
    }
    case OID.timestamp:
    case OID.timestamptz:
      b = Buffer.alloc(8);
      b.writeBigInt64BE(parseTimestampMicros(String(v)));
      return b;
    case OID.time:
      b = Buffer.alloc(8);
      b.writeBigInt64BE(timeMicros(String(v)));
      return b;
    case OID.interval: {
      const i = v as { months: number; days: number; micros: string };
      b = Buffer.alloc(16);
      b.writeBigInt64BE(BigInt(i.micros));
      b.writeInt32BE(i.days, 8);
      b.writeInt32BE(i.months, 12);
      return b;
    }
    default:
      return Buffer.from(typeof v === 'object' ? JSON.stringify(v) : String(v), 'utf8');
  }
}

/** A non-null value in Postgres's binary form (one-dimensional arrays of the scalar types too). */
export function binaryValue(v: unknown, c: Column): Buffer {
  if (!c.element) return scalarBinary(v, c.type);
  const items = v as unknown[];
  const parts = items.map((e) => (e === null || e === undefined ? null : scalarBinary(e, c.element!)));
  const head = Buffer.alloc(20);
  head.writeInt32BE(1, 0);
  head.writeInt32BE(parts.some((p) => p === null) ? 1 : 0, 4);
  head.writeInt32BE(c.element.oid, 8);
  head.writeInt32BE(items.length, 12);
  head.writeInt32BE(1, 16);
  const out: Buffer[] = [head];
  for (const p of parts) {
    const len = Buffer.alloc(4);
    len.writeInt32BE(p === null ? -1 : p.length);
    out.push(len);
    if (p) out.push(p);
  }
  return Buffer.concat(out);
}

// ---------- parameters ----------

/** A bound parameter as a SQL literal of its declared type; malformed values are refused (22P02). */
export class ParameterError extends Error {}

const quote = (s: string) => {
  if (s.includes('\u0000')) throw new ParameterError('a parameter may not contain a NUL character');
  return `'${s.replace(/'/g, "''")}'`;
};

const DUCK_NAME: Record<number, string> = {
  16: 'BOOLEAN',
  17: 'BLOB',
  20: 'BIGINT',
  21: 'SMALLINT',
  23: 'INTEGER',
  25: 'VARCHAR',
  114: 'JSON',
  3802: 'JSON',
  700: 'FLOAT',
  701: 'DOUBLE',
  1043: 'VARCHAR',
  1082: 'DATE',
  1083: 'TIME',
  1114: 'TIMESTAMP',
  1184: 'TIMESTAMPTZ',
  1186: 'INTERVAL',
  1700: 'DECIMAL(38,10)',
  2950: 'UUID',
};
const CAST_TO: Record<number, string> = {
  1082: 'DATE',
  1083: 'TIME',
  1114: 'TIMESTAMP',
  1184: 'TIMESTAMPTZ',
  1186: 'INTERVAL',
  2950: 'UUID',
  114: 'JSON',
  3802: 'JSON',
  1266: 'TIMETZ',
};

/** A parameter's binary value as text, for the types clients send in binary. */
export function decodeBinaryParameter(b: Buffer, oid: number): string {
  switch (oid) {
    case OID.bool:
      return b[0] ? 'true' : 'false';
    case OID.int2:
      return String(b.readInt16BE());
    case OID.int4:
    case OID.oid:
      return String(b.readInt32BE());
    case OID.int8:
      return String(b.readBigInt64BE());
    case OID.float4:
      return String(b.readFloatBE());
    case OID.float8:
      return String(b.readDoubleBE());
    case OID.bytea:
      return `\\x${b.toString('hex')}`;
    case OID.uuid: {
      const h = b.toString('hex');
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    }
    case OID.date:
      return new Date((b.readInt32BE() + PG_EPOCH_DAYS) * 86_400_000).toISOString().slice(0, 10);
    case OID.timestamp:
    case OID.timestamptz: {
      const micros = b.readBigInt64BE() + PG_EPOCH_MICROS;
      const iso = new Date(Number(micros / 1000n)).toISOString().replace('T', ' ').slice(0, 19);
      const frac = ((micros % 1_000_000n) + 1_000_000n) % 1_000_000n;
      return `${iso}.${frac.toString().padStart(6, '0')}${oid === OID.timestamptz ? '+00' : ''}`;
    }
    case OID.numeric: {
      const n = b.readInt16BE(0);
      const weight = b.readInt16BE(2);
      const sign = b.readUInt16BE(4);
      const dscale = b.readInt16BE(6);
      if (sign === 0xc000) return 'NaN';
      let int = '';
      let frac = '';
      for (let i = 0; i < n; i++) {
        const d = String(b.readInt16BE(8 + i * 2)).padStart(4, '0');
        if (i <= weight) int += d;
        else frac += d;
      }
      for (let i = n; i <= weight; i++) int += '0000';
      if (weight < -1) frac = '0000'.repeat(-weight - 1) + frac;
      int = int.replace(/^0+/, '') || '0';
      frac = frac.padEnd(dscale, '0').slice(0, dscale);
      return `${sign === 0x4000 ? '-' : ''}${int}${frac ? `.${frac}` : ''}`;
    }
    case OID.time: {
      const micros = b.readBigInt64BE();
      const two = (n: bigint) => n.toString().padStart(2, '0');
      const fraction = (micros % 1_000_000n).toString().padStart(6, '0');
      return `${two(micros / 3_600_000_000n)}:${two((micros / 60_000_000n) % 60n)}:${two((micros / 1_000_000n) % 60n)}.${fraction}`;
    }
    case OID.interval:
      return `${b.readInt32BE(12)} months ${b.readInt32BE(8)} days ${b.readBigInt64BE(0)} microseconds`;
    case 0:
    case OID.text:
    case OID.varchar:
    case OID.bpchar:
    case OID.json:
    case OID.unknown:
      return b.toString('utf8');
    case OID.jsonb:
      // jsonb's binary form: a version byte (1), then the JSON text.
      if (b[0] !== 1) throw new ParameterError(`unsupported jsonb binary version ${b[0]}`);
      return b.toString('utf8', 1);
    default:
      if (ELEMENT_OF[oid] !== undefined) return arrayText(decodeBinaryArray(b, ELEMENT_OF[oid]!));
      throw new ParameterError(`parameters of type OID ${oid} in binary format are not supported; send them as text`);
  }
}

/** A one-dimensional array's binary form (header, then each element's length and bytes) as element texts. */
function decodeBinaryArray(b: Buffer, element: number): (string | null)[] {
  if (b.length < 12) throw new ParameterError('malformed binary array parameter');
  const ndim = b.readInt32BE(0);
  if (ndim === 0) return [];
  if (ndim !== 1) throw new ParameterError('multi-dimensional array parameters are not supported');
  if (b.readInt32BE(8) !== element) throw new ParameterError("a binary array parameter's element type does not match its declared type");
  const n = b.readInt32BE(12);
  const out: (string | null)[] = [];
  let o = 20;
  for (let i = 0; i < n; i++) {
    const len = b.readInt32BE(o);
    o += 4;
    if (len < 0) out.push(null);
    else {
      out.push(decodeBinaryParameter(b.subarray(o, o + len), element));
      o += len;
    }
  }
  return out;
}

/** Element texts as a Postgres array literal ({a,"b c",NULL}), the form parseArray reads. */
function arrayText(items: (string | null)[]): string {
  return `{${items.map(arrayElement).join(',')}}`;
}

/** The OID of a type named in a cast ($1::text[], CAST($1 AS date)), or undefined for names not mapped. */
export function oidOfTypeName(name: string): number | undefined {
  const m = /^(.*?)\s*(\[\s*\d*\s*\])?$/.exec(name.trim().toLowerCase().replace(/\s+/g, ' '));
  const base = m?.[1] ?? '';
  const oid = TYPE_NAMES[base.replace(/^pg_catalog\./, '')];
  if (oid === undefined) return undefined;
  return m?.[2] ? ARRAY_OF[oid] : oid;
}
const TYPE_NAMES: Record<string, number> = {
  bool: OID.bool,
  boolean: OID.bool,
  bytea: OID.bytea,
  blob: OID.bytea,
  int8: OID.int8,
  bigint: OID.int8,
  int2: OID.int2,
  smallint: OID.int2,
  int4: OID.int4,
  int: OID.int4,
  integer: OID.int4,
  text: OID.text,
  json: OID.json,
  jsonb: OID.jsonb,
  float4: OID.float4,
  real: OID.float4,
  float8: OID.float8,
  'double precision': OID.float8,
  double: OID.float8,
  varchar: OID.varchar,
  'character varying': OID.varchar,
  date: OID.date,
  time: OID.time,
  'time without time zone': OID.time,
  timestamp: OID.timestamp,
  'timestamp without time zone': OID.timestamp,
  timestamptz: OID.timestamptz,
  'timestamp with time zone': OID.timestamptz,
  interval: OID.interval,
  numeric: OID.numeric,
  decimal: OID.numeric,
  uuid: OID.uuid,
};

/** A parameter (text form) as a SQL literal for its declared OID (0: let DuckDB decide from a string literal). */
export function literal(text: string | null, oid: number): string {
  if (text === null) return 'NULL';
  switch (oid) {
    case OID.bool:
      if (/^\s*(t|true|y|yes|on|1)\s*$/i.test(text)) return 'TRUE';
      if (/^\s*(f|false|n|no|off|0)\s*$/i.test(text)) return 'FALSE';
      throw new ParameterError(`invalid input syntax for type boolean: ${JSON.stringify(text)}`);
    case OID.int8:
    case OID.int2:
    case OID.int4:
    case OID.oid:
      if (!/^\s*[+-]?\d+\s*$/.test(text)) throw new ParameterError(`invalid input syntax for type integer: ${JSON.stringify(text)}`);
      return `(${text.trim()})::${oid === OID.int2 ? 'SMALLINT' : oid === OID.int4 ? 'INTEGER' : 'BIGINT'}`;
    case OID.float4:
    case OID.float8:
      if (!/^\s*([+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?Infinity|NaN)\s*$/i.test(text))
        throw new ParameterError(`invalid input syntax for type double precision: ${JSON.stringify(text)}`);
      return `CAST(${quote(text.trim())} AS ${oid === OID.float4 ? 'FLOAT' : 'DOUBLE'})`;
    case OID.numeric:
      if (/^\s*NaN\s*$/i.test(text)) return "CAST('NaN' AS DOUBLE)";
      if (!/^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/.test(text))
        throw new ParameterError(`invalid input syntax for type numeric: ${JSON.stringify(text)}`);
      return `(${text.trim()})`;
    case OID.bytea: {
      const hex = /^\\x([0-9a-fA-F]*)$/.exec(text);
      const bytes = hex ? Buffer.from(hex[1]!, 'hex') : Buffer.from(text, 'latin1');
      return `CAST('${[...bytes].map((x) => `\\x${x.toString(16).padStart(2, '0')}`).join('')}' AS BLOB)`;
    }
    default: {
      const element = ELEMENT_OF[oid];
      if (element !== undefined) {
        // Postgres's {a,"b c"} is DuckDB's [a, "b c"]: one-dimensional arrays of the element type.
        return `CAST([${parseArray(text)
          .map((e) => literal(e, element))
          .join(', ')}] AS ${DUCK_NAME[element] ?? 'VARCHAR'}[])`;
      }
      const cast = CAST_TO[oid];
      return cast ? `CAST(${quote(text)} AS ${cast})` : quote(text);
    }
  }
}

/** A one-dimensional Postgres array literal's elements ({1,NULL,"b c"}), NULL as null. */
export function parseArray(text: string): (string | null)[] {
  const t = text.trim();
  if (!t.startsWith('{') || !t.endsWith('}')) throw new ParameterError(`malformed array literal: ${JSON.stringify(text)}`);
  const out: (string | null)[] = [];
  let i = 1;
  const end = t.length - 1;
  if (t.slice(1, end).trim() === '') return out;
  while (i <= end) {
    while (t[i] === ' ') i++;
    let value = '';
    let quoted = false;
    if (t[i] === '"') {
      quoted = true;
      for (i++; i < end && t[i] !== '"'; i++) value += t[i] === '\\' ? t[++i] : t[i];
      i++;
    } else {
      for (; i < end && t[i] !== ','; i++) {
        if (t[i] === '{') throw new ParameterError('multi-dimensional array parameters are not supported');
        value += t[i];
      }
      value = value.trim();
    }
    out.push(!quoted && /^null$/i.test(value) ? null : value);
    while (t[i] === ' ') i++;
    i++; // the comma (or the closing brace)
  }
  return out;
}
