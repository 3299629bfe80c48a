// POST /v1/query {catalog, pool?, namespace?, sql, format, timeoutMs}: authenticated before the
// body is read (a static token, or a Kubernetes token through a TokenReview), every table the
// query reads or writes authorised (SubjectAccessReviews, lib/auth/authorize.ts), routed to a warm
// worker by lib/pool/router.ts. Every answer carries X-Featherman-Query-Id; DELETE
// /v1/queries/{id} (by the same principal) or the client going away cancels the query. One query
// log line per query (lib/auth/query-log.ts). GET /metrics: Prometheus text for the pools, the
// router and the hooks.
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { Authenticator, AuthUnavailable, loadStaticTokens, parseStaticTokens, principalKey, type Principal, type TokenReviewer } from '../auth/authenticate.js';
import { Authorizer, type AccessReviewer, type Decision, type TableObjects } from '../auth/authorize.js';
import { AnswerCounter, principalForLog, stdoutQueryLog, tablesForLog, type QueryLogger, type QueryLogLine } from '../auth/query-log.js';
import type { Grant, QueryTables } from '../auth/tables.js';
import { metrics, registry } from '../pool/metrics.js';
import { RouterError, type PoolSettings, type QueryTrace, type Router } from '../pool/router.js';

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

interface Running { owner: string; controller: AbortController; cancelled: boolean; catalog: string; since: string; pool?: string }

const ID_HEADER = 'x-featherman-query-id';
const QUERY_ID = /^[A-Za-z0-9._-]{1,64}$/;

