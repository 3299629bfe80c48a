// POST /v1/query {catalog, pool?, namespace?, sql, format, timeoutMs}: authenticated before the
// body is read (a static token, or a Kubernetes token through a TokenReview), every table the
// query reads or writes authorised (SubjectAccessReviews, lib/auth/authorize.ts), routed to a warm
// worker by lib/pool/router.ts. Every answer carries X-Featherman-Query-Id; DELETE
// /v1/queries/{id} (by the same principal) or the client going away cancels the query. One query
// log line per query (lib/auth/query-log.ts). GET /metrics: Prometheus text for the pools, the
// router and the hooks.
import { randomUUID } from 'node:crypto';
import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { AuthUnavailable, principalKey, type Principal } from '../auth/authenticate.js';
import { metrics, registry } from '../metrics.js';
import { QUERY_BODY_LIMIT, queryCore, routeQuery, type QueryPluginOptions } from '../pool/query-core.js';
import { RouterError, type Router } from '../pool/router.js';

export { loadTokens, queryCore, QUERY_BODY_LIMIT, type KubernetesAuth, type QueryPluginOptions } from '../pool/query-core.js';

interface Running {
  owner: string;
  controller: AbortController;
  cancelled: boolean;
  catalog: string;
  since: string;
  pool?: string;
}
const ID_HEADER = 'x-featherman-query-id';
const QUERY_ID = /^[A-Za-z0-9._-]{1,64}$/;

const queryBody = {
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
} as const;
const queryIdParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 64 } } } as const;

export const queryPlugin: FastifyPluginAsync<QueryPluginOptions> = async (plugin, opts) => {
  // Request bodies and params are typed from their route schemas (json-schema-to-ts).
  const app = plugin.withTypeProvider<JsonSchemaToTsProvider>();
  const core = queryCore(opts);
  const { authenticator } = core;
  const principals = new WeakMap<FastifyRequest, Principal>();
  const running = new Map<string, Running>();

  /** Authentication on the headers alone: an unauthenticated body is never read or parsed. */
  const authenticate = async (request: FastifyRequest, reply: FastifyReply) => {
    try {
      principals.set(request, await authenticator.authenticate(request.headers.authorization));
    } catch (err) {
      if (err instanceof AuthUnavailable) {
        request.log.warn({ reason: err.message }, 'authentication unavailable');
        return reply
          .code(503)
          .header('retry-after', '1')
          .send({ statusCode: 503, error: 'Service Unavailable', message: 'the API server could not check the token; try again' });
      }
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer')
        .send({ statusCode: 401, error: 'Unauthorized', message: (err as Error).message });
    }
  };

  app.post(
    '/v1/query',
    {
      schema: { body: queryBody },
      bodyLimit: QUERY_BODY_LIMIT,
      onRequest: async (request, reply) => {
        // A client may name its query (to cancel it before any answer arrives); else it gets a UUID.
        const given = request.headers[ID_HEADER];
        if (given !== undefined && (typeof given !== 'string' || !QUERY_ID.test(given))) {
          return reply
            .code(400)
            .send({ statusCode: 400, error: 'Bad Request', message: `${ID_HEADER}: must be 1 to 64 letters, digits, '.', '_' or '-'` });
        }
        reply.header(ID_HEADER, given ?? randomUUID());
        await authenticate(request, reply);
      },
    },
    async (request, reply) => {
      const id = String(reply.getHeader(ID_HEADER));
      const principal = principals.get(request)!;
      if (!opts.router)
        return reply.code(503).send({
          statusCode: 503,
          error: 'Service Unavailable',
          message: 'this service has no query router (start it with --embedded, or in a cluster)',
        });
      const body = request.body;
      if (running.has(id))
        return reply
          .code(409)
          .send({ statusCode: 409, error: 'Conflict', message: `${ID_HEADER}: a query with id ${JSON.stringify(id)} is already running` });
      const entry: Running = {
        owner: principalKey(principal),
        controller: new AbortController(),
        cancelled: false,
        catalog: body.catalog,
        since: new Date().toISOString(),
      };
      running.set(id, entry);
      // A client that goes away takes its query with it: out of the queue, off the worker, or the cold process killed.
      reply.raw.once('close', () => {
        if (!reply.raw.writableFinished) entry.controller.abort();
      });
      try {
        const { routed, counted, whole } = await routeQuery(
          core,
          principal,
          id,
          { ...body, format: body.format ?? 'json' },
          entry.controller.signal,
          {
            onPool: (pool) => {
              entry.pool = pool.pool;
            },
            onLogged: () => running.delete(id),
          },
        );
        return reply
          .code(routed.status)
          .headers(routed.headers)
          .send(whole() ?? counted());
      } catch (err) {
        running.delete(id);
        if (!(err instanceof RouterError)) throw err;
        const cancelled = entry.cancelled && err.status === 499;
        const message = cancelled ? `query ${id} was cancelled (DELETE /v1/queries/${id})` : err.message;
        if (err.status === 403)
          request.log.info({ queryId: id, user: principal.user, table: err.details.table, verb: err.details.verb }, 'query refused');
        return reply
          .code(err.status)
          .headers(err.headers)
          .send({ statusCode: err.status, message, ...err.details });
      }
    },
  );

  // The caller's own running queries (ids to cancel); nobody sees anyone else's.
  app.get('/v1/queries', { onRequest: authenticate }, async (request) => {
    const owner = principalKey(principals.get(request)!);
    return {
      queries: [...running]
        .filter(([, r]) => r.owner === owner)
        .map(([id, r]) => ({ id, catalog: r.catalog, ...(r.pool ? { pool: r.pool } : {}), since: r.since })),
    };
  });

  // Cancel a query: only its own principal may, and anyone else learns nothing of it (404 either way).
  app.delete(
    '/v1/queries/:id',
    {
      schema: { params: queryIdParams },
      onRequest: authenticate,
    },
    async (request, reply) => {
      const principal = principals.get(request)!;
      const entry = running.get(request.params.id);
      if (!entry || entry.owner !== principalKey(principal)) {
        return reply
          .code(404)
          .send({ statusCode: 404, error: 'Not Found', message: `no running query ${JSON.stringify(request.params.id)} of yours` });
      }
      entry.cancelled = true;
      entry.controller.abort();
      return reply.code(202).header(ID_HEADER, request.params.id).send({ id: request.params.id, cancelled: true });
    },
  );
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
