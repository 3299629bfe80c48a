// The query path both fronts share, the HTTP API (lib/server/query.ts) and the Postgres wire
// protocol (lib/pgwire): who is asking (static tokens or a TokenReview), whether they may touch the
// query's tables (SubjectAccessReviews, lib/auth/authorize.ts), the pool, the router, the query log
// line and the metrics. Either front gets the same answers, refusals and figures.
import {
  Authenticator,
  loadStaticTokens,
  parseStaticTokens,
  principalKey,
  type Principal,
  type TokenReviewer,
} from '../auth/authenticate.js';
import { Authorizer, type AccessReviewer, type Decision, type TableObjects } from '../auth/authorize.js';
import { AnswerCounter, principalForLog, stdoutQueryLog, tablesForLog, type QueryLogger, type QueryLogLine } from '../auth/query-log.js';
import type { Grant, QueryTables } from '../auth/tables.js';
import { RouterError, type PoolSettings, type QueryTrace, type RoutedResponse, type Router } from './router.js';

/** Tokens from FEATHERMAN_API_TOKENS (comma- or newline-separated, e.g. from a secretKeyRef) or a mounted file. */
export function loadTokens(env: NodeJS.ProcessEnv): string[] {
  return loadStaticTokens(env).map((t) => t.token);
}

/** The SQL may be up to 1,000,000 characters; the JSON around it fits in the rest. */
export const QUERY_BODY_LIMIT = 1024 * 1024;

/** The cluster's say on who may query what (TokenReview, SubjectAccessReview, the DuckLakeTables). */
export interface KubernetesAuth {
  tokenReviewer: TokenReviewer;
  accessReviewer: AccessReviewer;
  tableObjects: TableObjects;
  /** Audiences a token must be issued for (default: featherman; FEATHERMAN_TOKEN_AUDIENCES). */
  audiences?: string[];
  tokenCacheMs?: number;
  decisionCacheMs?: number;
}

export interface QueryPluginOptions {
  router?: Router;
  /** Static token entries (`token` or `token=user;group...`); FEATHERMAN_API_TOKENS when unset. */
  tokens?: string[];
  kubernetesAuth?: KubernetesAuth;
  /** Where query log lines go (default: stdout). */
  queryLog?: QueryLogger;
  /** Put the SQL text in the query log (FEATHERMAN_LOG_SQL=true). */
  logSql?: boolean;
}

/** What a query needs on any front (HTTP, the Postgres wire): who asks, who decides, where it is logged. */
export interface QueryCore {
  router?: Router;
  authenticator: Authenticator;
  authorizer: Authorizer;
  log: QueryLogger;
  logSql: boolean;
}

export function queryCore(opts: QueryPluginOptions): QueryCore {
  const statics = opts.tokens ? parseStaticTokens(opts.tokens.join('\n')) : loadStaticTokens(process.env);
  const k8s = opts.kubernetesAuth;
  return {
    router: opts.router,
    authenticator: new Authenticator({
      staticTokens: statics,
      ...(k8s ? { reviewer: k8s.tokenReviewer, audiences: k8s.audiences, cacheMs: k8s.tokenCacheMs } : {}),
    }),
    authorizer: new Authorizer(k8s ? { reviewer: k8s.accessReviewer, tables: k8s.tableObjects, cacheMs: k8s.decisionCacheMs } : {}),
    log: opts.queryLog ?? stdoutQueryLog,
    logSql: opts.logSql ?? process.env.FEATHERMAN_LOG_SQL === 'true',
  };
}

export interface QueryAsk {
  catalog: string;
  pool?: string;
  namespace?: string;
  sql: string;
  format: 'json' | 'ndjson' | 'csv';
  timeoutMs?: number;
}

/** A routed query whose answer is on its way; `counted` wraps its body so the log line gets rows and bytes. */
export interface RoutedQuery {
  routed: RoutedResponse;
  pool: PoolSettings;
  counted(): AnswerCounter;
  /** The answer as one buffer, logged now, when the router read it whole; else undefined (use `counted`). */
  whole(): Buffer | undefined;
}

/**
 * One query through the router, as every front runs it: pool resolved, the tables the worker plans
 * authorised per principal, one query log line when the answer ends (or the query fails: then
 * logged here and the RouterError thrown). `onPool` learns the pool before the query runs;
 * `onLogged` runs after the log line.
 */