export const queryPlugin: FastifyPluginAsync<QueryPluginOptions> = async (app, opts) => {
  const statics = opts.tokens ? parseStaticTokens(opts.tokens.join('\n')) : loadStaticTokens(process.env);
  const k8s = opts.kubernetesAuth;
  const authenticator = new Authenticator({ staticTokens: statics, ...(k8s ? { reviewer: k8s.tokenReviewer, audiences: k8s.audiences, cacheMs: k8s.tokenCacheMs } : {}) });
  const authorizer = new Authorizer(k8s ? { reviewer: k8s.accessReviewer, tables: k8s.tableObjects, cacheMs: k8s.decisionCacheMs } : {});
  const log = opts.queryLog ?? stdoutQueryLog;
  const logSql = opts.logSql ?? process.env.FEATHERMAN_LOG_SQL === 'true';
  const principals = new WeakMap<FastifyRequest, Principal>();
  const running = new Map<string, Running>();

  /** Authentication on the headers alone: an unauthenticated body is never read or parsed. */
  const authenticate = async (request: FastifyRequest, reply: FastifyReply) => {
    try {
      principals.set(request, await authenticator.authenticate(request.headers.authorization));
    } catch (err) {
      if (err instanceof AuthUnavailable) {
        request.log.warn({ reason: err.message }, 'authentication unavailable');
        return reply.code(503).header('retry-after', '1').send({ statusCode: 503, error: 'Service Unavailable', message: 'the API server could not check the token; try again' });
      }
      return reply.code(401).header('www-authenticate', 'Bearer').send({ statusCode: 401, error: 'Unauthorized', message: (err as Error).message });
    }
  };

  app.post<{ Body: { catalog: string; pool?: string; namespace?: string; sql: string; format?: 'json' | 'ndjson' | 'csv'; timeoutMs?: number } }>('/v1/query', {
    schema: {
      body: {
        type: 'object',
        required: ['catalog', 'sql'],
        additionalProperties: false,
        properties: {
          catalog: { type: 'string', minLength: 1, maxLength: 253 },
          pool: { type: 'string', minLength: 1, maxLength: 253 },
          namespace: { type: 'string', minLength: 1, maxLength: 63 },
          sql: { type: 'string', minLength: 1, maxLength: 1_000_000 },
          format: { type: 'string', enum: ['json', 'ndjson', 'csv'] },
          timeoutMs: { type: 'integer', minimum: 1, maximum: 3_600_000 },
        },
      },
    },
    bodyLimit: QUERY_BODY_LIMIT,
    onRequest: async (request, reply) => {
      // A client may name its query (to cancel it before any answer arrives); else it gets a UUID.
      const given = request.headers[ID_HEADER];
      if (given !== undefined && (typeof given !== 'string' || !QUERY_ID.test(given))) {
        return reply.code(400).send({ statusCode: 400, error: 'Bad Request', message: `${ID_HEADER}: must be 1 to 64 letters, digits, '.', '_' or '-'` });
      }
      reply.header(ID_HEADER, given ?? randomUUID());
      await authenticate(request, reply);
    },
  }, async (request, reply) => {
    const id = String(reply.getHeader(ID_HEADER));
    const principal = principals.get(request)!;
    const router = opts.router;
    if (!router) return reply.code(503).send({ statusCode: 503, error: 'Service Unavailable', message: 'this service has no query router (start it with --embedded, or in a cluster)' });
    const body = request.body;
    const format = body.format ?? 'json';
    const started = performance.now();
    const trace: QueryTrace = {};
    let pool: PoolSettings | undefined;
    if (running.has(id)) return reply.code(409).send({ statusCode: 409, error: 'Conflict', message: `${ID_HEADER}: a query with id ${JSON.stringify(id)} is already running` });
    const entry: Running = { owner: principalKey(principal), controller: new AbortController(), cancelled: false, catalog: body.catalog, since: new Date().toISOString() };
    running.set(id, entry);
    const write = (outcome: QueryLogLine['outcome'], status: number, counter?: AnswerCounter) => {
      running.delete(id);
      log({
        time: new Date().toISOString(), msg: 'query', id, principal: principalForLog(principal), catalog: body.catalog,
        ...(pool ? { namespace: pool.namespace, pool: pool.pool } : {}), tables: tablesForLog(trace.tables),
        ...(trace.tables ? { kind: trace.tables.kind } : {}),
        ...(counter?.rows !== undefined && status === 200 ? { rows: counter.rows } : {}), bytes: counter?.bytes ?? 0,
        ...(trace.queueWaitMs !== undefined ? { queueWaitMs: Math.round(trace.queueWaitMs * 10) / 10 } : {}),
        durationMs: Math.round((performance.now() - started) * 10) / 10, outcome, status,
        ...(trace.worker ? { worker: trace.worker } : {}), ...(logSql ? { sql: body.sql } : {}),
      });
    };
    const refusal = (d: Decision): Grant | undefined => {
      if (d.allowed) return d.grant;
      throw new RouterError(403, d.message, {}, { table: d.table, verb: d.verb });
    };
    try {
      // A client that goes away takes its query with it: out of the queue, off the worker, or the cold process killed.
      reply.raw.once('close', () => { if (!reply.raw.writableFinished) entry.controller.abort(); });
      pool = await router.resolve(body.catalog, body.pool, body.namespace);
      entry.pool = pool.pool;
      const where = { namespace: pool.namespace, catalog: pool.catalog };
      const routed = await router.query(pool, {
        sql: body.sql, format, timeoutMs: body.timeoutMs, signal: entry.controller.signal, principal: principalKey(principal), trace,
        // Only a principal RBAC decides for costs the worker's plan round trip before its query;
        // an all-access one's tables still reach the log, from the worker's answer.
        ...(authorizer.decides(principal) ? { authorize: async (tables: QueryTables) => refusal(await authorizer.authorize(principal, where, tables)) } : {}),
        authorizeCold: async (sql) => {
          const { selectTables } = await import('../auth/parse.js');
          const named = await selectTables(sql);
          if (!named) return refusal(await authorizer.authorizeCatalog(principal, where));
          trace.tables = { kind: 'select', read: named.read, write: [], catalog: named.catalog };
          return refusal(await authorizer.authorize(principal, where, trace.tables));
        },
      });
      // The cold path says 499 itself when the query was stopped for the caller.
      if (routed.status === 499) { routed.body.resume(); throw new RouterError(499, 'the client went away'); }
      const counter = new AnswerCounter(format);
      let logged = false;
      const done = (outcome: QueryLogLine['outcome']) => { if (!logged) { logged = true; write(outcome, routed.status, counter); } };
      counter.once('end', () => done(routed.status < 400 ? 'ok' : routed.status === 403 ? 'forbidden' : routed.status === 504 ? 'timeout' : 'error'));
      counter.once('close', () => done(entry.controller.signal.aborted ? 'cancelled' : 'failed'));
      routed.body.once('error', (err) => counter.destroy(err));
      return reply.code(routed.status).headers(routed.headers).send(routed.body.pipe(counter));
    } catch (err) {
      if (!(err instanceof RouterError)) { write('failed', 500); throw err; }
      const cancelled = entry.cancelled && err.status === 499;
      const message = cancelled ? `query ${id} was cancelled (DELETE /v1/queries/${id})` : err.message;
      write(err.status === 499 ? 'cancelled' : err.status === 403 ? 'forbidden' : err.status === 429 ? 'rejected' : err.status === 503 ? 'timeout' : 'error', err.status);
      if (err.status === 403) request.log.info({ queryId: id, user: principal.user, table: err.details.table, verb: err.details.verb }, 'query refused');
      return reply.code(err.status).headers(err.headers).send({ statusCode: err.status, message, ...err.details });
    }
  });

  // The caller's own running queries (ids to cancel); nobody sees anyone else's.
  app.get('/v1/queries', { onRequest: authenticate }, async (request) => {
    const owner = principalKey(principals.get(request)!);
    return { queries: [...running].filter(([, r]) => r.owner === owner).map(([id, r]) => ({ id, catalog: r.catalog, ...(r.pool ? { pool: r.pool } : {}), since: r.since })) };
  });

  // Cancel a query: only its own principal may, and anyone else learns nothing of it (404 either way).
  app.delete<{ Params: { id: string } }>('/v1/queries/:id', {
    schema: { params: { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 64 } } } },
    onRequest: authenticate,
  }, async (request, reply) => {
    const principal = principals.get(request)!;
    const entry = running.get(request.params.id);
    if (!entry || entry.owner !== principalKey(principal)) {
      return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `no running query ${JSON.stringify(request.params.id)} of yours` });
    }
    entry.cancelled = true;
    entry.controller.abort();
    return reply.code(202).header(ID_HEADER, request.params.id).send({ id: request.params.id, cancelled: true });
  });
};

export const metricsPlugin: FastifyPluginAsync<{ router?: Router }> = async (app, opts) => {
  app.get('/metrics', async (_request, reply) => {
    for (const p of opts.router?.snapshot() ?? []) {
      const labels = { pool: p.pool, namespace: p.namespace };
      metrics.sizeCurrent.set(labels, p.workers);
      metrics.podsBusy.set(labels, p.busy);
      metrics.podsIdle.set(labels, p.workers - p.busy);
      metrics.queueLength.set(labels, p.queued);
    }
    return reply.header('content-type', registry.contentType).send(await registry.metrics());
  });
};
