// Featherman's Postgres listener against real clients, none written here: Debian's psql, psycopg 3
// with SQLAlchemy, the PostgreSQL JDBC driver and node-postgres, all on one `featherman serve
// --embedded` (its own lake with tables users and events) through the same router as POST /v1/query.
// TLS: the listener upgrades on SSLRequest with the serving certificate (--tls-cert); psql is run
// with sslmode=require for the \dt, \d, error, cancel and \copy checks.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startWireService, TOKEN, type WireService } from './service.js';

const cache = process.env.FEATHERMAN_CACHE ?? join(process.env.HOME ?? '', '.cache', 'featherman');
const work = mkdtempSync(join(tmpdir(), 'fm-pgwire-clients-'));
let service: WireService;

t.before(async () => {
  const made = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      join(work, 'tls.key'),
      '-out',
      join(work, 'tls.crt'),
    ],
    { encoding: 'utf8' },
  );
  if (made.status !== 0) throw new Error(made.stderr);
  service = await startWireService(['--tls-port', '0', '--tls-cert', join(work, 'tls.crt'), '--tls-key', join(work, 'tls.key')]);
});
t.teardown(async () => {
  await service?.stop();
  rmSync(work, { recursive: true, force: true });
});

const conninfo = (ssl: 'require' | 'disable') => `host=127.0.0.1 port=${service.pgPort} dbname=default user=analyst sslmode=${ssl}`;
const psql = (args: string[], ssl: 'require' | 'disable' = 'require') =>
  spawnSync('psql', [conninfo(ssl), '-X', '-v', 'ON_ERROR_STOP=1', ...args], {
    encoding: 'utf8',
    env: { ...process.env, PGPASSWORD: TOKEN },
    timeout: 120_000,
  });

t.test('psql over TLS: \\dt, \\d users, 20 rows, an error with its SQLSTATE', async (t) => {
  const tls = psql(['-At', '-c', 'SELECT 1']);
  t.equal(tls.status, 0, tls.stderr);
  const dt = psql(['-c', '\\dt']);
  t.equal(dt.status, 0, dt.stderr);
  t.match(dt.stdout, /main\s+\|\s+events\s+\|\s+table/);
  t.match(dt.stdout, /main\s+\|\s+users\s+\|\s+table/);
  t.match(dt.stdout, /\(2 rows\)/, "the lake's tables and nothing else");
  const d = psql(['-c', '\\d users']);
  t.equal(d.status, 0, d.stderr);
  for (const [col, type] of [
    ['id', 'integer'],
    ['balance', 'numeric\\(10,2\\)'],
    ['seen_tz', 'timestamp with time zone'],
    ['uid', 'uuid'],
    ['tags', 'bigint\\[\\]'],
    ['raw', 'bytea'],
  ]) {
    t.match(d.stdout, new RegExp(`\\b${col}\\s+\\|\\s+${type}\\s`), `${col} is ${type}`);
  }
  const rows = psql(['-At', '-F', ',', '-c', 'SELECT id, name, active FROM users ORDER BY id LIMIT 20']);
  t.equal(rows.status, 0, rows.stderr);
  const lines = rows.stdout.trim().split('\n');
  t.equal(lines.length, 20);
  t.equal(lines[0], '1,user 1,f');
  t.equal(lines[19], '20,user 20,t');
  const err = psql(['-v', 'VERBOSITY=verbose', '-c', 'SELECT * FROM no_such_table']);
  t.not(err.status, 0);
  t.match(err.stderr, /ERROR:\s+42P01:/, 'a missing table is undefined_table');
  const refused = psql(['-v', 'VERBOSITY=verbose', '-c', "SELECT * FROM read_csv('/etc/passwd')"]);
  t.match(refused.stderr, /ERROR:\s+42501:/, 'the sandbox refuses files as over HTTP, as insufficient_privilege');
  const plain = spawnSync('psql', [conninfo('disable'), '-X', '-At', '-c', 'SELECT 2'], {
    encoding: 'utf8',
    env: { ...process.env, PGPASSWORD: TOKEN },
  });
  t.equal(plain.stdout.trim(), '2', 'plain connections are accepted from loopback');
  const bad = spawnSync('psql', [conninfo('require'), '-X', '-At', '-c', 'SELECT 1'], {
    encoding: 'utf8',
    env: { ...process.env, PGPASSWORD: 'wrong' },
  });
  t.match(bad.stderr, /password authentication failed/, 'a wrong token is refused');
});

