// The embedded lake behind `npm start` moves with its checkout: a renamed folder (or a new clone
// given the old .cache/local) still starts and still has its rows. A lake whose paths the user
// set is never rewritten behind their back.
import t from 'tap';
import { mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureEmbeddedLake } from '../../lib/lake/embedded.js';
import { loadConfig } from '../../lib/lake/config.js';
import { openLake } from '../../lib/lake/session.js';

const work = mkdtempSync(join(tmpdir(), 'fm-embedded-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

async function count(env: NodeJS.ProcessEnv): Promise<number> {
  const lake = await openLake(loadConfig(env), { readOnly: true });
  try {
    return Number(await lake.value('SELECT count(*) FROM lake.main.events'));
  } finally {
    lake.close();
  }
}

t.test('a moved checkout keeps its embedded lake and rows', async (t) => {
  const before = join(work, 'checkout-a', 'local');
  const first: NodeJS.ProcessEnv = {};
  t.same(await ensureEmbeddedLake(first, before), {
    metadata: `duckdb:${join(before, 'metadata.ducklake')}`,
    dataPath: join(before, 'data') + '/',
  });
  const lake = await openLake(loadConfig(first));
  await lake.run('CREATE TABLE lake.main.events AS SELECT range AS id FROM range(25)');
  lake.close();

  renameSync(join(work, 'checkout-a'), join(work, 'checkout-b'));
  const after = join(work, 'checkout-b', 'local');
  const second: NodeJS.ProcessEnv = {};
  const moved = await ensureEmbeddedLake(second, after);
  t.equal(moved.relocatedFrom, join(before, 'data') + '/', 'reports where the lake used to be');
  t.equal(await count(second), 25, 'the rows written before the move read back after it');

  const third: NodeJS.ProcessEnv = {};
  t.equal((await ensureEmbeddedLake(third, after)).relocatedFrom, undefined, 'an unmoved lake is left alone');
});

t.test('a data path the user set is not rewritten to match', async (t) => {
  const dir = join(work, 'user');
  const env: NodeJS.ProcessEnv = { FEATHERMAN_DATA_PATH: join(dir, 'data') };
  await ensureEmbeddedLake(env, dir);
  const other: NodeJS.ProcessEnv = { FEATHERMAN_DATA_PATH: join(dir, 'elsewhere') };
  await t.rejects(ensureEmbeddedLake(other, dir), /does not match existing data path/);
});
