// Turns DuckDB, libpq and AWS SDK failures into errors with the right exit code and a message a
// user can act on. Messages are redacted by the CLI before printing.
import { BadInputError, TemporaryError } from '../errors.js';

const LOCK = /Could not set lock on file|Conflicting lock is held|database is locked/i;
const UNREACHABLE = new RegExp(
  'Could not establish connection|Connection refused|Could not connect|Failed to connect|connection (?:was )?reset|' +
    "Couldn't connect|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN|socket hang up|" +
    'timed? ?out|HTTP 50[234]|Service Unavailable|SlowDown',
  'i',
);
const CREDENTIALS =
  /InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied|Access Denied|HTTP 403|Forbidden|password authentication failed/i;
const NO_SUCH_BUCKET = /NoSuchBucket|specified bucket does not exist/i;

/**
 * DuckDB refusing the statement itself: its SQL, or a change the lake cannot make. The same input
 * fails again, so it is bad input (exit 2, HTTP 400) and never retried. One list for the CLI's
 * query and table commands and the warm worker, so a statement fails the same way everywhere.
 */
const STATEMENT = new RegExp(
  'Parser Error|Binder Error|Catalog Error|Conversion Error|Invalid Input|Out of Range|Not implemented|Permission Error|read-only|' +
    'Constraint Error|Dependency Error',
  'i',
);

export function isStatementError(err: unknown): boolean {
  return STATEMENT.test(messageOf(err));
}

export function isLockError(err: unknown): boolean {
  return LOCK.test(messageOf(err));
}

export function messageOf(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: string; name?: string }).code ?? '';
    return (
      `${err.name && err.name !== 'Error' ? err.name + ': ' : ''}${err.message}` +
      `${code && !err.message.includes(code) ? ` (${code})` : ''}`
    );
  }
  return String(err);
}

/** What a failure means for the caller. `context` says what we were doing ("writing to s3://b/p/"). */
export function classify(err: unknown, context: string): Error {
  if (err instanceof BadInputError || err instanceof TemporaryError) return err;
  const msg = messageOf(err).split('\n')[0]!.trim();
  if (LOCK.test(msg)) return new TemporaryError(`${context}: the catalog is locked by another process; retry later (${msg})`);
  if (NO_SUCH_BUCKET.test(msg)) return new BadInputError(`${context}: the bucket does not exist (${msg})`);
  if (CREDENTIALS.test(msg))
    return new Error(`${context}: the storage or catalog rejected the credentials; check the access key and secret (${msg})`);
  if (UNREACHABLE.test(msg)) return new TemporaryError(`${context}: storage or catalog unreachable; retry later (${msg})`);
  if (/does not match existing data path/i.test(msg))
    return new BadInputError(`FEATHERMAN_DATA_PATH: differs from the data path stored in the catalog (${msg})`);
  return new Error(`${context}: ${msg}`);
}
