// A randomized test of the promise that retained backups restore: rounds mixing inserts, deletes,
// updates, schema changes, backups, prunes, maintenance with every age at 0, and restores of the
// live catalog to an older backup (after which newer backups' files are orphans to DuckLake). After each round
// every retained backup is read as a scratch catalog, and one of them (in turn) goes through a
// full `restore` into a scratch catalog; each must have exactly the rows recorded when it was
// taken, compared by a checksum over the values (not counts or statistics).
//
// The lake is local (the runner commands run in this process, for speed); test/lake/backup.test.ts
// covers the same paths on MinIO. FEATHERMAN_SEED reproduces a run, FEATHERMAN_BACKUP_ROUNDS
// changes its length.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backupCommand, restoreCommand } from '../../lib/lake/commands/backup.js';
import { catalogCommand } from '../../lib/lake/commands/catalog.js';
import { maintainCommand } from '../../lib/lake/commands/maintain.js';
import { loadConfig } from '../../lib/lake/config.js';
import { openDuckDB, openLake, type LakeSession } from '../../lib/lake/session.js';
import { literal } from '../../lib/lake/sql.js';

const ROUNDS = Number(process.env.FEATHERMAN_BACKUP_ROUNDS ?? 200);
const SEED = Number(process.env.FEATHERMAN_SEED ?? Math.floor(Math.random() * 2 ** 31));
t.setTimeout(2_400_000);
t.comment(`seed ${SEED} (FEATHERMAN_SEED=${SEED} repeats this run), ${ROUNDS} rounds`);

// mulberry32: a small seeded generator, so a failing run can be repeated exactly.
let state = SEED >>> 0;
function random(): number {
  state = (state + 0x6d2b79f5) >>> 0;
  let x = state;
  x = Math.imul(x ^ (x >>> 15), x | 1);
  x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
  return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
}
const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)]!;

