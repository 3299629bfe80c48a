// `featherman serve --embedded` on its own lake under a temporary directory, with the Postgres
// listener on a free port, for the wire tests and the bench: tables `users` (every type the wire
// maps) and `events` are made first, on the same embedded lake code `npm start` uses.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startQueryService, type QueryService } from '../helpers/query-service.js';
import { ensureEmbeddedLake } from '../../lib/lake/embedded.js';
import { loadConfig } from '../../lib/lake/config.js';
import { openLake } from '../../lib/lake/session.js';

export const TOKEN = 'wire-test-token';

export interface WireService extends QueryService {
  pgPort: number;
  dir: string;
}

export const USERS_SQL = `CREATE TABLE lake.main.users AS SELECT
  i::INTEGER AS id, 'user ' || i AS name, i % 2 = 0 AS active, (i * 1.5)::DECIMAL(10,2) AS balance, i::DOUBLE / 4 AS score,
  i::BIGINT * 1000000000 AS big, i::SMALLINT AS small, DATE '2024-01-01' + i::INTEGER AS born, TIME '12:00:00' AS wake,
  TIMESTAMP '2024-01-01 10:00:00' + INTERVAL (i) HOUR AS seen, TIMESTAMPTZ '2024-01-01 10:00:00+00' AS seen_tz,
  INTERVAL (i) DAY AS tenure, ('00000000-0000-0000-0000-' || lpad(i::VARCHAR, 12, '0'))::UUID AS uid,
  ('{"n":' || i || '}')::VARCHAR AS doc, ('\\x0' || (i % 10) || 'ab')::BLOB AS raw, [i, i + 1] AS tags, ['a', 'b c'] AS labels
FROM range(1, 101) t(i)`;

export async function startWireService(extraArgs: string[] = [], env: Record<string, string> = {}): Promise<WireService> {
  const dir = mkdtempSync(join(tmpdir(), 'fm-pgwire-'));
  const lakeEnv: NodeJS.ProcessEnv = {
    FEATHERMAN_METADATA: `duckdb:${join(dir, 'metadata.ducklake')}`,
    FEATHERMAN_DATA_PATH: join(dir, 'data'),
  };
  await ensureEmbeddedLake(lakeEnv, dir);
  const lake = await openLake(loadConfig(lakeEnv));
  try {
    await lake.run(USERS_SQL);
    await lake.run("CREATE TABLE lake.main.events AS SELECT range AS id, 'click' AS kind FROM range(1000)");
  } finally {
    lake.close();
  }
  const service = await startQueryService(
    {
      FEATHERMAN_CACHE: process.env.FEATHERMAN_CACHE ?? join(process.env.HOME ?? '', '.cache', 'featherman'),
      FEATHERMAN_METADATA: lakeEnv.FEATHERMAN_METADATA!,
      FEATHERMAN_DATA_PATH: lakeEnv.FEATHERMAN_DATA_PATH!,
      FEATHERMAN_API_TOKENS: TOKEN,
      ...env,
    },
    120_000,
    ['--embedded', '--pg-port', '0', ...extraArgs],
  );
  const line = service.lines().find((l) => l.includes('featherman serve listening'))!;
  const pgPort = (JSON.parse(line) as { pgPort: number }).pgPort;
  return {
    ...service,
    pgPort,
    dir,
    stop: async () => {
      await service.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
