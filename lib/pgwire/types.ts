// DuckDB result types as Postgres types: the OID a client sees in RowDescription, and each value
// (as the worker's JSON gives it) in Postgres's text or binary form. Parameters go the other way:
// a bound value becomes a typed SQL literal, never text pasted into the SQL unescaped.

export interface PgType {
  oid: number;
  size: number;
  name: string;
}

const T = (oid: number, size: number, name: string): PgType => ({ oid, size, name });
export const PG = {
  bool: T(16, 1, 'bool'),
  bytea: T(17, -1, 'bytea'),
  int8: T(20, 8, 'int8'),
  int2: T(21, 2, 'int2'),
  int4: T(23, 4, 'int4'),
  text: T(25, -1, 'text'),
  oid: T(26, 4, 'oid'),
  json: T(114, -1, 'json'),
  float4: T(700, 4, 'float4'),
  float8: T(701, 8, 'float8'),
  varchar: T(1043, -1, 'varchar'),
  bpchar: T(1042, -1, 'bpchar'),
  date: T(1082, 4, 'date'),
  time: T(1083, 8, 'time'),
  timestamp: T(1114, 8, 'timestamp'),
  timestamptz: T(1184, 8, 'timestamptz'),
  interval: T(1186, 16, 'interval'),
  timetz: T(1266, 12, 'timetz'),
  numeric: T(1700, -1, 'numeric'),
  uuid: T(2950, 16, 'uuid'),
  unknown: T(705, -2, 'unknown'),
} as const;

