// Without a cluster (`npm start`, tests, benchmarks) the router drives local worker processes
// instead of pods, and falls back to a local `featherman query` process instead of a Job.
// Both kinds of process get an explicit share of the machine's memory (DuckDB's memory_limit and
// a V8 heap limit), so two of them never each plan on 80% of it; a worker that dies is replaced,
// as a Deployment would replace its pod.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { EXIT_BAD_INPUT, EXIT_DEADLINE, EXIT_REFUSED, EXIT_TEMPORARY } from '../errors.js';
import { packageRoot } from '../lake/config.js';
import { fallbackLimitsFromEnv, type FallbackLimits } from '../lake/limits.js';
import { workerOptionsFromEnv } from './worker.js';
import type { Grant } from '../auth/tables.js';
import type { PoolSettings, QueryFallback, QueryRequest, RoutedResponse, WorkerDirectory, WorkerEndpoint } from './router.js';

// The built CLI, also when this module runs from TypeScript source (tests).
const CLI = join(packageRoot(), 'dist', 'lib', 'cli.js');
const START_ATTEMPTS = 3;
const REPLACE_RETRY_MS = 5000;
const MiB = 1024 * 1024;

/** The memory this process tree may use: the cgroup's limit if there is one, else the machine's. */
function availableMemory(): number {
  let total = totalmem();
  try {
    const cgroup = readFileSync('/sys/fs/cgroup/memory.max', 'utf8').trim();
    if (/^\d+$/.test(cgroup)) total = Math.min(total, Number(cgroup));
  } catch {
    /* no cgroup v2 limit */
  }
  return total;
}

/**
 * One process's share when `processes` DuckDB processes run side by side: half the memory split
 * between them for DuckDB, and a V8 heap of a quarter of that (results leave in small pieces, so
 * the heap holds little beyond one row), between 256 MiB and 4 GiB.
 */
export function memoryShare(processes: number, total = availableMemory()): { memoryLimit: string; heapMiB: number } {
  const duckdb = Math.max(128 * MiB, Math.floor(total / (2 * Math.max(1, processes))));
  const heapMiB = Math.min(4096, Math.max(256, Math.floor(duckdb / 4 / MiB)));
  return { memoryLimit: `${Math.floor(duckdb / MiB)}MiB`, heapMiB };
}

/** The environment with the share's memory_limit, unless one was configured. */
function withMemoryShare(env: NodeJS.ProcessEnv, share: { memoryLimit: string }): NodeJS.ProcessEnv {
  // The query API's tokens are the service's alone: processes that run user SQL never get them.
  const { FEATHERMAN_API_TOKENS: _tokens, FEATHERMAN_API_TOKENS_FILE: _file, ...rest } = env;
  return env.FEATHERMAN_MEMORY_LIMIT ? rest : { ...rest, FEATHERMAN_MEMORY_LIMIT: share.memoryLimit };
}

export interface LocalWorker extends WorkerEndpoint {
  process: ChildProcess;
}

export class LocalPool implements WorkerDirectory {
  readonly processes: LocalWorker[] = [];
  private counter = 0;
  private target = 0;
  private starting = 0;
  private stopped = false;
  private retryTimer?: NodeJS.Timeout;
  /** Workers that exited on their own and were replaced (a query killed them, or the kernel did). */
  replaced = 0;
  /** Worker starts that failed (exited or hung while starting) and were tried again. */
  failedStarts = 0;

