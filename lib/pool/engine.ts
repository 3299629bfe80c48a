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
import { randomBytes } from 'node:crypto';
import { stat, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { DuckDBConnection, DuckDBPreparedStatement, DuckDBResult } from '@duckdb/node-api';
import type { LakeConfig } from '../lake/config.js';
import { attachLake, LakeSession, openDuckDB } from '../lake/session.js';
import { LAKE } from '../lake/sql.js';
import { copyCatalog } from '../lake/catalog-copy.js';
import { AllowedQueries, lockDown, type QueryTables } from '../lake/sandbox.js';
import { copySmallTables, readingCopies } from '../lake/table-copies.js';
import { RecentlyUsed } from '../recently-used.js';

/** Idle connections an engine keeps for reuse; more than the worker's concurrency is never needed. */
const MAX_IDLE_CONNECTIONS = 8;
/** Prepared statements kept per connection (least recently used out first). */
const MAX_STATEMENTS = 64;
/** SQL texts whose in-memory form an engine remembers. */
const MAX_TEXTS = 1000;

export class Engine {
  private refs = 0;
  private retired = false;
  /** Connections that finished a query cleanly, ready for the next one (see `release`). */
  private readonly idle: DuckDBConnection[] = [];
  /** Each connection's prepared statements by SQL text (closed with their connection). */
  private readonly statements = new WeakMap<DuckDBConnection, RecentlyUsed<string, DuckDBPreparedStatement>>();
  /** Read-only queries the sandbox allowed on this engine: only for a copied (so unchanging) catalog. */
  readonly allowed?: AllowedQueries;
  /** Lake tables (schema main, lower case) held in memory, once copied (lib/lake/table-copies.ts). */
  private copied: ReadonlySet<string> = new Set();
  private copying?: Promise<void>;
  /** For SQL texts that read copied tables: the text that reads the copies, or the same text. */
  private readonly texts = new RecentlyUsed<string, string>(MAX_TEXTS);

  constructor(
    readonly session: LakeSession,
    readonly generation: number,
    readonly snapshotId: number,
    private readonly copyPath?: string,
  ) {
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

  /**
   * A connection for one query, with the lake as its default database: an idle one if there is
   * one (a new connection and `USE lake` cost more than SELECT 1 itself), else a new one.
   */
  async connect(): Promise<DuckDBConnection> {
    const reused = this.idle.pop();
    if (reused) return reused;
    const connection = await this.session.instance.connect();
    await connection.run(`USE ${LAKE}`);
    return connection;
  }

  /**
   * Start `sql` (one statement the sandbox allowed) as a streamed result. Where the verdict cache
   * holds (a copied catalog, which cannot change under the engine), the statement is prepared
   * once per connection and run again from there: a repeated text skips its parse and plan
   * (DuckDB re-binds a prepared statement itself if what it read changed). Elsewhere it is
   * parsed and planned every time.
   */
  async stream(connection: DuckDBConnection, sql: string): Promise<DuckDBResult> {
    if (!this.allowed) return connection.stream(sql);
    let cache = this.statements.get(connection);
    if (!cache) this.statements.set(connection, (cache = new RecentlyUsed(MAX_STATEMENTS, (statement) => statement.destroySync())));
    let prepared = cache.get(sql);
    if (!prepared) {
      prepared = await connection.prepare(sql);
      cache.set(sql, prepared);
    }
    return prepared.stream();
  }

  /** The lake tables this engine answers from memory. */
  get tablesInMemory(): string[] {
    return [...this.copied].sort();
  }

  /**
   * Copy the small tables of schema main into memory, within `budgetBytes`, on a connection of
   * its own; queries read the lake until the copies are complete. Only on a copied catalog, which
   * cannot change under the copies, and never for an encrypted lake: under memory pressure DuckDB
   * may write in-memory tables to its spill directory, in the clear.
   */
  copySmallTables(budgetBytes: number): Promise<void> {
    // Once per engine: a second call waits for the first.
    this.copying ??= this.copy(budgetBytes);
    return this.copying;
  }

  private async copy(budgetBytes: number): Promise<void> {
    if (!this.allowed || budgetBytes <= 0 || this.session.config.encrypted) return;
    const release = this.acquire();
    const connection = await this.session.instance.connect();
    try {
      this.copied = await copySmallTables(connection, budgetBytes, () => this.retired);
    } finally {
      connection.closeSync();
      release();
    }
  }

  /**
   * What to run for `sql`, whose checked plan reads `tables`: a text that reads the in-memory
   * copies instead of the same lake tables where that gives the same answer, else `sql` itself.
   */
  async textToRun(connection: DuckDBConnection, sql: string, tables: QueryTables): Promise<string> {
    if (tables.kind !== 'select' || !tables.read.some((t) => t.schema === 'main' && this.copied.has(t.table))) return sql;
    const known = this.texts.get(sql);
    if (known !== undefined) return known;
    const text = (await readingCopies(connection, sql, this.copied)) ?? sql;
    this.texts.set(sql, text);
    return text;
  }

  /**
   * Done with a connection. `clean`: its query ran to its end without error, interrupt or cut;
   * only then may it serve another query. User SQL cannot leave state on a connection (the
   * sandbox admits one SELECT, or one INSERT, UPDATE, DELETE or MERGE, each in its own
   * auto-committed transaction; SET, PREPARE, temporary objects, setseed and the like are
   * refused), and a connection that was interrupted or failed is closed rather than trusted.
   */
  release(connection: DuckDBConnection, clean: boolean): void {
    if (clean && !this.retired && this.idle.length < MAX_IDLE_CONNECTIONS) this.idle.push(connection);
    else connection.closeSync();
  }

  /** Close once the last query using this engine finishes. */
  retire(): void {
    this.retired = true;
    if (this.refs === 0) void this.close();
  }

  private async close(): Promise<void> {
    for (const c of this.idle.splice(0)) c.closeSync();
    this.session.close();
    if (this.copyPath) await rm(this.copyPath, { force: true });
  }
}

export interface EngineHolderOptions {
  config: LakeConfig;
  readOnly: boolean;
  scratchDir: string;
  refreshMs: number;
  /** Memory for in-memory copies of small tables (0: none); see Engine.copySmallTables. */
  copiesBytes: number;
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
      this.timer = setInterval(() => {
        void this.refresh().catch((err) => this.opts.onError?.(err));
      }, this.opts.refreshMs);
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
    const parts = await Promise.all(
      [m.path, `${m.path}.wal`].map((p) =>
        stat(p).then(
          (s) => `${s.mtimeMs}:${s.size}`,
          () => '-',
        ),
      ),
    );
    return parts.join('|');
  }

  /** Build a new engine if the catalog changed (or there is none yet), then swap it in. */
  refresh(): Promise<void> {
    this.refreshing ??= this.doRefresh().finally(() => {
      this.refreshing = undefined;
    });
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
      // A name no other process can hold: a dead worker's leftover copy under a reused pid would
      // make COPY FROM DATABASE fail on tables that already exist.
      copyPath = join(this.opts.scratchDir, `catalog-${process.pid}-${generation}-${randomBytes(4).toString('hex')}.ducklake`);
      this.phase = 'copying the catalog file';
      try {
        await copyCatalog(config, config.metadata.path, copyPath);
      } catch (err) {
        await rm(copyPath, { force: true });
        throw err;
      }
      metadataOverride = `ducklake:duckdb:${copyPath}`;
    }
    this.phase = 'starting DuckDB';
    const session = await openDuckDB(config);
    try {
      this.phase = 'attaching the lake';
      await attachLake(session, { readOnly: readOnly || config.metadata.type === 'duckdb' }, metadataOverride);
      const snapshotId = await session.currentSnapshot();
      // DuckLake never rewrites a data file (new data goes to new files), so what was read of
      // one stays true: keep Parquet footers, HTTP metadata and cached data without asking the
      // object store again. A warm aggregate then makes no request at all (it made two GETs).
      for (const setting of [
        'parquet_metadata_cache = true',
        'enable_http_metadata_cache = true',
        "validate_external_file_cache = 'NO_VALIDATION'",
      ]) {
        await session.run(`SET GLOBAL ${setting}`);
      }
      this.phase = 'locking the sandbox';
      await lockDown(session);
      this.phase = 'serving';
      const previous = this.engine;
      this.engine = new Engine(session, generation, snapshotId, copyPath);
      this.fingerprint = fingerprint;
      previous?.retire();
      void this.engine
        .copySmallTables(this.opts.copiesBytes)
        .catch((err) => this.opts.onError?.(new Error(`copying small tables into memory: ${(err as Error).message}`)));
    } catch (err) {
      session.close();
      if (copyPath) await rm(copyPath, { force: true });
      throw err;
    }
  }
}