const work = mkdtempSync(join(tmpdir(), 'fm-rounds-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));
const env: Record<string, string> = {
  FEATHERMAN_METADATA: `duckdb:${join(work, 'catalog', 'metadata.ducklake')}`,
  FEATHERMAN_DATA_PATH: join(work, 'lake', 'data'),
  FEATHERMAN_BACKUP_PATH: join(work, 'lake', 'backups'),
  FEATHERMAN_CATALOG: 'rounds',
};
if (process.env.FEATHERMAN_EXTENSION_DIR) env.FEATHERMAN_EXTENSION_DIR = process.env.FEATHERMAN_EXTENSION_DIR;
const config = loadConfig(env);

/** Table name -> its added columns (every table has id BIGINT and v VARCHAR). */
const tables = new Map<string, string[]>();
let nextTable = 0;
let nextColumn = 0;
let nextId = 0;

/** The test's own checksum of every table: rows as text, sorted, hashed. Independent of the product's. */
async function contents(session: LakeSession, database: string): Promise<Record<string, string>> {
  const names = await session.rows(`SELECT table_name FROM duckdb_tables() WHERE database_name = ${literal(database)} ORDER BY 1`);
  const out: Record<string, string> = {};
  for (const { table_name: name } of names) {
    const row = (
      await session.rows(
        `SELECT count(*) AS n, md5(coalesce(string_agg(r::VARCHAR, '|' ORDER BY r::VARCHAR), '')) AS h ` +
          `FROM ${database}.main."${String(name)}" r`,
      )
    )[0]!;
    out[String(name)] = `${row.n}:${row.h}`;
  }
  return out;
}

type Op = 'insert' | 'delete' | 'update' | 'schema' | 'backup' | 'prune' | 'maintain' | 'restore';
const WEIGHTS: [Op, number][] = [
  ['insert', 5],
  ['delete', 2],
  ['update', 2],
  ['schema', 1],
  ['backup', 2],
  ['prune', 1],
  ['maintain', 2],
  ['restore', 0.5],
];
function nextOp(): Op {
  let r = random() * WEIGHTS.reduce((n, [, w]) => n + w, 0);
  for (const [op, w] of WEIGHTS) if ((r -= w) < 0) return op;
  return 'insert';
}

function dml(op: Op): string[] {
  const table = pick([...tables.keys()]);
  const added = tables.get(table)!;
  if (op === 'insert') {
    const n = int(1, 300); // inlined (up to 10 rows) or a Parquet file
    const from = nextId;
    nextId += n;
    const extra = added.map((c, i) => `, (i % ${i + 3})::INTEGER AS ${c}`).join('');
    return [`INSERT INTO ${table} BY NAME SELECT i AS id, 'v' || i AS v${extra} FROM range(${from}, ${from + n}) r(i)`];
  }
  if (op === 'delete') return [`DELETE FROM ${table} WHERE id % ${int(2, 9)} = ${int(0, 1)}`];
  if (op === 'update') return [`UPDATE ${table} SET v = v || 'u' WHERE id % ${int(2, 7)} = 0`];
  // schema changes: add or drop a column, create or drop a table
  const choice = int(0, 3);
  if (choice === 0 || (choice === 1 && !added.length)) {
    const c = `c${nextColumn++}`;
    added.push(c);
    return [`ALTER TABLE ${table} ADD COLUMN ${c} INTEGER DEFAULT ${int(0, 9)}`];
  }
  if (choice === 1) return [`ALTER TABLE ${table} DROP COLUMN ${added.splice(int(0, added.length - 1), 1)[0]}`];
  if (choice === 2 || tables.size < 2) {
    const name = `t${nextTable++}`;
    tables.set(name, []);
    return [`CREATE TABLE ${name} (id BIGINT, v VARCHAR)`];
  }
  tables.delete(table);
  return [`DROP TABLE ${table}`];
}

const retained: { name: string; contents: Record<string, string>; tables: [string, string[]][] }[] = [];
const counts: Record<string, number> = {};

await catalogCommand(['init'], env);
{
  const s = await openLake(config);
  await s.run("CALL lake.set_option('data_inlining_row_limit', 10)");
  await s.run('CREATE TABLE t_main (id BIGINT, v VARCHAR)');
  tables.set('t_main', []);
  s.close();
}

let roundsPassed = 0;
for (let round = 1; round <= ROUNDS; round++) {
  const ops = Array.from({ length: int(1, 3) }, nextOp);
  // One session for the round's statements; closed before a runner command opens the catalog.
  let open: LakeSession | undefined;
  const lake = async () => (open ??= await openLake(config));
  const close = () => {
    open?.close();
    open = undefined;
  };
  for (const op of ops) {
    counts[op] = (counts[op] ?? 0) + 1;
    if (op === 'backup') {
      const now = await contents(await lake(), 'lake');
      close();
      if (retained.length >= 3) await backupCommand(['delete', retained.shift()!.name], env);
      const b = await backupCommand([], env);
      retained.push({ name: String(b.backup), contents: now, tables: [...tables].map(([n, cols]) => [n, [...cols]]) });
    } else if (op === 'prune') {
      if (retained.length) await backupCommand(['delete', retained.splice(int(0, retained.length - 1), 1)[0]!.name], env);
    } else if (op === 'restore') {
      close();
      if (retained.length) {
        const b = pick(retained);
        await restoreCommand(['--backup', b.name, '--force'], env);
        tables.clear();
        for (const [n, cols] of b.tables) tables.set(n, [...cols]);
      }
    } else if (op === 'maintain') {
      close();
      const args = [
        '--expire-older-than',
        '0s',
        '--cleanup-older-than',
        '0s',
        '--max-compacted-files',
        String(int(2, 50)),
        '--rewrite-delete-threshold',
        pick(['0.1', '0.5', '0.95']),
      ];
      if (random() < 0.5) args.push('--delete-orphans', '--orphans-older-than', '0s');
      await maintainCommand(args, env);
    } else {
      for (const sql of dml(op)) await (await lake()).run(sql);
    }
  }
  close();

  const failures: string[] = [];
  // One of the retained backups (in turn) restored in full into a scratch catalog...
  const restored = retained.length ? retained[round % retained.length]! : undefined;
  const scratchDir = join(work, `scratch-${round}`);
  if (restored) {
    await restoreCommand(['--backup', restored.name], {
      ...env,
      FEATHERMAN_METADATA: `duckdb:${join(scratchDir, 'metadata.ducklake')}`,
    }).catch((err: Error) => failures.push(`backup ${restored.name} did not restore: ${err.message}`));
  }
  // ...and every retained backup read as a scratch catalog from its own metadata copy, in one session.
  const session = await openDuckDB(config);
  try {
    const catalogs = retained.map((b, i) => ({
      b,
      alias: `backup${i}`,
      file: join(config.backupPath, 'rounds', b.name, 'metadata.duckdb'),
    }));
    if (restored && !failures.length) catalogs.push({ b: restored, alias: 'restored', file: join(scratchDir, 'metadata.ducklake') });
    for (const { b, alias, file } of catalogs) {
      await session.run(`ATTACH ${literal(`ducklake:duckdb:${file}`)} AS ${alias} (READ_ONLY)`);
      const got = await contents(session, alias).catch((err: Error) => ({ error: err.message.split('\n')[0]! }));
      await session.run(`DETACH ${alias}`);
      if (JSON.stringify(got) !== JSON.stringify(b.contents))
        failures.push(`backup ${b.name} (${alias}): ${JSON.stringify(got)} != ${JSON.stringify(b.contents)}`);
    }
  } finally {
    session.close();
  }
  rmSync(scratchDir, { recursive: true, force: true });
  if (failures.length) {
    t.fail(`round ${round} (${ops.join(', ')}): ${failures.join('; ')}`);
    break;
  }
  roundsPassed = round;
}
t.comment(`operations: ${JSON.stringify(counts)}`);
if (ROUNDS >= 100)
  t.ok(
    (counts.maintain ?? 0) > 10 && (counts.backup ?? 0) > 10 && (counts.prune ?? 0) > 5,
    'the rounds mixed enough backups, prunes and maintenance runs',
  );
t.equal(roundsPassed, ROUNDS, 'every retained backup had exactly its rows after every round');
