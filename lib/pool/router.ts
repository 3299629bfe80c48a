// The query router: picks the least-loaded ready worker of a pool, queues when all are busy
// (bounded length and wait; principals served in turn, each within its own running and queued
// limits, so one user's burst cannot starve another's query), asks the worker what the query
// would read and write and has the caller authorise that before it runs (the worker then holds
// the query's plan to that grant), sends a query to another worker only when the first refused the
// connection (never after a worker took it: a query that crashed or outran one worker would take
// the next one down too), streams the worker's answer through, and falls back to a one-off query
// run (bounded and queued the same way) when the pool has no ready worker at all. A worker whose
// answer was cut counts as busy until it says it is idle. Where workers come from (pods, local processes) and how the
// fallback runs (a Job, a local process) are interfaces, so the same router serves both.
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import type { Grant, QueryTables } from '../auth/tables.js';
import { checkSqlSize, fallbackLimitsFromEnv, maxSqlBytes } from '../lake/limits.js';
import { metrics } from '../metrics.js';
import { isWorkerStats } from './stats.js';

export interface WorkerEndpoint {
  name: string;
  url: string; // http://host:port
}

export interface PoolSettings {
  namespace: string;
  pool: string;
  catalog: string;
  readOnly: boolean;
  queueMaxLength: number;
  queueMaxWaitMs: number;
  maxQueryMs: number;
  /** Concurrent queries a worker takes (the worker's FEATHERMAN_WORKER_CONCURRENCY). */
  workerConcurrency: number;
  /** A cluster pool's own S3 keys (its credentialsSecret): its fallback Jobs use them, as its workers do. */
  credentialsSecret?: { name: string; accessKeyField?: string; secretKeyField?: string };
  /** Queries one principal may have running in the pool (in this replica); more wait their turn. */
  maxRunningPerPrincipal?: number;
  /** Queries one principal may have waiting in the pool (in this replica); more are refused (429). */
  maxQueuedPerPrincipal?: number;
}

/** What the router learnt about a query on its way, for the query log. */
export interface QueryTrace {
  worker?: string;
  queueWaitMs?: number;
  tables?: QueryTables;
}

export interface QueryRequest {
  sql: string;
  format: 'json' | 'ndjson' | 'csv';
  timeoutMs?: number;
  /** Aborted when the client goes away: the query leaves the queue, or its worker or process is stopped. */
  signal?: AbortSignal;
  /** Who asks: queues serve principals in turn, and the per-principal limits count by it. */
  principal?: string;
  /**
   * Decides on the tables the worker reports (from the bound plan) before the query runs: a
   * Grant the worker then holds the plan to, undefined for no limit, or a RouterError (403).
   */
  authorize?: (tables: QueryTables) => Promise<Grant | undefined>;
  /** The same for the cold path, from the SQL alone; the process holds its plan to the grant. */
  authorizeCold?: (sql: string) => Promise<Grant | undefined>;
  /** Filled in on the way (worker, queue wait, tables). */
  trace?: QueryTrace;
}

export interface RoutedResponse {
  status: number;
  headers: Record<string, string>;
  body: Readable;
  /** The whole answer, when it was small enough to be read before it was handed on (`body` has it too). */
  whole?: Buffer;
}

/**
 * Answers up to this size are read whole before they are handed on: the front then sends them
 * with one write and a Content-Length, instead of piping a stream that ends one write later.
 */
const WHOLE_ANSWER_BYTES = 64 * 1024;

/**
 * Read `res` until it ends or holds `limit` bytes. Ended: its chunks. Otherwise the chunks read
 * are put back (unshift) and the stream paused, to be piped on as it was; a failed stream is
 * left to the handlers already listening on it.
 */
function readWhole(res: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (ended: boolean) => {
      res.off('data', onData);
      res.off('end', onEnd);
      res.off('close', onClose);
      if (ended) return resolve(Buffer.concat(chunks, size));
      res.pause();
      if (size > 0 && !res.destroyed) res.unshift(Buffer.concat(chunks, size));
      resolve(undefined);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= limit) stop(false);
    };
    const onEnd = () => stop(true);
    const onClose = () => stop(false);
    res.on('data', onData);
    res.once('end', onEnd);
    res.once('close', onClose);
  });
}

