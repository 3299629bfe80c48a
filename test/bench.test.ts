// The README's `npm run bench`, run as written with every size turned down (BENCH_*): each
// benchmark runs on its real parts (MinIO, the lake, local workers, a kube-apiserver, PostgreSQL)
// and prints its tables. Figures are not judged here (speed goals live in bench/); what is judged
// is that every table is printed with numbers, and what the bench says it measured happened.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { packageRoot } from '../lib/lake/config.js';

const SMALL = {
  BENCH_ROWS: '1000',
  BENCH_RUNS: '1',
  BENCH_COLD_RUNS: '1',
  BENCH_SMALL_FILES: '10',
  BENCH_BACKUP_MB: '2',
  BENCH_WARM_RUNS: '5',
  BENCH_WARM_UP: '5',
  BENCH_SECONDS: '0.5',
  BENCH_CONNECTIONS: '2',
  BENCH_CLIENTS: '2',
  BENCH_AUTH_RUNS: '5',
  BENCH_SCRAPES: '5',
  BENCH_QUACK: '0',
  BENCH_PGWIRE_SECONDS: '1',
  BENCH_PGWIRE_WARM_UP_SECONDS: '1',
};
const NUMBER = String.raw`[\d,]+(?:\.\d+)?`;
const P50_P99 = `${NUMBER} / ${NUMBER}`;

t.test('npm run bench prints every benchmark, each table with its figures', async (t) => {
  const r = spawnSync('npm', ['run', 'bench'], {
    cwd: packageRoot(),
    encoding: 'utf8',
    env: { ...process.env, ...SMALL, npm_config_update_notifier: 'false' },
    timeout: 540_000,
  });
  t.equal(r.status, 0, r.stderr);
  const out = r.stdout;
  const sections = [...out.matchAll(/^=== (\w+) ===$/gm)].map((m) => m[1]);
  t.same(sections, ['lake', 'backup', 'pool', 'hooks', 'admission', 'auth', 'pgwire', 'metrics']);
  t.notMatch(out, /NaN|Infinity/, 'no figure is missing or divided by zero');

  // lake: ingest beside plain COPY, and a cold query split into its phases.
  t.match(out, new RegExp(`^DuckLake INSERT \\(featherman\\)\\s+${NUMBER}\\s+${NUMBER}$`, 'm'));
  t.match(out, new RegExp(`^plain DuckDB COPY TO s3://\\s+${NUMBER}\\s+${NUMBER}$`, 'm'));
  t.match(out, new RegExp(`^total wall clock\\s+${NUMBER}$`, 'm'));

  // backup: the merge merged, and a second backup with nothing new copied nothing.
  t.match(out, /featherman maintain \(merge \+ cleanup\).* 10 files merged into 1, 10 deleted$/m);
  t.match(out, /^a second backup --include-data, nothing new .* 0 files, 0 bytes copied$/m);

  // pool: every warm path answered both queries; the workers read the aggregate from memory.
  for (const query of ['SELECT 1', 'small aggregate'])
    t.match(
      out,
      new RegExp(`^${query}\\s+${P50_P99}\\s+${P50_P99}\\s+${P50_P99}\\s+${P50_P99}\\s+n/a\\s+${P50_P99}\\s+${NUMBER}x$`, 'm'),
      `${query}: cold, router, worker, floor, (no Quack), DuckDB alone`,
    );
  t.match(out, /^quack: not available: skipped \(BENCH_QUACK=0\)$/m);
  t.match(out, /^the small aggregate: 5 of 5 worker answers read the worker's in-memory copy of events/m);
  for (const goal of ['warm SELECT 1 via router p50', 'router adds over a worker (p50)', 'small aggregate via router p50'])
    t.match(out, new RegExp(`^${goal.replace(/[()]/g, '\\$&')}\\s+${NUMBER} ms\\s+≤ [\\d.]+\\s+(met|NOT met)$`, 'm'));
  t.match(out, new RegExp(`^  beside it: a bare HTTP proxy in front of the same worker adds ${NUMBER} ms`, 'm'));
  t.match(out, new RegExp(`^  beside it: DuckDB alone takes ${NUMBER} ms for it`, 'm'));
  for (const workers of [1, 2, 4]) t.match(out, new RegExp(`^${workers}\\s+${NUMBER}\\s+${NUMBER}\\s+${NUMBER}$`, 'm'));

  // hooks and admission: our routes beside a bare Fastify route.
  t.match(out, new RegExp(`^/hooks/ducklaketables/sync\\s+${NUMBER}\\s+${NUMBER}\\s+${NUMBER}\\s+${NUMBER}$`, 'm'));
  t.match(out, new RegExp(`/admission/validate\\s+${NUMBER}\\s+${NUMBER}\\s+${NUMBER}\\s+${NUMBER}$`, 'm'));

  // auth: a real TokenReview and SubjectAccessReview answered, cached and not.
  t.match(out, new RegExp(`^TokenReview \\+ SAR, cache cold\\s+${NUMBER}\\s+${NUMBER}\\s+${NUMBER}$`, 'm'));

  // pgwire: the Postgres listener, POST /v1/query and a real PostgreSQL, for both queries.
  for (const query of ['SELECT 1', 'aggregate'])
    for (const clients of [1, 8])
      t.match(out, new RegExp(`^\\s*${query}\\s+${clients}\\s+${NUMBER}\\s+${NUMBER}\\s+-?${NUMBER}\\s+${NUMBER}\\s+${NUMBER}$`, 'm'));

  // metrics: a scrape of a large cache.
  t.match(out, new RegExp(`^scrape over 5 runs: p50 ${NUMBER} ms, p99 ${NUMBER} ms`, 'm'));
});
