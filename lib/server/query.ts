// POST /v1/query {catalog, pool?, namespace?, sql, format, timeoutMs}: bearer-token protected
// (checked before the body is read), routed to a warm worker by lib/pool/router.ts. GET /metrics: Prometheus text for the pools,
// the router and the hooks.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { metrics, registry } from '../pool/metrics.js';
import { RouterError, type Router } from '../pool/router.js';

/** Tokens from FEATHERMAN_API_TOKENS (comma- or newline-separated, e.g. from a secretKeyRef) or a mounted file. */
export function loadTokens(env: NodeJS.ProcessEnv): string[] {
  const text = env.FEATHERMAN_API_TOKENS ?? (env.FEATHERMAN_API_TOKENS_FILE ? readFileSync(env.FEATHERMAN_API_TOKENS_FILE, 'utf8') : '');
  return text.split(/[\s,]+/).filter((t) => t.length > 0);
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time check of the bearer token against every configured token. */
export function authorized(request: FastifyRequest, tokens: Buffer[]): boolean {
  const m = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '');
  if (!m) return false;
  const given = digest(m[1]!);
  let ok = false;
  for (const t of tokens) ok = timingSafeEqual(given, t) || ok;
  return ok;
}

/** The SQL may be up to 1,000,000 characters; the JSON around it fits in the rest. */
export const QUERY_BODY_LIMIT = 1024 * 1024;

export interface QueryPluginOptions {
  router?: Router;
  tokens?: string[];
}

export const queryPlugin: FastifyPluginAsync<QueryPluginOptions> = async (app, opts) => {
  const tokens = (opts.tokens ?? loadTokens(process.env)).map(digest);
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
    // Authentication runs first, on the headers alone: an unauthenticated body is never read or parsed.
    onRequest: async (request, reply) => {
      if (!authorized(request, tokens)) {
        await reply.code(401).header('www-authenticate', 'Bearer').send({ statusCode: 401, error: 'Unauthorized', message: tokens.length ? 'a valid bearer token is required' : 'no API tokens are configured (FEATHERMAN_API_TOKENS)' });
      }
    },
  }, async (request, reply) => {
    const router = opts.router;
    if (!router) return reply.code(503).send({ statusCode: 503, error: 'Service Unavailable', message: 'this service has no query router (start it with --embedded, or in a cluster)' });
    const body = request.body;
    try {
      const pool = await router.resolve(body.catalog, body.pool, body.namespace);
      // A client that goes away takes its query with it: out of the queue, off the worker, or the cold process killed.
      const gone = new AbortController();
      reply.raw.once('close', () => { if (!reply.raw.writableFinished) gone.abort(); });
      const routed = await router.query(pool, { sql: body.sql, format: body.format ?? 'json', timeoutMs: body.timeoutMs, signal: gone.signal });
      return reply.code(routed.status).headers(routed.headers).send(routed.body);
    } catch (err) {
      if (err instanceof RouterError) return reply.code(err.status).headers(err.headers).send({ statusCode: err.status, message: err.message });
      throw err;
    }
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
