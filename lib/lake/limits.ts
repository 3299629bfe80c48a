// Limits every query path shares (warm worker, router, cold `featherman query`), so a hostile
// query costs the same on each: how much SQL, how long past the deadline before a hard kill, and
// how a user-caused out-of-memory reads.
import { BadInputError } from '../errors.js';
import { parseDuration } from '../api/duration.js';

const DEFAULT_MAX_SQL_BYTES = 100 * 1024;
const DEFAULT_KILL_GRACE = '2s';

/** FEATHERMAN_MAX_SQL_BYTES: the largest SQL text accepted (default 100 KiB). */
export function maxSqlBytes(env: NodeJS.ProcessEnv): number {
  const raw = env.FEATHERMAN_MAX_SQL_BYTES;
  if (raw === undefined || raw === '') return DEFAULT_MAX_SQL_BYTES;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new BadInputError('FEATHERMAN_MAX_SQL_BYTES: must be a positive whole number');
  return n;
}

/** FEATHERMAN_KILL_GRACE: how long a query may run past its deadline after the interrupt before its process is killed (default 2s). */
export function killGraceMs(env: NodeJS.ProcessEnv): number {
  const seconds = parseDuration(env.FEATHERMAN_KILL_GRACE || DEFAULT_KILL_GRACE);
  if (seconds === undefined) throw new BadInputError('FEATHERMAN_KILL_GRACE: must be a duration such as 2s');
  return seconds * 1000;
}

/** Refuses SQL above the size limit before anything parses it (a 400 naming the limit). */
export function checkSqlSize(sql: string, limit: number, field = 'sql'): void {
  const bytes = Buffer.byteLength(sql);
  if (bytes > limit)
    throw new BadInputError(`${field}: ${bytes} bytes, larger than the limit of ${limit} bytes (FEATHERMAN_MAX_SQL_BYTES)`);
}

export const isOutOfMemory = (message: string) => /Out of Memory Error/i.test(message);

/**
 * A user's query that ran out of DuckDB memory: bad input naming the limit (DuckDB's message
 * carries "(used/limit used)"), not a lake failure worth retrying.
 */
export function outOfMemoryError(message: string, configured?: string): BadInputError {
  const limit = /\/\s*([\d.]+\s*[KMGT]?i?B) used\)/i.exec(message)?.[1] ?? configured;
  return new BadInputError(
    `sql: the query needs more memory than the limit of ${limit ?? 'this process'} per query (FEATHERMAN_MEMORY_LIMIT); ` +
      'read less data, or aggregate before returning rows',
  );
}

export interface FallbackLimits {
  /** Rows and bytes of one answer (as a worker's FEATHERMAN_MAX_ROWS and FEATHERMAN_MAX_RESULT_BYTES). */
  maxRows: number;
  maxBytes: number;
  /** How long past its deadline a query process may run before it is killed (FEATHERMAN_KILL_GRACE). */
  killGraceMs: number;
  /** Query processes that may run at once (for their memory share); the router enforces it. */
  processes: number;
}

export function fallbackLimitsFromEnv(env: NodeJS.ProcessEnv): FallbackLimits {
  const int = (name: string, fallback: number) => {
    const v = env[name] === undefined ? fallback : Number(env[name]);
    return Number.isInteger(v) && v > 0 ? v : fallback;
  };
  return {
    maxRows: int('FEATHERMAN_MAX_ROWS', 1_000_000),
    maxBytes: int('FEATHERMAN_MAX_RESULT_BYTES', 256 * 1024 * 1024),
    killGraceMs: killGraceMs(env),
    processes: int('FEATHERMAN_FALLBACK_CONCURRENCY', 2),
  };
}