/** Element OID → array OID. */
const ARRAY_OF: Record<number, number> = {
  16: 1000,
  17: 1001,
  20: 1016,
  21: 1005,
  23: 1007,
  25: 1009,
  114: 199,
  3802: 3807,
  700: 1021,
  701: 1022,
  1043: 1015,
  1082: 1182,
  1083: 1183,
  1114: 1115,
  1184: 1185,
  1186: 1187,
  1266: 1270,
  1700: 1231,
  2950: 2951,
};
const ELEMENT_OF: Record<number, number> = Object.fromEntries(Object.entries(ARRAY_OF).map(([e, a]) => [a, Number(e)]));

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
    return oid ? { type: T(oid, -1, `_${element.name}`), element } : { type: PG.text };
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
    case 16:
      return v ? 't' : 'f';
    case 17:
      return `\\x${blobBytes(String(v)).toString('hex')}`;
    case 1186:
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
    case 16:
      return Buffer.from([v ? 1 : 0]);
    case 21:
      b = Buffer.alloc(2);
      b.writeInt16BE(Number(v));
      return b;
    case 23:
      b = Buffer.alloc(4);
      b.writeInt32BE(Number(v));
      return b;
    case 20:
      b = Buffer.alloc(8);
      b.writeBigInt64BE(BigInt(v as string));
      return b;
    case 700:
      b = Buffer.alloc(4);
      b.writeFloatBE(Number(v));
      return b;
    case 701:
      b = Buffer.alloc(8);
      b.writeDoubleBE(Number(v));
      return b;
    case 1700:
      return numericBinary(String(v));
    case 17:
      return blobBytes(String(v));
    case 2950:
      return Buffer.from(String(v).replace(/-/g, ''), 'hex');
    case 1082: {
      b = Buffer.alloc(4);
      const s = String(v);
      if (/infinity/i.test(s)) b.writeInt32BE(s.startsWith('-') ? -0x80000000 : 0x7fffffff);
      else b.writeInt32BE(Number(parseTimestampMicros(s) / 86_400_000_000n));
      return b;
    }
    case 1114:
    case 1184:
      b = Buffer.alloc(8);
      b.writeBigInt64BE(parseTimestampMicros(String(v)));
      return b;
    case 1083:
      b = Buffer.alloc(8);
      b.writeBigInt64BE(timeMicros(String(v)));
      return b;
    case 1186: {
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
    case 16:
      return b[0] ? 'true' : 'false';
    case 21:
      return String(b.readInt16BE());
    case 23:
    case 26:
      return String(b.readInt32BE());
    case 20:
      return String(b.readBigInt64BE());
    case 700:
      return String(b.readFloatBE());
    case 701:
      return String(b.readDoubleBE());
    case 17:
      return `\\x${b.toString('hex')}`;
    case 2950: {
      const h = b.toString('hex');
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    }
    case 1082:
      return new Date((b.readInt32BE() + PG_EPOCH_DAYS) * 86_400_000).toISOString().slice(0, 10);
    case 1114:
    case 1184: {
      const micros = b.readBigInt64BE() + PG_EPOCH_MICROS;
      const iso = new Date(Number(micros / 1000n)).toISOString().replace('T', ' ').slice(0, 19);
      const frac = ((micros % 1_000_000n) + 1_000_000n) % 1_000_000n;
      return `${iso}.${frac.toString().padStart(6, '0')}${oid === 1184 ? '+00' : ''}`;
    }
    case 1700: {
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
    case 1083: {
      const micros = b.readBigInt64BE();
      const two = (n: bigint) => n.toString().padStart(2, '0');
      const fraction = (micros % 1_000_000n).toString().padStart(6, '0');
      return `${two(micros / 3_600_000_000n)}:${two((micros / 60_000_000n) % 60n)}:${two((micros / 1_000_000n) % 60n)}.${fraction}`;
    }
    case 1186:
      return `${b.readInt32BE(12)} months ${b.readInt32BE(8)} days ${b.readBigInt64BE(0)} microseconds`;
    case 0:
    case 25:
    case 1043:
    case 1042:
    case 114:
    case 705:
      return b.toString('utf8');
    case 3802:
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
  bool: 16,
  boolean: 16,
  bytea: 17,
  blob: 17,
  int8: 20,
  bigint: 20,
  int2: 21,
  smallint: 21,
  int4: 23,
  int: 23,
  integer: 23,
  text: 25,
  json: 114,
  jsonb: 3802,
  float4: 700,
  real: 700,
  float8: 701,
  'double precision': 701,
  double: 701,
  varchar: 1043,
  'character varying': 1043,
  date: 1082,
  time: 1083,
  'time without time zone': 1083,
  timestamp: 1114,
  'timestamp without time zone': 1114,
  timestamptz: 1184,
  'timestamp with time zone': 1184,
  interval: 1186,
  numeric: 1700,
  decimal: 1700,
  uuid: 2950,
};

/** A parameter (text form) as a SQL literal for its declared OID (0: let DuckDB decide from a string literal). */
export function literal(text: string | null, oid: number): string {
  if (text === null) return 'NULL';
  switch (oid) {
    case 16:
      if (/^\s*(t|true|y|yes|on|1)\s*$/i.test(text)) return 'TRUE';
      if (/^\s*(f|false|n|no|off|0)\s*$/i.test(text)) return 'FALSE';
      throw new ParameterError(`invalid input syntax for type boolean: ${JSON.stringify(text)}`);
    case 20:
    case 21:
    case 23:
    case 26:
      if (!/^\s*[+-]?\d+\s*$/.test(text)) throw new ParameterError(`invalid input syntax for type integer: ${JSON.stringify(text)}`);
      return `(${text.trim()})::${oid === 21 ? 'SMALLINT' : oid === 23 ? 'INTEGER' : 'BIGINT'}`;
    case 700:
    case 701:
      if (!/^\s*([+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?Infinity|NaN)\s*$/i.test(text))
        throw new ParameterError(`invalid input syntax for type double precision: ${JSON.stringify(text)}`);
      return `CAST(${quote(text.trim())} AS ${oid === 700 ? 'FLOAT' : 'DOUBLE'})`;
    case 1700:
      if (/^\s*NaN\s*$/i.test(text)) return "CAST('NaN' AS DOUBLE)";
      if (!/^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/.test(text))
        throw new ParameterError(`invalid input syntax for type numeric: ${JSON.stringify(text)}`);
      return `(${text.trim()})`;
    case 17: {
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