  constructor(
    readonly settings: PoolSettings,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  async pools(): Promise<PoolSettings[]> {
    return [this.settings];
  }

  /** Workers whose process is still running. */
  alive(): LocalWorker[] {
    return this.processes.filter((w) => w.process.exitCode === null && w.process.signalCode === null);
  }

  /**
   * Whether the pool can serve: a live worker, or no worker wanted (every query takes the cold
   * path). The service's /readyz reports this.
   */
  ready(): boolean {
    return this.target === 0 || this.alive().length > 0;
  }

  async workers(): Promise<WorkerEndpoint[]> {
    return this.alive();
  }

  known(): WorkerEndpoint[] {
    return this.alive();
  }

  /**
   * Start one worker and wait until it is attached and listening. A worker that exits or hangs
   * while starting is replaced, as the pool hooks replace a pod that never gets ready.
   */
  async add(): Promise<LocalWorker> {
    this.starting++;
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          return await this.startOne();
        } catch (err) {
          if (attempt >= START_ATTEMPTS || this.stopped) throw err;
          this.failedStarts++;
          console.error(
            JSON.stringify({
              level: 'warn',
              msg: 'local worker failed to start; starting another',
              pool: this.settings.pool,
              error: (err as Error).message,
            }),
          );
        }
      }
    } finally {
      this.starting--;
    }
  }

  private async startOne(): Promise<LocalWorker> {
    const name = `${this.settings.pool}-local-${++this.counter}`;
    const share = memoryShare(Math.max(this.target, 1));
    const env = {
      ...withMemoryShare(this.env, share),
      POD_NAME: name,
      FEATHERMAN_POOL: this.settings.pool,
      FEATHERMAN_POOL_READ_ONLY: String(this.settings.readOnly),
      FEATHERMAN_MAX_QUERY_DURATION: `${Math.ceil(this.settings.maxQueryMs / 1000)}s`,
    };
    // The worker's own watchdog fires first and says which step hung; this is the backstop.
    const deadlineMs = workerOptionsFromEnv(env).startupTimeoutMs + 10_000;
    const child = spawn(process.execPath, [`--max-old-space-size=${share.heapMiB}`, CLI, 'worker', '--port', '0', '--host', '127.0.0.1'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lastErrors: string[] = [];
    createInterface({ input: child.stderr! }).on('line', (line) => {
      process.stderr.write(`${line}\n`);
      lastErrors.push(line);
      if (lastErrors.length > 5) lastErrors.shift();
    });
    const why = () => (lastErrors.length ? `: ${lastErrors.join(' | ')}` : '');
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`worker ${name} did not start within ${deadlineMs / 1000} s${why()}`));
      }, deadlineMs);
      createInterface({ input: child.stdout! }).once('line', (line) => {
        clearTimeout(timer);
        try {
          resolve(String(JSON.parse(line).listening));
        } catch {
          reject(new Error(`worker ${name}: ${line}`));
        }
      });
      child.once('close', (code) => {
        clearTimeout(timer);
        reject(new Error(`worker ${name} exited with ${code}${why()}`));
      });
    });
    const worker: LocalWorker = { name, url, process: child };
    this.processes.push(worker);
    child.once('exit', (code, signal) => this.exited(worker, code, signal));
    return worker;
  }

  /** A worker went away without being asked: take it out and start another, keeping the target size. */
  private exited(worker: LocalWorker, code: number | null, signal: NodeJS.Signals | null): void {
    const i = this.processes.indexOf(worker);
    if (i < 0 || this.stopped) return; // removed on purpose
    this.processes.splice(i, 1);
    this.replaced++;
    console.error(
      JSON.stringify({
        level: 'warn',
        msg: 'local worker exited; starting a replacement',
        pool: this.settings.pool,
        worker: worker.name,
        exitCode: code,
        signal,
      }),
    );
    this.fill();
  }

  /** Start workers until the target is met; a failed start is tried again a little later. */
  private fill(): void {
    if (this.stopped) return;
    const missing = this.target - this.alive().length - this.starting;
    for (let k = 0; k < missing; k++) {
      this.add().catch((err) => {
        console.error(
          JSON.stringify({
            level: 'error',
            msg: 'local worker could not be replaced; trying again',
            pool: this.settings.pool,
            error: (err as Error).message,
          }),
        );
        if (!this.retryTimer && !this.stopped) {
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            this.fill();
          }, REPLACE_RETRY_MS);
          this.retryTimer.unref();
        }
      });
    }
  }

  async scaleTo(size: number): Promise<void> {
    this.stopped = false;
    this.target = size;
    const alive = this.alive();
    const missing = size - alive.length - this.starting;
    if (missing > 0) await Promise.all(Array.from({ length: missing }, () => this.add()));
    else for (const w of alive.slice(size)) this.remove(w);
  }

  remove(worker: LocalWorker): void {
    const i = this.processes.indexOf(worker);
    if (i >= 0) this.processes.splice(i, 1);
    worker.process.kill('SIGTERM');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.target = 0;
    clearTimeout(this.retryTimer);
    await Promise.all(
      this.processes.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.process.exitCode !== null || w.process.signalCode !== null) return resolve();
            w.process.once('exit', () => resolve());
            w.process.kill('SIGTERM');
          }),
      ),
    );
    this.processes.length = 0;
  }
}

