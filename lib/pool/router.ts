// The query router: picks the least-loaded ready worker of a pool, queues FIFO when all are busy
// (bounded length and wait), sends a query to another worker only when the first refused the
// connection (never after a worker took it: a query that crashed or outran one worker would take
// the next one down too), streams the worker's answer through, and falls back to a one-off query
// run (bounded and queued the same way) when the pool has no ready worker at all. A worker whose
// answer was cut counts as busy until it says it is idle. Where workers come from (pods, local processes) and how the
// fallback runs (a Job, a local process) are interfaces, so the same router serves both.
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { checkSqlSize, fallbackLimitsFromEnv, maxSqlBytes } from './limits.js';
import { metrics } from './metrics.js';
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
}

export interface QueryRequest {
  sql: string;
  format: 'json' | 'ndjson' | 'csv';
  timeoutMs?: number;
  /** Aborted when the client goes away: the query leaves the queue, or its worker or process is stopped. */
  signal?: AbortSignal;
}

export interface RoutedResponse {
  status: number;
  headers: Record<string, string>;
  body: Readable;
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
  run(pool: PoolSettings, query: QueryRequest): Promise<RoutedResponse>;
}

/** Told the demand a pool's sync hook scales on (in a cluster: lib/pool/demand.ts). */
export interface DemandListener {
  /** Queries of the pool waiting in this replica (for a free worker, or on the fallback), on every change. */
  waiting(pool: PoolSettings, queued: number): void;
  /** A query of the pool found no ready worker and went to the fallback. */
  fellBack(pool: PoolSettings): void;
}