export async function routeQuery(
  core: QueryCore,
  principal: Principal,
  id: string,
  ask: QueryAsk,
  signal: AbortSignal,
  hooks: { onPool?: (pool: PoolSettings) => void; onLogged?: () => void } = {},
): Promise<RoutedQuery> {
  const { router, authorizer } = core;
  if (!router) throw new RouterError(503, 'this service has no query router (start it with --embedded, or in a cluster)');
  const started = performance.now();
  const trace: QueryTrace = {};
  let pool: PoolSettings | undefined;
  const write = (outcome: QueryLogLine['outcome'], status: number, counter?: AnswerCounter) => {
    core.log({
      time: new Date().toISOString(),
      msg: 'query',
      id,
      principal: principalForLog(principal),
      catalog: ask.catalog,
      ...(pool ? { namespace: pool.namespace, pool: pool.pool } : {}),
      tables: tablesForLog(trace.tables),
      ...(trace.tables ? { kind: trace.tables.kind } : {}),
      ...(counter?.rows !== undefined && status === 200 ? { rows: counter.rows } : {}),
      bytes: counter?.bytes ?? 0,
      ...(trace.queueWaitMs !== undefined ? { queueWaitMs: Math.round(trace.queueWaitMs * 10) / 10 } : {}),
      durationMs: Math.round((performance.now() - started) * 10) / 10,
      outcome,
      status,
      ...(trace.worker ? { worker: trace.worker } : {}),
      ...(core.logSql ? { sql: ask.sql } : {}),
    });
    hooks.onLogged?.();
  };
  const refusal = (d: Decision): Grant | undefined => {
    if (d.allowed) return d.grant;
    throw new RouterError(403, d.message, {}, { table: d.table, verb: d.verb });
  };
  try {
    pool = await router.resolve(ask.catalog, ask.pool, ask.namespace);
    hooks.onPool?.(pool);
    const where = { namespace: pool.namespace, catalog: pool.catalog };
    const routed = await router.query(pool, {
      sql: ask.sql,
      format: ask.format,
      timeoutMs: ask.timeoutMs,
      signal,
      principal: principalKey(principal),
      trace,
      // Only a principal RBAC decides for costs the worker's plan round trip before its query;
      // an all-access one's tables still reach the log, from the worker's answer.
      ...(authorizer.decides(principal)
        ? { authorize: async (tables: QueryTables) => refusal(await authorizer.authorize(principal, where, tables)) }
        : {}),
      authorizeCold: async (sql) => {
        const { selectTables } = await import('../auth/parse.js');
        const named = await selectTables(sql);
        if (!named) return refusal(await authorizer.authorizeCatalog(principal, where));
        trace.tables = { kind: 'select', read: named.read, write: [], catalog: named.catalog };
        return refusal(await authorizer.authorize(principal, where, trace.tables));
      },
    });
    // The cold path says 499 itself when the query was stopped for the caller.
    if (routed.status === 499) {
      routed.body.resume();
      throw new RouterError(499, 'the client went away');
    }
    const resolved = pool;
    return {
      routed,
      pool: resolved,
      counted: () => {
        const counter = new AnswerCounter(ask.format);
        let logged = false;
        const done = (outcome: QueryLogLine['outcome']) => {
          if (!logged) {
            logged = true;
            write(outcome, routed.status, counter);
          }
        };
        counter.once('end', () =>
          done(routed.status < 400 ? 'ok' : routed.status === 403 ? 'forbidden' : routed.status === 504 ? 'timeout' : 'error'),
        );
        counter.once('close', () => done(signal.aborted ? 'cancelled' : 'failed'));
        routed.body.once('error', (err) => counter.destroy(err));
        return routed.body.pipe(counter);
      },
      whole: () => {
        if (!routed.whole) return undefined;
        const counter = new AnswerCounter(ask.format);
        counter.count(routed.whole);
        write(
          routed.status < 400 ? 'ok' : routed.status === 403 ? 'forbidden' : routed.status === 504 ? 'timeout' : 'error',
          routed.status,
          counter,
        );
        return routed.whole;
      },
    };
  } catch (err) {
    if (!(err instanceof RouterError)) {
      write('failed', 500);
      throw err;
    }
    write(
      err.status === 499
        ? 'cancelled'
        : err.status === 403
          ? 'forbidden'
          : err.status === 429
            ? 'rejected'
            : err.status === 503
              ? 'timeout'
              : 'error',
      err.status,
    );
    throw err;
  }
}
