// `featherman serve`: the Metacontroller hooks and admission webhooks service.
//   featherman serve [--port 8080] [--host 0.0.0.0] [--tls-port 8443 --tls-cert FILE --tls-key FILE] [--embedded]
// HTTP for Metacontroller, curl and local use; HTTPS (same routes) for the API server's webhook
// calls, with the certificate reloaded whenever its files change.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BadInputError } from '../errors.js';
import { buildServer } from './server.js';
import { reloadingHttpsServer, type ReloadingServer } from './tls.js';

export const SERVE_USAGE = `usage: featherman serve [options]
  --port N          HTTP port (default 8080; 0 picks a free port)
  --host H          address to listen on (default 0.0.0.0)
  --tls-port M      also serve HTTPS on M (for the API server's admission calls)
  --tls-cert FILE   PEM certificate for HTTPS; reloaded when the file changes
  --tls-key FILE    PEM private key for HTTPS
  --embedded        create a local lake under .cache/local first (no cluster, no S3)
  --log-level L     fatal, error, warn, info (default), debug, trace or silent`;

interface ServeOptions {
  port: number;
  host: string;
  tls?: { port: number; cert: string; key: string };
  embedded: boolean;
  logLevel: string;
}

function port(flag: string, value: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 65535) throw new BadInputError(`${flag}: must be a port number (0-65535), got ${JSON.stringify(value)}`);
  return Number(value);
}

export function parseServeArgs(argv: string[], env: NodeJS.ProcessEnv): ServeOptions | undefined {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        port: { type: 'string' }, host: { type: 'string' },
        'tls-port': { type: 'string' }, 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' },
        embedded: { type: 'boolean' }, 'log-level': { type: 'string' }, help: { type: 'boolean', short: 'h' },
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
  return {
    port: port('--port', (values.port as string | undefined) ?? '8080'),
    host: (values.host as string | undefined) ?? '0.0.0.0',
    ...(tlsPort !== undefined ? { tls: { port: port('--tls-port', tlsPort), cert: cert!, key: key! } } : {}),
    embedded: Boolean(values.embedded),
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
  const local = opts.embedded ? await startEmbedded(env) : undefined;
  const cluster = !local && (env.KUBERNETES_SERVICE_HOST || env.KUBECONFIG) ? await clusterRouter() : undefined;
  const app = await buildServer({
    logger: { level: opts.logLevel },
    serverFactory: (h) => {
      handler = h;
      return createServer(h);
    },
    readiness: opts.tls ? { tls: () => (https?.server.listening ? true : 'HTTPS is not listening yet') } : {},
    ...(local ? { router: local.router, apiTokens: local.tokens } : cluster ? { router: cluster } : {}),
  });
  if (local) app.log.info({ metadata: env.FEATHERMAN_METADATA, dataPath: env.FEATHERMAN_DATA_PATH, workers: local.pool.alive().length, tokenFile: local.tokenFile, ...(local.relocatedFrom ? { relocatedFrom: local.relocatedFrom } : {}) }, 'embedded lake and local worker pool ready; POST /v1/query with catalog "default"');

  await app.listen({ port: opts.port, host: opts.host });
  const httpPort = (app.server.address() as AddressInfo).port;
  let tlsPort: number | undefined;
  if (opts.tls) {
    const tls = opts.tls;
    https = reloadingHttpsServer(tls, (req, res) => handler!(req, res), app.log);
    https.server.keepAliveTimeout = 65_000;
    https.server.requestTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      https!.server.once('error', reject);
      https!.server.listen(tls.port, opts.host, () => resolve());
    });
    tlsPort = (https.server.address() as AddressInfo).port;
  }
  app.log.info({ httpPort, httpsPort: tlsPort, host: opts.host }, 'featherman serve listening');

  await new Promise<void>((resolve) => {
    const stop = async (signal: string) => {
      app.log.info({ signal }, 'shutting down');
      https?.close();
      const closing = https ? closeServer(https.server) : Promise.resolve();
      await Promise.all([app.close(), closing, local?.pool.stop()]);
      resolve();
    };
    process.once('SIGTERM', () => void stop('SIGTERM'));
    process.once('SIGINT', () => void stop('SIGINT'));
  });
}

function closeServer(server: Server | import('node:https').Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}

/**
 * `--embedded`: a local lake under .cache/local, a pool of local worker processes on it (pool
 * "default", catalog "default"), and an API token: FEATHERMAN_API_TOKENS, or one generated into
 * .cache/local/api-token (mode 0600) on first start.
 */
async function startEmbedded(env: NodeJS.ProcessEnv) {
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
    namespace: 'local', pool: 'default', catalog: 'default', readOnly: true,
    queueMaxLength: 100, queueMaxWaitMs: 30_000, maxQueryMs: 60_000, workerConcurrency: 1,
  };
  const pool = new LocalPool(settings, env);
  await pool.scaleTo(Number(env.FEATHERMAN_LOCAL_WORKERS ?? 2));
  return { pool, router: new Router(pool, new LocalFallback(env)), tokens, tokenFile, relocatedFrom };
}

/** In a cluster (or with KUBECONFIG): pools and worker pods from the API server, Jobs as the fallback, queue demand told to the pools. */
async function clusterRouter() {
  const { DemandAnnotations, JobFallback, KubernetesDirectory, kubeConfig } = await import('../pool/kubernetes.js');
  const { Router } = await import('../pool/router.js');
  const kc = kubeConfig();
  return new Router(new KubernetesDirectory(kc), new JobFallback(kc), new DemandAnnotations(kc));
}