export class RouterError extends Error {
  constructor(readonly status: number, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

/** A query waiting in a queue for `T`: a free worker, or a fallback slot. */
interface Queued<T> {
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
function waitInQueue<T>(queue: Queued<T>[], waitMs: number, timedOut: () => RouterError, signal: AbortSignal | undefined,
  changed: () => void, exclude?: Set<string>): Promise<T> {
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
      resolve: (value) => { signal?.removeEventListener('abort', onAbort); resolve(value); },
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
  constructor(public settings: PoolSettings, private readonly onChange: (state: PoolState) => void) {}

  /** Queries waiting here for this pool: for a free worker, or on the fallback. */
  get queued(): number { return this.waiters.length + this.fallbacks; }

  changed(): void { this.onChange(this); }

  /** The least-loaded worker with room for one more query (none of `exclude`). */
  free(exclude?: Set<string>): WorkerEndpoint | undefined {
    let best: WorkerEndpoint | undefined;
    let bestLoad = Infinity;
    for (const w of this.workers) {
      if (exclude?.has(w.name)) continue;
      const load = this.inflight.get(w.name) ?? 0;
      if (load < this.settings.workerConcurrency && load < bestLoad) { best = w; bestLoad = load; }
    }
    return best;
  }

  take(w: WorkerEndpoint): void { this.inflight.set(w.name, (this.inflight.get(w.name) ?? 0) + 1); }

  give(w: WorkerEndpoint): void {
    this.inflight.set(w.name, Math.max(0, (this.inflight.get(w.name) ?? 1) - 1));
    this.wake();
  }

  /** Hand free workers to waiting queries, first come first served among those a worker suits. */
  wake(): void {
    for (let i = 0; i < this.waiters.length;) {
      if (!this.free()) return;
      const waiter = this.waiters[i]!;
      const w = this.free(waiter.exclude);
      if (!w) { i++; continue; }
      this.waiters.splice(i, 1);
      clearTimeout(waiter.timer);
      this.take(w);
      waiter.resolve(w);
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
const notSent = (err: unknown) => NOT_SENT.has(String((err as { cause?: { code?: string } }).cause?.code ?? (err as { code?: string }).code ?? ''));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ATTEMPTS = 3;

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
    const pools = (await this.directory.pools()).filter((p) => p.catalog === catalog && (!namespace || p.namespace === namespace) && (!pool || p.pool === pool));
    if (pools.length === 0) throw new RouterError(404, `no pool ${pool ? `named ${JSON.stringify(pool)} ` : ''}serves catalog ${JSON.stringify(catalog)}`);
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
        namespace: s.settings.namespace, pool: s.settings.pool, workers: workers.length,
        busy: workers.filter((w) => (s.inflight.get(w.name) ?? 0) > 0).length, queued: s.waiters.length,
      };
    });
  }

  private busyError(state: PoolState, waiting: number): RouterError {
    const retryAfter = Math.max(1, Math.ceil(state.settings.queueMaxWaitMs / 1000 / 2));
    return new RouterError(429, `pool ${state.settings.pool} is busy: ${waiting} queries already wait`, { 'retry-after': String(retryAfter) });
  }

  /** A free worker now, or after waiting in the pool's queue until `waitUntil` (epoch ms). */
  private acquire(state: PoolState, waitUntil: number, signal?: AbortSignal, exclude?: Set<string>): Promise<WorkerEndpoint> {
    const w = state.free(exclude);
    if (w) { state.take(w); return Promise.resolve(w); }
    if (state.waiters.length >= state.settings.queueMaxLength) return Promise.reject(this.busyError(state, state.waiters.length));
    const timedOut = () => new RouterError(503, `no worker of pool ${state.settings.pool} became free within ${state.settings.queueMaxWaitMs} ms`, { 'retry-after': '1' });
    return waitInQueue(state.waiters, waitUntil - Date.now(), timedOut, signal, () => state.changed(), exclude);
  }

  /** A fallback slot of the pool (its processes or Jobs are bounded too), queued like a worker. */
  private fallbackSlot(state: PoolState, signal?: AbortSignal): Promise<() => void> {
    const release = () => {
      state.fallbackRunning--;
      const next = state.fallbackWaiters.shift();
      if (next) { clearTimeout(next.timer); state.fallbackRunning++; next.resolve(); }
    };
    const once = () => { let done = false; return () => { if (!done) { done = true; release(); } }; };
    if (state.fallbackRunning < this.fallbackConcurrency) { state.fallbackRunning++; return Promise.resolve(once()); }
    if (state.fallbackWaiters.length >= state.settings.queueMaxLength) return Promise.reject(this.busyError(state, state.fallbackWaiters.length));
    const timedOut = () => new RouterError(503, `no query process of pool ${state.settings.pool} became free within ${state.settings.queueMaxWaitMs} ms`, { 'retry-after': '1' });
    return waitInQueue(state.fallbackWaiters, state.settings.queueMaxWaitMs, timedOut, signal, () => undefined).then(once);
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
    metrics.queries.inc({ ...labels, outcome: 'fallback' });
    this.demand?.fellBack(settings);
    state.fallbacks++;
    state.changed();
    let r: RoutedResponse;
    try {
      const release = await this.fallbackSlot(state, query.signal);
      try {
        r = await this.fallback.run(settings, query);
      } finally {
        release();
      }
    } finally {
      state.fallbacks--;
      state.changed();
    }
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

    for (let attempt = 1; ; attempt++) {
      let worker: WorkerEndpoint;
      try {
        worker = await this.acquire(state, waitUntil, query.signal, tried.size ? tried : undefined);
      } catch (err) {
        const status = err instanceof RouterError ? err.status : 0;
        metrics.queries.inc({ ...labels, outcome: status === 429 ? 'rejected' : status === 499 ? 'cancelled' : 'timeout' });
        throw err;
      }
      if (attempt === 1) metrics.waitDuration.observe(labels, (performance.now() - arrived) / 1000);
      // How long the worker may take before it has stopped the query (or died) for sure.
      const stopBy = Date.now() + timeoutMs + this.killGraceMs + 5000;
      // One controller held here (AbortSignal.any's composite can be collected while undici waits).
      const controller = new AbortController();
      const abort = () => controller.abort();
      const timer = setTimeout(abort, timeoutMs + this.killGraceMs + 10_000);
      query.signal?.addEventListener('abort', abort, { once: true });
      const detach = () => { clearTimeout(timer); query.signal?.removeEventListener('abort', abort); };
      let res: Response;
      try {
        res = await fetch(`${worker.url}/query`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ sql: query.sql, format: query.format, timeoutMs }),
          signal: controller.signal,
        });
      } catch (err) {
        detach();
        if (notSent(err)) {
          // The worker refused the connection: the query never reached it, so it is safe to
          // send elsewhere. Anything later (a reset, a timeout) may be the query's own doing,
          // and running it again would let one query take down worker after worker.
          state.give(worker);
          tried.add(worker.name);
          if (attempt < ATTEMPTS && !query.signal?.aborted) continue;
        } else {
          void this.holdUntilIdle(state, worker, stopBy);
        }
        const gone = query.signal?.aborted;
        metrics.queries.inc({ ...labels, outcome: gone ? 'cancelled' : 'worker_failed' });
        if (gone) throw new RouterError(499, 'the client went away');
        throw new RouterError(502, `worker ${worker.name} failed before answering: ${(err as Error).message}`);
      }
      if (res.status === 503) {
        detach();
        // Busy (another replica's query) or draining: the query never started there. Back into
        // the queue, and the worker counts as busy until it says otherwise.
        await res.body?.cancel().catch(() => undefined);
        void this.holdUntilIdle(state, worker, stopBy);
        continue;
      }
      const headers: Record<string, string> = {
        'content-type': res.headers.get('content-type') ?? 'application/json',
        'x-featherman-pod': worker.name,
        'x-featherman-duration': (performance.now() - arrived).toFixed(1),
      };
      const snapshot = res.headers.get('x-featherman-snapshot');
      if (snapshot) headers['x-featherman-snapshot'] = snapshot;
      const retryAfter = res.headers.get('retry-after');
      if (retryAfter) headers['retry-after'] = retryAfter;
      const body = res.body ? Readable.fromWeb(res.body as unknown as WebReadableStream) : Readable.from([]);
      let settled = false;
      const settle = (outcome: string, complete: boolean) => {
        if (settled) return;
        settled = true;
        detach();
        // A complete answer means the worker has finished the query; a cut one may not have.
        if (complete) state.give(worker);
        else void this.holdUntilIdle(state, worker, stopBy);
        metrics.queries.inc({ ...labels, outcome });
        metrics.queryDuration.observe(labels, (performance.now() - arrived) / 1000);
      };
      // A 504 may come from a worker about to kill itself (its query ignored the interrupt): its
      // slot is held until it says it is idle or is gone, so no query is sent to it meanwhile.
      body.once('end', () => settle(res.ok ? 'ok' : 'error', res.status !== 504));
      body.once('error', () => settle(query.signal?.aborted ? 'cancelled' : 'stream_error', false));
      body.once('close', () => settle(query.signal?.aborted ? 'cancelled' : 'stream_error', false));
      return { status: res.status, headers, body };
    }
  }
}
