// The query router: picks the least-loaded ready worker of a pool, queues FIFO when all are busy
// (bounded length and wait), retries a read-only query once on another worker if the first one
// dies, streams the worker's answer through, and falls back to a one-off query run when the
// pool has no ready worker at all. Where workers come from (pods, local processes) and how the
// fallback runs (a Job, a local process) are interfaces, so the same router serves both.
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { metrics } from './metrics.js';

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
}

export interface QueryRequest {
  sql: string;
  format: 'json' | 'ndjson' | 'csv';
  timeoutMs?: number;
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

interface Waiter {
  resolve: (worker: WorkerEndpoint) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** One pool's in-flight counts and waiting queries, in this service replica. */
class PoolState {
  readonly inflight = new Map<string, number>();
  readonly waiters: Waiter[] = [];
  workers: WorkerEndpoint[] = [];
  /** Queries being answered by the fallback: demand the pool could not meet. */
  fallbacks = 0;
  constructor(public settings: PoolSettings, private readonly onChange: (state: PoolState) => void) {}

  /** Queries waiting here for this pool: for a free worker, or on the fallback. */
  get queued(): number { return this.waiters.length + this.fallbacks; }

  changed(): void { this.onChange(this); }

  /** The least-loaded worker with room for one more query (other than `exclude`). */
  free(exclude?: string): WorkerEndpoint | undefined {
    let best: WorkerEndpoint | undefined;
    let bestLoad = Infinity;
    for (const w of this.workers) {
      if (w.name === exclude) continue;
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

  wake(): void {
    while (this.waiters.length) {
      const w = this.free();
      if (!w) return;
      const waiter = this.waiters.shift()!;
      clearTimeout(waiter.timer);
      this.take(w);
      waiter.resolve(w);
      this.changed();
    }
  }
}

export class Router {
  private readonly states = new Map<string, PoolState>();

  constructor(
    private readonly directory: WorkerDirectory,
    private readonly fallback: QueryFallback,
    private readonly demand?: DemandListener,
  ) {}

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
    return [...this.states.values()].map((s) => ({
      namespace: s.settings.namespace, pool: s.settings.pool, workers: s.workers.length,
      busy: s.workers.filter((w) => (s.inflight.get(w.name) ?? 0) > 0).length, queued: s.waiters.length,
    }));
  }

  private acquire(state: PoolState, exclude?: string): Promise<WorkerEndpoint> {
    const w = state.free(exclude);
    if (w) { state.take(w); return Promise.resolve(w); }
    if (state.waiters.length >= state.settings.queueMaxLength) {
      const retryAfter = Math.max(1, Math.ceil(state.settings.queueMaxWaitMs / 1000 / 2));
      return Promise.reject(new RouterError(429, `pool ${state.settings.pool} is busy: ${state.waiters.length} queries already wait`, { 'retry-after': String(retryAfter) }));
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          const i = state.waiters.indexOf(waiter);
          if (i >= 0) state.waiters.splice(i, 1);
          state.changed();
          reject(new RouterError(503, `no worker of pool ${state.settings.pool} became free within ${state.settings.queueMaxWaitMs} ms`, { 'retry-after': '1' }));
        }, state.settings.queueMaxWaitMs),
      };
      state.waiters.push(waiter);
      state.changed();
    });
  }

  async query(settings: PoolSettings, query: QueryRequest): Promise<RoutedResponse> {
    const labels = { pool: settings.pool, namespace: settings.namespace };
    const arrived = performance.now();
    const state = await this.state(settings);
    if (state.workers.length === 0) {
      metrics.queries.inc({ ...labels, outcome: 'fallback' });
      this.demand?.fellBack(settings);
      state.fallbacks++;
      state.changed();
      let r: RoutedResponse;
      try {
        r = await this.fallback.run(settings, query);
      } finally {
        state.fallbacks--;
        state.changed();
      }
      r.headers['x-featherman-pod'] ??= 'fallback';
      r.headers['x-featherman-duration'] = (performance.now() - arrived).toFixed(1);
      return r;
    }
    let worker: WorkerEndpoint;
    try {
      worker = await this.acquire(state);
    } catch (err) {
      metrics.queries.inc({ ...labels, outcome: err instanceof RouterError && err.status === 429 ? 'rejected' : 'timeout' });
      throw err;
    }
    metrics.waitDuration.observe(labels, (performance.now() - arrived) / 1000);

    for (let attempt = 1; ; attempt++) {
      let res: Response;
      try {
        res = await fetch(`${worker.url}/query`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ sql: query.sql, format: query.format, timeoutMs: Math.min(query.timeoutMs ?? settings.maxQueryMs, settings.maxQueryMs) }),
          signal: AbortSignal.timeout(settings.maxQueryMs + 10_000),
        });
      } catch (err) {
        state.give(worker);
        // The worker went away before answering. A read-only query is safe to run again elsewhere.
        if (attempt === 1 && settings.readOnly) {
          try {
            worker = await this.acquire(state, worker.name);
            continue;
          } catch { /* fall through to 502 */ }
        }
        metrics.queries.inc({ ...labels, outcome: 'worker_failed' });
        throw new RouterError(502, `worker ${worker.name} failed before answering: ${(err as Error).message}`);
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
      const done = (outcome: string) => {
        state.give(worker);
        metrics.queries.inc({ ...labels, outcome });
        metrics.queryDuration.observe(labels, (performance.now() - arrived) / 1000);
      };
      let settled = false;
      const settle = (outcome: string) => { if (!settled) { settled = true; done(outcome); } };
      body.once('end', () => settle(res.ok ? 'ok' : 'error'));
      body.once('error', () => settle('stream_error'));
      body.once('close', () => settle(res.ok ? 'ok' : 'error'));
      return { status: res.status, headers, body };
    }
  }
}
