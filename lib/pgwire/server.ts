// The Postgres wire protocol (v3) front of the query router: psql, JDBC, psycopg, node-postgres and
// BI tools connect here, and every query goes through routeQuery (lib/server/query.ts) exactly as
// POST /v1/query does: same authentication (the password is the API token), pool choice, queue,
// sandbox, per-table authorisation, deadline, cancel, query log and metrics.
//
// pg-gateway owns the framing, the SSLRequest/TLS upgrade, the startup message and the cleartext
// password exchange; this file answers the rest (simple and extended query, cancel, the commands
// clients send when they connect, and catalog questions from tools via ./catalog.ts).
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { PostgresConnection } from 'pg-gateway';
import { AuthUnavailable, type Principal } from '../auth/authenticate.js';
import { RouterError } from '../pool/router.js';
import { routeQuery, type QueryCore } from '../pool/query-core.js';
import { CatalogMirror, isCatalogQuery } from './catalog.js';
import { PgError, readAnswer, sqlstate, type Rows } from './result.js';
import { bindParameters, parameterCasts, parameterCount, splitStatements, stripComments } from './sql.js';
import { binaryValue, decodeBinaryParameter, literal, oidOfTypeName, ParameterError, PG, textValue, type Column } from './types.js';

export interface PgServerOptions {
  core: QueryCore;
  /** The serving certificate (read on each TLS handshake, so a reloaded pair is used at once). */
  tls?: () => { cert: Buffer; key: Buffer };
  /** Plain connections from other hosts are refused (TLS required) unless this is false. */
  requireTls?: boolean;
  log: { info(o: object, m: string): void; warn(o: object, m: string): void };
  /** The version clients are told (server_version); tools switch features on it. */
  serverVersion?: string;
}

const SERVER_VERSION = '16.4 (Featherman)';
const CANCEL_CODE = 80877102;
const GSSENC_CODE = 80877104;

interface Statement {
  sql: string;
  oids: number[];
  params: number;
}
interface Portal {
  statement: Statement;
  sql: string;
  formats: number[];
  /** The running query's rows, once started (by Describe or the first Execute). */
  rows?: Rows;
  iterator?: AsyncGenerator<Record<string, unknown>, void>;
  local?: LocalAnswer;
  sent: number;
  done: boolean;
}
/** An answer made here (SET, SHOW, BEGIN, catalog questions), not by the router. */
interface LocalAnswer {
  tag: string;
  columns?: Column[];
  rows?: unknown[][];
}

/**
 * Who lists the lake's table names for the catalog mirror: a principal may read some tables of a
 * catalog without the catalog-wide grant that listing needs. Only names are learnt this way; each
 * table is then described as the connection's own principal, and the ones it may not read are left out.
 */
const CATALOG_LISTER: Principal = { user: 'featherman:pgwire-catalog', groups: ['featherman:internal'], allAccess: true };

/** Backend keys of live sessions, for CancelRequest (which arrives on a new connection). */
const sessions = new Map<string, Session>();
const keyOf = (pid: number, secret: number) => `${pid}:${secret}`;

