// `featherman serve`: the service, on three listeners (LISTENERS in lib/server/server.ts):
//   --port        the query API (POST /v1/query), /metrics, /healthz, /readyz
//   --hooks-port  the Metacontroller hooks (plain HTTP), /healthz, /readyz
//   --tls-port    the admission webhooks over HTTPS, /healthz, /readyz; the certificate is
//                 reloaded whenever its files change
//   featherman serve [--port 8080] [--hooks-port 8081] [--host 0.0.0.0] [--tls-port 8443 --tls-cert FILE --tls-key FILE] [--embedded]
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { BadInputError } from '../errors.js';
import { settingsFromEnv } from '../k8s/workloads.js';
import { buildServer, LISTENERS } from './server.js';
import { reloadingHttpsServer, type ReloadingServer } from './tls.js';

export const SERVE_USAGE = `usage: featherman serve [options]
  --port N          the query API, /metrics and health (default 8080; 0 picks a free port)
  --hooks-port N    the Metacontroller hooks and health, plain HTTP (default 8081; 0 picks a free port)
  --host H          address to listen on (default 0.0.0.0)
  --tls-port M      the admission webhooks over HTTPS on M (served nowhere else)
  --tls-cert FILE   PEM certificate for HTTPS; reloaded when the file changes
  --tls-key FILE    PEM private key for HTTPS
  --pg-port P       the Postgres wire protocol (psql, JDBC, BI tools) on P (0 picks a free port); TLS
                    (the --tls-cert pair) is required except from loopback
  --pg-host H       address for the Postgres listener (default: --host)
  --embedded        create a local lake under .cache/local first (no cluster, no S3)
  --log-level L     fatal, error, warn, info (default), debug, trace or silent`;

interface ServeOptions {
  port: number;
  hooksPort: number;
  host: string;
  tls?: { port: number; cert: string; key: string };
  pg?: { port: number; host?: string };
  embedded: boolean;
  /** With --embedded: how many local workers to keep warm (FEATHERMAN_LOCAL_WORKERS). */
  localWorkers: number;
  logLevel: string;
}

function port(flag: string, value: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 65535)
    throw new BadInputError(`${flag}: must be a port number (0-65535), got ${JSON.stringify(value)}`);
  return Number(value);
}

export function parseServeArgs(argv: string[], env: NodeJS.ProcessEnv): ServeOptions | undefined {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        port: { type: 'string' },
        'hooks-port': { type: 'string' },
        host: { type: 'string' },
        'tls-port': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'pg-port': { type: 'string' },
        'pg-host': { type: 'string' },
        embedded: { type: 'boolean' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new BadInputError((err as Error).message);
  }
  if (values.help) return undefined;
  const tlsPort = values['tls-port'] as string | undefined;
  const cert = values['tls-cert'] as string | undefined;
  const key = values['tls-key'] as string | undefined;
  if ((tlsPort !== undefined || cert !== undefined || key !== undefined) && !(tlsPort !== undefined && cert && key)) {
    throw new BadInputError('--tls-port, --tls-cert and --tls-key go together: HTTPS needs all three');
  }
  const logLevel = (values['log-level'] as string | undefined) ?? env.FEATHERMAN_LOG_LEVEL ?? 'info';
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) {
    throw new BadInputError(`--log-level: must be fatal, error, warn, info, debug, trace or silent, got ${JSON.stringify(logLevel)}`);
  }
  // The settings every generated child shares, and the local pool's size: refused now, naming the variable.
  settingsFromEnv(env);
  const localWorkers = env.FEATHERMAN_LOCAL_WORKERS ?? '2';
  if (!/^\d{1,2}$/.test(localWorkers) || Number(localWorkers) > 16)
    throw new BadInputError(`FEATHERMAN_LOCAL_WORKERS: must be a whole number from 0 to 16, got ${JSON.stringify(localWorkers)}`);
  return {
    port: port('--port', (values.port as string | undefined) ?? '8080'),
    hooksPort: port('--hooks-port', (values['hooks-port'] as string | undefined) ?? '8081'),
    host: (values.host as string | undefined) ?? '0.0.0.0',
    ...(tlsPort !== undefined ? { tls: { port: port('--tls-port', tlsPort), cert: cert!, key: key! } } : {}),
    ...(values['pg-port'] !== undefined
      ? {
          pg: { port: port('--pg-port', values['pg-port'] as string), ...(values['pg-host'] ? { host: values['pg-host'] as string } : {}) },
        }
      : {}),
    embedded: Boolean(values.embedded),
    localWorkers: Number(localWorkers),
    logLevel,
  };
}

