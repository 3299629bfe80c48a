// `featherman worker`: the warm pod's process. One engine (lib/pool/engine.ts) kept warm, served
// over HTTP: POST /query streams rows as NDJSON, CSV or JSON within row, byte and time limits;
// GET /stats says how busy it is (the pool hooks scale on it); /readyz turns ready once the lake
// is attached; /healthz answers while the process does.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { parseDuration } from '../api/duration.js';
import { BadInputError, TemporaryError } from '../errors.js';
import { loadConfig, type LakeConfig } from '../lake/config.js';
import { isStatementError } from '../lake/failures.js';
import { csvLine } from '../lake/format.js';
import { redact } from '../redact.js';
import { EngineHolder } from './engine.js';
import { checkReadOnlyQuery, checkWriteQuery, SandboxError } from './sandbox.js';
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
}

export type QueryFormat = 'json' | 'ndjson' | 'csv';
const CONTENT_TYPES: Record<QueryFormat, string> = { json: 'application/json', ndjson: 'application/x-ndjson', csv: 'text/csv; charset=utf-8' };
const UTILIZATION_WINDOW_MS = 60_000;

export function workerOptionsFromEnv(env: NodeJS.ProcessEnv): WorkerOptions {
  const duration = (name: string, fallback: string) => {
    const seconds = parseDuration(env[name] ?? fallback);
    if (seconds === undefined) throw new BadInputError(`${name}: must be a duration such as 30s or 5m`);
    return seconds * 1000;
  };
  const int = (name: string, fallback: number) => {
    const v = env[name] === undefined ? fallback : Number(env[name]);
    if (!Number.isInteger(v) || v < 1) throw new BadInputError(`${name}: must be a positive whole number`);
    return v;
  };
  const config = loadConfig(env);
  const readOnly = !/^(false|0|no)$/i.test(env.FEATHERMAN_POOL_READ_ONLY ?? 'true');
  if (!readOnly && config.metadata.type !== 'postgres') {
    throw new BadInputError('FEATHERMAN_POOL_READ_ONLY: writing workers need a Postgres catalog (a DuckDB catalog file admits one writer, the table Jobs)');
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
  };
}

/** Busy time over the last minute, from the intervals in which at least one query ran. */
class Utilization {
  private intervals: [number, number][] = [];
  private busySince?: number;
  start(now: number) { if (this.busySince === undefined) this.busySince = now; }
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
export async function buildWorker(opts: WorkerOptions): Promise<{ app: FastifyInstance; holder: EngineHolder; start: () => Promise<void> }> {
  const holder = new EngineHolder({ config: opts.config, readOnly: opts.readOnly, scratchDir: opts.scratchDir, refreshMs: opts.refreshMs });
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
  const startedAt = new Date().toISOString();
  const utilization = new Utilization();
  let active = 0;
  let served = 0;
  let lastQueryAt: string | undefined;
  let draining = false;
  let ready = false;

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => (ready && holder.current && !draining ? { status: 'ready' } : reply.code(503).send({ status: 'starting' })));
  app.get('/stats', async (): Promise<WorkerStats> => ({
    pod: opts.pod,
    ready: ready && !draining,
    state: !ready ? 'starting' : draining ? 'draining' : active > 0 ? 'busy' : 'idle',
    activeQueries: active,
    queriesServed: served,
    startedAt,
    ...(lastQueryAt ? { lastQueryAt } : {}),
    utilization: Math.round(utilization.value(Date.now()) * 1000) / 1000,
    ...(holder.current ? { snapshotId: holder.current.snapshotId } : {}),
  }));

