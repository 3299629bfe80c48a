// `featherman table apply -f FILE [--dry-run] [--allow-drop]` and `featherman table drop NAME [--schema S]`
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { formatColumnType as formatType } from '../../api/column-type.js';
import { identifierProblem } from '../../api/names.js';
import type { TableSpec } from '../../api/table.js';
import { BadInputError } from '../../errors.js';
import { loadConfig } from '../config.js';
import { classify, isStatementError } from '../failures.js';
import { inspectTable, listTables } from '../inspect.js';
import { planTable } from '../plan.js';
import { openLake, type LakeSession } from '../session.js';
import { tableRef } from '../sql.js';
import { parse } from './args.js';
import { SPEC_DEFAULTS } from '../../api/defaults.js';

/** A DuckLakeTable manifest, or its bare spec. */
export function tableSpecFromDocument(doc: unknown, source: string): TableSpec {
  if (!doc || typeof doc !== 'object') throw new BadInputError(`${source}: expected a DuckLakeTable manifest or a table spec`);
  const d = doc as Record<string, unknown>;
  if ('kind' in d) {
    if (d.kind !== 'DuckLakeTable') throw new BadInputError(`${source}: kind must be DuckLakeTable, got ${JSON.stringify(d.kind)}`);
    if (!d.spec || typeof d.spec !== 'object') throw new BadInputError(`${source}: spec: required`);
    return d.spec as TableSpec;
  }
  return d as unknown as TableSpec;
}

async function readSpec(file: string): Promise<TableSpec> {
  let text: string;
  try {
    text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
  } catch (err) {
    throw new BadInputError(`-f: cannot read ${file}: ${(err as Error).message}`);
  }
  return parseSpecText(text, file);
}

function parseSpecText(text: string, source: string): TableSpec {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new BadInputError(`${source}: not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`);
  }
  return tableSpecFromDocument(doc, source);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The table's rows, files and bytes, for its status. Only this table's: a lake of thousands of
 * tables must not count them all on every apply (the catalog's figures come from its inspection).
 */
async function tableStats(session: LakeSession, schema: string, name: string) {
  const info = (await listTables(session)).find(
    (t) => t.schema.toLowerCase() === schema.toLowerCase() && t.name.toLowerCase() === name.toLowerCase(),
  );
  const rows = info ? Number(await session.value(`SELECT count(*) FROM ${tableRef(info.schema, info.name)}`)) : 0;
  return { rows, files: info?.files ?? 0, bytes: info?.bytes ?? 0 };
}

export async function tableCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values, positionals } = parse(
    argv,
    {
      file: { type: 'string', short: 'f' },
      'dry-run': { type: 'boolean', default: false },
      'allow-drop': { type: 'boolean', default: false },
      schema: { type: 'string', default: SPEC_DEFAULTS.table.schema },
    },
    true,
  );
  const [action, ...rest] = positionals;

  if (action === 'apply') {
    if (rest.length) throw new BadInputError(`table apply: unexpected argument ${JSON.stringify(rest[0])}`);
    // Jobs pass the spec in FEATHERMAN_TABLE_SPEC, so they need no ConfigMap or volume.
    if (!values.file && !env.FEATHERMAN_TABLE_SPEC) {
      throw new BadInputError(
        'table apply: -f FILE (a DuckLakeTable manifest or its spec; - for stdin) or FEATHERMAN_TABLE_SPEC is required',
      );
    }
    const spec = values.file ? await readSpec(values.file) : parseSpecText(env.FEATHERMAN_TABLE_SPEC!, 'FEATHERMAN_TABLE_SPEC');
    planTable(spec, undefined, { allowDrop: false }); // validates the spec before anything opens the lake
    const config = loadConfig(env);
    const session = await openLake(config, { readOnly: values['dry-run'] });
    try {
      const schema = spec.schema ?? SPEC_DEFAULTS.table.schema;
      const current = await inspectTable(session, schema, spec.name);
      const plan = planTable(spec, current, { allowDrop: values['allow-drop'] });
      if (!values['dry-run']) {
        try {
          for (const [i, statements] of plan.transactions.entries()) {
            try {
              await session.transaction(statements);
            } catch (err) {
              // A table created by the first transaction is removed again, so a failed apply leaves nothing behind.
              if (i > 0 && plan.action === 'create')
                await session.run(`DROP TABLE IF EXISTS ${tableRef(schema, spec.name)}`).catch(() => undefined);
              throw err;
            }
          }
        } catch (err) {
          const e = classify(err, `applying table ${schema}.${spec.name}`);
          // DuckLake refuses some changes only at run time; the transaction rolled back, so nothing changed.
          if (isStatementError(e)) throw new BadInputError(`${e.message} (nothing was changed)`);
          throw e;
        }
      }
      const applied = values['dry-run'] ? current : await inspectTable(session, schema, spec.name);
      return {
        command: 'table apply',
        table: spec.name,
        schema,
        action: plan.action,
        dryRun: values['dry-run'],
        ddl: plan.transactions.flat(),
        snapshotId: await session.currentSnapshot(),
        columns: applied?.columns.map((c) => ({ name: c.name, type: formatType(c.type), nullable: c.nullable })) ?? [],
        ...(await tableStats(session, schema, spec.name)),
      };
    } finally {
      session.close();
    }
  }

  if (action === 'drop') {
    const [name, ...extra] = rest;
    if (!name) throw new BadInputError('table drop: NAME is required');
    if (extra.length) throw new BadInputError(`table drop: unexpected argument ${JSON.stringify(extra[0])}`);
    for (const [field, v] of [
      ['name', name],
      ['--schema', values.schema],
    ] as const) {
      const p = identifierProblem(v);
      if (p) throw new BadInputError(`${field}: ${JSON.stringify(v)} ${p}`);
    }
    const session = await openLake(loadConfig(env));
    try {
      const existed = Boolean(await inspectTable(session, values.schema, name));
      if (existed) await session.run(`DROP TABLE ${tableRef(values.schema, name)}`);
      return { command: 'table drop', table: name, schema: values.schema, dropped: existed, snapshotId: await session.currentSnapshot() };
    } finally {
      session.close();
    }
  }
  throw new BadInputError('table: expected `apply -f FILE` or `drop NAME`');
}
