// The whole e2e environment in one call: the test cluster (test/helpers/cluster.ts), MinIO with the
// bucket `my-data-lake`, `featherman serve` on the host (the query API on --port, the Metacontroller
// hooks on --hooks-port, HTTPS with a certificate from `featherman certs --ip 127.0.0.1` for
// admission, the Postgres wire front on --pg-port with the same certificate), the CRDs and the
// webhook configurations (clientConfig.url https://127.0.0.1:<tls-port>/admission/... plus the
// caBundle), the process kubelet, and what drives
// the hooks: the real Metacontroller when it is beside the checkout, else the stand-in
// (test/helpers/metacontroller.ts). stop() tears everything down in reverse.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { packageRoot } from '../../lib/lake/config.js';
import { featherman } from './cli.js';
import { chooseMetacontroller, DEFAULT_CONTROLLERS, startCluster, type Cluster, type KubectlResult } from './cluster.js';
import { ProcessKubelet } from './kubelet.js';
import { RealMetacontroller, StandinDriver, type HookDriver } from './metacontroller.js';
import { KubeApi, type KubeObj } from './metacontroller-standin.js';
import { Minio } from './minio.js';
import { ON_LOOPBACK, startServe, withTls } from './serve.js';

export const BUCKET = 'my-data-lake';
/** The bearer token of the service's POST /v1/query in the e2e. */
export const E2E_TOKEN = 'e2e-query-token';

export interface E2eEnv {
  cluster: Cluster;
  minio: Minio;
  api: KubeApi;
  /** The real Metacontroller or the stand-in; `metacontroller.description` says which. */
  metacontroller: HookDriver;
  kubelet: ProcessKubelet;
  /** http://127.0.0.1:<hooks-port> of `featherman serve`: the Metacontroller hooks. */
  hooksUrl: string;
  /** http://127.0.0.1:<port> of `featherman serve`: POST /v1/query, /metrics, health. */
  queryUrl: string;
  /** https://127.0.0.1:<tls-port> of `featherman serve` (admission). */
  admissionUrl: string;
  /** The Postgres wire listener of `featherman serve` on 127.0.0.1 (TLS with the serving certificate). */
  pgPort: number;
  /** The CA that signed the serving certificate (for sslmode=verify-full / verify-ca). */
  caFile: string;
  /**
   * With `replicas: 2`: http://127.0.0.1:<port> of a second `featherman serve` on the same API
   * server, as a second replica of the Deployment would be (Metacontroller calls only the first).
   */
  replicaUrl?: string;
  dir: string;
  kubectl(args: string[], input?: string, timeoutMs?: number): Promise<KubectlResult>;
  /** The last lines of every component's log, for failure messages. */
  diagnostics(): string;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startE2eEnv(opts: { intervalMs?: number; replicas?: 1 | 2 } = {}): Promise<E2eEnv> {
  const root = packageRoot();
  const dir = mkdtempSync(join(tmpdir(), 'fm-e2e-'));
  const cleanups: (() => Promise<void> | void)[] = [
    () => {
      if (!process.env.FEATHERMAN_KEEP_CLUSTER) rmSync(dir, { recursive: true, force: true });
    },
  ];
  const stop = async () => {
    for (const c of cleanups.splice(0).reverse()) {
      try {
        await c();
      } catch {
        /* keep tearing down */
      }
    }
  };
  try {
    // pvc-protection: PVCs get the kubernetes.io/pvc-protection finalizer at admission; without its
    // controller a deleted catalog volume would stay Terminating forever.
    const [c, m] = await Promise.allSettled([
      startCluster({ controllers: [...DEFAULT_CONTROLLERS, 'persistentvolumeclaim-protection-controller'] }),
      Minio.start(),
    ]);
    if (c.status === 'fulfilled') cleanups.push(() => c.value.stop());
    if (m.status === 'fulfilled') cleanups.push(() => m.value.stop());
    if (c.status === 'rejected') throw c.reason;
    if (m.status === 'rejected') throw m.reason;
    const [cluster, minio] = [c.value, m.value];
    await minio.createBucket(BUCKET);

    // admission certificate for 127.0.0.1, then the service (query API, hooks, HTTPS for admission)
    const certs = await featherman(['certs', '--out', join(dir, 'certs'), '--ip', '127.0.0.1', '--dns', 'localhost'], {});
    if (certs.code !== 0) throw new Error(`featherman certs failed: ${certs.stderr}`);
    const serve = await startServe(
      // The Postgres wire front takes the same serving certificate (psql in identities.test.ts).
      [...ON_LOOPBACK, ...withTls(join(dir, 'certs')), '--pg-port', '0'],
      // KUBECONFIG gives the service its cluster router (pools and worker pods from the API server).
      {
        FEATHERMAN_IMAGE: 'featherman:e2e',
        FEATHERMAN_LOG_LEVEL: 'info',
        KUBECONFIG: cluster.kubeconfig,
        FEATHERMAN_API_TOKENS: E2E_TOKEN,
      },
      30_000,
    );
    cleanups.push(serve.stop);
    const replica =
      opts.replicas === 2
        ? await startServe(
            ON_LOOPBACK,
            {
              FEATHERMAN_IMAGE: 'featherman:e2e',
              FEATHERMAN_LOG_LEVEL: 'info',
              KUBECONFIG: cluster.kubeconfig,
              FEATHERMAN_API_TOKENS: E2E_TOKEN,
            },
            30_000,
          )
        : undefined;
    if (replica) cleanups.push(replica.stop);
    const hooksUrl = `http://127.0.0.1:${serve.ports.hooksPort}`;
    const queryUrl = `http://127.0.0.1:${serve.ports.httpPort}`;
    const admissionUrl = `https://127.0.0.1:${serve.ports.httpsPort}`;

    // CRDs and webhook configurations (url + caBundle instead of the in-cluster Service)
    const kubectl = cluster.kubectl;
    const must = async (what: string, r: Promise<KubectlResult>) => {
      const res = await r;
      if (res.code !== 0) throw new Error(`${what} failed: ${res.stderr}`);
      return res.stdout;
    };
    await must('kubectl apply -k crds/', kubectl(['apply', '-k', join(root, 'crds')]));
    await must(
      'waiting for the CRDs',
      kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '-l', 'app.kubernetes.io/name=featherman']),
    );
    const caBundle = readFileSync(join(dir, 'certs', 'caBundle'), 'utf8').trim();
    const docs = parseAllDocuments(readFileSync(join(root, 'metacontroller', 'webhooks.yaml'), 'utf8')).map(
      (d) =>
        d.toJSON() as {
          metadata: { annotations?: Record<string, string> };
          webhooks: { clientConfig: Record<string, unknown> }[];
        },
    );
    for (const d of docs) {
      delete d.metadata.annotations;
      for (const w of d.webhooks) {
        const path = (w.clientConfig.service as { path: string }).path;
        w.clientConfig = { url: `${admissionUrl}${path}`, caBundle };
      }
    }
    await must('applying the webhook configurations', kubectl(['apply', '-f', '-'], docs.map((d) => stringify(d)).join('---\n')));

