// May this principal read or write these tables? The RBAC vocabulary (metacontroller/query-roles.yaml):
//   read a table    get    on ducklaketables/data,   resourceName = the DuckLakeTable object's name
//   write a table   update on ducklaketables/data,   same name
//   every table of a catalog (including tables made by SQL, which have no object, and the
//   catalog's metadata: snapshots(), table_info())
//                   get / update on ducklakecatalogs/data, resourceName = the catalog's name
// in the pool's namespace. Each is one SubjectAccessReview, its answer reused for a few seconds.
import { AuthorizationV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { SPEC_DEFAULTS } from '../api/defaults.js';
import type { TableSpec } from '../api/types.js';
import { API_VERSION, GROUP } from '../k8s/labels.js';
import { metrics } from '../metrics.js';
import { AuthUnavailable, principalKey, type Principal } from './authenticate.js';
import { ALL_TABLES, isAll, showTable, type QueryTables, type TableRef } from './tables.js';

export type Verb = 'get' | 'update';
export type DataResource = 'ducklaketables' | 'ducklakecatalogs';

export interface AccessQuestion {
  namespace: string;
  verb: Verb;
  resource: DataResource;
  name: string;
}

/** One SubjectAccessReview: may `principal` do `verb` on `resource`/data named `name`? */
export type AccessReviewer = (principal: Principal, q: AccessQuestion) => Promise<boolean>;

/** The DuckLakeTable objects of a namespace, as the tables they stand for. */
export interface TableObject {
  name: string;
  catalog: string;
  schema: string;
  table: string;
}
export type TableObjects = (namespace: string) => Promise<TableObject[]>;

export type Decision =
  { allowed: true; grant?: { read: TableRef[]; write: TableRef[] } } | { allowed: false; table: string; verb: Verb; message: string };

const VERSION = API_VERSION.split('/')[1]!;

export function kubernetesAccessReviewer(kc: KubeConfig): AccessReviewer {
  const api = kc.makeApiClient(AuthorizationV1Api);
  return async (p, q) => {
    let review;
    try {
      review = await api.createSubjectAccessReview({
        body: {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SubjectAccessReview',
          spec: {
            user: p.user,
            groups: p.groups,
            ...(p.uid ? { uid: p.uid } : {}),
            ...(p.extra ? { extra: p.extra } : {}),
            resourceAttributes: {
              group: GROUP,
              resource: q.resource,
              subresource: 'data',
              verb: q.verb,
              name: q.name,
              namespace: q.namespace,
            },
          },
        },
      });
    } catch (err) {
      metrics.authChecks.inc({ check: 'subjectaccessreview', result: 'error' });
      throw new AuthUnavailable(`the API server could not review the access (${(err as { code?: number }).code ?? 'unreachable'})`);
    }
    const allowed = review.status?.allowed === true && review.status?.denied !== true;
    metrics.authChecks.inc({ check: 'subjectaccessreview', result: allowed ? 'allowed' : 'denied' });
    return allowed;
  };
}

/** The fields read from a listed DuckLakeTable, each checked before use (the list is not validated here). */
type ListedTableSpec = { [K in keyof Pick<TableSpec, 'catalogRef' | 'name' | 'schema'>]?: unknown };

/** DuckLakeTable objects from the API server, read again at most every `ms` per namespace. */
export function kubernetesTableObjects(kc: KubeConfig, ms = 2000): TableObjects {
  const api = kc.makeApiClient(CustomObjectsApi);
  const cache = new Map<string, { at: number; value: Promise<TableObject[]> }>();
  return (namespace) => {
    const hit = cache.get(namespace);
    if (hit && Date.now() - hit.at < ms) return hit.value;
    const value = (async () => {
      try {
        const list = (await api.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: 'ducklaketables' })) as {
          items: { metadata: { name: string }; spec?: ListedTableSpec }[];
        };
        return list.items
          .filter((o) => typeof o.spec?.name === 'string' && typeof o.spec?.catalogRef === 'string')
          .map((o) => ({
            name: o.metadata.name,
            catalog: o.spec!.catalogRef as string,
            schema: (typeof o.spec!.schema === 'string' ? o.spec!.schema : SPEC_DEFAULTS.table.schema).toLowerCase(),
            table: (o.spec!.name as string).toLowerCase(),
          }));
      } catch (err) {
        throw new AuthUnavailable(`the API server could not list the DuckLakeTables (${(err as { code?: number }).code ?? 'unreachable'})`);
      }
    })();
    cache.set(namespace, { at: Date.now(), value });
    value.catch(() => cache.delete(namespace));
    return value;
  };
}

export interface AuthorizerOptions {
  reviewer?: AccessReviewer;
  tables?: TableObjects;
  /** How long a decision is reused (default 5 s). */
  cacheMs?: number;
  cacheSize?: number;
}

const VERB_WORD: Record<Verb, string> = { get: 'read', update: 'write' };

export class Authorizer {
  private readonly cache = new Map<string, { at: number; allowed: Promise<boolean> }>();
  private readonly cacheMs: number;
  private readonly cacheSize: number;