/** Where a pool's ready workers are: pods of the pool, or local processes. */
export interface WorkerDirectory {
  pools(): Promise<PoolSettings[]>;
  workers(pool: PoolSettings): Promise<WorkerEndpoint[]>;
  /** The workers as known right now, without asking anyone (a local pool knows; /metrics reads it). */
  known?(pool: PoolSettings): WorkerEndpoint[];
}

/** Runs one query without the pool, as a fresh `featherman query` (a Job in a cluster). */
export interface QueryFallback {
  /** `grant`: the tables the query was authorised for; the process refuses a plan outside them. */
  run(pool: PoolSettings, query: QueryRequest, grant?: Grant): Promise<RoutedResponse>;
}

/** Told the demand a pool's sync hook scales on (in a cluster: lib/pool/demand.ts). */
export interface DemandListener {
  /** Queries of the pool waiting in this replica (for a free worker, or on the fallback), on every change. */
  waiting(pool: PoolSettings, queued: number): void;
  /** A query of the pool found no ready worker and went to the fallback. */
  fellBack(pool: PoolSettings): void;
}

export class RouterError extends Error {
  /** `details`: extra fields of the JSON answer (a 403's table and verb). */
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** A query waiting in a queue for `T`: a free worker, or a fallback slot. */
interface Queued<T> {
  principal: string;
  resolve: (value: T) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  /** Workers this query must not go to (they refused its connection). */
  exclude?: Set<string>;
}
type Waiter = Queued<WorkerEndpoint>;
type Gate = Queued<void>;

/**
 * Wait in `queue` until whoever serves it calls resolve (clearing the timer), `waitMs` passes
 * (rejected with `timedOut()`), or `signal` aborts because the client went away.
 */
function waitInQueue<T>(
  queue: Queued<T>[],
  principal: string,
  waitMs: number,
  timedOut: () => RouterError,
  signal: AbortSignal | undefined,
  changed: () => void,
  exclude?: Set<string>,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const leave = (err: Error) => {
      const i = queue.indexOf(entry);
      if (i < 0) return;
      queue.splice(i, 1);
      clearTimeout(entry.timer);
      signal?.removeEventListener('abort', onAbort);
      changed();
      reject(err);
    };
    const onAbort = () => leave(new RouterError(499, 'the client went away'));
    const entry: Queued<T> = {
      principal,
      resolve: (value) => {
        signal?.removeEventListener('abort', onAbort);
        resolve(value);
      },
      reject,
      exclude,
      timer: setTimeout(() => leave(timedOut()), Math.max(0, waitMs)),
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    queue.push(entry);
    changed();
  });
}

/** One pool's in-flight counts and waiting queries, in this service replica. */
class PoolState {
  readonly inflight = new Map<string, number>();
  readonly waiters: Waiter[] = [];
  workers: WorkerEndpoint[] = [];
  /** Queries on the fallback, waiting for a slot or running: demand the pool could not meet. */
  fallbacks = 0;
  /** Fallback processes (or Jobs) running, and queries waiting for one. */
  fallbackRunning = 0;
  readonly fallbackWaiters: Gate[] = [];
  /** Queries each principal has running here (on a worker or the cold path). */
  readonly running = new Map<string, number>();
  /** When each principal was last handed a worker (a counter): the longest unserved goes next. */
  private readonly lastServed = new Map<string, number>();
  private turns = 0;
  constructor(
    public settings: PoolSettings,
    private readonly onChange: (state: PoolState) => void,
  ) {}

  /** Whether the principal may start one more query now (its running limit). */
  mayRun(principal: string): boolean {
    return (this.running.get(principal) ?? 0) < (this.settings.maxRunningPerPrincipal ?? Infinity);
  }

  /** Queries of the principal waiting here, for a worker or a cold-path slot. */
  queuedOf(principal: string): number {
    let n = 0;
    for (const w of this.waiters) if (w.principal === principal) n++;
    for (const w of this.fallbackWaiters) if (w.principal === principal) n++;
    return n;
  }

  start(principal: string): void {
    this.running.set(principal, (this.running.get(principal) ?? 0) + 1);
    this.lastServed.set(principal, ++this.turns);
  }

  /** A query of the principal stopped running: the next one of its (or anyone's) may start. */
  finish(principal: string): void {
    const n = (this.running.get(principal) ?? 1) - 1;
    if (n <= 0) {
      this.running.delete(principal);
      if (!this.waiters.some((w) => w.principal === principal)) this.lastServed.delete(principal);
    } else this.running.set(principal, n);
    this.wake();
  }