export async function serveCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const opts = parseServeArgs(argv, env);
  if (!opts) {
    console.log(SERVE_USAGE);
    return;
  }
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  let https: ReloadingServer | undefined;
  const local = opts.embedded ? await startEmbedded(env, opts.localWorkers) : undefined;
  const cluster = !local && (env.KUBERNETES_SERVICE_HOST || env.KUBECONFIG) ? await clusterRouter() : undefined;
  // Every listener's /readyz waits for all of them, so one probe covers the pod.
  const listeners: { hooks?: FastifyInstance } = {};
  const readiness = {
    hooks: () => (listeners.hooks?.server.listening ? true : 'the hooks listener is not listening yet'),
    ...(opts.tls ? { tls: () => (https?.server.listening ? true : 'HTTPS is not listening yet') } : {}),
    // The embedded pool replaces dead workers; until one is live again queries take the slow cold path.
    ...(local ? { workers: () => (local.pool.ready() ? true : 'no live local worker') } : {}),
  };
  const app = await buildServer({
    logger: { level: opts.logLevel },
    plugins: [...LISTENERS.http],
    readiness,
    ...(local
      ? { router: local.router, apiTokens: local.tokens }
      : cluster
        ? { router: cluster.router, kubernetesAuth: cluster.auth }
        : {}),
  });
  const hooksApp = await buildServer({ loggerInstance: app.log, plugins: [...LISTENERS.hooks], readiness });
  // The watch cache behind the object metrics and Events (lib/k8s/observe.ts); readiness does not wait for it.
  const observer = cluster ? await cluster.observe(app.log) : undefined;
  listeners.hooks = hooksApp;
  let tlsApp: FastifyInstance | undefined;
  if (opts.tls) {
    https = reloadingHttpsServer(opts.tls, (req, res) => handler!(req, res), app.log);
    https.server.keepAliveTimeout = 65_000;
    https.server.requestTimeout = 30_000;
    const server = https.server;
    // Fastify serves the routes; the reloading HTTPS server (tls.ts) owns the socket and the certificate.
    tlsApp = await buildServer({
      loggerInstance: app.log,
      plugins: [...LISTENERS.tls],
      readiness,
      serverFactory: (h) => {
        handler = h;
        return server as unknown as Server;
      },
    });
  }
  if (local)
    app.log.info(
      {
        metadata: env.FEATHERMAN_METADATA,
        dataPath: env.FEATHERMAN_DATA_PATH,
        workers: local.pool.alive().length,
        tokenFile: local.tokenFile,
        ...(local.relocatedFrom ? { relocatedFrom: local.relocatedFrom } : {}),
      },
      'embedded lake and local worker pool ready; POST /v1/query with catalog "default"',
    );

  const apps = [app, hooksApp, ...(tlsApp ? [tlsApp] : [])];
  await app.listen({ port: opts.port, host: opts.host });
  await hooksApp.listen({ port: opts.hooksPort, host: opts.host });
  if (tlsApp) await tlsApp.listen({ port: opts.tls!.port, host: opts.host });
  const pg = opts.pg
    ? await listenPg(
        opts,
        local ? { router: local.router, tokens: local.tokens } : cluster ? { router: cluster.router, kubernetesAuth: cluster.auth } : {},
        app.log,
      )
    : undefined;
  const portOf = (a: FastifyInstance | undefined) => (a ? (a.server.address() as AddressInfo).port : undefined);
  app.log.info(
    {
      httpPort: portOf(app),
      hooksPort: portOf(hooksApp),
      httpsPort: portOf(tlsApp),
      ...(pg ? { pgPort: (pg.address() as AddressInfo).port } : {}),
      host: opts.host,
    },
    'featherman serve listening',
  );

  await new Promise<void>((resolve) => {
    const stop = async (signal: string) => {
      app.log.info({ signal }, 'shutting down');
      https?.close();
      pg?.close();
      observer?.stop();
      await Promise.all([...apps.map((a) => a.close()), local?.pool.stop()]);
      resolve();
    };
    process.once('SIGTERM', () => void stop('SIGTERM'));
    process.once('SIGINT', () => void stop('SIGINT'));
  });
}