  app.post<{ Body: { sql: string; format?: QueryFormat; timeoutMs?: number; maxRows?: number } }>('/query', {
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
        },
      },
    },
  }, async (request, reply) => {
    const engine = holder.current;
    if (!engine || !ready || draining) return reply.code(503).header('Retry-After', '1').send({ error: 'worker is not ready' });
    if (active >= opts.concurrency) return reply.code(503).header('Retry-After', '1').send({ error: 'worker is busy' });
    const { sql } = request.body;
    const format = request.body.format ?? 'json';
    const deadlineMs = Math.min(request.body.timeoutMs ?? opts.maxQueryMs, opts.maxQueryMs);
    const maxRows = Math.min(request.body.maxRows ?? opts.maxRows, opts.maxRows);

    active++;
    utilization.start(Date.now());
    const release = engine.acquire();
    const connection = await engine.connect();
    const started = performance.now();
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; connection.interrupt(); }, deadlineMs);
    const finish = () => {
      clearTimeout(timer);
      connection.closeSync();
      release();
      active--;
      served++;
      lastQueryAt = new Date().toISOString();
      if (active === 0) utilization.stop(Date.now());
    };
    const fail = (code: number, message: string) => { finish(); return reply.code(code).send({ error: redact(message) }); };

    // The first batch is computed before any header is sent, so errors (and a worker dying during
    // an aggregate) surface as a status code the router can act on, not as a truncated body.
    let columns: string[];
    let batches: AsyncIterator<Record<string, unknown>[]>;
    let first: IteratorResult<Record<string, unknown>[]>;
    try {
      if (opts.readOnly) await checkReadOnlyQuery(connection, sql);
      else await checkWriteQuery(connection, sql);
      const result = await connection.stream(sql);
      columns = result.columnNames();
      batches = result.yieldRowObjectJson()[Symbol.asyncIterator]();
      first = await batches.next();
    } catch (err) {
      const message = (err as Error).message.split('\n')[0] ?? 'query failed';
      if (err instanceof SandboxError) return fail(403, message);
      if (err instanceof BadInputError) return fail(400, message);
      if (timedOut) return fail(504, `query exceeded its deadline of ${deadlineMs} ms and was interrupted`);
      if (isStatementError(message)) return fail(400, `sql: ${message}`);
      return fail(502, `the lake could not answer: ${message}`);
    }

    // Later failures end the body with a trailer (and an "error" field in JSON).
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': CONTENT_TYPES[format],
      'x-featherman-pod': opts.pod,
      'x-featherman-snapshot': String(engine.snapshotId),
      trailer: 'x-featherman-rows, x-featherman-truncated, x-featherman-error, x-featherman-duration',
    });
    let rows = 0;
    let bytes = 0;
    let truncated = false;
    let error: string | undefined;
    const write = (text: string) => { bytes += Buffer.byteLength(text); return res.write(text); };
    try {
      if (format === 'json') write(`{"columns":${JSON.stringify(columns)},"rows":[`);
      if (format === 'csv') write(csvLine(columns));
      outer: for (let next = first; !next.done; next = await batches.next()) {
        for (const row of next.value) {
          if (rows >= maxRows || bytes >= opts.maxBytes) { truncated = true; break outer; }
          const ok = format === 'json' ? write(`${rows ? ',' : ''}${JSON.stringify(row)}`)
            : format === 'ndjson' ? write(`${JSON.stringify(row)}\n`)
              : write(csvLine(columns.map((c) => row[c])));
          rows++;
          if (!ok) await new Promise((r) => res.once('drain', r));
          if (res.destroyed) { connection.interrupt(); break outer; }
        }
      }
    } catch (err) {
      error = timedOut ? `query exceeded its deadline of ${deadlineMs} ms and was interrupted` : redact((err as Error).message.split('\n')[0] ?? 'failed');
    }
    if (timedOut && !error) error = `query exceeded its deadline of ${deadlineMs} ms and was interrupted`;
    const duration = performance.now() - started;
    if (format === 'json') write(`],"rowCount":${rows},"truncated":${truncated}${error ? `,"error":${JSON.stringify(error)}` : ''},"snapshotId":${engine.snapshotId},"durationMs":${duration.toFixed(2)}}`);
    res.addTrailers({ 'x-featherman-rows': String(rows), 'x-featherman-truncated': String(truncated), 'x-featherman-duration': duration.toFixed(2), ...(error ? { 'x-featherman-error': error.slice(0, 500) } : {}) });
    res.end();
    finish();
  });

  app.addHook('onClose', async () => { draining = true; holder.stop(); });
  return { app, holder, start: async () => { await holder.start(); ready = true; } };
}

export async function workerCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const { parse, positiveInt } = await import('../lake/commands/args.js');
  const { values } = parse(argv, { port: { type: 'string', default: '8080' }, host: { type: 'string' } });
  const port = positiveInt('--port', values.port) ?? 8080;
  const host = values.host ?? env.POD_IP ?? '0.0.0.0';
  const opts = workerOptionsFromEnv(env);
  const { app, holder, start } = await buildWorker(opts);
  const address = await app.listen({ port, host });
  // A worker that never gets ready would be live but useless: fail (exit 75, so the pod is
  // restarted), saying which step hung (a writer holding the catalog lock, storage, ...).
  const started = performance.now();
  let watchdog: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<never>((_, reject) => {
    watchdog = setTimeout(() => reject(new TemporaryError(`the worker did not start within ${opts.startupTimeoutMs / 1000} s; it was ${holder.phase}`)), opts.startupTimeoutMs);
  });
  try {
    await Promise.race([start(), gaveUp]);
  } finally {
    clearTimeout(watchdog);
  }
  // One line for whoever started us (the local pool reads the address from it).
  console.log(JSON.stringify({ ok: true, command: 'worker', pod: opts.pod, listening: address, readOnly: opts.readOnly, snapshotId: holder.current?.snapshotId, startMs: Math.round(performance.now() - started) }));
  const stop = async () => { await app.close(); process.exit(0); };
  process.once('SIGTERM', () => { void stop(); });
  process.once('SIGINT', () => { void stop(); });
  await new Promise(() => undefined);
}
