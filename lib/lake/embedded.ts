// `featherman serve --embedded`: a local DuckLake (catalog file + data directory under .cache/local)
// so the service runs on a laptop with no cluster, no S3 and no configuration.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, packageRoot } from './config.js';
import { catalogDatabaseSql, openLake, type LakeSession } from './session.js';

/** Fills in FEATHERMAN_METADATA and FEATHERMAN_DATA_PATH when unset, and creates the lake. */
export async function ensureEmbeddedLake(
  env: NodeJS.ProcessEnv,
  local = join(packageRoot(), '.cache', 'local'),
): Promise<{ metadata: string; dataPath: string; relocatedFrom?: string }> {
  const owned = env.FEATHERMAN_METADATA === undefined && env.FEATHERMAN_DATA_PATH === undefined;
  env.FEATHERMAN_METADATA ??= `duckdb:${join(local, 'metadata.ducklake')}`;
  env.FEATHERMAN_DATA_PATH ??= join(local, 'data');
  const config = loadConfig(env);
  let relocatedFrom: string | undefined;
  const follow = async (session: LakeSession) => {
    relocatedFrom = await followMovedCheckout(session);
  };
  (await openLake(config, { create: true }, owned ? follow : undefined)).close();
  return { metadata: env.FEATHERMAN_METADATA, dataPath: config.dataPath, ...(relocatedFrom ? { relocatedFrom } : {}) };
}

/**
 * DuckLake stores the absolute data path in the catalog and refuses an ATTACH with another one. The
 * embedded lake moves with its checkout (a renamed folder, a fresh clone given a copy of .cache/local),
 * and its data files are recorded relative to the data path, so when we own both we point the stored
 * path at where the data is now. Returns the old path when it changed.
 */
async function followMovedCheckout(session: LakeSession): Promise<string | undefined> {
  const config = session.config;
  if (config.metadata.type !== 'duckdb' || !existsSync(config.metadata.path)) return undefined;
  await session.run(catalogDatabaseSql(config, 'embedded_catalog', false));
  try {
    const stored = await session.value<string | undefined>(
      `SELECT value FROM embedded_catalog.ducklake_metadata WHERE key = 'data_path' AND scope IS NULL`,
    );
    if (stored === undefined || stored === config.dataPath) return undefined;
    await session.run(`UPDATE embedded_catalog.ducklake_metadata SET value = $1 WHERE key = 'data_path' AND scope IS NULL`, [
      config.dataPath,
    ]);
    return stored;
  } finally {
    // The lake attaches the same file next, through DuckLake.
    await session.run('DETACH embedded_catalog');
  }
}
