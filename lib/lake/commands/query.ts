// `featherman query --sql SQL|- [--format json|ndjson|csv] [--as-of-version N | --as-of-time T] [--write]`
// json prints one line {ok, columns, rows, ...}; ndjson and csv stream rows to stdout and put
// the summary on stderr (and in FEATHERMAN_RESULT_FILE).
//
// `--sandbox` is the router's cold path, held to a warm worker's rules: the SQL comes over stdin
// (`--sql -`) or from FEATHERMAN_QUERY_SQL (`--sql-env`, a fallback Job), never the command line;
// it is checked by the query sandbox (a refusal exits 77, HTTP 403), interrupted `--timeout-ms`
// after the process started (exit 124, HTTP 504), cut at `--max-rows` and `--max-bytes`, and a DuckDB catalog file is read
// from a copy, so writers are never locked out.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BadInputError, DeadlineError, RefusedError } from '../../errors.js';
import { checkSqlSize, isOutOfMemory, maxSqlBytes, outOfMemoryError } from '../limits.js';
import { loadConfig } from '../config.js';
import { takeSecrets } from '../../redact.js';
import { classify, isStatementError } from '../failures.js';
import { attachLake, keepInterrupting, openDuckDB, openLake, type LakeSession } from '../session.js';
import { parse, positiveInt } from './args.js';
import { csvLine, resultChunks } from '../format.js';
import { processStartMs } from '../../timing.js';

const SQL_ENV = 'FEATHERMAN_QUERY_SQL';

