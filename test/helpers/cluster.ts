// A real Kubernetes control plane on loopback for the e2e suite: etcd, kube-apiserver and
// kube-controller-manager, built by .ci/cluster/build from pinned Go modules into
// ${FEATHERMAN_CACHE:-.cache}/k8s/bin. No kubelet and no scheduler: pods stay Pending unless a
// test binds and runs them. Everything (data, certificates, keys, kubeconfig, logs) lives in one
// temp directory that stop() removes; set FEATHERMAN_KEEP_CLUSTER=1 to keep it for debugging.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../lib/lake/config.js';
import { freePort } from './minio.js';

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Cluster {
  /** Path of an admin kubeconfig (user `featherman-admin`, group system:masters). */
  kubeconfig: string;
  /** https://127.0.0.1:<port> */
  server: string;
  /** The admin bearer token the kubeconfig uses. */
  token: string;
  /** PEM of the CA that signed the API server's serving certificate. */
  caCert: string;
  /** The temp directory holding everything, including logs/<component>.log. */
  dir: string;
  /** Runs kubectl against this cluster; never rejects on a non-zero exit code. */
  kubectl(args: string[], input?: string, timeoutMs?: number): Promise<KubectlResult>;
  /** Kills every process (TERM, then KILL after 10 s) and removes the temp directory. */
  stop(): Promise<void>;
}

export interface ClusterOptions {
  /** Overall bound for start(); default 120 s. */
  timeoutMs?: number;
  /** kube-apiserver --authorization-mode; default RBAC (the admin is in system:masters). */
  authorizationMode?: 'RBAC' | 'AlwaysAllow';
  /** kube-controller-manager --controllers; default DEFAULT_CONTROLLERS. */
  controllers?: string[];
  /** Extra admission plugins to disable; ServiceAccount is always disabled (see below). */
  disableAdmissionPlugins?: string[];
  /** Extra kube-apiserver flags, e.g. ['--feature-gates=...']. */
  apiserverArgs?: string[];
}

/**
 * The controllers the e2e needs: Jobs and CronJobs with their TTL clean-up, cascading deletion,
 * namespace deletion, service accounts and their tokens, the kube-root-ca.crt ConfigMap, and
 * Deployments/ReplicaSets for installed manifests.
 */
export const DEFAULT_CONTROLLERS = [
  'job-controller',
  'cronjob-controller',
  'ttl-after-finished-controller',
  'garbage-collector-controller',
  'namespace-controller',
  'serviceaccount-controller',
  'serviceaccount-token-controller',
  'root-ca-certificate-publisher-controller',
  'deployment-controller',
  'replicaset-controller',
];

const BINARIES = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kubectl'] as const;

/** Where .ci/cluster/build puts the binaries. */
export function clusterBinDir(): string {
  return join(process.env.FEATHERMAN_CACHE || join(packageRoot(), '.cache'), 'k8s', 'bin');
}

/** Undefined when every binary is built, else a sentence naming what is missing. */
export function clusterBinariesMissing(): string | undefined {
  const missing = BINARIES.filter((b) => {
    try {
      accessSync(join(clusterBinDir(), b), constants.X_OK);
      return false;
    } catch {
      return true;
    }
  });
  return missing.length ? `${missing.join(', ')} not built in ${clusterBinDir()}; run .ci/cluster/build (npm run e2e does)` : undefined;
}

/**
 * The folder with the prebuilt Metacontroller (binary, CRD manifest, README with sha256 sums):
 * FEATHERMAN_METACONTROLLER_DIR, else ../shared/tools/metacontroller beside the checkout.
 */
export function metacontrollerDir(): string {
  return process.env.FEATHERMAN_METACONTROLLER_DIR || join(packageRoot(), '..', 'shared', 'tools', 'metacontroller');
}

export type MetacontrollerChoice =
  { kind: 'metacontroller'; binary: string; crds: string; version: string } | { kind: 'stand-in'; reason: string };

