// The query log: one JSON line per query on the service's stdout, saying who ran what against
// which tables and how it went. Never a token; never the SQL (whose literals may be anything)
// unless FEATHERMAN_LOG_SQL=true.
import { Transform, type TransformCallback } from 'node:stream';
import type { Principal } from './authenticate.js';
import { showTable, type QueryTables } from './tables.js';

export interface QueryLogLine {
  time: string;
  msg: 'query';
  id: string;
  principal: { user: string; groups: string[] };
  catalog: string;
  namespace?: string;
  pool?: string;
  tables: { read: string[]; write: string[]; catalog: boolean };
  kind?: string;
  rows?: number;
  bytes: number;
  queueWaitMs?: number;
  durationMs: number;
  outcome: 'ok' | 'error' | 'forbidden' | 'rejected' | 'timeout' | 'cancelled' | 'failed';
  status: number;
  worker?: string;
  sql?: string;
}

export type QueryLogger = (line: QueryLogLine) => void;

export const stdoutQueryLog: QueryLogger = (line) => {
  process.stdout.write(`${JSON.stringify(line)}\n`);
};

export function tablesForLog(t: QueryTables | undefined): QueryLogLine['tables'] {
  return { read: (t?.read ?? []).map(showTable), write: (t?.write ?? []).map(showTable), catalog: t?.catalog ?? false };
}

export const principalForLog = (p: Principal) => ({ user: p.user, groups: p.groups });

/**
 * Passes an answer through, counting its bytes and rows: NDJSON lines, CSV records (less the
 * header; newlines inside quotes are not records), or the JSON answer's own rowCount.
 */
export class AnswerCounter extends Transform {
  bytes = 0;
  private lines = 0;
  private quoted = false;
  private tail = '';
  constructor(private readonly format: 'json' | 'ndjson' | 'csv') {
    super();
  }
  override _transform(chunk: Buffer | string, _enc: BufferEncoding, done: TransformCallback): void {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    this.count(buf);
    done(null, buf);
  }
  /** Count a piece of the answer (rows, bytes) without passing it on. */
  count(buf: Buffer): void {
    this.bytes += buf.length;
    if (this.format === 'json') this.tail = (this.tail + buf.toString('latin1')).slice(-4096);
    else {
      for (const byte of buf) {
        if (this.format === 'csv' && byte === 0x22) this.quoted = !this.quoted;
        else if (byte === 0x0a && !this.quoted) this.lines++;
      }
    }
  }
  get rows(): number | undefined {
    if (this.format === 'ndjson') return this.lines;
    if (this.format === 'csv') return Math.max(0, this.lines - 1);
    const m = /"rowCount":(\d+)/.exec(this.tail);
    return m ? Number(m[1]) : undefined;
  }
}