  /** Queries waiting here for this pool: for a free worker, or on the fallback. */
  get queued(): number {
    return this.waiters.length + this.fallbacks;
  }

  changed(): void {
    this.onChange(this);
  }

  /** The least-loaded worker with room for one more query (none of `exclude`). */
  free(exclude?: Set<string>): WorkerEndpoint | undefined {
    let best: WorkerEndpoint | undefined;
    let bestLoad = Infinity;
    for (const w of this.workers) {
      if (exclude?.has(w.name)) continue;
      const load = this.inflight.get(w.name) ?? 0;
      if (load < this.settings.workerConcurrency && load < bestLoad) {
        best = w;
        bestLoad = load;
      }
    }
    return best;
  }

  take(w: WorkerEndpoint): void {
    this.inflight.set(w.name, (this.inflight.get(w.name) ?? 0) + 1);
  }

  give(w: WorkerEndpoint): void {
    this.inflight.set(w.name, Math.max(0, (this.inflight.get(w.name) ?? 1) - 1));
    this.wake();
  }

  /**
   * Hand free workers to waiting queries, principals in turn: the next worker goes to the waiting
   * principal served longest ago (within its running limit), to that principal's oldest query a
   * worker suits. One principal's burst thus waits behind everyone else's next query.
   */
  wake(): void {
    for (;;) {
      if (!this.free()) return;
      let best = -1;
      let bestTurn = Infinity;
      let bestWorker: WorkerEndpoint | undefined;
      const seen = new Set<string>();
      for (let i = 0; i < this.waiters.length; i++) {
        const waiter = this.waiters[i]!;
        if (seen.has(waiter.principal) || !this.mayRun(waiter.principal)) continue;
        const w = this.free(waiter.exclude);
        if (!w) continue;
        seen.add(waiter.principal);
        const turn = this.lastServed.get(waiter.principal) ?? 0;
        if (turn < bestTurn) {
          best = i;
          bestTurn = turn;
          bestWorker = w;
        }
      }
      if (best < 0) return;
      const waiter = this.waiters.splice(best, 1)[0]!;
      clearTimeout(waiter.timer);
      this.take(bestWorker!);
      this.start(waiter.principal);
      waiter.resolve(bestWorker!);
      this.changed();
    }
  }
}

export interface RouterOptions {
  /** The largest SQL text routed (FEATHERMAN_MAX_SQL_BYTES; workers check it again). */
  maxSqlBytes?: number;
  /** Fallback queries (processes or Jobs) a pool runs at once (FEATHERMAN_FALLBACK_CONCURRENCY, default 2). */
  fallbackConcurrency?: number;
  /** How long past its deadline a worker may take to stop a query or die (FEATHERMAN_KILL_GRACE). */
  killGraceMs?: number;
  /** How often a worker whose answer was cut is asked whether it is idle again. */
  idlePollMs?: number;
}

/** Connection errors that mean the request never reached the worker: safe to send elsewhere. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);
const notSent = (err: unknown) =>
  NOT_SENT.has(String((err as { cause?: { code?: string } }).cause?.code ?? (err as { code?: string }).code ?? ''));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ATTEMPTS = 3;

/**
 * Connections to workers, kept alive and reused (most recently used first, so few stay warm):
 * a new TCP connection per query would cost about as much as a warm SELECT 1. node:http rather
 * than fetch: its answer is a Node stream already, with no web-stream conversion per chunk.
 * An idle one is dropped after 4 s, before the worker's server would close it (Node's default
 * is 5 s, Fastify's 72 s): a query is never sent on a connection the worker is closing.
 */
const workerAgent = new Agent({ keepAlive: true, scheduling: 'lifo', timeout: 4000 });
const urls = new Map<string, URL>();

/** POST a JSON body to a worker; the answer once its headers arrive. `signal` destroys request and answer. */
function postToWorker(base: string, path: string, body: string, signal?: AbortSignal): Promise<IncomingMessage> {
  let url = urls.get(base);
  if (!url) urls.set(base, (url = new URL(base)));
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        path,
        method: 'POST',
        agent: workerAgent,
        signal,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      resolve,
    );
    // Kept for the request's life (rejecting a settled promise does nothing): an error after the
    // answer began (a worker gone mid-answer) reaches the answer's stream, and must not go unheard.
    req.on('error', reject);
    req.end(body);
  });
}

