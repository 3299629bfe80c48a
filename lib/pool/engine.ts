// The warm worker's DuckDB: extensions loaded, S3 secret created, lake attached read-only, and the
// sandbox switches locked, once per engine. Queries then cost milliseconds.
//
// Readers and writers on a DuckDB catalog file: DuckDB lets one process write *or* many read,
// never both, so a worker that kept the catalog file open would lock out every table Job. A
// worker therefore never keeps it open: it copies the catalog (lib/lake/catalog-copy.ts) into its own
// scratch directory, attaches the copy, and
// whenever the catalog file changes builds a fresh engine from a fresh copy and swaps it in.
// Data files are immutable in DuckLake, so a copy of the catalog is a consistent snapshot.
// New data is visible within the refresh interval plus one copy and attach (about 1-2 s).
// Postgres catalogs allow many readers and writers, so their engines attach directly.
import { stat, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { LakeConfig } from '../lake/config.js';
import { attachLake, LakeSession, openDuckDB } from '../lake/session.js';
import { LAKE } from '../lake/sql.js';
import { copyCatalog } from '../lake/catalog-copy.js';
import { AllowedQueries, lockDown } from '../lake/sandbox.js';

export class Engine {
  private refs = 0;
  private retired = false;
  /** Read-only queries the sandbox allowed on this engine: only for a copied (so unchanging) catalog. */
  readonly allowed?: AllowedQueries;

  constructor(readonly session: LakeSession, readonly generation: number, readonly snapshotId: number, private readonly copyPath?: string) {
    if (copyPath) this.allowed = new AllowedQueries();
  }

  acquire(): () => void {
    this.refs++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.refs--;
      if (this.retired && this.refs === 0) void this.close();
    };
  }

  /** A connection for one query, with the lake as its default database. */
  async connect(): Promise<DuckDBConnection> {
    const connection = await this.session.instance.connect();
    await connection.run(`USE ${LAKE}`);
    return connection;
  }

  /** Close once the last query using this engine finishes. */
  retire(): void {
    this.retired = true;
    if (this.refs === 0) void this.close();
  }

  private async close(): Promise<void> {
    this.session.close();
    if (this.copyPath) await rm(this.copyPath, { force: true });
  }
}

export interface EngineHolderOptions {
  config: LakeConfig;
  readOnly: boolean;
  scratchDir: string;
  refreshMs: number;
  onError?: (err: unknown) => void;
}

/** Holds the current engine and replaces it when the catalog changes. */
export class EngineHolder {
  private engine?: Engine;
  private generation = 0;
  private fingerprint = '';
  private timer?: NodeJS.Timeout;
  private refreshing?: Promise<void>;
  /** What the current refresh is doing, for a worker that is slow to start to say where it is. */
  phase = 'not started';

  constructor(private readonly opts: EngineHolderOptions) {}

  get current(): Engine | undefined {
    return this.engine;
  }

  async start(): Promise<void> {
    await mkdir(this.opts.scratchDir, { recursive: true });
    await this.refresh();
    if (this.opts.config.metadata.type === 'duckdb') {
      this.timer = setInterval(() => { void this.refresh().catch((err) => this.opts.onError?.(err)); }, this.opts.refreshMs);
      this.timer.unref();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.engine?.retire();
    this.engine = undefined;
  }

  private async catalogFingerprint(): Promise<string> {
    const m = this.opts.config.metadata;
    if (m.type !== 'duckdb') return 'static';
    const parts = await Promise.all([m.path, `${m.path}.wal`].map((p) => stat(p).then((s) => `${s.mtimeMs}:${s.size}`, () => '-')));
    return parts.join('|');
  }

  /** Build a new engine if the catalog changed (or there is none yet), then swap it in. */
  refresh(): Promise<void> {
    this.refreshing ??= this.doRefresh().finally(() => { this.refreshing = undefined; });
    return this.refreshing;
  }

  private async doRefresh(): Promise<void> {
    const fingerprint = await this.catalogFingerprint();
    if (this.engine && fingerprint === this.fingerprint) return;
    const generation = ++this.generation;
    const { config, readOnly } = this.opts;
    let copyPath: string | undefined;
    let metadataOverride: string | undefined;
    if (config.metadata.type === 'duckdb') {
      copyPath = join(this.opts.scratchDir, `catalog-${process.pid}-${generation}.ducklake`);
      this.phase = 'copying the catalog file';
      await copyCatalog(config, config.metadata.path, copyPath);
      metadataOverride = `ducklake:duckdb:${copyPath}`;
    }
    this.phase = 'starting DuckDB';
    const session = await openDuckDB(config);
    try {
      this.phase = 'attaching the lake';
      await attachLake(session, { readOnly: readOnly || config.metadata.type === 'duckdb' }, metadataOverride);
      const snapshotId = await session.currentSnapshot();
      this.phase = 'locking the sandbox';
      await lockDown(session);
      this.phase = 'serving';
      const previous = this.engine;
      this.engine = new Engine(session, generation, snapshotId, copyPath);
      this.fingerprint = fingerprint;
      previous?.retire();
    } catch (err) {
      session.close();
      if (copyPath) await rm(copyPath, { force: true });
      throw err;
    }
  }
}