t.test('psql: Ctrl-C (a CancelRequest) stops a long query within 1 s', async (t) => {
  const child = spawn('psql', [conninfo('require'), '-X', '-c', 'SELECT count(*) FROM range(1000000000000::BIGINT)'], {
    env: { ...process.env, PGPASSWORD: TOKEN },
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  // Running once the query log... is not written until the end: wait until the service has the query.
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const res = await fetch(`${service.url}/metrics`);
    const text = await res.text();
    if (/ducklake_pool_pods_busy\{pool="default",namespace="local"\} [1-9]/.test(text)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const sent = performance.now();
  child.kill('SIGINT');
  await exited;
  const took = performance.now() - sent;
  t.match(stderr, /canceling statement due to user request/);
  t.ok(took < 1000, `psql returned ${Math.round(took)} ms after Ctrl-C`);
});

t.test('psql: \\copy (SELECT ...) TO a file, 1,000,000 rows', async (t) => {
  const file = join(work, 'out.tsv');
  const r = psql(['-c', `\\copy (SELECT range AS i, 'row ' || range AS s FROM range(1000000)) TO '${file}'`]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /COPY 1000000/);
  const text = readFileSync(file, 'utf8');
  t.equal(text.split('\n').length - 1, 1_000_000);
  t.ok(text.endsWith('999999\trow 999999\n'));
  t.ok(statSync(file).size > 10_000_000);
});

t.test('node-postgres: a pool running 200 concurrent queries', async (t) => {
  const pool = new pg.Pool({ host: '127.0.0.1', port: service.pgPort, user: 'analyst', password: TOKEN, database: 'default', max: 10 });
  t.teardown(() => pool.end());
  const results = await Promise.all(
    Array.from({ length: 200 }, (_, i) => pool.query('SELECT id, name, balance FROM users WHERE id = $1', [(i % 100) + 1])),
  );
  t.equal(results.length, 200);
  t.ok(
    results.every((r, i) => r.rows.length === 1 && r.rows[0].id === (i % 100) + 1 && r.rows[0].name === `user ${(i % 100) + 1}`),
    "every answer is its own query's",
  );
  t.equal(results[1]!.rows[0].balance, '3.00', 'numeric as text, as from Postgres');
  const err = await pool.query('SELECT nope FROM users').catch((e: { code?: string }) => e);
  t.equal((err as { code?: string }).code, '42703', 'a missing column is undefined_column');
  const typed = await pool.query('SELECT active, big, born, seen_tz, tags, raw FROM users WHERE id = 2');
  t.same(typed.rows[0].tags, ['2', '3'], 'bigint[] arrives as an array');
  t.equal(typed.rows[0].active, true);
  t.ok(typed.rows[0].seen_tz instanceof Date);
  t.same(typed.rows[0].raw, Buffer.from([2, 0x61, 0x62]));
  const set = await pool.query("SET application_name = 'x'; SHOW application_name");
  t.equal((set as unknown as pg.QueryResult[])[1]!.rows[0].application_name, 'x', 'SET and SHOW answered by the session');
});

t.test('psycopg 3 and SQLAlchemy', async (t) => {
  const python = join(cache, 'pgwire-venv', 'bin', 'python');
  t.ok(existsSync(python), 'the psycopg venv is installed (.ci/setup test)');
  const r = spawnSync(python, [join(import.meta.dirname, 'clients', 'psycopg_check.py'), String(service.pgPort), TOKEN], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  t.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as {
    param_row: unknown;
    injection: number;
    roundtrip: Record<string, string>;
    exact: Record<string, { oid: number; value: unknown }>;
    columns_typed: { oids: number[]; row: unknown[] };
    'columns_typed/binary': { oids: number[]; row: unknown[] };
    error_sqlstate: string;
    refused_sqlstate: string;
    table_names: string[];
    columns: [string, string][];
    sqlalchemy_count: number;
  };
  t.same(out.param_row, [[7, 'user 7']], 'server-side bound parameters');
  t.equal(out.injection, 0, 'a quote in a parameter stays in the value');
  const kinds = ['int', 'bigint', 'numeric', 'float', 'text', 'bool', 'date', 'time', 'timestamp', 'timestamptz', 'interval', 'uuid'];
  kinds.push('bytea', 'int_array', 'json', 'json_list', 'jsonb', 'json_array', 'float_array', 'bool_array', 'numeric_array');
  kinds.push('date_array', 'timestamp_array', 'timestamptz_array', 'interval_array', 'uuid_array', 'bytea_array', 'time_array');
  kinds.push('text_array', 'text_array_b', 'varchar_array');
  t.same(Object.keys(out.roundtrip).sort(), [...kinds, ...kinds.map((k) => `${k}/binary`)].sort(), 'every type was tried, text and binary');
  for (const [k, v] of Object.entries(out.roundtrip)) t.equal(v, 'ok', `${k} round-trips${v === 'ok' ? '' : `: ${v}`}`);
  // json (OID 114) arrives parsed, text[] (OID 1009) as a list, whether results are text or binary.
  const doc = { a: [1, 2.5, { b: null }], s: "x'y é" };
  const texts = ['a', 'b c', null, 'q"x', '', 'NULL', '{x}', 'back\\slash', 'hé'];
  for (const suffix of ['', '/binary'] as const) {
    t.same(out.exact[`json${suffix}`], { oid: 114, value: doc }, `json${suffix}`);
    t.same(out.exact[`json_list${suffix}`], { oid: 114, value: [1, 'two', true] }, `json_list${suffix}`);
    t.same(out.exact[`jsonb${suffix}`], { oid: 114, value: { k: [1, 2] } }, `jsonb${suffix} (answered as json)`);
    t.same(out.exact[`json_array${suffix}`], { oid: 199, value: [{ a: 1 }, [2]] }, `json[]${suffix}`);
    t.same(out.exact[`text_array${suffix}`], { oid: 1009, value: texts }, `text[] cast from an untyped parameter${suffix}`);
    t.same(out.exact[`text_array_b${suffix}`], { oid: 1009, value: texts }, `text[] sent binary${suffix}`);
    t.same(out[`columns_typed${suffix}`], { oids: [114, 1009], row: [{ n: 3 }, ['a', 'b c']] }, `a JSON and a VARCHAR[] column${suffix}`);
  }
  t.equal(out.error_sqlstate, '42P01');
  t.equal(out.refused_sqlstate, '42501');
  t.same(out.table_names, ['events', 'users'], 'inspect().get_table_names()');
  t.same(
    out.columns.slice(0, 4),
    [
      ['id', 'INTEGER'],
      ['name', 'TEXT'],
      ['active', 'BOOLEAN'],
      ['balance', 'NUMERIC(10, 2)'],
    ],
    'inspect().get_columns("users")',
  );
  t.equal(out.sqlalchemy_count, 10);
});

t.test('the PostgreSQL JDBC driver', async (t) => {
  const dir = join(cache, 'pgwire-jdbc');
  const jar = join(dir, 'postgresql-42.7.14.jar');
  t.ok(existsSync(jar), 'the driver is installed (.ci/setup test)');
  mkdirSync(join(work, 'classes'), { recursive: true });
  const javac = spawnSync('javac', ['-d', join(work, 'classes'), join(import.meta.dirname, 'clients', 'JdbcCheck.java')], {
    encoding: 'utf8',
  });
  t.equal(javac.status, 0, javac.stderr);
  const r = spawnSync('java', ['-cp', `${join(work, 'classes')}:${jar}`, 'JdbcCheck', String(service.pgPort), TOKEN, '0'], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  t.equal(r.status, 0, r.stderr);
  t.match(
    r.stdout,
    /^prepared=3:user 3:4\.50;4:user 4:6\.00;5:user 5:7\.50;$/m,
    'a PreparedStatement with parameters, also once prepared on the server',
  );
  t.match(r.stdout, /^tables=events,users,$/m, "getTables lists the lake's tables");
  t.match(r.stdout, /^columns=id int4,name text,active bool,balance numeric,/m, 'getColumns');
  t.match(r.stdout, /^rows=1000000 sum=499999500000$/m, '1,000,000 rows with a fetch size');
  t.match(r.stdout, /^refused=42501$/m);
  // The service's peak memory after streaming the million rows (workers are other processes).
  const status = readFileSync(`/proc/${service.child.pid}/status`, 'utf8');
  const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)![1]) / 1024;
  t.ok(hwm < 768, `the service's peak RSS stayed under 768 MiB (${Math.round(hwm)} MiB; about 330 MiB idle, DuckDB included)`);
});