/** A worker's whole (small) answer as text. */
async function readText(res: IncomingMessage): Promise<string> {
  res.setEncoding('utf8');
  let text = '';
  for await (const piece of res) text += piece as string;
  return text;
}

const header = (res: IncomingMessage, name: string) => {
  const v = res.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
};

export class Router {
  private readonly states = new Map<string, PoolState>();
  private readonly maxSqlBytes: number;
  private readonly fallbackConcurrency: number;
  private readonly killGraceMs: number;
  private readonly idlePollMs: number;

  constructor(
    private readonly directory: WorkerDirectory,
    private readonly fallback: QueryFallback,
    private readonly demand?: DemandListener,
    options: RouterOptions = {},
  ) {
    this.maxSqlBytes = options.maxSqlBytes ?? maxSqlBytes(process.env);
    const limits = fallbackLimitsFromEnv(process.env);
    this.fallbackConcurrency = options.fallbackConcurrency ?? limits.processes;
    this.killGraceMs = options.killGraceMs ?? limits.killGraceMs;
    this.idlePollMs = options.idlePollMs ?? 250;
  }

  /** The pool serving a catalog: the one named, or the catalog's only pool. */
  async resolve(catalog: string, pool?: string, namespace?: string): Promise<PoolSettings> {
    const pools = (await this.directory.pools()).filter(
      (p) => p.catalog === catalog && (!namespace || p.namespace === namespace) && (!pool || p.pool === pool),
    );
    if (pools.length === 0)
      throw new RouterError(404, `no pool ${pool ? `named ${JSON.stringify(pool)} ` : ''}serves catalog ${JSON.stringify(catalog)}`);
    if (pools.length > 1) throw new RouterError(400, `several pools serve catalog ${JSON.stringify(catalog)}; name one with "pool"`);
    return pools[0]!;
  }

  private async state(settings: PoolSettings): Promise<PoolState> {
    const key = `${settings.namespace}/${settings.pool}`;
    let s = this.states.get(key);
    if (!s) this.states.set(key, (s = new PoolState(settings, (changed) => this.demand?.waiting(changed.settings, changed.queued))));
    s.settings = settings;
    s.workers = await this.directory.workers(settings);
    return s;
  }

  /** Sizes and queue lengths, read at scrape time by /metrics (so the hot path sets no gauges). */
  snapshot(): { namespace: string; pool: string; workers: number; busy: number; queued: number }[] {
    return [...this.states.values()].map((s) => {
      // A worker that died since the last query is not counted as ready.
      const workers = this.directory.known?.(s.settings) ?? s.workers;
      return {
        namespace: s.settings.namespace,
        pool: s.settings.pool,
        workers: workers.length,
        busy: workers.filter((w) => (s.inflight.get(w.name) ?? 0) > 0).length,
        queued: s.waiters.length,
      };
    });
  }

  /** 429 naming the limit hit: the pool's queue, or the principal's share of it. */
  private busyError(state: PoolState, waiting: number, principal: string): RouterError {
    const retryAfter = String(Math.max(1, Math.ceil(state.settings.queueMaxWaitMs / 1000 / 2)));
    const perPrincipal = state.settings.maxQueuedPerPrincipal;
    if (perPrincipal !== undefined && state.queuedOf(principal) >= perPrincipal) {
      return new RouterError(
        429,
        `limit queue.maxQueuedPerPrincipal (${perPrincipal}) of pool ${state.settings.pool} reached: ` +
          `you already have ${state.queuedOf(principal)} queries waiting`,
        { 'retry-after': retryAfter },
      );
    }
    return new RouterError(
      429,
      `pool ${state.settings.pool} is busy: ${waiting} queries already wait (limit queue.maxLength: ${state.settings.queueMaxLength})`,
      { 'retry-after': retryAfter },
    );
  }

  private full(state: PoolState, waiting: number, principal: string): boolean {
    return waiting >= state.settings.queueMaxLength || state.queuedOf(principal) >= (state.settings.maxQueuedPerPrincipal ?? Infinity);
  }