/**
 * The real Metacontroller when its folder is there, as .ci/setup test copied and checked it into the
 * cluster's bin folder; otherwise the stand-in. A folder whose binary differs from the checked copy
 * is an error (run .ci/setup test), never a silent fallback.
 */
export function chooseMetacontroller(): MetacontrollerChoice {
  const dir = metacontrollerDir();
  const source = join(dir, 'metacontroller');
  if (!existsSync(source)) return { kind: 'stand-in', reason: `no Metacontroller binary in ${dir}` };
  const binary = join(clusterBinDir(), 'metacontroller');
  const crds = join(clusterBinDir(), 'metacontroller-crds-v1.yaml');
  let stamp = '';
  try {
    stamp = readFileSync(`${binary}.version`, 'utf8').trim();
  } catch {
    /* not copied yet */
  }
  const sum = createHash('sha256').update(readFileSync(source)).digest('hex');
  // The stamp is "metacontroller <version> <sha256 of the binary> <sha256 of the CRDs>".
  const [, version, copied] = stamp.split(' ');
  if (!existsSync(binary) || !existsSync(crds) || copied !== sum) {
    throw new Error(`${source} is not the checked copy in ${clusterBinDir()}; run .ci/setup test`);
  }
  return { kind: 'metacontroller', binary, crds, version: version ?? 'unknown' };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Children get SIGKILL if this process dies without calling stop() (crash, tap timeout).
const pdeathsig = existsSync('/usr/bin/setpriv') && spawnSync('/usr/bin/setpriv', ['--pdeathsig', 'KILL', 'true']).status === 0;

/** A child process logging to a file; stop() sends TERM, then KILL after 10 s. */
export class Proc {
  readonly child: ChildProcess;
  exited: Promise<void>;
  constructor(
    readonly name: string,
    bin: string,
    args: string[],
    readonly log: string,
  ) {
    const fd = openSync(log, 'a');
    const [cmd, argv] = pdeathsig ? ['/usr/bin/setpriv', ['--pdeathsig', 'KILL', '--', bin, ...args]] : [bin, args];
    this.child = spawn(cmd, argv, { stdio: ['ignore', fd, fd], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmpdir() } });
    closeSync(fd);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', () => resolve());
      this.child.once('error', (e) => {
        this.failed = e;
        resolve();
      });
    });
  }
  private failed?: Error;
  get running(): boolean {
    return !this.failed && this.child.exitCode === null && this.child.signalCode === null;
  }
  tail(lines = 25): string {
    if (this.failed) return String(this.failed);
    try {
      return readFileSync(this.log, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }
  async stop(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const killed = await Promise.race([this.exited.then(() => true), sleep(10_000).then(() => false)]);
    if (!killed && this.running) {
      this.child.kill('SIGKILL');
      await Promise.race([this.exited, sleep(5_000)]);
    }
  }
}

function openssl(dir: string, args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr || r.error?.message}`);
}

/** A CA and a serving certificate for 127.0.0.1/localhost, signed by it (ECDSA P-256). */
function makeCerts(dir: string): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(dir, [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '7',
    '-subj',
    '/CN=featherman-e2e-ca',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  openssl(dir, ['req', ...ec, '-keyout', 'apiserver.key', '-out', 'apiserver.csr', '-subj', '/CN=kube-apiserver']);
  writeFileSync(
    join(dir, 'apiserver.ext'),
    [
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,' +
        'DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local',
    ].join('\n') + '\n',
  );
  openssl(dir, [
    'x509',
    '-req',
    '-in',
    'apiserver.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'apiserver.crt',
    '-days',
    '7',
    '-extfile',
    'apiserver.ext',
  ]);
}

function kubeconfigYaml(server: string, caCert: string, token: string): string {
  const ca = Buffer.from(caCert).toString('base64');
  return `apiVersion: v1
kind: Config
clusters:
- name: featherman-e2e
  cluster:
    server: ${server}
    certificate-authority-data: ${ca}
users:
- name: featherman-admin
  user:
    token: ${token}
contexts:
- name: featherman-e2e
  context:
    cluster: featherman-e2e
    user: featherman-admin
    namespace: default
current-context: featherman-e2e
`;
}

function runKubectl(kubeconfig: string, args: string[], input?: string, timeoutMs = 60_000): Promise<KubectlResult> {
  return new Promise((resolve) => {
    const child = spawn(join(clusterBinDir(), 'kubectl'), ['--kubeconfig', kubeconfig, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmpdir() },
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => {
      err.push(Buffer.from(`\nkubectl timed out after ${timeoutMs} ms`));
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (e) => {
      err.push(Buffer.from(String(e)));
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    child.stdin.on('error', () => {
      /* kubectl may exit before reading its input */
    });
    child.stdin.end(input ?? '');
  });
}

/** Polls `check` until it returns true; throws, naming `what`, when `deadline` passes or one of `procs` dies. */
async function waitFor(what: string, deadline: number, check: () => Promise<boolean>, procs: Proc[]): Promise<void> {
  for (;;) {
    const dead = procs.find((p) => !p.running);
    if (dead)
      throw new Error(`${dead.name} exited (${dead.child.exitCode ?? dead.child.signalCode}) while waiting for ${what}:\n${dead.tail()}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}\n${procs.map((p) => `--- ${p.name} ---\n${p.tail(10)}`).join('\n')}`);
    }
    await sleep(250);
  }
}

/** Starts a fresh control plane; rejects (having cleaned up) if any part fails to come up in time. */
export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const missing = clusterBinariesMissing();
  if (missing) throw new Error(missing);
  const bin = (b: string) => join(clusterBinDir(), b);
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  const dir = mkdtempSync(join(tmpdir(), 'fm-cluster-'));
  const logs = join(dir, 'logs');
  mkdirSync(logs);
  const procs: Proc[] = [];
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    for (const p of [...procs].reverse()) await p.stop();
    if (!process.env.FEATHERMAN_KEEP_CLUSTER) rmSync(dir, { recursive: true, force: true });
  };

  try {
    makeCerts(dir);
    const sa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(join(dir, 'sa.key'), sa.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(join(dir, 'sa.pub'), sa.publicKey.export({ type: 'spki', format: 'pem' }));
    const token = randomBytes(24).toString('hex');
    writeFileSync(join(dir, 'tokens.csv'), `${token},featherman-admin,featherman-admin,"system:masters"\n`, { mode: 0o600 });
    const caCert = readFileSync(join(dir, 'ca.crt'), 'utf8');

    // etcd; a port taken between freePort() and bind makes it exit, so try a few times.
    let etcdUrl = '';
    for (let attempt = 1; ; attempt++) {
      const [client, peer] = [await freePort(), await freePort()];
      etcdUrl = `http://127.0.0.1:${client}`;
      const peerUrl = `http://127.0.0.1:${peer}`;
      const etcd = new Proc(
        'etcd',
        bin('etcd'),
        [
          '--name=e2e',
          `--data-dir=${join(dir, 'etcd')}`,
          `--listen-client-urls=${etcdUrl}`,
          `--advertise-client-urls=${etcdUrl}`,
          `--listen-peer-urls=${peerUrl}`,
          `--initial-advertise-peer-urls=${peerUrl}`,
          `--initial-cluster=e2e=${peerUrl}`,
          '--unsafe-no-fsync',
          '--log-level=warn',
        ],
        join(logs, 'etcd.log'),
      );
      procs.push(etcd);
      try {
        await waitFor(
          'etcd /health',
          deadline,
          async () => {
            const res = await fetch(`${etcdUrl}/health`, { signal: AbortSignal.timeout(2_000) });
            return res.ok && ((await res.json()) as { health?: string }).health === 'true';
          },
          [etcd],
        );
        break;
      } catch (e) {
        if (etcd.running || attempt >= 3 || !/address already in use/.test(etcd.tail())) throw e;
        procs.pop();
        rmSync(join(dir, 'etcd'), { recursive: true, force: true });
      }
    }

    // kube-apiserver
    let server = '';
    const kubeconfig = join(dir, 'kubeconfig');
    const kubectl = (args: string[], input?: string, timeoutMs?: number) => runKubectl(kubeconfig, args, input, timeoutMs);
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      server = `https://127.0.0.1:${port}`;
      writeFileSync(kubeconfig, kubeconfigYaml(server, caCert, token), { mode: 0o600 });
      const apiserver = new Proc(
        'kube-apiserver',
        bin('kube-apiserver'),
        [
          `--etcd-servers=${etcdUrl}`,
          '--bind-address=127.0.0.1',
          '--advertise-address=127.0.0.1',
          `--secure-port=${port}`,
          `--tls-cert-file=${join(dir, 'apiserver.crt')}`,
          `--tls-private-key-file=${join(dir, 'apiserver.key')}`,
          `--client-ca-file=${join(dir, 'ca.crt')}`,
          `--token-auth-file=${join(dir, 'tokens.csv')}`,
          `--authorization-mode=${opts.authorizationMode ?? 'RBAC'}`,
          '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
          `--service-account-key-file=${join(dir, 'sa.pub')}`,
          `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
          '--service-cluster-ip-range=10.0.0.0/24',
          '--allow-privileged=true',
          // ServiceAccount admission would add a projected token volume to every pod and refuse pods
          // until the namespace's `default` ServiceAccount exists; the process kubelet mounts nothing.
          `--disable-admission-plugins=${['ServiceAccount', ...(opts.disableAdmissionPlugins ?? [])].join(',')}`,
          // Admission webhooks need no flag: MutatingAdmissionWebhook and ValidatingAdmissionWebhook
          // are on by default, and a clientConfig.url of https://127.0.0.1:<port>/... with a caBundle
          // is called directly (no service proxy, no egress selector).
          // The test node's name resolves nowhere: reach its kubelet (pod logs) at its InternalIP.
          '--kubelet-preferred-address-types=InternalIP',
          '--profiling=false',
          ...(opts.apiserverArgs ?? []),
        ],
        join(logs, 'kube-apiserver.log'),
      );
      procs.push(apiserver);
      try {
        await waitFor(
          'kube-apiserver /readyz',
          deadline,
          async () => (await kubectl(['get', '--raw=/readyz'], undefined, 10_000)).code === 0,
          procs,
        );
        break;
      } catch (e) {
        if (apiserver.running || attempt >= 3 || !/address already in use/.test(apiserver.tail())) throw e;
        procs.pop();
      }
    }

    // kube-controller-manager, with no serving port (nothing to collide on) and no leader election.
    const kcm = new Proc(
      'kube-controller-manager',
      bin('kube-controller-manager'),
      [
        `--kubeconfig=${kubeconfig}`,
        `--controllers=${(opts.controllers ?? DEFAULT_CONTROLLERS).join(',')}`,
        '--leader-elect=false',
        '--secure-port=0',
        `--service-account-private-key-file=${join(dir, 'sa.key')}`,
        `--root-ca-file=${join(dir, 'ca.crt')}`,
        '--use-service-account-credentials=false',
        '--profiling=false',
      ],
      join(logs, 'kube-controller-manager.log'),
    );
    procs.push(kcm);
    // Ready once the serviceaccount controller has done its first pass (or, without it, alive for 2 s).
    const controllers = opts.controllers ?? DEFAULT_CONTROLLERS;
    if (controllers.includes('serviceaccount-controller') || controllers.includes('*')) {
      await waitFor(
        'kube-controller-manager (the default ServiceAccount)',
        deadline,
        async () => (await kubectl(['get', 'serviceaccount', 'default', '-n', 'default', '-o', 'name'], undefined, 10_000)).code === 0,
        procs,
      );
    } else {
      const until = Date.now() + 2_000;
      await waitFor('kube-controller-manager', deadline, async () => Date.now() > until, procs);
    }

    return { kubeconfig, server, token, caCert, dir, kubectl, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