/** All of stdin, refused once past `limit` bytes (so a huge input is never held whole). */
async function readStdin(limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new BadInputError(`sql: more than the limit of ${limit} bytes (FEATHERMAN_MAX_SQL_BYTES)`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export async function queryCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values } = parse(argv, {
    sql: { type: 'string' },
    'sql-stdin': { type: 'boolean', default: false },
    'sql-env': { type: 'boolean', default: false },
    format: { type: 'string', default: 'json' },
    'as-of-version': { type: 'string' },
    'as-of-time': { type: 'string' },
    write: { type: 'boolean', default: false },
    'max-rows': { type: 'string' },
    'max-bytes': { type: 'string' },
    'timeout-ms': { type: 'string' },
    sandbox: { type: 'boolean', default: false },
  });
  // The size limit is the query API's (user SQL); an operator's own --sql is not held to it.
  const sqlLimit = values.sandbox ? maxSqlBytes(env) : 256 * 1024 * 1024;
  const sources = [values.sql !== undefined, values['sql-stdin'], values['sql-env']].filter(Boolean).length;
  if (sources > 1) throw new BadInputError('--sql, --sql-stdin and --sql-env: give one');
  let sql: string | undefined;
  if (values['sql-stdin'] || values.sql === '-') sql = await readStdin(sqlLimit);
  else if (values['sql-env']) {
    sql = env[SQL_ENV];
    // Read once; user SQL has no business finding itself (or anything else) in the environment.
    delete env[SQL_ENV];
  } else sql = values.sql;
  if (!sql?.trim()) throw new BadInputError('--sql: required (SQL text, or - to read it from stdin)');
  if (values.sandbox) checkSqlSize(sql, sqlLimit);
  const format = values.format;
  if (format !== 'json' && format !== 'ndjson' && format !== 'csv') throw new BadInputError('--format: must be json, ndjson or csv');
  const snapshotVersion = positiveInt('--as-of-version', values['as-of-version']);
  const snapshotTime = values['as-of-time'];
  if (snapshotVersion !== undefined && snapshotTime !== undefined)
    throw new BadInputError('--as-of-version and --as-of-time: give one, not both');
  if (snapshotTime !== undefined && Number.isNaN(Date.parse(snapshotTime)))
    throw new BadInputError(`--as-of-time: ${JSON.stringify(snapshotTime)} is not a timestamp`);
  if (values.write && (snapshotVersion !== undefined || snapshotTime !== undefined))
    throw new BadInputError('--write: cannot be combined with --as-of-*: past snapshots are read-only');
  const maxRows = positiveInt('--max-rows', values['max-rows']) ?? (format === 'json' ? 100_000 : Number.MAX_SAFE_INTEGER);
  const maxBytes = positiveInt('--max-bytes', values['max-bytes']) ?? Number.MAX_SAFE_INTEGER;
  const timeoutMs = positiveInt('--timeout-ms', values['timeout-ms']);

  const config = loadConfig(env);
  // The tables the query API authorised for this query (the router's cold path): the bound plan must stay within them.
  const grant = values.sandbox ? (await import('../../auth/tables.js')).grantFromEnv(env) : undefined;
  // A process running user SQL keeps its keys only in DuckDB secrets (lib/redact.ts).
  if (values.sandbox) takeSecrets(env);
  const opts = { readOnly: !values.write, snapshotVersion, snapshotTime };
  let scratch: string | undefined;
  let session: LakeSession;
  if (values.sandbox && !values.write && config.metadata.type === 'duckdb') {
    // Read a copy of the catalog file: the live one stays free for writers.
    const { copyCatalog } = await import('../catalog-copy.js');
    scratch = await mkdtemp(join(tmpdir(), 'featherman-query-'));
    const copy = join(scratch, 'catalog.ducklake');
    try {
      await copyCatalog(config, config.metadata.path, copy);
      session = await openDuckDB(config);
    } catch (err) {
      await rm(scratch, { recursive: true, force: true });
      throw classify(err, `opening the lake (${config.metadata.type} catalog, data at ${config.dataPath})`);
    }
    try {
      await attachLake(session, opts, `ducklake:duckdb:${copy}`);
    } catch (err) {
      session.close();
      await rm(scratch, { recursive: true, force: true });
      throw classify(err, `opening the lake (${config.metadata.type} catalog, data at ${config.dataPath})`);
    }
  } else {
    session = await openLake(config, opts);
  }
  const started = performance.now();
  let timedOut = false;
  // The deadline counts from the process's start (performance.now()), as the caller's does: a
  // slow start-up is not added on top of it.
  let stopInterrupting: (() => void) | undefined;
  const timer =
    timeoutMs === undefined
      ? undefined
      : setTimeout(
          () => {
            timedOut = true;
            stopInterrupting = keepInterrupting(session.connection);
          },
          Math.max(0, timeoutMs - performance.now()),
        );
  const failure = (err: unknown): Error => {
    if (timedOut) return new DeadlineError(`query exceeded its deadline of ${timeoutMs} ms and was interrupted`);
    const message = (err as Error).message ?? String(err);
    if (isOutOfMemory(message)) return outOfMemoryError(message, config.memoryLimit);
    const e = classify(err, 'query');
    if (isStatementError(e)) return new BadInputError(`--sql: ${e.message.replace(/^query: /, '')}`);
    return e;
  };
  try {
    // --sandbox: the same limits as a warm worker (the router's cold path runs user SQL this way).
    if (values.sandbox) {
      const { planReadOnlyQuery, planWriteQuery, lockDown, SandboxError } = await import('../sandbox.js');
      const { checkGrant } = await import('../../auth/tables.js');
      try {
        checkGrant(values.write ? await planWriteQuery(session.connection, sql) : await planReadOnlyQuery(session.connection, sql), grant);
      } catch (err) {
        if (err instanceof SandboxError) throw new RefusedError(err.message);
        throw err;
      }
      await lockDown(session);
    }
    const columns: string[] = [];
    const rows: unknown[] = [];
    let count = 0;
    let bytes = 0;
    let truncated = false;
    // Rows leave in pieces of about 64 KiB; writes to a pipe block, so few and large is cheaper.
    let piece = '';
    const flush = () => {
      if (piece) process.stdout.write(piece);
      piece = '';
    };
    try {
      const result = await session.connection.stream(sql);
      columns.push(...result.columnNames());
      if (format === 'csv') piece = csvLine(columns);
      bytes = Buffer.byteLength(piece);
      const remaining = () => Math.max(0, maxBytes - bytes);
      outer: for await (const chunk of resultChunks(result)) {
        for (let i = 0; i < chunk.rowCount; i++) {
          const room = remaining();
          if (count >= maxRows || chunk.bytes(i, room) > room) {
            truncated = true;
            break outer;
          }
          if (format === 'json') {
            const values = chunk.values(i);
            const size = Buffer.byteLength(JSON.stringify(values)) + 1;
            if (size > room) {
              truncated = true;
              break outer;
            }
            bytes += size;
            rows.push(values);
          } else {
            const text = format === 'ndjson' ? `${JSON.stringify(chunk.values(i))}\n` : csvLine(chunk.cells(i));
            const size = Buffer.byteLength(text);
            if (size > room) {
              truncated = true;
              break outer;
            }
            bytes += size;
            piece += text;
            if (piece.length >= 65536) flush();
          }
          count++;
        }
      }
      flush();
    } catch (err) {
      flush();
      throw failure(err);
    }
    // The query is over: the deadline was its, and an interrupt now would only fail the summary's
    // own statement (the snapshot) with DuckDB's raw message instead of answering the rows read.
    clearTimeout(timer);
    stopInterrupting?.();
    // A first row above the byte cap is refused, as a warm worker refuses it, never sent cut.
    if (truncated && count === 0 && maxBytes !== Number.MAX_SAFE_INTEGER && maxRows > 0) {
      throw new BadInputError(
        `result: the first row is above the limit of ${maxBytes} bytes per answer (--max-bytes); select fewer or smaller columns`,
      );
    }
    const summary = {
      command: 'query',
      rowCount: count,
      truncated,
      snapshotId: await session.currentSnapshot(),
      durationMs: Math.round((performance.now() - started) * 100) / 100,
      timings: { processStartMs: processStartMs(), ...roundTimings(session.timings) },
    };
    if (format === 'json') return { ...summary, columns, rows };
    return { ...summary, columns, outputPrinted: true };
  } catch (err) {
    // Interrupted at the deadline before the query ran (a slow start, the sandbox's plan): the
    // deadline is the reason, not DuckDB's raw "Interrupted".
    if (timedOut && !(err instanceof DeadlineError) && !(err instanceof RefusedError)) throw failure(err);
    throw err;
  } finally {
    clearTimeout(timer);
    stopInterrupting?.();
    session.close();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }
}

function roundTimings(t: object): Record<string, number> {
  return Object.fromEntries(Object.entries(t).map(([k, v]) => [k, Math.round(Number(v) * 100) / 100]));
}
