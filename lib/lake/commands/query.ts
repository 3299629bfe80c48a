// `featherman query --sql SQL [--format json|ndjson|csv] [--as-of-version N | --as-of-time T] [--write]`
// json prints one line {ok, columns, rows, ...}; ndjson and csv stream rows to stdout and put
// the summary on stderr (and in FEATHERMAN_RESULT_FILE).
import { BadInputError } from '../../errors.js';
import { loadConfig } from '../config.js';
import { classify, isStatementError } from '../failures.js';
import { openLake } from '../session.js';
import { parse, positiveInt } from './args.js';
import { csvLine } from '../format.js';
import { processStartMs } from '../../timing.js';

export async function queryCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values } = parse(argv, {
    sql: { type: 'string' },
    format: { type: 'string', default: 'json' },
    'as-of-version': { type: 'string' },
    'as-of-time': { type: 'string' },
    write: { type: 'boolean', default: false },
    'max-rows': { type: 'string' },
    sandbox: { type: 'boolean', default: false },
  });
  if (!values.sql?.trim()) throw new BadInputError('--sql: required');
  const format = values.format;
  if (format !== 'json' && format !== 'ndjson' && format !== 'csv') throw new BadInputError('--format: must be json, ndjson or csv');
  const snapshotVersion = positiveInt('--as-of-version', values['as-of-version']);
  const snapshotTime = values['as-of-time'];
  if (snapshotVersion !== undefined && snapshotTime !== undefined) throw new BadInputError('--as-of-version and --as-of-time: give one, not both');
  if (snapshotTime !== undefined && Number.isNaN(Date.parse(snapshotTime))) throw new BadInputError(`--as-of-time: ${JSON.stringify(snapshotTime)} is not a timestamp`);
  if (values.write && (snapshotVersion !== undefined || snapshotTime !== undefined)) throw new BadInputError('--write: cannot be combined with --as-of-*: past snapshots are read-only');
  const maxRows = positiveInt('--max-rows', values['max-rows']) ?? (format === 'json' ? 100_000 : Number.MAX_SAFE_INTEGER);

  const config = loadConfig(env);
  const session = await openLake(config, { readOnly: !values.write, snapshotVersion, snapshotTime });
  const started = performance.now();
  try {
    // --sandbox: the same limits as a warm worker (the router's cold path runs user SQL this way).
    if (values.sandbox) {
      const { checkReadOnlyQuery, checkWriteQuery, lockDown, SandboxError } = await import('../../pool/sandbox.js');
      try {
        if (values.write) await checkWriteQuery(session.connection, values.sql);
        else await checkReadOnlyQuery(session.connection, values.sql);
      } catch (err) {
        if (err instanceof SandboxError) throw new BadInputError(err.message);
        throw err;
      }
      await lockDown(session);
    }
    let result;
    try {
      result = await session.connection.stream(values.sql);
    } catch (err) {
      const e = classify(err, 'query');
      if (isStatementError(e)) throw new BadInputError(`--sql: ${e.message.replace(/^query: /, '')}`);
      throw e;
    }
    const columns = result.columnNames();
    const rows: unknown[] = [];
    let count = 0;
    let truncated = false;
    if (format === 'csv') process.stdout.write(csvLine(columns));
    outer: for await (const batch of result.yieldRowObjectJson()) {
      for (const row of batch) {
        if (count >= maxRows) { truncated = true; break outer; }
        count++;
        if (format === 'json') rows.push(row);
        else if (format === 'ndjson') process.stdout.write(JSON.stringify(row) + '\n');
        else process.stdout.write(csvLine(columns.map((c) => row[c])));
      }
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
  } finally {
    session.close();
  }
}

function roundTimings(t: object): Record<string, number> {
  return Object.fromEntries(Object.entries(t).map(([k, v]) => [k, Math.round(Number(v) * 100) / 100]));
}
