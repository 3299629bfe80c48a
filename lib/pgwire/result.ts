// A routed answer read as Postgres rows: the columns (names and DuckDB types from the worker's
// x-featherman-columns header, or the JSON answer's names as text) and the rows one at a time from
// the streamed JSON answer, so a large result is never held whole. Errors carry a SQLSTATE.
import { StringDecoder } from 'node:string_decoder';
import type { Readable } from 'node:stream';
import { column, textColumn, type Column } from './types.js';

export class PgError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly severity: 'ERROR' | 'FATAL' = 'ERROR',
  ) {
    super(message);
  }
}

const ERROR_KIND = new RegExp(
  '(Parser|Catalog|Binder|Conversion|Constraint|Invalid Input|Out of Range|Not implemented|Invalid type|' +
    'Serialization|Dependency|Permission|Syntax) Error',
  'i',
);

/** SQLSTATE for an answer's HTTP status and message (DuckDB's error kinds, our refusals, limits). */
export function sqlstate(status: number, message: string): string {
  if (status === 403) return '42501';
  if (status === 429) return '53300';
  if (status === 504 || /deadline/.test(message)) return '57014';
  if (status === 499) return '57014';
  if (status === 503) return '57P03';
  if (status === 404) return '3D000';
  const m = ERROR_KIND.exec(message);
  switch (m?.[1]?.toLowerCase()) {
    case 'parser':
    case 'syntax':
      return '42601';
    case 'catalog':
      if (/function/i.test(message)) return '42883';
      if (/column/i.test(message)) return '42703';
      if (/schema/i.test(message)) return '3F000';
      return '42P01';
    case 'binder':
      if (/column/i.test(message)) return '42703';
      if (/function/i.test(message)) return '42883';
      if (/table/i.test(message)) return '42P01';
      return '42804';
    case 'conversion':
    case 'invalid type':
      return '22P02';
    case 'constraint':
      return /unique|primary key|duplicate/i.test(message)
        ? '23505'
        : /not null/i.test(message)
          ? '23502'
          : /foreign/i.test(message)
            ? '23503'
            : '23514';
    case 'invalid input':
      return '22023';
    case 'out of range':
      return '22003';
    case 'not implemented':
      return '0A000';
    case 'permission':
      return '42501';
    case 'serialization':
      return '40001';
    case 'dependency':
      return '2BP01';
  }
  if (status === 400) return /too large|limit|maxRows|bytes/i.test(message) ? '54000' : '42601';
  return 'XX000';
}

/** The rows of an answer, and how it ended. */
export interface Rows {
  columns: Column[];
  /** Rows as objects keyed by column key; throws a PgError if the answer ended with an error. */
  rows: AsyncGenerator<Record<string, unknown>, void>;
}

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Readable;
}

async function text(body: Readable): Promise<string> {
  let s = '';
  for await (const c of body) s += String(c);
  return s;
}

/** Reads a routed answer (format json): the columns now, the rows as they arrive. */
export async function readAnswer(answer: Answer, body: Readable): Promise<Rows> {
  if (answer.status !== 200) {
    const raw = await text(body);
    let message = raw;
    try {
      const j = JSON.parse(raw) as { error?: string; message?: string };
      message = j.error ?? j.message ?? raw;
    } catch {
      /* plain text */
    }
    throw new PgError(sqlstate(answer.status, message), message.replace(/^sql: /, ''));
  }
  const decoder = new StringDecoder('utf8');
  const iterator = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let buf = '';
  // The head: {"columns":[...],"rows":[
  let start = -1;
  while ((start = buf.indexOf('"rows":[')) < 0) {
    const next = await iterator.next();
    if (next.done) throw new PgError('XX000', "the worker's answer ended before its rows");
    buf += decoder.write(next.value);
  }
  const head = JSON.parse(`${buf.slice(0, start)}"rows":[]}`) as { columns: string[] };
  buf = buf.slice(start + '"rows":['.length);
  let columns: Column[];
  const described = answer.headers['x-featherman-columns'];
  if (described) {
    const d = JSON.parse(decodeURIComponent(described)) as { names: string[]; keys: string[]; types: string[] };
    columns = d.names.map((n, i) => column(n, d.keys[i] ?? n, d.types[i] ?? 'VARCHAR'));
  } else columns = head.columns.map(textColumn);

  async function* rows(): AsyncGenerator<Record<string, unknown>, void> {
    let depth = 0;
    let inString = false;
    let escaped = false;
    let from = -1;
    let i = 0;
    let tail: string | undefined;
    for (;;) {
      for (; i < buf.length; i++) {
        const c = buf.charCodeAt(i);
        if (inString) {
          if (escaped) escaped = false;
          else if (c === 92) escaped = true;
          else if (c === 34) inString = false;
        } else if (c === 34) inString = true;
        else if (c === 123 || c === 91) {
          if (depth++ === 0) from = i;
        } else if (c === 125 || c === 93) {
          if (depth === 0) {
            tail = buf.slice(i + 1);
            break;
          } // the rows' closing ]
          if (--depth === 0) yield JSON.parse(buf.slice(from, i + 1)) as Record<string, unknown>;
        }
      }
      if (tail !== undefined) break;
      // Keep only the row in progress.
      if (depth > 0) {
        buf = buf.slice(from);
        i -= from;
        from = 0;
      } else {
        buf = '';
        i = 0;
      }
      const next = await iterator.next();
      if (next.done) {
        tail = '';
        break;
      }
      buf += decoder.write(next.value);
    }
    for (;;) {
      const next = await iterator.next();
      if (next.done) break;
      tail += decoder.write(next.value);
    }
    let end: { error?: string; truncated?: boolean; rowCount?: number };
    try {
      end = JSON.parse(`{${tail.replace(/^\s*,/, '')}`) as typeof end;
    } catch {
      throw new PgError('08006', "the worker's answer was cut off");
    }
    if (end.error) throw new PgError(sqlstate(/deadline/.test(end.error) ? 504 : 400, end.error), end.error);
    if (end.truncated)
      throw new PgError(
        '54000',
        `the result was cut at ${end.rowCount} rows: it exceeds the pool's result limits ` +
          '(FEATHERMAN_MAX_ROWS, FEATHERMAN_MAX_RESULT_BYTES)',
      );
  }
  return { columns, rows: rows() };
}
