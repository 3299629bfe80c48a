#!/usr/bin/env node
// The one `featherman` binary: the hooks/admission service, the warm worker, and the runner
// subcommands that Jobs execute. Each subcommand lives in its own module and is loaded lazily,
// so a cold `featherman query` does not pay for Fastify and a `serve` does not pay for DuckDB.
import { writeFileSync } from 'node:fs';
import { BadInputError, exitCodeOf } from './errors.js';
import { redact } from './redact.js';
import { markMainStart } from './timing.js';
import { quietSdkWarnings } from './warnings.js';

/** A subcommand: parses its own argv, returns the JSON summary (or nothing for long-running ones). */
export type Command = (argv: string[], env: NodeJS.ProcessEnv) => Promise<Record<string, unknown> | void>;

const commands: Record<string, () => Promise<Command>> = {
  catalog: async () => (await import('./lake/commands/catalog.js')).catalogCommand,
  table: async () => (await import('./lake/commands/table.js')).tableCommand,
  backup: async () => (await import('./lake/commands/backup.js')).backupCommand,
  restore: async () => (await import('./lake/commands/backup.js')).restoreCommand,
  maintain: async () => (await import('./lake/commands/maintain.js')).maintainCommand,
  query: async () => (await import('./lake/commands/query.js')).queryCommand,
  worker: async () => (await import('./pool/worker.js')).workerCommand,
  serve: async () => (await import('./server/serve.js')).serveCommand,
  certs: async () => (await import('./api/certs.js')).certsCommand,
  crds: async () => (await import('./api/crds.js')).crdsCommand,
};

const USAGE = `usage: featherman <command> [options]
commands:
  catalog init|info          create/attach the lake; show version, snapshot and tables
  table apply -f FILE        create or evolve a table from a DuckLakeTable manifest or its spec
  table drop NAME            drop a table
  backup [list|verify|delete] back up the catalog (--include-data: its files too); list, verify or delete backups
  restore --backup NAME      rebuild the catalog from a verified backup (or "latest")
  maintain                   flush, expire, merge, rewrite, clean up; never what a retained backup needs
  query --sql SQL            run SQL against the lake (read-only unless --write)
  serve                      the Metacontroller hooks and admission webhooks service
  worker                     a warm-pool worker: the lake attached, serving POST /query
  certs                      write a CA and serving certificate for the admission webhooks
  crds                       regenerate crds/*.yaml and metacontroller/webhooks.yaml (--check, --stdout)
configuration comes from FEATHERMAN_* and AWS_* environment variables; see README.md`;

/** Kubernetes keeps at most 4,096 bytes of a termination message; a cut line would not parse. */
export const RESULT_LIMIT = 4000;

/**
 * The summary as one JSON line that fits the termination message: whichever is largest goes
 * first, a field (named in `omitted`) or half of the lake's per-table figures. The outcome, the
 * snapshot and the lake's totals always stay.
 */
export function resultLine(summary: Record<string, unknown>, limit = RESULT_LIMIT): string {
  const out = { ...summary };
  if (out.lake && typeof out.lake === 'object') out.lake = { ...out.lake };
  const omitted: string[] = [];
  const line = () => JSON.stringify(omitted.length ? { ...out, omitted } : out);
  const keep = new Set(['ok', 'command', 'exitCode', 'error', 'lake', 'snapshotId']);
  const lake = out.lake as { tables?: unknown[]; tablesComplete?: boolean } | undefined;
  const size = (v: unknown) => JSON.stringify(v)?.length ?? 0;
  while (Buffer.byteLength(line()) > limit) {
    const field = Object.keys(out)
      .filter((k) => !keep.has(k))
      .sort((a, b) => size(out[b]) - size(out[a]))[0];
    if (lake?.tables?.length && size(lake.tables) >= size(field === undefined ? undefined : out[field])) {
      lake.tables = lake.tables.slice(0, Math.floor(lake.tables.length / 2));
      lake.tablesComplete = false;
    } else if (field !== undefined) {
      delete out[field];
      omitted.push(field);
    } else break;
  }
  return line();
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  markMainStart();
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(USAGE);
    return name ? 0 : 2;
  }
  try {
    const load = commands[name];
    if (!load) throw new BadInputError(`unknown command ${JSON.stringify(name)}; run featherman --help`);
    const summary = await (await load())(rest, env);
    if (summary) {
      // `query` may print rows itself; then the summary goes to stderr. Rows never go into the
      // result file, which Kubernetes caps at 4 KiB as a termination message.
      const { outputPrinted, rows, ...rest } = summary;
      const line = JSON.stringify({ ok: true, ...rest, ...(rows ? { rows } : {}) });
      if (outputPrinted) console.error(line);
      else console.log(line);
      if (env.FEATHERMAN_RESULT_FILE) writeFileSync(env.FEATHERMAN_RESULT_FILE, resultLine({ ok: true, ...rest }) + '\n');
    }
    return 0;
  } catch (err) {
    const code = exitCodeOf(err);
    const message = redact(err instanceof Error ? err.message : String(err), env);
    const line = JSON.stringify({ ok: false, command: name, exitCode: code, error: message });
    console.error(line);
    if (env.FEATHERMAN_RESULT_FILE) {
      try {
        writeFileSync(env.FEATHERMAN_RESULT_FILE, line + '\n');
      } catch {
        /* the exit code still tells */
      }
    }
    return code;
  }
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/featherman')) {
  quietSdkWarnings();
  // A failed command exits at once: whatever it left pending (a worker's listening socket, a
  // lock wait still retrying) must not keep the process, or its pod, alive.
  main(process.argv.slice(2)).then((code) => {
    if (code !== 0) process.exit(code);
    process.exitCode = code;
  });
}
