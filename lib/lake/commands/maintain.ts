// `featherman maintain [--expire-older-than D] [--cleanup-older-than D] [--delete-orphans --orphans-older-than D] [--no-merge]`
// Order matters: merge small files, expire old snapshots, then delete the files that are no
// longer referenced. Orphan deletion (files DuckLake never recorded) only when asked, since it
// LISTs the whole data path and can race in-flight writers.
import { parseDuration } from '../../api/duration.js';
import { BadInputError } from '../../errors.js';
import { loadConfig } from '../config.js';
import { listTables } from '../inspect.js';
import { openLake } from '../session.js';
import { LAKE, literal } from '../sql.js';
import { parse } from './args.js';

function interval(flag: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const seconds = parseDuration(value);
  if (seconds === undefined) throw new BadInputError(`${flag}: ${JSON.stringify(value)} is not a duration like 30m, 12h or 7d`);
  return `now() - INTERVAL ${literal(`${seconds} seconds`)}`;
}

export async function maintainCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values } = parse(argv, {
    'expire-older-than': { type: 'string' },
    'cleanup-older-than': { type: 'string', default: '1h' },
    'delete-orphans': { type: 'boolean', default: false },
    'orphans-older-than': { type: 'string', default: '7d' },
    'no-merge': { type: 'boolean', default: false },
  });
  const expire = interval('--expire-older-than', values['expire-older-than']);
  const cleanup = interval('--cleanup-older-than', values['cleanup-older-than'])!;
  const orphans = interval('--orphans-older-than', values['orphans-older-than'])!;
  const session = await openLake(loadConfig(env));
  try {
    const before = await listTables(session);
    const count = async (sql: string) => (await session.rows(sql)).length;
    if (!values['no-merge']) await session.run(`CALL ducklake_merge_adjacent_files(${literal(LAKE)})`);
    const expired = expire ? await count(`SELECT * FROM ducklake_expire_snapshots(${literal(LAKE)}, older_than => ${expire})`) : 0;
    const cleaned = await count(`SELECT * FROM ducklake_cleanup_old_files(${literal(LAKE)}, older_than => ${cleanup})`);
    const orphaned = values['delete-orphans'] ? await count(`SELECT * FROM ducklake_delete_orphaned_files(${literal(LAKE)}, older_than => ${orphans})`) : 0;
    const after = await listTables(session);
    return {
      command: 'maintain',
      filesBefore: before.reduce((a, t) => a + t.files, 0),
      filesAfter: after.reduce((a, t) => a + t.files, 0),
      snapshotsExpired: expired,
      filesDeleted: cleaned,
      orphansDeleted: orphaned,
      snapshotId: await session.currentSnapshot(),
    };
  } finally {
    session.close();
  }
}
