// What a query touches and what it was granted, shared by the router (which authorises), the warm
// worker and the cold `featherman query --sandbox` (which check the bound plan against the grant
// before running anything). Pure: no DuckDB, no Kubernetes.
import type { QueryTables, TableRef } from '../lake/sandbox.js';
import { SandboxError } from '../lake/sandbox.js';

export type { QueryTables, TableRef };

/** The tables a principal was allowed, per verb; `{schema: '*', table: '*'}` stands for every table of the catalog. */
export interface Grant {
  read: TableRef[];
  write: TableRef[];
}

/** Every table of the catalog (the catalog's own grant). */
export const ALL_TABLES: TableRef[] = [{ schema: '*', table: '*' }];
export const isAll = (list: TableRef[]) => list.some((g) => g.schema === '*' && g.table === '*');

export const showTable = (t: TableRef) => (t.schema === 'main' ? t.table : `${t.schema}.${t.table}`);

const covers = (list: TableRef[], t: TableRef) => isAll(list) || list.some((g) => g.schema === t.schema && g.table === t.table);

/**
 * The first table the bound plan touches outside the grant, with the verb it needed. The router
 * authorised what the worker or the parse tree reported; this check, just before execution, is
 * what guarantees no row leaves (and no write lands) for a table that was not authorised.
 */
export function outsideGrant(tables: QueryTables, grant: Grant): { table: string; verb: 'get' | 'update' } | undefined {
  if (tables.catalog && !isAll(grant.read)) return { table: '*', verb: 'get' };
  for (const t of tables.read) if (!covers(grant.read, t)) return { table: showTable(t), verb: 'get' };
  for (const t of tables.write) if (!covers(grant.write, t)) return { table: showTable(t), verb: 'update' };
  return undefined;
}

export function checkGrant(tables: QueryTables, grant: Grant | undefined): void {
  if (!grant) return;
  const out = outsideGrant(tables, grant);
  if (out)
    throw new SandboxError(
      `sql: ${out.table === '*' ? "the catalog's metadata" : `table ${out.table}`} was not authorised for this query (${out.verb})`,
    );
}

const ref = {
  type: 'object',
  required: ['schema', 'table'],
  additionalProperties: false,
  properties: { schema: { type: 'string', maxLength: 255 }, table: { type: 'string', maxLength: 255 } },
} as const;
// One type per field: Fastify's type coercion would turn an array into a string inside an anyOf.
const refs = { type: 'array', maxItems: 1000, items: ref } as const;
/** JSON schema of a Grant, for the worker's request body. */
export const GRANT_SCHEMA = {
  type: 'object',
  required: ['read', 'write'],
  additionalProperties: false,
  properties: { read: refs, write: refs },
} as const;

/** A Grant from FEATHERMAN_QUERY_GRANT (the cold path's process), or undefined when unset. */
export function grantFromEnv(env: NodeJS.ProcessEnv): Grant | undefined {
  const text = env.FEATHERMAN_QUERY_GRANT;
  delete env.FEATHERMAN_QUERY_GRANT;
  if (!text) return undefined;
  const g = JSON.parse(text) as Grant;
  const ok = (l: unknown) => Array.isArray(l) && l.every((t) => typeof t?.schema === 'string' && typeof t?.table === 'string');
  if (!ok(g.read) || !ok(g.write)) throw new Error('FEATHERMAN_QUERY_GRANT: not a grant');
  return g;
}

type Json = Record<string, unknown>;
const lower = (v: unknown) => (typeof v === 'string' ? v.toLowerCase() : '');

/**
 * The lake tables a SELECT names, from DuckDB's parse tree (json_serialize_sql), for the cold
 * path, where no worker has the lake bound yet: names of the query's own CTEs are left out. The
 * process checks its bound plan against what was granted, so a view hiding another table, or a
 * name that resolved elsewhere, is refused there rather than trusted here.
 */
export function tablesFromParseTree(ast: unknown, lake: string): TableRef[] {
  const ctes = new Set<string>();
  const bases: Json[] = [];
  const stack: unknown[] = [ast];
  while (stack.length) {
    const n = stack.pop();
    // Pushed in reverse, so tables come out in the order the SQL names them.
    if (Array.isArray(n)) {
      for (let i = n.length - 1; i >= 0; i--) stack.push(n[i]);
      continue;
    }
    if (!n || typeof n !== 'object') continue;
    const o = n as Json;
    const map = (o.cte_map as { map?: { key?: unknown }[] } | undefined)?.map;
    if (Array.isArray(map)) for (const e of map) ctes.add(lower(e.key));
    if (o.type === 'BASE_TABLE' && 'table_name' in o) bases.push(o);
    const values = Object.values(o);
    for (let i = values.length - 1; i >= 0; i--) if (values[i] && typeof values[i] === 'object') stack.push(values[i]);
  }
  const out: TableRef[] = [];
  for (const b of bases) {
    let schema = lower(b.schema_name);
    const table = lower(b.table_name);
    if (!schema && ctes.has(table)) continue;
    // `lake.users` parses as schema "lake": DuckDB resolves it as the catalog.
    if (schema === lake && !lower(b.catalog_name)) schema = '';
    const r = { schema: schema || 'main', table };
    if (!out.some((t) => t.schema === r.schema && t.table === r.table)) out.push(r);
  }
  return out;
}