const isLoopback = (address: string | undefined) =>
  !!address && (address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.'));

/** Server settings a client may read (SHOW, ParameterStatus) and set (SET, without effect on the lake). */
const DEFAULT_SETTINGS: Record<string, string> = {
  server_version: SERVER_VERSION,
  server_version_num: '160004',
  server_encoding: 'UTF8',
  client_encoding: 'UTF8',
  datestyle: 'ISO, MDY',
  intervalstyle: 'postgres',
  timezone: 'UTC',
  integer_datetimes: 'on',
  standard_conforming_strings: 'on',
  is_superuser: 'off',
  application_name: '',
  search_path: '"$user", public',
  transaction_isolation: 'read committed',
  default_transaction_isolation: 'read committed',
  transaction_read_only: 'on',
  default_transaction_read_only: 'on',
  statement_timeout: '0',
  extra_float_digits: '1',
  max_identifier_length: '63',
  lc_collate: 'C',
  lc_ctype: 'C',
  bytea_output: 'hex',
};
const REPORTED = [
  'server_version',
  'server_encoding',
  'client_encoding',
  'DateStyle',
  'IntervalStyle',
  'TimeZone',
  'integer_datetimes',
  'standard_conforming_strings',
  'is_superuser',
  'application_name',
  'session_authorization',
];

class Session {
  readonly pid = randomBytes(4).readUInt32BE() & 0x7fffffff;
  readonly secret = randomBytes(4).readInt32BE();
  principal?: Principal;
  catalog = '';
  pool?: string;
  readonly settings = new Map(Object.entries(DEFAULT_SETTINGS));
  readonly statements = new Map<string, Statement>();
  readonly portals = new Map<string, Portal>();
  tx: 'I' | 'T' | 'E' = 'I';
  /** An extended-protocol error: messages are skipped until Sync. */
  skipping = false;
  running?: AbortController;
  cancelled = false;
  constructor(
    readonly conn: WireConnection,
    readonly opts: PgServerOptions,
    readonly mirror: CatalogMirror,
  ) {}

  // ---------- output ----------
  private out: Buffer[] = [];
  private outBytes = 0;
  private push(type: number, body: Buffer) {
    const head = Buffer.alloc(5);
    head[0] = type;
    head.writeInt32BE(body.length + 4, 1);
    this.out.push(head, body);
    this.outBytes += body.length + 5;
  }
  /** Sends what is buffered; waits while the client is not reading (backpressure). */
  async flush(): Promise<void> {
    if (!this.out.length) return;
    const data = this.out.length === 1 ? this.out[0]! : Buffer.concat(this.out);
    this.out = [];
    this.outBytes = 0;
    const socket = this.conn.socket;
    if (socket.destroyed) throw new PgError('08006', 'the client went away');
    if (!socket.write(data)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          socket.off('drain', done);
          socket.off('close', done);
          resolve();
        };
        socket.on('drain', done);
        socket.on('close', done);
      });
      if (socket.destroyed) throw new PgError('08006', 'the client went away');
    }
  }
  private cstr(s: string) {
    return Buffer.from(`${s}\u0000`, 'utf8');
  }
  parameterStatus(name: string, value: string) {
    this.push(0x53, Buffer.concat([this.cstr(name), this.cstr(value)]));
  }
  backendKeyData() {
    const b = Buffer.alloc(8);
    b.writeInt32BE(this.pid);
    b.writeInt32BE(this.secret, 4);
    this.push(0x4b, b);
  }
  readyForQuery() {
    this.push(0x5a, Buffer.from(this.tx));
  }
  commandComplete(tag: string) {
    this.push(0x43, this.cstr(tag));
  }
  error(err: PgError) {
    this.push(
      0x45,
      Buffer.concat([
        Buffer.from('S'),
        this.cstr(err.severity),
        Buffer.from('V'),
        this.cstr(err.severity),
        Buffer.from('C'),
        this.cstr(err.code),
        Buffer.from('M'),
        this.cstr(err.message),
        Buffer.from([0]),
      ]),
    );
  }
  rowDescription(columns: Column[], formats: number[]) {
    const parts: Buffer[] = [Buffer.alloc(2)];
    parts[0]!.writeInt16BE(columns.length);
    columns.forEach((c, i) => {
      const f = Buffer.alloc(18);
      f.writeInt32BE(0, 0);
      f.writeInt16BE(0, 4);
      f.writeInt32BE(c.type.oid, 6);
      f.writeInt16BE(c.type.size, 10);
      f.writeInt32BE(-1, 12);
      f.writeInt16BE(formatOf(formats, i), 16);
      parts.push(this.cstr(c.name), f);
    });
    this.push(0x54, Buffer.concat(parts));
  }
  dataRow(values: (Buffer | null)[]) {
    let size = 2;
    for (const v of values) size += 4 + (v ? v.length : 0);
    const b = Buffer.allocUnsafe(size);
    b.writeInt16BE(values.length, 0);
    let o = 2;
    for (const v of values) {
      if (v === null) {
        b.writeInt32BE(-1, o);
        o += 4;
      } else {
        b.writeInt32BE(v.length, o);
        o += 4;
        v.copy(b, o);
        o += v.length;
      }
    }
    this.push(0x44, b);
  }
  get buffered() {
    return this.outBytes;
  }

  // ---------- messages ----------
  async handle(data: Buffer): Promise<void> {
    const type = data[0]!;
    const body = data.subarray(5);
    try {
      if (this.skipping && type !== 0x53) return;
      switch (type) {
        case 0x51:
          await this.simpleQuery(readCString(body, 0)[0]);
          break; // Q
        case 0x50:
          this.parse(body);
          break; // P
        case 0x42:
          this.bind(body);
          break; // B
        case 0x44:
          await this.describe(body);
          break; // D
        case 0x45:
          await this.execute(body);
          break; // E
        case 0x43:
          this.close(body);
          break; // C
        case 0x53:
          this.skipping = false;
          this.closeUnnamed();
          this.readyForQuery();
          break; // S
        case 0x48:
          break; // H: flushed below
        case 0x58:
          this.end();
          this.conn.socket.end();
          return; // X
        default:
          throw new PgError('08P01', `unsupported message type ${JSON.stringify(String.fromCharCode(type))}`);
      }
    } catch (err) {
      const e = this.toPgError(err);
      this.error(e);
      if (type === 0x51) this.readyForQuery();
      else this.skipping = true;
      if (this.tx === 'T') this.tx = 'E';
    }
    await this.flush().catch(() => undefined);
  }

  private toPgError(err: unknown): PgError {
    if (err instanceof PgError) return err;
    if (err instanceof ParameterError) return new PgError('22P02', err.message);
    if (err instanceof RouterError)
      return new PgError(
        this.cancelled && err.status === 499 ? '57014' : sqlstate(err.status, err.message),
        this.cancelled && err.status === 499 ? 'canceling statement due to user request' : err.message,
      );
    this.opts.log.warn({ reason: (err as Error).message }, 'postgres wire: unexpected failure');
    return new PgError('XX000', 'internal error');
  }

  end() {
    this.running?.abort();
    sessions.delete(keyOf(this.pid, this.secret));
    for (const p of this.portals.values()) void p.iterator?.return();
  }

  cancel() {
    if (this.running) {
      this.cancelled = true;
      this.running.abort();
    }
  }

  private closeUnnamed() {
    // The unnamed portal lives until the next Bind or the end of the transaction block.
    if (this.tx === 'I') this.dropPortal('');
  }

  private dropPortal(name: string) {
    const p = this.portals.get(name);
    if (p) {
      void p.iterator?.return();
      this.portals.delete(name);
    }
  }

  // ---------- simple query ----------
  private async simpleQuery(sql: string) {
    const statements = splitStatements(sql);
    if (!statements.length) {
      this.push(0x49, Buffer.alloc(0));
      this.readyForQuery();
      return;
    }
    for (const s of statements) {
      const copy = /^\s*copy\s*\(([\s\S]*)\)\s*to\s+stdout\b([\s\S]*)$/i.exec(stripComments(s));
      if (copy) {
        await this.copyOut(copy[1]!, copy[2]!);
        continue;
      }
      if (/^\s*copy\b/i.test(stripComments(s)))
        throw new PgError('0A000', 'only COPY (query) TO STDOUT is supported (psql: \\copy (SELECT ...) TO file)');
      const local = this.local(s);
      if (local) {
        this.sendLocal(local, [], 0);
        continue;
      }
      const rows = await this.run(s);
      this.rowDescription(rows.columns, []);
      await this.stream(rows.columns, rows.rows, [], 0, (n) => this.commandComplete(tag(s, n)));
    }
    this.readyForQuery();
  }

  // ---------- extended query ----------
  private parse(body: Buffer) {
    const [name, a] = readCString(body, 0);
    const [sql, b] = readCString(body, a);
    const n = body.readInt16BE(b);
    const oids: number[] = [];
    for (let i = 0; i < n; i++) oids.push(body.readInt32BE(b + 2 + i * 4));
    if (splitStatements(sql).length > 1) throw new PgError('42601', 'cannot insert multiple commands into a prepared statement');
    if (name && this.statements.has(name)) throw new PgError('42P05', `prepared statement "${name}" already exists`);
    const params = parameterCount(sql);
    while (oids.length < params) oids.push(0);
    if (oids.includes(0)) {
      for (const [n, name] of parameterCasts(sql)) if (oids[n - 1] === 0) oids[n - 1] = oidOfTypeName(name) ?? 0;
    }
    this.statements.set(name, { sql, oids, params });
    this.push(0x31, Buffer.alloc(0));
  }

  private bind(body: Buffer) {
    const [portalName, a] = readCString(body, 0);
    const [name, b] = readCString(body, a);
    const statement = this.statements.get(name);
    if (!statement) throw new PgError('26000', `prepared statement "${name}" does not exist`);
    let o = b;
    const nf = body.readInt16BE(o);
    o += 2;
    const paramFormats: number[] = [];
    for (let i = 0; i < nf; i++) {
      paramFormats.push(body.readInt16BE(o));
      o += 2;
    }
    const np = body.readInt16BE(o);
    o += 2;
    if (np !== statement.params)
      throw new PgError('08P01', `bind message supplies ${np} parameters, but prepared statement "${name}" requires ${statement.params}`);
    const literals: string[] = [];
    for (let i = 0; i < np; i++) {
      const len = body.readInt32BE(o);
      o += 4;
      const oid = statement.oids[i] ?? 0;
      if (len < 0) {
        literals.push('NULL');
        continue;
      }
      const raw = body.subarray(o, o + len);
      o += len;
      const text = formatOf(paramFormats, i) === 1 ? decodeBinaryParameter(raw, oid) : raw.toString('utf8');
      literals.push(literal(text, oid));
    }
    const nr = body.readInt16BE(o);
    o += 2;
    const formats: number[] = [];
    for (let i = 0; i < nr; i++) {
      formats.push(body.readInt16BE(o));
      o += 2;
    }
    this.dropPortal(portalName);
    this.portals.set(portalName, { statement, sql: bindParameters(statement.sql, literals), formats, sent: 0, done: false });
    this.push(0x32, Buffer.alloc(0));
  }

  private async describe(body: Buffer) {
    const kind = String.fromCharCode(body[0]!);
    const [name] = readCString(body, 1);
    if (kind === 'S') {
      const statement = this.statements.get(name);
      if (!statement) throw new PgError('26000', `prepared statement "${name}" does not exist`);
      const desc = Buffer.alloc(2 + statement.oids.length * 4);
      desc.writeInt16BE(statement.oids.length);
      statement.oids.forEach((oid, i) => desc.writeInt32BE(oid || PG.text.oid, 2 + i * 4));
      this.push(0x74, desc);
      const local = this.local(statement.sql);
      if (local) {
        if (local.columns) this.rowDescription(local.columns, []);
        else this.push(0x6e, Buffer.alloc(0));
        return;
      }
      // The columns without running the query: the same query, no rows, NULL for each parameter.
      if (!/^\s*(select|with|values|from|table|\()/i.test(stripComments(statement.sql))) {
        this.push(0x6e, Buffer.alloc(0));
        return;
      }
      const sql = `SELECT * FROM (${bindParameters(
        statement.sql,
        statement.oids.map(() => 'NULL'),
      )}\n) AS described LIMIT 0`;
      const rows = await this.run(sql);
      for await (const _ of rows.rows) {
        /* none */
      }
      this.rowDescription(rows.columns, []);
      return;
    }
    const portal = this.portals.get(name);
    if (!portal) throw new PgError('34000', `portal "${name}" does not exist`);
    await this.start(portal);
    if (portal.local) {
      if (portal.local.columns) this.rowDescription(portal.local.columns, portal.formats);
      else this.push(0x6e, Buffer.alloc(0));
    } else this.rowDescription(portal.rows!.columns, portal.formats);
  }

  private async start(portal: Portal) {
    if (portal.rows || portal.local) return;
    const local = this.local(portal.sql);
    if (local) {
      portal.local = local;
      return;
    }
    portal.rows = await this.run(portal.sql);
    portal.iterator = portal.rows.rows;
  }

  private async execute(body: Buffer) {
    const [name, a] = readCString(body, 0);
    const max = body.readInt32BE(a);
    const portal = this.portals.get(name);
    if (!portal) throw new PgError('34000', `portal "${name}" does not exist`);
    if (!stripComments(portal.sql).trim()) {
      this.push(0x49, Buffer.alloc(0));
      return;
    }
    await this.start(portal);
    if (portal.local) {
      if (portal.done) {
        this.commandComplete(portal.local.tag);
        return;
      }
      portal.done = true;
      this.sendLocal(portal.local, portal.formats, 0, false);
      return;
    }
    if (portal.done) {
      this.commandComplete(tag(portal.sql, portal.sent));
      return;
    }
    const complete = await this.stream(portal.rows!.columns, portal.iterator!, portal.formats, max, (n) => {
      portal.sent += n;
    });
    if (complete) {
      portal.done = true;
      this.commandComplete(tag(portal.sql, portal.sent));
    } else this.push(0x73, Buffer.alloc(0)); // PortalSuspended
  }

  private close(body: Buffer) {
    const kind = String.fromCharCode(body[0]!);
    const [name] = readCString(body, 1);
    if (kind === 'S') this.statements.delete(name);
    else this.dropPortal(name);
    this.push(0x33, Buffer.alloc(0));
  }

  // ---------- running ----------
  /**
   * One query through the router, as POST /v1/query runs it; `as: 'lister'` runs it as the
   * catalog mirror's own principal instead (./catalog.ts lists the lake's table names with it).
   */
  async run(sql: string, as?: 'lister'): Promise<Rows> {
    if (!as && isCatalogQuery(sql)) return this.mirror.query(this, sql);
    const controller = new AbortController();
    this.running = controller;
    this.cancelled = false;
    const timeout = parseDuration(this.settings.get('statement_timeout') ?? '0');
    try {
      const { routed, counted } = await routeQuery(
        this.opts.core,
        as === 'lister' ? CATALOG_LISTER : this.principal!,
        randomUUID(),
        {
          catalog: this.catalog,
          ...(this.pool ? { pool: this.pool } : {}),
          sql,
          format: 'json',
          ...(timeout ? { timeoutMs: timeout } : {}),
        },
        controller.signal,
      );
      const body = counted();
      const rows = await readAnswer(routed, body);
      const inner = rows.rows;
      // Cancel applies while the rows stream; afterwards the session has nothing to interrupt.
      const session = {
        cancelled: () => this.cancelled,
        done: () => {
          if (this.running === controller) this.running = undefined;
        },
      };
      async function* guarded() {
        try {
          yield* inner;
        } catch (err) {
          if (session.cancelled()) throw new PgError('57014', 'canceling statement due to user request');
          throw err;
        } finally {
          session.done();
          body.destroy();
        }
      }
      return { columns: rows.columns, rows: guarded() };
    } catch (err) {
      if (this.running === controller) this.running = undefined;
      if (this.cancelled) throw new PgError('57014', 'canceling statement due to user request');
      throw err;
    }
  }

  /**
   * Rows out as DataRows in pieces of about 64 KiB, waiting for the client to read each (so memory
   * stays flat however large the result). `max` > 0 stops after that many: false then (suspended).
   */
  private async stream(
    columns: Column[],
    rows: AsyncGenerator<Record<string, unknown>, void>,
    formats: number[],
    max: number,
    done: (n: number) => void,
  ): Promise<boolean> {
    let n = 0;
    const encoders = columns.map((c, i) =>
      formatOf(formats, i) === 1 ? (v: unknown) => binaryValue(v, c) : (v: unknown) => textValue(v, c),
    );
    try {
      while (max <= 0 || n < max) {
        const next = await rows.next();
        if (next.done) {
          done(n);
          return true;
        }
        const row = next.value;
        this.dataRow(
          columns.map((c, i) => {
            const v = row[c.key];
            return v === null || v === undefined ? null : encoders[i]!(v);
          }),
        );
        n++;
        if (this.buffered >= 65536) await this.flush();
      }
    } catch (err) {
      void rows.return();
      throw err;
    }
    done(n);
    return false;
  }

  /** COPY (query) TO STDOUT, in text or CSV format: what psql's \\copy ... TO file sends. */
  private async copyOut(query: string, options: string) {
    const csv = /format\s*'?csv|\bcsv\b/i.test(options);
    const header = csv && /header/i.test(options);
    const rows = await this.run(query);
    const columns = rows.columns;
    const head = Buffer.alloc(3 + 2 * columns.length);
    head.writeInt8(0, 0);
    head.writeInt16BE(columns.length, 1);
    this.push(0x48, head); // CopyOutResponse
    const field = (v: unknown, c: Column): string => {
      if (v === null || v === undefined) return csv ? '' : '\\N';
      const t = textValue(v, c).toString('utf8');
      if (csv) return /[",\n\r]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t;
      return t.replace(/[\\\t\n\r]/g, (ch) => ({ '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' })[ch]!);
    };
    const sep = csv ? ',' : '\t';
    if (header) this.push(0x64, Buffer.from(`${columns.map((c) => field(c.name, textCol(c.name))).join(sep)}\n`));
    let n = 0;
    for await (const row of rows.rows) {
      this.push(0x64, Buffer.from(`${columns.map((c) => field(row[c.key], c)).join(sep)}\n`, 'utf8'));
      n++;
      if (this.buffered >= 65536) await this.flush();
    }
    this.push(0x63, Buffer.alloc(0)); // CopyDone
    this.commandComplete(`COPY ${n}`);
  }

  // ---------- commands answered here ----------
  private sendLocal(local: LocalAnswer, formats: number[], _max: number, describe = true) {
    if (local.columns && describe) this.rowDescription(local.columns, formats);
    for (const r of local.rows ?? [])
      this.dataRow(
        r.map((v, i) =>
          v === null ? null : formatOf(formats, i) === 1 ? binaryValue(v, local.columns![i]!) : textValue(v, local.columns![i]!),
        ),
      );
    this.commandComplete(local.tag);
  }

  /** SET, SHOW, RESET, DISCARD and transaction control: answered here, never sent to the lake. */
  local(sql: string): LocalAnswer | undefined {
    const s = stripComments(sql).trim().replace(/;\s*$/, '');
    let m: RegExpExecArray | null;
    if (/^(begin|start\s+transaction)\b/i.test(s)) {
      if (this.tx === 'I') this.tx = 'T';
      return { tag: 'BEGIN' };
    }
    if (/^(commit|end)\b/i.test(s)) {
      this.tx = 'I';
      this.dropPortals();
      return { tag: 'COMMIT' };
    }
    if (/^(rollback|abort)\s+(work\s+|transaction\s+)?to\b/i.test(s)) {
      if (this.tx === 'E') this.tx = 'T';
      return { tag: 'ROLLBACK' };
    }
    if (/^(rollback|abort)\b/i.test(s)) {
      this.tx = 'I';
      this.dropPortals();
      return { tag: 'ROLLBACK' };
    }
    if (/^savepoint\b/i.test(s)) return { tag: 'SAVEPOINT' };
    if (/^release\b/i.test(s)) return { tag: 'RELEASE' };
    if (/^discard\s+all\b/i.test(s)) {
      this.statements.clear();
      this.settingsReset();
      return { tag: 'DISCARD ALL' };
    }
    if (/^discard\b/i.test(s)) return { tag: `DISCARD ${s.split(/\s+/)[1]!.toUpperCase()}` };
    if ((m = /^deallocate\s+(?:prepare\s+)?(all|"?[\w$]+"?)$/i.exec(s))) {
      if (m[1]!.toLowerCase() === 'all') this.statements.clear();
      else this.statements.delete(m[1]!.replace(/"/g, ''));
      return { tag: 'DEALLOCATE' };
    }
    if ((m = /^reset\s+(all|[\w.]+)$/i.exec(s))) {
      if (m[1]!.toLowerCase() === 'all') this.settingsReset();
      else this.settings.set(m[1]!.toLowerCase(), DEFAULT_SETTINGS[m[1]!.toLowerCase()] ?? '');
      return { tag: 'RESET' };
    }
    if ((m = /^set\s+(?:session\s+|local\s+)?(?:time\s+zone\s+(.+)|([\w.]+)\s*(?:=|\bto\b)\s*(.+))$/is.exec(s))) {
      const name = m[1] !== undefined ? 'timezone' : m[2]!.toLowerCase();
      const value = (m[1] ?? m[3]!)
        .trim()
        .replace(/^'(.*)'$/s, '$1')
        .replace(/^default$/i, DEFAULT_SETTINGS[name] ?? '');
      if (name === 'client_encoding' && !/^(utf-?8|unicode)$/i.test(value))
        throw new PgError('22023', 'only client_encoding UTF8 is supported');
      this.settings.set(name, value);
      return { tag: 'SET' };
    }
    if (/^set\b/i.test(s)) return { tag: 'SET' };
    if ((m = /^show\s+(.+)$/i.exec(s))) {
      const name = m[1]!.trim().toLowerCase().replace(/\s+/g, ' ');
      if (name === 'all') {
        return {
          tag: 'SHOW',
          columns: [textCol('name'), textCol('setting'), textCol('description')],
          rows: [...this.settings].map(([k, v]) => [k, v, '']),
        };
      }
      const key = name === 'transaction isolation level' ? 'transaction_isolation' : name;
      const value = this.settings.get(key);
      if (value === undefined) throw new PgError('42704', `unrecognized configuration parameter "${name}"`);
      return { tag: 'SHOW', columns: [textCol(name)], rows: [[value]] };
    }
    if (/^(listen|unlisten|notify)\b/i.test(s)) throw new PgError('0A000', `${s.split(/\s+/)[0]!.toUpperCase()} is not supported`);
    return undefined;
  }

  private dropPortals() {
    for (const name of [...this.portals.keys()]) this.dropPortal(name);
  }
  private settingsReset() {
    for (const [k, v] of Object.entries(DEFAULT_SETTINGS)) this.settings.set(k, v);
  }
}

const textCol = (name: string): Column => ({ name, key: name, duck: 'VARCHAR', type: PG.text });

function formatOf(formats: number[], i: number): number {
  return formats.length === 0 ? 0 : formats.length === 1 ? formats[0]! : (formats[i] ?? 0);
}

function readCString(b: Buffer, at: number): [string, number] {
  const end = b.indexOf(0, at);
  if (end < 0) throw new PgError('08P01', 'malformed message');
  return [b.toString('utf8', at, end), end + 1];
}

/** CommandComplete's tag for a statement that returned `n` rows. */
function tag(sql: string, n: number): string {
  const word = /^\s*(\w+)/.exec(stripComments(sql))?.[1]?.toUpperCase() ?? 'SELECT';
  if (word === 'INSERT') return `INSERT 0 ${n}`;
  if (['UPDATE', 'DELETE', 'MERGE', 'COPY', 'FETCH', 'MOVE'].includes(word)) return `${word} ${n}`;
  return `SELECT ${n}`;
}

/** statement_timeout as milliseconds: 5000, '5s', '500ms', '1min'. */
function parseDuration(v: string): number {
  const m = /^\s*(\d+)\s*(ms|s|min|h)?\s*$/i.exec(v);
  if (!m) return 0;
  const n = Number(m[1]);
  return n * ({ ms: 1, s: 1000, min: 60_000, h: 3_600_000 }[(m[2] ?? 'ms').toLowerCase()] ?? 1);
}

/** Startup options: `-c featherman.pool=x` (or `--featherman.pool=x`) in `options`. */
function optionPool(options: string | undefined): string | undefined {
  const m = /(?:-c\s*|--)featherman\.pool=(\S+)/.exec(options ?? '');
  return m?.[1];
}

class WireConnection extends PostgresConnection {
  session?: Session;
  private queue: Promise<void> = Promise.resolve();
  private pending = 0;

  private pendingData: Buffer = Buffer.alloc(0);

  /**
   * Messages are cut from the stream here and handled one at a time, in order; the socket is
   * paused while any wait. (pg-gateway 0.2.4's own handleData slices the second of several
   * messages in one packet wrongly, so pipelined Parse/Bind/Execute would break.)
   */
  override handleData(data: Buffer): Promise<void> {
    this.pending++;
    this.socket.pause();
    this.queue = this.queue
      .then(() => this.cut(data))
      .catch(() => {
        this.socket.destroy();
      })
      .finally(() => {
        if (--this.pending === 0 && !this.socket.destroyed) this.socket.resume();
      });
    return this.queue;
  }

  private async cut(data: Buffer): Promise<void> {
    let buf = this.pendingData.length ? Buffer.concat([this.pendingData, data]) : data;
    for (;;) {
      const typed = this.hasStarted ? 1 : 0;
      if (buf.length < typed + 4) break;
      const size = typed + buf.readUInt32BE(typed);
      if (size > 1 << 30) throw new Error('message too large');
      if (buf.length < size) break;
      const message = buf.subarray(0, size);
      buf = buf.subarray(size);
      await this.handleMessage(message);
    }
    this.pendingData = buf.length ? Buffer.from(buf) : Buffer.alloc(0);
  }

  override async handleMessage(data: Buffer): Promise<void> {
    if (!this.hasStarted && data.length === 8 && data.readInt32BE(4) === GSSENC_CODE) {
      this.socket.write('N');
      return;
    }
    if (!this.hasStarted && data.length === 16 && data.readInt32BE(4) === CANCEL_CODE) {
      // A CancelRequest names the session by its backend key; nothing is answered either way.
      sessions.get(keyOf(data.readInt32BE(8), data.readInt32BE(12)))?.cancel();
      this.socket.end();
      return;
    }
    if (this.isAuthenticated && this.session) return this.session.handle(data);
    return super.handleMessage(data);
  }

  override async completeAuthentication(): Promise<void> {
    const s = this.session!;
    this.isAuthenticated = true;
    this.sendAuthenticationOk();
    for (const name of REPORTED) {
      s.parameterStatus(
        name,
        name === 'session_authorization' ? (this.clientInfo?.parameters.user ?? '') : (s.settings.get(name.toLowerCase()) ?? ''),
      );
    }
    s.backendKeyData();
    s.readyForQuery();
    sessions.set(keyOf(s.pid, s.secret), s);
    await s.flush();
  }
}

/** A TCP listener speaking the Postgres protocol; `close()` it to stop. */
export function pgServer(opts: PgServerOptions): Server {
  const mirror = new CatalogMirror(opts.log);
  return createServer((socket: Socket) => {
    socket.setNoDelay(true);
    const remote = socket.remoteAddress;
    let failed = false;
    const conn: WireConnection = new WireConnection(socket, {
      serverVersion: opts.serverVersion ?? SERVER_VERSION,
      authMode: 'cleartextPassword',
      ...(opts.tls ? { tls: () => opts.tls!() } : {}),
      onTlsUpgrade: () => {
        conn.secureSocket?.on('error', () => undefined);
      },
      onStartup: async (state) => {
        const p = state.clientInfo!.parameters;
        const send = (code: string, message: string) => {
          failed = true;
          conn.sendError({ severity: 'FATAL', code, message });
          conn.socket.end();
          return true;
        };
        if (!conn.secureSocket && opts.requireTls !== false && !isLoopback(remote)) {
          return send('28000', 'TLS is required: connect with sslmode=require (plain connections are accepted on loopback only)');
        }
        const session = new Session(conn, opts, mirror);
        const database = p.database || p.user;
        const dot = database.indexOf('.');
        session.catalog = dot > 0 ? database.slice(0, dot) : database;
        session.pool = optionPool(p.options) ?? (dot > 0 ? database.slice(dot + 1) : undefined);
        if (p.application_name) session.settings.set('application_name', p.application_name);
        conn.session = session;
        return false;
      },
      validateCredentials: async (credentials) => {
        const session = conn.session!;
        if (credentials.authMode !== 'cleartextPassword') return false;
        try {
          session.principal = await opts.core.authenticator.authenticate(`Bearer ${credentials.password}`);
        } catch (err) {
          if (err instanceof AuthUnavailable) opts.log.warn({ reason: err.message }, 'authentication unavailable');
          return false;
        }
        try {
          await opts.core.router?.resolve(session.catalog, session.pool);
        } catch (err) {
          failed = true;
          conn.sendError({ severity: 'FATAL', code: '3D000', message: err instanceof RouterError ? err.message : 'no such catalog' });
          conn.socket.end();
          return false;
        }
        return true;
      },
    });
    const fail = conn.sendAuthenticationFailedError.bind(conn);
    conn.sendAuthenticationFailedError = () => {
      if (!failed) fail();
    };
    socket.on('error', () => undefined);
    socket.on('close', () => conn.session?.end());
  });
}
