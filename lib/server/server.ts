// buildServer(): one Fastify instance with every route family registered as a plugin from the
// table below. `featherman serve` only builds it and listens; tests use it through inject().
// Adding a route family (hooks, metrics, query) means one module in lib/server and one line here.
import { STATUS_CODES } from 'node:http';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyPluginAsync, type FastifyServerOptions } from 'fastify';
import type { ReadinessCheck } from './health.js';
import type { Router } from '../pool/router.js';

export interface ServerOptions {
  /** Fastify's logger: false (tests), true, or pino options. Request bodies are never logged. */
  logger?: FastifyServerOptions['logger'];
  /** Only these plugins (by name in PLUGINS); all of them when unset. */
  plugins?: string[];
  /** Readiness checks behind GET /readyz. */
  readiness?: Record<string, ReadinessCheck>;
  /** Passed to Fastify, e.g. to serve the same routes over HTTP and HTTPS (lib/server/serve.ts). */
  serverFactory?: FastifyServerOptions['serverFactory'];
  /** The query router behind POST /v1/query (local workers, or the cluster's pools). */
  router?: Router;
  /** Bearer tokens for POST /v1/query; FEATHERMAN_API_TOKENS when unset. */
  apiTokens?: string[];
}

type PluginEntry = (opts: ServerOptions) => Promise<{ plugin: FastifyPluginAsync<never>; options?: unknown }>;

/** Route families, loaded lazily so a plugin's dependencies cost nothing when it is not served. */
export const PLUGINS: Record<string, PluginEntry> = {
  health: async (o) => ({ plugin: (await import('./health.js')).healthPlugin as FastifyPluginAsync<never>, options: { checks: o.readiness ?? {} } }),
  admission: async () => ({ plugin: (await import('./admission.js')).admissionPlugin as FastifyPluginAsync<never> }),
  hooks: async () => ({ plugin: (await import('./hooks.js')).hooksPlugin as FastifyPluginAsync<never> }),
  query: async (o) => ({ plugin: (await import('./query.js')).queryPlugin as FastifyPluginAsync<never>, options: { router: o.router, tokens: o.apiTokens } }),
  metrics: async (o) => ({ plugin: (await import('./query.js')).metricsPlugin as FastifyPluginAsync<never>, options: { router: o.router } }),
};

export async function buildServer(opts: ServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ?? false,
    ...(opts.serverFactory ? { serverFactory: opts.serverFactory } : {}),
    // Kubernetes sends a review per admission call; keep-alive connections are reused.
    keepAliveTimeout: 65_000,
    requestTimeout: 30_000,
  });
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status >= 500) request.log.error({ err }, 'request failed');
    else request.log.info({ statusCode: status, reason: err.message }, 'request refused');
    reply.code(status).send({
      statusCode: status,
      error: STATUS_CODES[status] ?? 'Error',
      message: status >= 500 ? 'internal error; see the server log' : err.message,
    });
  });
  const names = opts.plugins ?? Object.keys(PLUGINS);
  for (const name of names) {
    const entry = PLUGINS[name];
    if (!entry) throw new Error(`unknown server plugin ${JSON.stringify(name)}; known: ${Object.keys(PLUGINS).join(', ')}`);
    const { plugin, options } = await entry(opts);
    await app.register(plugin, options as never);
  }
  return app;
}