  constructor(private readonly opts: AuthorizerOptions) {
    this.cacheMs = opts.cacheMs ?? 5000;
    this.cacheSize = opts.cacheSize ?? 10_000;
  }

  /** Whether decisions are made at all: with a cluster, for principals that are not all-access. */
  decides(p: Principal): boolean {
    return this.opts.reviewer !== undefined && !p.allAccess;
  }

  private ask(p: Principal, q: AccessQuestion): Promise<boolean> {
    const key = JSON.stringify([principalKey(p), [...p.groups].sort(), p.extra ?? {}, q.namespace, q.verb, q.resource, q.name]);
    const now = Date.now();
    const hit = this.cache.get(key);
    if (hit && now - hit.at < this.cacheMs) {
      metrics.authCache.inc({ check: 'subjectaccessreview', result: 'hit' });
      return hit.allowed;
    }
    metrics.authCache.inc({ check: 'subjectaccessreview', result: 'miss' });
    if (hit) this.cache.delete(key);
    while (this.cache.size >= this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
    const allowed = this.opts.reviewer!(p, q);
    this.cache.set(key, { at: now, allowed });
    allowed.catch(() => this.cache.delete(key));
    return allowed;
  }

  /**
   * Every table `tables` reads and writes (writes first, in the order the plan names them),
   * each allowed by its DuckLakeTable object or by the catalog; the first refused names the
   * table and the verb. Allowed, the grant lists what was allowed, for the worker's own check.
   */
  async authorize(
    p: Principal,
    pool: { namespace: string; catalog: string },
    tables: Pick<QueryTables, 'read' | 'write' | 'catalog'>,
  ): Promise<Decision> {
    if (!this.decides(p)) return { allowed: true };
    const objects = (await this.opts.tables?.(pool.namespace)) ?? [];
    const catalogAllows = (verb: Verb) =>
      this.ask(p, { namespace: pool.namespace, verb, resource: 'ducklakecatalogs', name: pool.catalog });
    const grant: { read: TableRef[]; write: TableRef[] } = { read: [], write: [] };
    const refuse = (table: string, verb: Verb, object?: string): Decision => ({
      allowed: false,
      table,
      verb,
      message:
        `${p.user} may not ${VERB_WORD[verb]} ${table === '*' ? 'the metadata' : `table ${table}`} of catalog ${pool.catalog}: ` +
        `that needs ${verb} on ${object ? `ducklaketables/data ${JSON.stringify(object)} or ` : ''}` +
        `ducklakecatalogs/data ${JSON.stringify(pool.catalog)} in namespace ${pool.namespace}`,
    });
    if (tables.catalog) {
      if (!(await catalogAllows('get'))) return refuse('*', 'get');
      grant.read = ALL_TABLES;
    }
    const steps: [Verb, TableRef][] = [
      ...tables.write.map((t) => ['update', t] as [Verb, TableRef]),
      ...tables.read.map((t) => ['get', t] as [Verb, TableRef]),
    ];
    for (const [verb, t] of steps) {
      const list = verb === 'get' ? grant.read : grant.write;
      if (isAll(list)) continue;
      const matches = objects
        .filter((o) => o.catalog === pool.catalog && o.schema === t.schema && o.table === t.table)
        .map((o) => o.name)
        .sort();
      // A table literally named "*"."*" would read as the wildcard in a grant: only the catalog's grant covers it.
      let ok = false;
      if (isAll([t])) matches.length = 0;
      for (const name of matches)
        if (!ok && (await this.ask(p, { namespace: pool.namespace, verb, resource: 'ducklaketables', name }))) ok = true;
      if (ok) {
        list.push(t);
        continue;
      }
      if (await catalogAllows(verb)) {
        if (verb === 'get') grant.read = ALL_TABLES;
        else grant.write = ALL_TABLES;
        continue;
      }
      return refuse(showTable(t), verb, matches[0]);
    }
    return { allowed: true, grant };
  }

  /**
   * Every table of the catalog, for both verbs: what a statement other than SELECT needs on the
   * cold path, where its tables are known only once the process has bound it.
   */
  async authorizeCatalog(p: Principal, pool: { namespace: string; catalog: string }): Promise<Decision> {
    if (!this.decides(p)) return { allowed: true };
    for (const verb of ['update', 'get'] as Verb[]) {
      if (!(await this.ask(p, { namespace: pool.namespace, verb, resource: 'ducklakecatalogs', name: pool.catalog }))) {
        return {
          allowed: false,
          table: '*',
          verb,
          message:
            `${p.user} may not ${VERB_WORD[verb]} catalog ${pool.catalog} as a whole: with no ready worker (the cold path) ` +
            `a statement other than SELECT needs ${verb} on ducklakecatalogs/data ${JSON.stringify(pool.catalog)} ` +
            `in namespace ${pool.namespace}, since its tables are known only once bound; retry when the pool has a ready worker`,
        };
      }
    }
    return { allowed: true, grant: { read: ALL_TABLES, write: ALL_TABLES } };
  }
}