    const api = new KubeApi(cluster.server, cluster.token, cluster.caCert);
    cleanups.push(() => api.close());
    const kubelet = new ProcessKubelet({ api, dir: join(dir, 'kubelet') });
    await kubelet.start();
    cleanups.push(() => kubelet.stop());
    const controllersFile = join(root, 'metacontroller', 'controllers.yaml');
    const choice = chooseMetacontroller();
    const metacontroller: HookDriver =
      choice.kind === 'metacontroller'
        ? await RealMetacontroller.start({ cluster, ...choice, hooksUrl, controllersFile, logFile: join(dir, 'metacontroller.log') })
        : new StandinDriver(`the Metacontroller stand-in (${choice.reason})`, {
            api,
            hooksUrl,
            controllersFile,
            intervalMs: opts.intervalMs ?? 500,
            logFile: join(dir, 'standin.log'),
          });
    cleanups.push(() => metacontroller.stop());

    const diagnostics = () =>
      [
        `--- ${metacontroller.description} ---\n${metacontroller.recentLog(40)}`,
        `--- process kubelet ---\n${kubelet.recentLog(30)}`,
        `--- featherman serve ---\n${serve.output(15)}`,
      ].join('\n');
    const replicaUrl = replica ? `http://127.0.0.1:${replica.ports.httpPort}` : undefined;
    return {
      cluster,
      minio,
      api,
      metacontroller,
      kubelet,
      hooksUrl,
      queryUrl,
      admissionUrl,
      pgPort: serve.ports.pgPort!,
      caFile: join(dir, 'certs', 'ca.crt'),
      ...(replicaUrl ? { replicaUrl } : {}),
      dir,
      kubectl,
      diagnostics,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** The kubectl helpers every scenario uses: a command that must succeed, an object as JSON, a wait for a value. */
export function kubectlTools(env: Pick<E2eEnv, 'kubectl' | 'diagnostics'>) {
  const ok = (r: KubectlResult, what: string) => {
    if (r.code !== 0) throw new Error(`${what} failed (${r.code}): ${r.stderr}\n${env.diagnostics()}`);
    return r.stdout;
  };
  const get = async <T = KubeObj>(args: string[]): Promise<T | undefined> => {
    const r = await env.kubectl(['get', ...args, '-o', 'json']);
    return r.code === 0 ? (JSON.parse(r.stdout) as T) : undefined;
  };
  const wait = <T>(what: string, ms: number, check: () => Promise<T | undefined>) => eventually(what, ms, check, () => env.diagnostics());
  return { ok, get, wait };
}

/** Polls `check` until it returns a value (not undefined), up to `ms`; the error names `what`. */
export async function eventually<T>(what: string, ms: number, check: () => Promise<T | undefined>, onTimeout?: () => string): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}${onTimeout ? `\n${onTimeout()}` : ''}`,
      );
    }
    await sleep(300);
  }
}
