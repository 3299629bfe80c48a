// Without a cluster (`npm start`, tests, benchmarks) the router drives local worker processes
// instead of pods, and falls back to a local `featherman query` process instead of a Job.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { packageRoot } from '../lake/config.js';
import { workerOptionsFromEnv } from './worker.js';
import type { PoolSettings, QueryFallback, QueryRequest, RoutedResponse, WorkerDirectory, WorkerEndpoint } from './router.js';

// The built CLI, also when this module runs from TypeScript source (tests).
const CLI = join(packageRoot(), 'dist', 'lib', 'cli.js');
const START_ATTEMPTS = 3;

export interface LocalWorker extends WorkerEndpoint {
  process: ChildProcess;
}

export class LocalPool implements WorkerDirectory {
  readonly processes: LocalWorker[] = [];
  private counter = 0;

  constructor(readonly settings: PoolSettings, private readonly env: NodeJS.ProcessEnv) {}

  async pools(): Promise<PoolSettings[]> {
    return [this.settings];
  }

  /** Workers whose process is still running. */
  alive(): LocalWorker[] {
    return this.processes.filter((w) => w.process.exitCode === null && w.process.signalCode === null);
  }

  async workers(): Promise<WorkerEndpoint[]> {
    return this.alive();
  }

  /**
   * Start one worker and wait until it is attached and listening. A worker that exits or hangs
   * while starting is replaced, as the pool hooks replace a pod that never gets ready.
   */
  async add(): Promise<LocalWorker> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.startOne();
      } catch (err) {
        if (attempt >= START_ATTEMPTS) throw err;
        console.error(JSON.stringify({ level: 'warn', msg: 'local worker failed to start; starting another', pool: this.settings.pool, error: (err as Error).message }));
      }
    }
  }

  private async startOne(): Promise<LocalWorker> {
    const name = `${this.settings.pool}-local-${++this.counter}`;
    const env = { ...this.env, POD_NAME: name, FEATHERMAN_POOL: this.settings.pool, FEATHERMAN_POOL_READ_ONLY: String(this.settings.readOnly), FEATHERMAN_MAX_QUERY_DURATION: `${Math.ceil(this.settings.maxQueryMs / 1000)}s` };
    // The worker's own watchdog fires first and says which step hung; this is the backstop.
    const deadlineMs = workerOptionsFromEnv(env).startupTimeoutMs + 10_000;
    const child = spawn(process.execPath, [CLI, 'worker', '--port', '0', '--host', '127.0.0.1'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const lastErrors: string[] = [];
    createInterface({ input: child.stderr! }).on('line', (line) => {
      process.stderr.write(`${line}\n`);
      lastErrors.push(line);
      if (lastErrors.length > 5) lastErrors.shift();
    });
    const why = () => (lastErrors.length ? `: ${lastErrors.join(' | ')}` : '');
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`worker ${name} did not start within ${deadlineMs / 1000} s${why()}`)); }, deadlineMs);
      createInterface({ input: child.stdout! }).once('line', (line) => {
        clearTimeout(timer);
        try { resolve(String(JSON.parse(line).listening)); } catch { reject(new Error(`worker ${name}: ${line}`)); }
      });
      child.once('close', (code) => { clearTimeout(timer); reject(new Error(`worker ${name} exited with ${code}${why()}`)); });
    });
    const worker: LocalWorker = { name, url, process: child };
    this.processes.push(worker);
    return worker;
  }

  async scaleTo(size: number): Promise<void> {
    const alive = this.alive();
    if (alive.length < size) await Promise.all(Array.from({ length: size - alive.length }, () => this.add()));
    else for (const w of alive.slice(size)) this.remove(w);
  }

  remove(worker: LocalWorker): void {
    worker.process.kill('SIGTERM');
    this.processes.splice(this.processes.indexOf(worker), 1);
  }

  async stop(): Promise<void> {
    await Promise.all(this.processes.map((w) => new Promise<void>((resolve) => {
      if (w.process.exitCode !== null || w.process.signalCode !== null) return resolve();
      w.process.once('exit', () => resolve());
      w.process.kill('SIGTERM');
    })));
    this.processes.length = 0;
  }
}

/** One sandboxed `featherman query` process: the cold path, exactly what a fallback Job runs. */
export class LocalFallback implements QueryFallback {
  constructor(private readonly env: NodeJS.ProcessEnv) {}

  async run(pool: PoolSettings, query: QueryRequest): Promise<RoutedResponse> {
    const child = spawn(process.execPath, [CLI, 'query', '--sandbox', '--sql', query.sql, '--format', query.format, ...(pool.readOnly ? [] : ['--write'])], { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d: Buffer) => err.push(d));
    const code = await new Promise<number>((resolve) => child.once('close', (c) => resolve(c ?? 1)));
    const stdout = Buffer.concat(out).toString();
    const lastLine = Buffer.concat(err).toString().trim().split('\n').pop() ?? '';
    if (code !== 0) {
      let error = lastLine;
      try { error = JSON.parse(lastLine).error ?? lastLine; } catch { /* plain text */ }
      return { status: code === 2 ? 400 : code === 75 ? 503 : 502, headers: { 'content-type': 'application/json' }, body: Readable.from([JSON.stringify({ error })]) };
    }
    const body = query.format === 'json' ? stdout.replace(/^\{"ok":true,/, '{') : stdout;
    return { status: 200, headers: { 'content-type': query.format === 'csv' ? 'text/csv; charset=utf-8' : query.format === 'ndjson' ? 'application/x-ndjson' : 'application/json' }, body: Readable.from([body]) };
  }
}
