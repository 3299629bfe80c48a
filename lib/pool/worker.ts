// `featherman worker`: the warm pod's process. One engine (lib/pool/engine.ts) kept warm, served
// over HTTP: POST /query streams rows as NDJSON, CSV or JSON within row, byte and time limits
// (SQL size checked first; rows converted one at a time, sized before conversion; a query that
// ignores its interrupt past the grace costs the worker, which kills itself to be replaced);
// GET /stats says how busy it is (the pool hooks scale on it); /readyz turns ready once the lake
// is attached; /healthz answers while the process does.
import { readFileSync } from 'node:fs';
import { tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { parseDuration } from '../api/duration.js';
import { BadInputError, TemporaryError } from '../errors.js';
import { WORKER_PORT } from '../k8s/pool-workers.js';
import { loadConfig, sizeInBytes, type LakeConfig } from '../lake/config.js';
import { isStatementError } from '../lake/failures.js';
import { csvLine, resultChunks, type RowChunk } from '../lake/format.js';
import { redact, takeSecrets } from '../redact.js';
import { EngineHolder, type Engine } from './engine.js';
import type { DuckDBConnection } from '@duckdb/node-api';
import { checkSqlSize, isOutOfMemory, killGraceMs, maxSqlBytes, outOfMemoryError } from '../lake/limits.js';
import { planReadOnlyQuery, planWriteQuery, SandboxError, type QueryTables } from '../lake/sandbox.js';
import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts';
import { checkGrant, GRANT_SCHEMA } from '../auth/tables.js';
import { duckTypeName } from '../lake/duck-type-name.js';
import { keepInterrupting } from '../lake/session.js';
import type { WorkerStats } from './stats.js';

export interface WorkerOptions {
  config: LakeConfig;
  pod: string;
  readOnly: boolean;
  maxQueryMs: number;
  maxRows: number;
  maxBytes: number;
  concurrency: number;
  refreshMs: number;
  /** Give up (exit 75, so the pod restarts) if the lake is not attached by then. */
  startupTimeoutMs: number;
  scratchDir: string;
  /** The largest SQL text accepted (FEATHERMAN_MAX_SQL_BYTES). */
  maxSqlBytes: number;
  /** How long a query may ignore its interrupt before the worker exits (FEATHERMAN_KILL_GRACE). */
  killGraceMs: number;
  /** Memory for in-memory copies of small lake tables (FEATHERMAN_TABLE_COPIES_BYTES; 0: none). */
  copiesBytes: number;
}

/** A result whose first row alone is above the byte cap: refused, never sent cut. */
class ResultTooLarge extends Error {
  constructor(bytes: number, limit: number) {
    super(
      `result: the first row is at least ${bytes} bytes, above the limit of ${limit} bytes per answer ` +
        '(FEATHERMAN_MAX_RESULT_BYTES); select fewer or smaller columns',
    );
  }
}

/**
 * DuckDB's memory_limit when FEATHERMAN_MEMORY_LIMIT is unset: half of the container's (cgroup)
 * or the machine's memory, where DuckDB would take 80% and leave Node and the kernel too little.
 */
export function defaultMemoryLimit(): string {
  let total = totalmem();
  try {
    const cgroup = readFileSync('/sys/fs/cgroup/memory.max', 'utf8').trim();
    if (/^\d+$/.test(cgroup)) total = Math.min(total, Number(cgroup));
  } catch {
    /* no cgroup v2 limit */
  }
  return `${Math.max(64, Math.floor(total / 2 / 1024 / 1024))}MiB`;
}

export type QueryFormat = 'json' | 'ndjson' | 'csv';
const CONTENT_TYPES: Record<QueryFormat, string> = {
  json: 'application/json',
  ndjson: 'application/x-ndjson',
  csv: 'text/csv; charset=utf-8',
};
const UTILIZATION_WINDOW_MS = 60_000;

export function workerOptionsFromEnv(env: NodeJS.ProcessEnv): WorkerOptions {
  const duration = (name: string, fallback: string) => {
    const seconds = parseDuration(env[name] ?? fallback);
    if (seconds === undefined) throw new BadInputError(`${name}: must be a duration such as 30s or 5m`);
    return seconds * 1000;
  };
  const int = (name: string, fallback: number, min = 1) => {
    const v = env[name] === undefined ? fallback : Number(env[name]);
    if (!Number.isInteger(v) || v < min) throw new BadInputError(`${name}: must be a ${min ? 'positive' : 'non-negative'} whole number`);
    return v;
  };
  const loaded = loadConfig(env);
  const config = loaded.memoryLimit ? loaded : { ...loaded, memoryLimit: defaultMemoryLimit() };
  const readOnly = !/^(false|0|no)$/i.test(env.FEATHERMAN_POOL_READ_ONLY ?? 'true');
  if (!readOnly && config.metadata.type !== 'postgres') {
    throw new BadInputError(
      'FEATHERMAN_POOL_READ_ONLY: writing workers need a Postgres catalog (a DuckDB catalog file admits one writer, the table Jobs)',
    );
  }
  return {
    config,
    pod: env.POD_NAME ?? `worker-${process.pid}`,
    readOnly,
    maxQueryMs: duration('FEATHERMAN_MAX_QUERY_DURATION', '60s'),
    maxRows: int('FEATHERMAN_MAX_ROWS', 1_000_000),
    maxBytes: int('FEATHERMAN_MAX_RESULT_BYTES', 256 * 1024 * 1024),
    concurrency: int('FEATHERMAN_WORKER_CONCURRENCY', 1),
    refreshMs: duration('FEATHERMAN_REFRESH_INTERVAL', '1s'),
    // Long enough to wait out a writer's lock on a DuckDB catalog file, and then some.
    startupTimeoutMs: duration('FEATHERMAN_STARTUP_TIMEOUT', `${Math.ceil(config.lockTimeoutMs / 1000) + 30}s`),
    scratchDir: join(tmpdir(), 'featherman-worker', String(process.pid)),
    maxSqlBytes: maxSqlBytes(env),
    killGraceMs: killGraceMs(env),
    // A quarter of DuckDB's memory: the copies come out of it, and queries need the rest.
    copiesBytes: int('FEATHERMAN_TABLE_COPIES_BYTES', Math.floor(sizeInBytes(config.memoryLimit!) / 4), 0),
  };
}

/** Busy time over the last minute, from the intervals in which at least one query ran. */
class Utilization {
  private intervals: [number, number][] = [];
  private busySince?: number;
  start(now: number) {
    if (this.busySince === undefined) this.busySince = now;
  }
  stop(now: number) {
    if (this.busySince !== undefined) this.intervals.push([this.busySince, now]);
    this.busySince = undefined;
  }
  value(now: number): number {
    const from = now - UTILIZATION_WINDOW_MS;
    this.intervals = this.intervals.filter(([, end]) => end > from);
    let busy = this.intervals.reduce((sum, [a, b]) => sum + (b - Math.max(a, from)), 0);
    if (this.busySince !== undefined) busy += now - Math.max(this.busySince, from);
    return Math.min(1, busy / UTILIZATION_WINDOW_MS);
  }
}

/** The worker's HTTP app, and `start()`, which builds the first engine and turns /readyz ready. */
export async function buildWorker(
  opts: WorkerOptions,
): Promise<{ app: FastifyInstance; holder: EngineHolder; start: () => Promise<void> }> {
  const holder = new EngineHolder({
    config: opts.config,
    readOnly: opts.readOnly,
    scratchDir: opts.scratchDir,
    refreshMs: opts.refreshMs,
    copiesBytes: opts.copiesBytes,
    // The engine keeps serving from the lake; the error's first line goes to the log, redacted.
    onError: (err) =>
      console.error(
        JSON.stringify({
          level: 'warn',
          msg: 'the engine did not refresh',
          pod: opts.pod,
          error: redact(String(err).split('\n')[0] ?? ''),
        }),
      ),
  });
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
  // Request bodies are typed from their route schemas (json-schema-to-ts).
  const routes = app.withTypeProvider<JsonSchemaToTsProvider>();
  const startedAt = new Date().toISOString();
  const utilization = new Utilization();
  let active = 0;
  let served = 0;
  let lastQueryAt: string | undefined;
  let draining = false;
  let ready = false;

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) =>
    ready && holder.current && !draining ? { status: 'ready' } : reply.code(503).send({ status: 'starting' }),
  );
  app.get('/stats', async (): Promise<WorkerStats> => ({
    pod: opts.pod,
    ready: ready && !draining,
    state: !ready ? 'starting' : draining ? 'draining' : active > 0 ? 'busy' : 'idle',
    activeQueries: active,
    queriesServed: served,
    startedAt,
    ...(lastQueryAt ? { lastQueryAt } : {}),
    utilization: Math.round(utilization.value(Date.now()) * 1000) / 1000,
    ...(holder.current ? { snapshotId: holder.current.snapshotId, tablesInMemory: holder.current.tablesInMemory } : {}),
  }));

  const sandbox = (connection: DuckDBConnection, sql: string, engine: Engine): Promise<QueryTables> =>
    opts.readOnly ? planReadOnlyQuery(connection, sql, engine.allowed) : planWriteQuery(connection, sql);

  // What a query would read and write, from its bound plan (the sandbox's checks included), so the
  // router can authorise them before the query runs; nothing is executed.
  routes.post(
    '/plan',
    {
      schema: {
        body: {
          type: 'object',
          required: ['sql'],
          additionalProperties: false,
          properties: { sql: { type: 'string', minLength: 1, maxLength: 1_000_000 } },
        } as const,
      },
    },
    async (request, reply) => {
      const engine = holder.current;
      if (!engine || !ready || draining) return reply.code(503).header('Retry-After', '1').send({ error: 'worker is not ready' });
      try {
        checkSqlSize(request.body.sql, opts.maxSqlBytes);
      } catch (err) {
        return reply.code(400).send({ error: (err as Error).message });
      }
      const release = engine.acquire();
      const connection = await engine.connect();
      // Binding is bounded like the query itself: interrupted at the deadline, or when the router goes away.
      let stopInterrupting: (() => void) | undefined;
      let timedOut = false;
      const interrupt = () => {
        stopInterrupting ??= keepInterrupting(connection);
      };
      const timer = setTimeout(() => {
        timedOut = true;
        interrupt();
      }, opts.maxQueryMs);
      reply.raw.once('close', () => {
        if (!reply.raw.writableFinished) interrupt();
      });
      let clean = false;
      try {
        const tables = await sandbox(connection, request.body.sql, engine);
        clean = true;
        return tables;
      } catch (err) {
        const message = (err as Error).message.split('\n')[0] ?? 'query failed';
        if (timedOut)
          return reply.code(504).send({ error: `binding the query exceeded its deadline of ${opts.maxQueryMs} ms and was interrupted` });
        if (err instanceof SandboxError) return reply.code(403).send({ error: message });
        if (err instanceof BadInputError) return reply.code(400).send({ error: message });
        if (isStatementError(message)) return reply.code(400).send({ error: `sql: ${message}` });
        return reply.code(502).send({ error: redact(`the lake could not answer: ${message}`) });
      } finally {
        clearTimeout(timer);
        stopInterrupting?.();
        engine.release(connection, clean && !stopInterrupting);
        release();
      }
    },
  );

  routes.post(
    '/query',
    {
      schema: {
        body: {
          type: 'object',
          required: ['sql'],
          additionalProperties: false,
          properties: {
            sql: { type: 'string', minLength: 1, maxLength: 1_000_000 },
            format: { type: 'string', enum: ['json', 'ndjson', 'csv'] },
            timeoutMs: { type: 'integer', minimum: 1 },
            maxRows: { type: 'integer', minimum: 1 },
            // The tables the router authorised: the bound plan must stay within them.
            grant: GRANT_SCHEMA,
          },
        } as const,
      },
    },
    async (request, reply) => {
      const engine = holder.current;
      if (!engine || !ready || draining) return reply.code(503).header('Retry-After', '1').send({ error: 'worker is not ready' });
      if (active >= opts.concurrency) return reply.code(503).header('Retry-After', '1').send({ error: 'worker is busy' });
      const { sql } = request.body;
      try {
        checkSqlSize(sql, opts.maxSqlBytes);
      } catch (err) {
        return reply.code(400).send({ error: (err as Error).message });
      }
      const format = request.body.format ?? 'json';
      const deadlineMs = Math.min(request.body.timeoutMs ?? opts.maxQueryMs, opts.maxQueryMs);
      const maxRows = Math.min(request.body.maxRows ?? opts.maxRows, opts.maxRows);
      const res = reply.raw;
      // The client went away (or the router aborted): stop DuckDB at once rather than at the next
      // row. Listened for before any await, so a close while the connection opens is not missed.
      let gone = false;
      let onGone = () => undefined as void;
      res.once('close', () => {
        if (!res.writableFinished) {
          gone = true;
          onGone();
        }
      });

      active++;
      utilization.start(Date.now());
      // Phase marks (performance.now(), cheap): sent as Server-Timing, so a caller sees where the time went.
      const started = performance.now();
      const release = engine.acquire();
      const connection = await engine.connect();
      const connected = performance.now();
      let timedOut = false;
      let finished = false;
      let killTimer: NodeJS.Timeout | undefined;
      let killed = false;
      /** The query ran to its end, every row sent: its connection may serve the next query. */
      let clean = false;
      let checked = connected;
      let executed = connected;
      const deadlineMessage = `query exceeded its deadline of ${deadlineMs} ms and was interrupted`;
      // A query that ignores the interrupt (a long scalar function over one big vector) is not
      // waited out: after the grace the caller gets its answer and the worker exits, to be
      // replaced, so the query costs one restart instead of a worker busy for minutes.
      let stopInterrupting: (() => void) | undefined;
      const stop = () => {
        if (finished || stopInterrupting) return;
        stopInterrupting = keepInterrupting(connection);
      };
      const timer = setTimeout(() => {
        timedOut = true;
        stop();
        killTimer = setTimeout(() => hardStop(), opts.killGraceMs);
      }, deadlineMs);
      const finish = () => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        clearTimeout(killTimer);
        stopInterrupting?.();
        engine.release(connection, clean && !stopInterrupting && !gone);
        release();
        active--;
        served++;
        lastQueryAt = new Date().toISOString();
        if (active === 0) utilization.stop(Date.now());
      };
      onGone = stop;
      if (gone) stop();
      const fail = (code: number, message: string) => {
        finish();
        return reply.code(code).send({ error: redact(message) });
      };

      let rows = 0;
      let bytes = 0;
      let truncated = false;
      let ended = false;
      const remaining = () => Math.max(0, opts.maxBytes - bytes);
      const serialize = (chunk: RowChunk, i: number) =>
        format === 'json'
          ? `${rows ? ',' : ''}${JSON.stringify(chunk.values(i))}`
          : format === 'ndjson'
            ? `${JSON.stringify(chunk.values(i))}\n`
            : csvLine(chunk.cells(i));
      /**
       * The end of a streamed answer: what is left of the rows, the JSON envelope's tail and the
       * trailers, in one end() (a small answer leaves in one write, headers included).
       */
      const endBody = (error: string | undefined, rest = '') => {
        if (ended) return;
        ended = true;
        const now = performance.now();
        const duration = now - started;
        const tail =
          format === 'json'
            ? `],"rowCount":${rows},"truncated":${truncated}${error ? `,"error":${JSON.stringify(error)}` : ''},` +
              `"snapshotId":${engine.snapshotId},"durationMs":${duration.toFixed(2)}}`
            : '';
        res.addTrailers({
          'x-featherman-rows': String(rows),
          'x-featherman-truncated': String(truncated),
          'x-featherman-duration': duration.toFixed(2),
          'server-timing': `encode;dur=${(now - executed).toFixed(3)}`,
          ...(error ? { 'x-featherman-error': error.slice(0, 500) } : {}),
        });
        res.end(rest + tail);
      };
      const hardStop = () => {
        if (finished) return;
        killed = true;
        draining = true;
        const message =
          `query exceeded its deadline of ${deadlineMs} ms and did not stop within ${opts.killGraceMs} ms ` +
          'of the interrupt; the worker restarts';
        // Only the limits go to the log: never the SQL, which may carry anything.
        console.error(
          JSON.stringify({
            level: 'error',
            msg: 'a query ignored its interrupt; the worker kills itself to be replaced',
            pod: opts.pod,
            deadlineMs,
            graceMs: opts.killGraceMs,
            signal: 'SIGKILL',
          }),
        );
        // SIGKILL, not process.exit(): exiting joins libuv's thread pool, where DuckDB still runs the query.
        const exit = () => process.kill(process.pid, 'SIGKILL');
        if (res.headersSent) endBody(message);
        else if (!res.destroyed) void reply.code(504).header('connection', 'close').send({ error: message });
        if (res.writableFinished || res.destroyed) return exit();
        res.once('finish', exit);
        res.once('close', exit);
        setTimeout(exit, 1000).unref();
      };

      // The first row is computed before any header is sent, so errors (and a worker dying during
      // an aggregate) surface as a status code the router can act on, not as a truncated body.
      let columns: string[];
      let columnTypes = '';
      let chunks: AsyncIterator<RowChunk>;
      let first: IteratorResult<RowChunk>;
      let firstText = '';
      let tables: QueryTables;
      let inMemory = false;
      try {
        tables = await sandbox(connection, sql, engine);
        checkGrant(tables, request.body.grant);
        const text = await engine.textToRun(connection, sql, tables);
        inMemory = text !== sql;
        checked = performance.now();
        const result = await engine.stream(connection, text);
        columns = result.columnNames();
        // Names and DuckDB types, for fronts that describe columns before rows (the Postgres wire).
        columnTypes = encodeURIComponent(
          JSON.stringify({ names: columns, keys: result.deduplicatedColumnNames(), types: result.columnTypes().map(duckTypeName) }),
        );
        chunks = resultChunks(result)[Symbol.asyncIterator]();
        first = await chunks.next();
        executed = performance.now();
        if (!first.done) {
          // A first row above the byte cap is refused whole, never sent cut.
          const head = format === 'json' ? `{"columns":${JSON.stringify(columns)},"rows":[` : format === 'csv' ? csvLine(columns) : '';
          const estimate = first.value.bytes(0, opts.maxBytes + 1);
          if (estimate + head.length > opts.maxBytes) throw new ResultTooLarge(estimate, opts.maxBytes);
          firstText = serialize(first.value, 0);
          const firstBytes = Buffer.byteLength(firstText) + Buffer.byteLength(head);
          if (firstBytes > opts.maxBytes) throw new ResultTooLarge(firstBytes, opts.maxBytes);
        }
      } catch (err) {
        if (killed) return reply;
        const message = (err as Error).message.split('\n')[0] ?? 'query failed';
        // Interrupted (at any step) because the deadline passed or the client left: say so.
        if (timedOut) return fail(504, deadlineMessage);
        if (res.destroyed) return fail(499, 'the client went away');
        if (err instanceof SandboxError) return fail(403, message);
        if (err instanceof BadInputError || err instanceof ResultTooLarge) return fail(400, message);
        if (isOutOfMemory(message)) return fail(400, outOfMemoryError(message, opts.config.memoryLimit).message);
        if (isStatementError(message)) return fail(400, `sql: ${message}`);
        return fail(502, `the lake could not answer: ${message}`);
      }

      // Later failures end the body with a trailer (and an "error" field in JSON).
      reply.hijack();
      res.writeHead(200, {
        'content-type': CONTENT_TYPES[format],
        'x-featherman-pod': opts.pod,
        'x-featherman-snapshot': String(engine.snapshotId),
        // What the plan read and wrote, for the query log (a router that authorised the query already knows).
        ...tablesHeader(tables),
        // It read in-memory copies of lake tables (same snapshot, same rows), not their Parquet files.
        ...(inMemory ? { 'x-featherman-in-memory': 'true' } : {}),
        ...(columnTypes.length <= 8192 ? { 'x-featherman-columns': columnTypes } : {}),
        // connect, sandbox (its checks; a cached verdict costs ~0), execute (DuckDB, to the first chunk); encode is a trailer.
        'server-timing':
          `connect;dur=${(connected - started).toFixed(3)}, sandbox;dur=${(checked - connected).toFixed(3)}, ` +
          `execute;dur=${(executed - checked).toFixed(3)}`,
        trailer: 'x-featherman-rows, x-featherman-truncated, x-featherman-error, x-featherman-duration, server-timing',
      });
      // Rows go out in pieces of about 64 KiB: few writes for small rows, and never more than one
      // row (itself within the byte cap) converted and waiting in memory.
      let piece = '';
      const flush = async () => {
        if (!piece) return;
        const ok = res.write(piece);
        piece = '';
        if (!ok && !res.destroyed)
          await new Promise((r) => {
            res.once('drain', r);
            res.once('close', r);
          });
      };
      let error: string | undefined;
      try {
        piece = format === 'json' ? `{"columns":${JSON.stringify(columns)},"rows":[` : format === 'csv' ? csvLine(columns) : '';
        bytes += Buffer.byteLength(piece);
        outer: for (let next = first; !next.done; next = await chunks.next()) {
          const chunk = next.value;
          for (let i = 0; i < chunk.rowCount; i++) {
            const room = remaining();
            if (rows >= maxRows || chunk.bytes(i, room) > room) {
              truncated = true;
              break outer;
            }
            const text = rows === 0 ? firstText : serialize(chunk, i);
            const size = Buffer.byteLength(text);
            if (size > room) {
              truncated = true;
              break outer;
            }
            bytes += size;
            piece += text;
            rows++;
            if (piece.length >= 65536) await flush();
            if (res.destroyed) {
              stop();
              break outer;
            }
          }
        }
        await flush();
      } catch (err) {
        const message = (err as Error).message.split('\n')[0] ?? 'failed';
        error = timedOut
          ? deadlineMessage
          : isOutOfMemory(message)
            ? outOfMemoryError(message, opts.config.memoryLimit).message
            : redact(message);
      }
      if (killed || ended) return;
      if (timedOut && !error) error = deadlineMessage;
      clean = !error && !truncated && !timedOut;
      endBody(error, piece);
      finish();
    },
  );

  app.addHook('onClose', async () => {
    draining = true;
    holder.stop();
  });
  return {
    app,
    holder,
    start: async () => {
      await holder.start();
      ready = true;
    },
  };
}