  /** A free worker now, or after waiting in the pool's queue until `waitUntil` (epoch ms). */
  private acquire(
    state: PoolState,
    principal: string,
    waitUntil: number,
    signal?: AbortSignal,
    exclude?: Set<string>,
  ): Promise<WorkerEndpoint> {
    // Nobody else waiting for a turn: a free worker is taken at once.
    const w = state.mayRun(principal) && state.waiters.length === 0 ? state.free(exclude) : undefined;
    if (w) {
      state.take(w);
      state.start(principal);
      return Promise.resolve(w);
    }
    if (this.full(state, state.waiters.length, principal)) return Promise.reject(this.busyError(state, state.waiters.length, principal));
    const timedOut = () =>
      new RouterError(503, `no worker of pool ${state.settings.pool} became free within ${state.settings.queueMaxWaitMs} ms`, {
        'retry-after': '1',
      });
    const waiting = waitInQueue(state.waiters, principal, waitUntil - Date.now(), timedOut, signal, () => state.changed(), exclude);
    state.wake(); // it may be this principal's turn on a free worker right away
    return waiting;
  }

  /** A fallback slot of the pool (its processes or Jobs are bounded too), queued like a worker. */
  private fallbackSlot(state: PoolState, principal: string, signal?: AbortSignal): Promise<() => void> {
    const release = () => {
      state.fallbackRunning--;
      const next = state.fallbackWaiters.shift();
      if (next) {
        clearTimeout(next.timer);
        state.fallbackRunning++;
        next.resolve();
      }
    };
    const once = () => {
      let done = false;
      return () => {
        if (!done) {
          done = true;
          release();
        }
      };
    };
    if (state.fallbackRunning < this.fallbackConcurrency) {
      state.fallbackRunning++;
      return Promise.resolve(once());
    }
    if (this.full(state, state.fallbackWaiters.length, principal))
      return Promise.reject(this.busyError(state, state.fallbackWaiters.length, principal));
    const timedOut = () =>
      new RouterError(503, `no query process of pool ${state.settings.pool} became free within ${state.settings.queueMaxWaitMs} ms`, {
        'retry-after': '1',
      });
    return waitInQueue(state.fallbackWaiters, principal, state.settings.queueMaxWaitMs, timedOut, signal, () => undefined).then(once);
  }

  /**
   * Keep a worker's slot until the worker says it is idle again (or is gone, or `untilMs`
   * passes): after a cut answer or a vanished client the query may still be running there, and
   * handing the slot on at once would send the next query to a worker that answers "busy".
   */
  private async holdUntilIdle(state: PoolState, worker: WorkerEndpoint, untilMs: number): Promise<void> {
    try {
      while (Date.now() < untilMs) {
        if (!(await this.directory.workers(state.settings)).some((w) => w.name === worker.name)) return;
        try {
          const res = await fetch(`${worker.url}/stats`, { signal: AbortSignal.timeout(1000), headers: { accept: 'application/json' } });
          const stats: unknown = res.ok ? await res.json() : await res.body?.cancel();
          // Only this router's other queries on the worker may still be running.
          if (isWorkerStats(stats) && stats.ready && stats.activeQueries <= (state.inflight.get(worker.name) ?? 1) - 1) return;
        } catch (err) {
          if (notSent(err)) return; // the worker is gone
        }
        await sleep(this.idlePollMs);
      }
    } finally {
      state.give(worker);
    }
  }

  private async runFallback(state: PoolState, settings: PoolSettings, query: QueryRequest, arrived: number): Promise<RoutedResponse> {
    const labels = { pool: settings.pool, namespace: settings.namespace };
    const principal = query.principal ?? '';
    let grant: Grant | undefined;
    try {
      grant = await query.authorizeCold?.(query.sql);
    } catch (err) {
      if (err instanceof RouterError && err.status === 403) metrics.queries.inc({ ...labels, outcome: 'forbidden' });
      throw err;
    }
    metrics.queries.inc({ ...labels, outcome: 'fallback' });
    this.demand?.fellBack(settings);
    state.fallbacks++;
    state.changed();
    let r: RoutedResponse;
    try {
      const release = await this.fallbackSlot(state, principal, query.signal);
      if (query.trace) query.trace.queueWaitMs = performance.now() - arrived;
      state.start(principal);
      try {
        r = await this.fallback.run(settings, query, grant);
      } finally {
        release();
        state.finish(principal);
      }
    } finally {
      state.fallbacks--;
      state.changed();
    }
    if (query.trace) query.trace.worker = r.headers['x-featherman-pod'] ?? 'fallback';
    r.headers['x-featherman-pod'] ??= 'fallback';
    r.headers['x-featherman-duration'] = (performance.now() - arrived).toFixed(1);
    return r;
  }

