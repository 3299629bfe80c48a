// The query path tried as an attacker with a valid API token would try it: the corpus of
// test/helpers/hostile-sql.ts (over 300 queries) against warm workers and against the cold path,
// on a lake on real MinIO whose credentials are canaries, with canary environment variables, a
// canary file beside the data path, a deleted row and a dropped table holding canaries. No
// response, log line or metric may contain a canary; every hostile query is refused.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { buildServer } from '../../lib/server/server.js';
import { LocalFallback, LocalPool } from '../../lib/pool/local.js';
import { Router, type PoolSettings, type WorkerDirectory } from '../../lib/pool/router.js';
import { Minio } from '../helpers/minio.js';
import { featherman } from '../helpers/cli.js';
import { hostileQueries, LAKE_QUERIES } from '../helpers/hostile-sql.js';

const TOKEN = 'hostile-test-token-0123456789';
const canary = (what: string) => `canary-${what}-${randomBytes(6).toString('hex')}`;
const minio = await Minio.start();
const work = mkdtempSync(join(tmpdir(), 'fm-hostile-'));
await minio.createBucket('lake');
const data = 's3://lake/hostile/data/';
const canaryFile = 's3://lake/hostile/canary.txt';
const CANARIES = {
  envVariable: canary('env'),
  pgPassword: canary('pg'),
  file: canary('file'),
  deletedRow: canary('deleted'),
  droppedTable: canary('dropped'),
  accessKey: minio.accessKey,
  secretKey: minio.secretKey,
};
const s3 = minio.client();
await s3.send(new PutObjectCommand({ Bucket: 'lake', Key: 'hostile/canary.txt', Body: `${CANARIES.file}\n` }));
s3.destroy();

const env: Record<string, string> = {
  PATH: process.env.PATH!,
  HOME: process.env.HOME ?? '/tmp',
  ...minio.env(),
  FEATHERMAN_METADATA: `duckdb:${join(work, 'meta.ducklake')}`,
  FEATHERMAN_DATA_PATH: data,
  FEATHERMAN_CATALOG: 'lake1',
  FEATHERMAN_STARTUP_TIMEOUT: '30s',
  // Not secrets by name: if one of these shows up anywhere, the environment was readable.
  FEATHERMAN_TEST_CANARY: CANARIES.envVariable,
  PGPASSWORD: CANARIES.pgPassword,
};
const sql = async (statement: string) =>
  t.equal((await featherman(['query', '--write', '--sql', statement], env)).code, 0, statement.slice(0, 60));
t.equal((await featherman(['catalog', 'init'], env)).code, 0);
const spec = join(work, 'users.json');
writeFileSync(
  spec,
  JSON.stringify({
    name: 'users',
    columns: [
      { name: 'id', type: 'INTEGER' },
      { name: 'name', type: 'VARCHAR' },
    ],
  }),
);
t.equal((await featherman(['table', 'apply', '-f', spec], env)).code, 0);
// Rows written to Parquet (not inlined), then one deleted and a table dropped: their files stay
// until cleanup, so reading raw files would show the canaries.
await sql(`INSERT INTO users SELECT i + 100, '${CANARIES.deletedRow}' FROM range(20) r(i)`);
await sql(`INSERT INTO users VALUES (1, 'ada'), (2, 'bob'), (3, 'cy')`);
await sql('DELETE FROM users WHERE id >= 100');
await sql(`CREATE TABLE secrets AS SELECT '${CANARIES.droppedTable}' AS v FROM range(20)`);
await sql('DROP TABLE secrets');

// Everything the service and its workers print goes here too (workers' stderr is forwarded).
const logs: string[] = [];
const tee = (stream: NodeJS.WriteStream) => {
  const write = stream.write.bind(stream);
  stream.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
    logs.push(String(chunk));
    return write(chunk, ...rest);
  }) as typeof stream.write;
  return () => {
    stream.write = write;
  };
};
const untee = [tee(process.stderr), tee(process.stdout)];

const settings: PoolSettings = {
  namespace: 'local',
  pool: 'hostile',
  catalog: 'lake1',
  readOnly: true,
  queueMaxLength: 1000,
  queueMaxWaitMs: 60_000,
  maxQueryMs: 20_000,
  workerConcurrency: 1,
};
const pool = new LocalPool(settings, env);
await pool.scaleTo(2);
const empty: WorkerDirectory = { pools: async () => [settings], workers: async () => [] };
const logger = {
  level: 'info',
  stream: {
    write: (line: string) => {
      logs.push(line);
    },
  },
};
const warm = await buildServer({
  plugins: ['health', 'query', 'metrics'],
  router: new Router(pool, new LocalFallback(env)),
  apiTokens: [TOKEN],
  logger,
});
const cold = await buildServer({
  plugins: ['health', 'query', 'metrics'],
  router: new Router(empty, new LocalFallback(env)),
  apiTokens: [TOKEN],
  logger,
});
t.teardown(async () => {
  for (const u of untee) u();
  await warm.close();
  await cold.close();
  await pool.stop();
  await minio.stop();
  rmSync(work, { recursive: true, force: true });
});

const corpus = hostileQueries({ data, canaryFile });
// A process per query on the cold path: three spellings of each, still over 150 queries.
const coldCorpus = hostileQueries({ data, canaryFile }, 3);
t.ok(
  corpus.length >= 150 && coldCorpus.length >= 150,
  `${corpus.length} hostile queries for warm workers, ${coldCorpus.length} for the cold path`,
);
// The cold path costs a process start per query; on a loaded 2-core machine that is a few minutes.
t.setTimeout(1_500_000);
const responses: string[] = [];

async function ask(app: typeof warm, statement: string) {
  const res = await app.inject({
    method: 'POST',
    url: '/v1/query',
    headers: { authorization: `Bearer ${TOKEN}` },
    payload: { catalog: 'lake1', sql: statement },
  });
  responses.push(res.body, JSON.stringify(res.headers));
  return res;
}

/** Runs `items` two at a time (as many as the warm pool has workers). */
async function eachPair<T>(items: T[], fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    [0, 1].map(async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

for (const [path, app, queries] of [
  ['warm workers', warm, corpus],
  ['the cold path', cold, coldCorpus],
] as const) {
  t.test(`${path}: every hostile query is refused`, async (t) => {
    const wrong: string[] = [];
    await eachPair(queries, async (q) => {
      const res = await ask(app, q.sql);
      if (res.statusCode !== q.status)
        wrong.push(`[${q.class}] ${q.sql.slice(0, 120)} -> ${res.statusCode} (want ${q.status}) ${res.body.slice(0, 200)}`);
    });
    t.same(wrong, [], `all ${queries.length} answered with the expected refusal`);
  });

  t.test(`${path}: queries over the lake still answer`, async (t) => {
    for (const q of LAKE_QUERIES) {
      const res = await ask(app, q.sql);
      t.equal(res.statusCode, 200, q.sql);
      t.same(JSON.parse(res.body).rows, q.rows, q.sql);
    }
  });
}

t.test('no canary in any response, log line or metric', async (t) => {
  const metrics = [
    (await warm.inject({ method: 'GET', url: '/metrics' })).body,
    (await cold.inject({ method: 'GET', url: '/metrics' })).body,
  ];
  const seen = { responses: responses.join('\n'), logs: logs.join(''), metrics: metrics.join('\n') };
  t.ok(seen.responses.length > 10_000 && seen.logs.length > 0, 'responses and logs were captured');
  for (const [where, text] of Object.entries(seen)) {
    for (const [name, value] of Object.entries(CANARIES)) t.notOk(text.includes(value), `${name} is not in the ${where}`);
  }
});