export async function workerCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const { parse, positiveInt } = await import('../lake/commands/args.js');
  const { values } = parse(argv, { port: { type: 'string', default: String(WORKER_PORT) }, host: { type: 'string' } });
  const port = positiveInt('--port', values.port) ?? WORKER_PORT;
  const host = values.host ?? env.POD_IP ?? '0.0.0.0';
  const opts = workerOptionsFromEnv(env);
  // User SQL runs here: the keys live on only as DuckDB secrets (lib/redact.ts says why).
  takeSecrets(env);
  const { app, holder, start } = await buildWorker(opts);
  const address = await app.listen({ port, host });
  // A worker that never gets ready would be live but useless: fail (exit 75, so the pod is
  // restarted), saying which step hung (a writer holding the catalog lock, storage, ...).
  const started = performance.now();
  let watchdog: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<never>((_, reject) => {
    watchdog = setTimeout(
      () => reject(new TemporaryError(`the worker did not start within ${opts.startupTimeoutMs / 1000} s; it was ${holder.phase}`)),
      opts.startupTimeoutMs,
    );
  });
  try {
    await Promise.race([start(), gaveUp]);
  } finally {
    clearTimeout(watchdog);
  }
  // One line for whoever started us (the local pool reads the address from it).
  console.log(
    JSON.stringify({
      ok: true,
      command: 'worker',
      pod: opts.pod,
      listening: address,
      readOnly: opts.readOnly,
      snapshotId: holder.current?.snapshotId,
      startMs: Math.round(performance.now() - started),
    }),
  );
  const stop = async () => {
    await app.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => {
    void stop();
  });
  process.once('SIGINT', () => {
    void stop();
  });
  await new Promise(() => undefined);
}

/** The tables a query touched, as a header (URI-encoded JSON), left out when too long for one. */
function tablesHeader(tables: QueryTables): Record<string, string> {
  const value = encodeURIComponent(JSON.stringify(tables));
  return value.length <= 4096 ? { 'x-featherman-tables': value } : {};
}
