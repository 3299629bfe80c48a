// buildServer(): one Fastify instance with route families registered as plugins from the table
// below. `featherman serve` builds one instance per listener (LISTENERS) and listens; tests use
// them through inject(). Adding a route family (hooks, metrics, query) means one module in
// lib/server and one line here.
import { STATUS_CODES } from 'node:http';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyPluginAsync,
  type FastifyRequest,
  type FastifyServerOptions,
} from 'fastify';
import { useSafeJsonParser } from './body.js';
import type { ReadinessCheck } from './health.js';
import type { Router } from '../pool/router.js';
import type { KubernetesAuth } from './query.js';
import type { QueryLogger } from '../auth/query-log.js';

export interface ServerOptions {
  /** Fastify's logger: false (tests), true, or pino options. Request bodies are never logged. */
  logger?: FastifyServerOptions['logger'];
  /** A logger to share instead (the other listeners of `featherman serve` log through the first one's). */
  loggerInstance?: FastifyBaseLogger;
  /** Only these plugins (by name in PLUGINS); all of them when unset. */
  plugins?: string[];
  /** Readiness checks behind GET /readyz. */
  readiness?: Record<string, ReadinessCheck>;
  /** Passed to Fastify, e.g. to serve the same routes over HTTP and HTTPS (lib/server/serve.ts). */
  serverFactory?: FastifyServerOptions['serverFactory'];
  /** The query router behind POST /v1/query (local workers, or the cluster's pools). */
  router?: Router;
  /** Static bearer tokens for POST /v1/query (`token` or `token=user;group...`); FEATHERMAN_API_TOKENS when unset. */
  apiTokens?: string[];
  /** Kubernetes tokens and RBAC for the query API (TokenReview, SubjectAccessReview): in a cluster. */
  kubernetesAuth?: KubernetesAuth;
  /** Where the query log goes (default: one JSON line per query on stdout). */
  queryLog?: QueryLogger;
}

type PluginEntry = (opts: ServerOptions) => Promise<{ plugin: FastifyPluginAsync<never>; options?: unknown }>;

/** Route families, loaded lazily so a plugin's dependencies cost nothing when it is not served. */
export const PLUGINS: Record<string, PluginEntry> = {
  health: async (o) => ({
    plugin: (await import('./health.js')).healthPlugin as FastifyPluginAsync<never>,
    options: { checks: o.readiness ?? {} },
  }),
  admission: async () => ({ plugin: (await import('./admission.js')).admissionPlugin as FastifyPluginAsync<never> }),
  hooks: async () => ({ plugin: (await import('./hooks.js')).hooksPlugin as FastifyPluginAsync<never> }),
  query: async (o) => ({
    plugin: (await import('./query.js')).queryPlugin as FastifyPluginAsync<never>,
    options: { router: o.router, tokens: o.apiTokens, kubernetesAuth: o.kubernetesAuth, queryLog: o.queryLog },
  }),
  metrics: async (o) => ({
    plugin: (await import('./query.js')).metricsPlugin as FastifyPluginAsync<never>,
    options: { router: o.router },
  }),
};

/**
 * What each listener of `featherman serve` serves. Hooks and admission each get their own port, so
 * a NetworkPolicy (metacontroller/network-policy.yaml) can admit only Metacontroller to the hooks,
 * and the API server reaches admission only over TLS; the query port serves clients.
 */
export const LISTENERS = {
  http: ['health', 'query', 'metrics'],
  hooks: ['health', 'hooks'],
  tls: ['health', 'admission'],
} as const satisfies Record<string, readonly (keyof typeof PLUGINS)[]>;

/** Below every route's own limit: the query API's, and Fastify's default. */
const DEFAULT_BODY_LIMIT = 1024 * 1024;

/** The path without the query string: a `?token=` must never reach a log line. */
export function loggedUrl(url: string): string {
  const path = url.split('?', 1)[0]!;
  return path.length > 200 ? `${path.slice(0, 200)}…` : path;
}

const requestSerializer = (req: FastifyRequest) => ({ method: req.method, url: loggedUrl(req.url), remoteAddress: req.ip });

function loggerOptions(logger: ServerOptions['logger']): FastifyServerOptions['logger'] {
  if (!logger) return false;
  const base = logger === true ? { level: 'info' } : logger;
  return {
    ...base,
    serializers: { ...(base as { serializers?: object }).serializers, req: requestSerializer },
  } as FastifyServerOptions['logger'];
}

export async function buildServer(opts: ServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    ...(opts.loggerInstance ? { loggerInstance: opts.loggerInstance } : { logger: loggerOptions(opts.logger) }),
    bodyLimit: DEFAULT_BODY_LIMIT,
    ...(opts.serverFactory ? { serverFactory: opts.serverFactory } : {}),
    // Kubernetes sends a review per admission call; keep-alive connections are reused.
    keepAliveTimeout: 65_000,
    requestTimeout: 30_000,
  });
  useSafeJsonParser(app);
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    let message = status >= 500 ? 'internal error; see the server log' : err.message;
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      message = `the body is larger than the limit of ${request.routeOptions.bodyLimit ?? DEFAULT_BODY_LIMIT} bytes for this route`;
    }
    if (status >= 500) request.log.error({ err }, 'request failed');
    else request.log.info({ statusCode: status, reason: message }, 'request refused');
    reply.code(status).send({ statusCode: status, error: STATUS_CODES[status] ?? 'Error', message });
  });
  // Fastify's own 404 quotes the whole URL, query string included, in its answer and its log.
  app.setNotFoundHandler((request, reply) => {
    const route = `${request.method} ${loggedUrl(request.url)}`;
    request.log.info({ statusCode: 404 }, 'no such route');
    reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `no route ${route}` });
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
