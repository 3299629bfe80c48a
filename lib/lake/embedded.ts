// `featherman serve --embedded`: a local DuckLake (catalog file + data directory under .cache/local)
// so the service runs on a laptop with no cluster, no S3 and no configuration.
import { join } from 'node:path';
import { loadConfig, packageRoot } from './config.js';
import { openLake } from './session.js';

/** Fills in FEATHERMAN_METADATA and FEATHERMAN_DATA_PATH when unset, and creates the lake. */
export async function ensureEmbeddedLake(env: NodeJS.ProcessEnv): Promise<{ metadata: string; dataPath: string }> {
  const local = join(packageRoot(), '.cache', 'local');
  env.FEATHERMAN_METADATA ??= `duckdb:${join(local, 'metadata.ducklake')}`;
  env.FEATHERMAN_DATA_PATH ??= join(local, 'data');
  const config = loadConfig(env);
  (await openLake(config, { create: true })).close();
  return { metadata: env.FEATHERMAN_METADATA, dataPath: config.dataPath };
}
