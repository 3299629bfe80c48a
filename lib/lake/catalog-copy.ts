// A consistent copy of a DuckDB catalog file, for processes that run user SQL (warm workers and
// the cold `featherman query --sandbox`): DuckDB lets one process write *or* many read a file,
// never both, so a reader that kept the live file open would lock out every table Job. The copy
// is one read transaction of a few ms (waiting politely for a writer's lock); data files are
// immutable in DuckLake, so the copy is a consistent snapshot of the lake.
import { DuckDBInstance } from '@duckdb/node-api';
import type { LakeConfig } from './config.js';
import { attachWithLockWait, LakeSession } from './session.js';
import { literal } from './sql.js';

export async function copyCatalog(config: LakeConfig, source: string, target: string): Promise<void> {
  const instance = await DuckDBInstance.create(':memory:', { autoinstall_known_extensions: 'false', autoload_known_extensions: 'false' });
  const connection = await instance.connect();
  const session = new LakeSession(config, instance, connection, { openMs: 0, extensionsMs: 0, attachMs: 0 });
  try {
    await attachWithLockWait(session, `ATTACH ${literal(source)} AS src (READ_ONLY)`, config.lockTimeoutMs);
    await session.run(`ATTACH ${literal(target)} AS dst`);
    await session.run('COPY FROM DATABASE src TO dst');
  } finally {
    session.close();
  }
}