const CONTENT_TYPES = { json: 'application/json', ndjson: 'application/x-ndjson', csv: 'text/csv; charset=utf-8' } as const;
/** Room for the JSON envelope around the rows (columns, summary, timings). */
const ENVELOPE_BYTES = 64 * 1024;
const STDERR_KEEP = 64 * 1024;

function answer(status: number, error: string): RoutedResponse {
  return { status, headers: { 'content-type': 'application/json' }, body: Readable.from([JSON.stringify({ error })]) };
}

/**
 * One sandboxed `featherman query` process: the cold path, exactly what a fallback Job runs. The
 * SQL goes over stdin; the process interrupts its query at the deadline and is killed after the
 * grace if it has not stopped, or when the caller goes away; its output is capped as a worker's.
 */
export class LocalFallback implements QueryFallback {
  private readonly limits: FallbackLimits;

  constructor(
    private readonly env: NodeJS.ProcessEnv,
    limits: Partial<FallbackLimits> = {},
  ) {
    this.limits = { ...fallbackLimitsFromEnv(env), ...limits };
  }

  async run(pool: PoolSettings, query: QueryRequest, grant?: Grant): Promise<RoutedResponse> {
    const { maxRows, maxBytes, killGraceMs: graceMs } = this.limits;
    const deadlineMs = Math.min(query.timeoutMs ?? pool.maxQueryMs, pool.maxQueryMs);
    if (query.signal?.aborted) return answer(499, 'the client went away');
    const share = memoryShare(this.limits.processes);
    const args = [
      `--max-old-space-size=${share.heapMiB}`,
      CLI,
      'query',
      '--sandbox',
      '--sql',
      '-',
      '--format',
      query.format,
      '--timeout-ms',
      String(deadlineMs),
      '--max-rows',
      String(maxRows),
      '--max-bytes',
      String(maxBytes),
      ...(pool.readOnly ? [] : ['--write']),
    ];
    const env = { ...withMemoryShare(this.env, share), ...(grant ? { FEATHERMAN_QUERY_GRANT: JSON.stringify(grant) } : {}) };
    const child = spawn(process.execPath, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdin!.on('error', () => undefined); // a process that exits before reading it all
    child.stdin!.end(query.sql);

    const out: Buffer[] = [];
    let outBytes = 0;
    let err = '';
    let why: 'deadline' | 'output' | 'client' | undefined;
    const kill = (reason: typeof why) => {
      why ??= reason;
      child.kill('SIGKILL');
    };
    child.stdout!.on('data', (d: Buffer) => {
      outBytes += d.length;
      if (outBytes > maxBytes + ENVELOPE_BYTES) return kill('output');
      out.push(d);
    });
    child.stderr!.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-STDERR_KEEP);
    });
    // The process interrupts its own query at the deadline; this is for one that does not stop.
    const timer = setTimeout(() => kill('deadline'), deadlineMs + graceMs);
    const onAbort = () => kill('client');
    query.signal?.addEventListener('abort', onAbort, { once: true });
    const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
    clearTimeout(timer);
    query.signal?.removeEventListener('abort', onAbort);

    if (why === 'deadline')
      return answer(504, `query exceeded its deadline of ${deadlineMs} ms and did not stop within ${graceMs} ms; its process was killed`);
    if (why === 'client') return answer(499, 'the client went away');
    if (why === 'output') return answer(502, `the query process printed more than the limit of ${maxBytes} bytes`);
    if (code !== 0) {
      const lastLine = err.trim().split('\n').pop() ?? '';
      let error = lastLine;
      try {
        error = JSON.parse(lastLine).error ?? lastLine;
      } catch {
        /* plain text */
      }
      const status =
        code === EXIT_BAD_INPUT ? 400 : code === EXIT_REFUSED ? 403 : code === EXIT_DEADLINE ? 504 : code === EXIT_TEMPORARY ? 503 : 502;
      return answer(status, status === 502 && !error ? `the query process failed (exit ${code ?? 'signal'})` : error);
    }
    const stdout = Buffer.concat(out).toString();
    const body = query.format === 'json' ? stdout.replace(/^\{"ok":true,/, '{') : stdout;
    return { status: 200, headers: { 'content-type': CONTENT_TYPES[query.format] }, body: Readable.from([body]) };
  }
}