  async query(settings: PoolSettings, query: QueryRequest): Promise<RoutedResponse> {
    const labels = { pool: settings.pool, namespace: settings.namespace };
    const arrived = performance.now();
    const waitUntil = Date.now() + settings.queueMaxWaitMs;
    try {
      checkSqlSize(query.sql, this.maxSqlBytes);
    } catch (err) {
      throw new RouterError(400, (err as Error).message);
    }
    const state = await this.state(settings);
    if (state.workers.length === 0) return this.runFallback(state, settings, query, arrived);
    const timeoutMs = Math.min(query.timeoutMs ?? settings.maxQueryMs, settings.maxQueryMs);
    const tried = new Set<string>();
    const principal = query.principal ?? '';
    let grant: Grant | undefined;
    let authorized = !query.authorize;

    for (let attempt = 1; ; attempt++) {
      let worker: WorkerEndpoint;
      try {
        worker = await this.acquire(state, principal, waitUntil, query.signal, tried.size ? tried : undefined);
      } catch (err) {
        const status = err instanceof RouterError ? err.status : 0;
        metrics.queries.inc({ ...labels, outcome: status === 429 ? 'rejected' : status === 499 ? 'cancelled' : 'timeout' });
        throw err;
      }
      // This attempt's turn ends with the query (settled below) or when it goes back to the queue.
      let turnOver = false;
      const endTurn = () => {
        if (!turnOver) {
          turnOver = true;
          state.finish(principal);
        }
      };
      if (attempt === 1) metrics.waitDuration.observe(labels, (performance.now() - arrived) / 1000);
      if (query.trace) {
        query.trace.worker = worker.name;
        query.trace.queueWaitMs ??= performance.now() - arrived;
      }
      if (!authorized) {
        // Ask the worker what the query would read and write (its sandbox binds it; nothing runs),
        // and have the caller authorise exactly that before the query is sent.
        let planned: IncomingMessage;
        let text: string;
        try {
          planned = await postToWorker(worker.url, '/plan', JSON.stringify({ sql: query.sql }), query.signal);
          text = await readText(planned);
        } catch (err) {
          state.give(worker);
          endTurn();
          if (notSent(err) && attempt < ATTEMPTS && !query.signal?.aborted) {
            tried.add(worker.name);
            continue;
          }
          const gone = query.signal?.aborted;
          metrics.queries.inc({ ...labels, outcome: gone ? 'cancelled' : 'worker_failed' });
          if (gone) throw new RouterError(499, 'the client went away');
          throw new RouterError(502, `worker ${worker.name} failed before answering: ${(err as Error).message}`);
        }
        if (planned.statusCode === 503) {
          state.give(worker);
          endTurn();
          continue;
        }
        if (planned.statusCode !== 200) {
          // Refused by the sandbox, or SQL that does not bind: the worker's own answer.
          state.give(worker);
          endTurn();
          metrics.queries.inc({ ...labels, outcome: 'error' });
          return {
            status: planned.statusCode ?? 502,
            headers: {
              'content-type': 'application/json',
              'x-featherman-pod': worker.name,
              'x-featherman-duration': (performance.now() - arrived).toFixed(1),
            },
            body: Readable.from([text]),
          };
        }
        const tables = JSON.parse(text) as QueryTables;
        if (query.trace) query.trace.tables = tables;
        try {
          grant = await query.authorize!(tables);
        } catch (err) {
          state.give(worker);
          endTurn();
          metrics.queries.inc({ ...labels, outcome: err instanceof RouterError && err.status === 403 ? 'forbidden' : 'error' });
          throw err;
        }
        authorized = true;
      }
      // How long the worker may take before it has stopped the query (or died) for sure.
      const stopBy = Date.now() + timeoutMs + this.killGraceMs + 5000;
      // One controller held here (AbortSignal.any's composite can be collected while undici waits).
      const controller = new AbortController();
      const abort = () => controller.abort();
      const timer = setTimeout(abort, timeoutMs + this.killGraceMs + 10_000);
      query.signal?.addEventListener('abort', abort, { once: true });
      const detach = () => {
        clearTimeout(timer);
        query.signal?.removeEventListener('abort', abort);
      };
      const sent = performance.now();
      let res: IncomingMessage;
      try {
        res = await postToWorker(
          worker.url,
          '/query',
          JSON.stringify({ sql: query.sql, format: query.format, timeoutMs, ...(grant ? { grant } : {}) }),
          controller.signal,
        );
      } catch (err) {
        detach();
        if (notSent(err)) {
          // The worker refused the connection: the query never reached it, so it is safe to
          // send elsewhere. Anything later (a reset, a timeout) may be the query's own doing,
          // and running it again would let one query take down worker after worker.
          state.give(worker);
          endTurn();
          tried.add(worker.name);
          if (attempt < ATTEMPTS && !query.signal?.aborted) continue;
        } else {
          endTurn();
          void this.holdUntilIdle(state, worker, stopBy);
        }
        const gone = query.signal?.aborted;
        metrics.queries.inc({ ...labels, outcome: gone ? 'cancelled' : 'worker_failed' });
        if (gone) throw new RouterError(499, 'the client went away');
        throw new RouterError(502, `worker ${worker.name} failed before answering: ${(err as Error).message}`);
      }
      const status = res.statusCode ?? 502;
      if (status === 503) {
        detach();
        // Busy (another replica's query) or draining: the query never started there. Back into
        // the queue, and the worker counts as busy until it says otherwise.
        res.resume();
        endTurn();
        void this.holdUntilIdle(state, worker, stopBy);
        continue;
      }
      const answered = performance.now();
      const headers: Record<string, string> = {
        'content-type': header(res, 'content-type') ?? 'application/json',
        'x-featherman-pod': worker.name,
        'x-featherman-duration': (answered - arrived).toFixed(1),
        // queue: arrival to a worker (and its plan, if asked); worker: the request sent to its answer's
        // headers. The worker's own phases stay between router and worker (they would tell a
        // caller whether someone else's identical query warmed the sandbox's cache).
        'server-timing': `queue;dur=${(sent - arrived).toFixed(3)}, worker;dur=${(answered - sent).toFixed(3)}`,
      };
      const snapshot = header(res, 'x-featherman-snapshot');
      if (snapshot) headers['x-featherman-snapshot'] = snapshot;
      const columns = header(res, 'x-featherman-columns');
      if (columns) headers['x-featherman-columns'] = columns;
      const planned = header(res, 'x-featherman-tables');
      if (planned && query.trace && !query.trace.tables) {
        try {
          query.trace.tables = JSON.parse(decodeURIComponent(planned)) as QueryTables;
        } catch {
          /* the log goes without */
        }
      }
      const retryAfter = header(res, 'retry-after');
      if (retryAfter) headers['retry-after'] = retryAfter;
      const body: Readable = res;
      let settled = false;
      const settle = (outcome: string, complete: boolean) => {
        if (settled) return;
        settled = true;
        detach();
        endTurn();
        // A complete answer means the worker has finished the query; a cut one may not have.
        if (complete) state.give(worker);
        else void this.holdUntilIdle(state, worker, stopBy);
        metrics.queries.inc({ ...labels, outcome });
        metrics.queryDuration.observe(labels, (performance.now() - arrived) / 1000);
      };
      // A 504 may come from a worker about to kill itself (its query ignored the interrupt): its
      // slot is held until it says it is idle or is gone, so no query is sent to it meanwhile.
      body.once('end', () => settle(status === 200 ? 'ok' : 'error', status !== 504));
      body.on('error', () => settle(query.signal?.aborted ? 'cancelled' : 'stream_error', false));
      body.once('close', () => settle(query.signal?.aborted ? 'cancelled' : 'stream_error', false));
      const whole = await readWhole(res, WHOLE_ANSWER_BYTES);
      if (whole) return { status, headers, body: Readable.from([whole]), whole };
      if (res.destroyed && !res.readableEnded) {
        // Failed before its first 64 KiB were read: nothing is sent yet, so say so plainly.
        if (query.signal?.aborted) throw new RouterError(499, 'the client went away');
        throw new RouterError(502, `worker ${worker.name} failed while answering`);
      }
      return { status, headers, body };
    }
  }
}
