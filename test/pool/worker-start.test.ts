// A worker that cannot get its lake attached must not sit there live but never ready: it gives up
// after FEATHERMAN_STARTUP_TIMEOUT (exit 75, so Kubernetes restarts it) and says which step hung,
// and the local pool starts another. The fault is real: a process holding the catalog file's
// write lock, as a table Job does while it writes.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { LocalPool } from '../../lib/pool/local.js';
import type { PoolSettings } from '../../lib/pool/router.js';
import { featherman } from '../helpers/cli.js';

const work = mkdtempSync(join(tmpdir(), 'fm-worker-start-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));
const metadata = join(work, 'meta.ducklake');
const env: Record<string, string> = {
  PATH: process.env.PATH!,
  HOME: process.env.HOME ?? '/tmp',
  FEATHERMAN_METADATA: `duckdb:${metadata}`,
  FEATHERMAN_DATA_PATH: join(work, 'data/'),
  FEATHERMAN_CATALOG: 'lake1',
  FEATHERMAN_LOCK_TIMEOUT_SECONDS: '60',
  FEATHERMAN_STARTUP_TIMEOUT: '2s',
};
t.equal((await featherman(['catalog', 'init'], env)).code, 0);

/** Open the catalog file read-write in this process: DuckDB's exclusive lock, as a writer holds it. */
async function holdWriteLock(): Promise<() => void> {
  const instance = await DuckDBInstance.create(metadata);
  const connection = await instance.connect();
  let held = true;
  return () => {
    if (held) {
      held = false;
      connection.closeSync();
      instance.closeSync();
    }
  };
}

t.test('a worker that cannot attach in time exits 75 and names the step it was stuck in', async (t) => {
  const release = await holdWriteLock();
  t.teardown(release);
  const started = performance.now();
  const r = await featherman(['worker', '--port', '0', '--host', '127.0.0.1'], env, { timeoutMs: 120_000 });
  const seconds = (performance.now() - started) / 1000;
  t.equal(r.code, 75, r.stderr);
  t.match(r.json.error, /did not start within 2 s; it was copying the catalog file/);
  // Half the lock wait: a process start on a loaded machine takes seconds, the lock wait a minute.
  t.ok(seconds < 30, `gave up after ${seconds.toFixed(1)} s, not after the 60 s lock wait`);
});

t.test('the local pool replaces a worker that did not start, and the replacement serves', async (t) => {
  const settings: PoolSettings = {
    namespace: 'local',
    pool: 'p',
    catalog: 'lake1',
    readOnly: true,
    queueMaxLength: 10,
    queueMaxWaitMs: 10_000,
    maxQueryMs: 10_000,
    workerConcurrency: 1,
  };
  const pool = new LocalPool(settings, env);
  t.teardown(() => pool.stop());
  const release = await holdWriteLock();
  t.teardown(release);
  const adding = pool.add();
  // The writer finishes once the first worker has given up waiting for it.
  while (pool.failedStarts === 0) await new Promise((r) => setTimeout(r, 50));
  release();
  const worker = await adding;
  t.not(worker.name, 'p-local-1', `the first worker gave up; ${worker.name} took its place`);
  t.equal(pool.alive().length, 1);
  const res = await fetch(`${worker.url}/query`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sql: 'SELECT 42 AS answer' }),
  });
  t.same(((await res.json()) as { rows: unknown[] }).rows, [{ answer: 42 }]);
});