/** The Postgres wire listener on the same router and identities as POST /v1/query (lib/pgwire/server.ts). */
async function listenPg(opts: ServeOptions, query: import('./query.js').QueryPluginOptions, log: FastifyInstance['log']) {
  const { pgServer } = await import('../pgwire/server.js');
  const { queryCore } = await import('./query.js');
  const { loadPair } = await import('./tls.js');
  let pair: { at: number; cert: Buffer; key: Buffer } | undefined;
  // The serving certificate, re-read at most every 30 s so a renewed pair is picked up.
  const tls = opts.tls
    ? () => {
        if (!pair || Date.now() - pair.at > 30_000) pair = { at: Date.now(), ...loadPair(opts.tls!) };
        return pair;
      }
    : undefined;
  const server = pgServer({ core: queryCore(query), ...(tls ? { tls } : {}), log });
  const host = opts.pg!.host ?? opts.host;
  const port = opts.pg!.port;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EADDRINUSE' && code !== 'EACCES') throw err;
    const why = code === 'EADDRINUSE' ? 'is in use (a local PostgreSQL?)' : 'may not be opened by this user';
    // On a laptop (`npm start`) a local PostgreSQL often holds 5432: HTTP still serves, and one line
    // says how to get the wire front too. In a cluster the Service points at this port, so fail.
    if (opts.embedded) {
      log.warn(
        { pgPort: port, pgHost: host },
        `Postgres port ${port} ${why}: the Postgres listener is off, HTTP works; ` +
          'start with --pg-port <another port> (0 picks a free one) for psql and other Postgres clients',
      );
      return undefined;
    }
    throw new Error(`the Postgres port ${port} on ${host} ${why}: choose another with --pg-port`);
  }
  return server;
}

/**
 * `--embedded`: a local lake under .cache/local, a pool of local worker processes on it (pool
 * "default", catalog "default"), and an API token: FEATHERMAN_API_TOKENS, or one generated into
 * .cache/local/api-token (mode 0600) on first start.
 */
async function startEmbedded(env: NodeJS.ProcessEnv, workers: number) {
  const { ensureEmbeddedLake } = await import('../lake/embedded.js');
  const { packageRoot } = await import('../lake/config.js');
  const { LocalFallback, LocalPool } = await import('../pool/local.js');
  const { Router } = await import('../pool/router.js');
  const { loadTokens } = await import('./query.js');
  const { relocatedFrom } = await ensureEmbeddedLake(env);
  const tokenFile = join(packageRoot(), '.cache', 'local', 'api-token');
  let tokens = loadTokens(env);
  if (tokens.length === 0) {
    if (!existsSync(tokenFile)) writeFileSync(tokenFile, randomBytes(24).toString('base64url') + '\n', { mode: 0o600 });
    tokens = loadTokens({ FEATHERMAN_API_TOKENS_FILE: tokenFile });
  }
  const settings = {
    namespace: 'local',
    pool: 'default',
    catalog: 'default',
    readOnly: true,
    queueMaxLength: 100,
    queueMaxWaitMs: 30_000,
    maxQueryMs: 60_000,
    workerConcurrency: 1,
    maxQueuedPerPrincipal: 50,
  };
  const pool = new LocalPool(settings, env);
  await pool.scaleTo(workers);
  return { pool, router: new Router(pool, new LocalFallback(env)), tokens, tokenFile, relocatedFrom };
}

/**
 * In a cluster (or with KUBECONFIG): pools and worker pods from the API server, Jobs as the
 * fallback, queue demand told to the pools; tokens checked by TokenReview (audience
 * FEATHERMAN_TOKEN_AUDIENCES, default featherman) and tables by SubjectAccessReview.
 */
async function clusterRouter() {
  const { DemandAnnotations, JobFallback, KubernetesDirectory, kubeConfig } = await import('../pool/kubernetes.js');
  const { Router } = await import('../pool/router.js');
  const { kubernetesTokenReviewer, DEFAULT_AUDIENCE } = await import('../auth/authenticate.js');
  const { kubernetesAccessReviewer, kubernetesTableObjects } = await import('../auth/authorize.js');
  const kc = kubeConfig();
  const observe = async (log: { warn(obj: object, msg: string): void }) => {
    const { startObserver } = await import('../k8s/observe.js');
    const { metrics, registry } = await import('../metrics.js');
    return startObserver(kc, process.env, log, registry, metrics.sizeDesired);
  };
  const audiences = (process.env.FEATHERMAN_TOKEN_AUDIENCES ?? DEFAULT_AUDIENCE)
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
  return {
    router: new Router(new KubernetesDirectory(kc), new JobFallback(kc), new DemandAnnotations(kc)),
    auth: {
      tokenReviewer: kubernetesTokenReviewer(kc),
      accessReviewer: kubernetesAccessReviewer(kc),
      tableObjects: kubernetesTableObjects(kc),
      audiences,
    },
    observe,
  };
}
