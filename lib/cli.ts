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
      if (env.FEATHERMAN_RESULT_FILE) writeFileSync(env.FEATHERMAN_RESULT_FILE, JSON.stringify({ ok: true, ...rest }) + '\n');
    }
    return 0;
  } catch (err) {
    const code = exitCodeOf(err);
    const message = redact(err instanceof Error ? err.message : String(err), env);
    const line = JSON.stringify({ ok: false, command: name, exitCode: code, error: message });
    console.error(line);
    if (env.FEATHERMAN_RESULT_FILE) {
      try { writeFileSync(env.FEATHERMAN_RESULT_FILE, line + '\n'); } catch { /* the exit code still tells */ }
    }
    return code;
  }
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/featherman')) {
  quietSdkWarnings();
  // A failed command exits at once: whatever it left pending (a worker's listening socket, a
  // lock wait still retrying) must not keep the process, or its pod, alive.
  main(process.argv.slice(2)).then((code) => { if (code !== 0) process.exit(code); process.exitCode = code; });
}
