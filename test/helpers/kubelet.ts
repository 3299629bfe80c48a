// A process kubelet for the e2e suite: there is no container runtime here, so pods run as local
// `featherman` processes (the image's entrypoint is this checkout's CLI, as in pod-process.ts).
//   - registers the Node `featherman-test-node` (Ready);
//   - polls pods; binds Pending unscheduled ones to the node (pods/binding);
//   - starts the first container's args as a process, with its env resolved from the pod spec:
//     value (with $(VAR) expansion), secretKeyRef and configMapKeyRef read from the API server,
//     fieldRef metadata.name/namespace/status.podIP, resourceFieldRef limits.memory;
//   - volumes are host directories: emptyDir per pod, a PVC per claim (so every Job of one catalog
//     shares the catalog's metadata directory); env values under a mountPath are rewritten to the
//     host directory, and terminationMessagePath to a per-pod file;
//   - writes status Running (podIP), then Succeeded/Failed with containerStatuses[].state.terminated
//     {exitCode, message, finishedAt}, so the real Job controller completes Jobs;
//   - long-running pods (restartPolicy Always) get their own loopback IP 127.A.B.N (N >= 2) as podIP
//     and the Ready condition once GET http://podIP:<port>/readyz answers 200; a process that exits
//     is restarted (restartCount);
//   - a pod being deleted gets its process killed and is then removed (grace period 0);
//   - serves the container logs the API server proxies for `pods/log` (kubectl logs, and the
//     router's fallback Job, which reads its result from the log): GET /containerLogs/<ns>/<pod>/
//     <container> over HTTPS on 127.0.0.1, the port registered as the node's kubeletEndpoint.
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parseQuantity } from '../../lib/api/quantity.js';
import { CLI, featherman } from './cli.js';
import type { KubeApi, KubeObj } from './metacontroller-standin.js';

export const NODE_NAME = 'featherman-test-node';

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    secretKeyRef?: { name: string; key: string; optional?: boolean };
    configMapKeyRef?: { name: string; key: string; optional?: boolean };
    fieldRef?: { fieldPath: string };
    resourceFieldRef?: { containerName?: string; resource: string };
  };
}
interface Container {
  name: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  volumeMounts?: { name: string; mountPath: string }[];
  terminationMessagePath?: string;
  terminationMessagePolicy?: string;
  resources?: { limits?: Record<string, string>; requests?: Record<string, string> };
  ports?: { name?: string; containerPort: number }[];
  readinessProbe?: { httpGet?: { path: string; port: number | string } };
}
interface PodSpec {
  nodeName?: string;
  restartPolicy?: string;
  containers: Container[];
  volumes?: { name: string; emptyDir?: unknown; persistentVolumeClaim?: { claimName: string } }[];
}
type Pod = KubeObj & { spec: PodSpec & Record<string, unknown>; status?: { phase?: string; podIP?: string } & Record<string, unknown> };

interface Running {
  uid: string;
  ns: string;
  name: string;
  child?: ChildProcess;
  ip: string;
  longRunning: boolean;
  done: boolean;
  ready: boolean;
  restarts: number;
  startedAt: string;
  output: string;
  termFile: string;
}

export interface KubeletOptions {
  api: KubeApi;
  /** Host directories for volumes and logs live here. */
  dir: string;
  intervalMs?: number;
  /** Extra environment for every process (e.g. FEATHERMAN_LOCK_TIMEOUT_SECONDS). */
  extraEnv?: Record<string, string>;
}

export class ProcessKubelet {
  private readonly pods = new Map<string, Running>();
  private readonly ips = new Set<string>();
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private ticking?: Promise<void>;
  private readonly log: string[] = [];
  private logServer?: Server;

  constructor(private readonly o: KubeletOptions) {
    mkdirSync(join(o.dir, 'pods'), { recursive: true });
    mkdirSync(join(o.dir, 'pvc'), { recursive: true });
  }

  async start(): Promise<void> {
    const api = this.o.api;
    const kubeletPort = await this.serveLogs();
    const node = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: NODE_NAME, labels: { 'kubernetes.io/hostname': NODE_NAME, 'kubernetes.io/os': 'linux' } },
    };
    const r = await api.request('POST', '/api/v1/nodes', node);
    if (r.status !== 201 && r.status !== 409) throw new Error(`registering the node: HTTP ${r.status} ${r.text}`);
    const now = new Date().toISOString();
    await api.ok(
      'PATCH',
      `/api/v1/nodes/${NODE_NAME}/status`,
      {
        status: {
          conditions: [
            {
              type: 'Ready',
              status: 'True',
              reason: 'KubeletReady',
              message: 'process kubelet is ready',
              lastHeartbeatTime: now,
              lastTransitionTime: now,
            },
          ],
          addresses: [
            { type: 'InternalIP', address: '127.0.0.1' },
            { type: 'Hostname', address: NODE_NAME },
          ],
          daemonEndpoints: { kubeletEndpoint: { Port: kubeletPort } },
          capacity: { cpu: '64', memory: '256Gi', pods: '500' },
          allocatable: { cpu: '64', memory: '256Gi', pods: '500' },
        },
      },
      'application/merge-patch+json',
    );
    const tick = async () => {
      if (this.stopped) return;
      this.ticking = this.sync().catch((e: unknown) => this.logLine(`sync: ${String(e)}`));
      await this.ticking;
      if (!this.stopped) this.timer = setTimeout(() => void tick(), this.o.intervalMs ?? 300);
    };
    void tick();
  }

  /** The kubelet's log endpoint (a self-signed certificate: the API server does not verify it here). */
  private async serveLogs(): Promise<number> {
    const certs = join(this.o.dir, 'certs');
    const made = await featherman(['certs', '--out', certs, '--ip', '127.0.0.1'], {});
    if (made.code !== 0) throw new Error(`kubelet certificate: ${made.stderr}`);
    this.logServer = createServer({ cert: readFileSync(join(certs, 'tls.crt')), key: readFileSync(join(certs, 'tls.key')) }, (req, res) => {
      const m = /^\/containerLogs\/([^/]+)\/([^/]+)\/([^/?]+)/.exec(req.url ?? '');
      const run = m ? [...this.pods.values()].find((r) => r.ns === m[1] && r.name === m[2]) : undefined;
      const file = run ? join(this.o.dir, 'pods', run.uid, 'output.log') : undefined;
      if (!file || !existsSync(file)) {
        res.writeHead(404).end('no such container log\n');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end(readFileSync(file));
    });
    await new Promise<void>((resolve) => this.logServer!.listen(0, '127.0.0.1', resolve));
    return (this.logServer.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    this.logServer?.close();
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await Promise.race([this.ticking, new Promise((r) => setTimeout(r, 10_000))]);
    await Promise.all([...this.pods.values()].map((p) => this.kill(p)));
  }

  recentLog(lines = 40): string {
    return this.log.slice(-lines).join('\n');
  }

  /** Host directory of a PVC (shared by every pod that mounts the claim). */
  pvcDir(namespace: string, claim: string): string {
    return join(this.o.dir, 'pvc', namespace, claim);
  }

  private logLine(line: string): void {
    const l = `${new Date().toISOString()} ${line}`;
    this.log.push(l);
    if (this.log.length > 500) this.log.splice(0, this.log.length - 500);
    try {
      appendFileSync(join(this.o.dir, 'kubelet.log'), l + '\n');
    } catch {
      /* ignore */
    }
  }

  private async sync(): Promise<void> {
    const api = this.o.api;
    const pods = (await api.list('v1', 'pods')) as Pod[];
    const seen = new Set<string>();
    for (const pod of pods) {
      const uid = pod.metadata.uid!;
      seen.add(uid);
      const ns = pod.metadata.namespace!;
      const name = pod.metadata.name;
      const running = this.pods.get(uid);
      if (pod.metadata.deletionTimestamp) {
        if (running) await this.kill(running);
        if (pod.spec.nodeName === NODE_NAME) {
          const r = await api.request('DELETE', `/api/v1/namespaces/${ns}/pods/${name}`, {
            apiVersion: 'v1',
            kind: 'DeleteOptions',
            gracePeriodSeconds: 0,
            preconditions: { uid },
          });
          if (r.status < 300) this.logLine(`deleted pod ${ns}/${name}`);
        }
        continue;
      }
      if (!pod.spec.nodeName) {
        const r = await api.request('POST', `/api/v1/namespaces/${ns}/pods/${name}/binding`, {
          apiVersion: 'v1',
          kind: 'Binding',
          metadata: { name },
          target: { apiVersion: 'v1', kind: 'Node', name: NODE_NAME },
        });
        if (r.status >= 300 && r.status !== 409) this.logLine(`binding ${ns}/${name}: HTTP ${r.status} ${r.text.slice(0, 200)}`);
        continue; // started on the next tick, once the binding shows
      }
      if (pod.spec.nodeName !== NODE_NAME) continue;
      if (!running && (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed')) continue;
      if (!running) await this.startPod(pod).catch((e: unknown) => this.failToStart(pod, e));
      else if (running.longRunning && !running.ready && !running.done) await this.probe(running, pod);
    }
    for (const [uid, p] of this.pods) {
      if (!seen.has(uid)) {
        await this.kill(p);
        this.release(p);
        this.pods.delete(uid);
      }
    }
  }

  private async failToStart(pod: Pod, e: unknown): Promise<void> {
    const message = String(e instanceof Error ? e.message : e);
    this.logLine(`pod ${pod.metadata.namespace}/${pod.metadata.name} cannot start: ${message}`);
    const c = pod.spec.containers[0]!;
    await this.o.api.request(
      'PATCH',
      `/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}/status`,
      {
        status: {
          phase: 'Pending',
          containerStatuses: [
            {
              name: c.name,
              image: 'featherman:e2e',
              imageID: '',
              ready: false,
              restartCount: 0,
              state: { waiting: { reason: 'CreateContainerConfigError', message } },
            },
          ],
        },
      },
      'application/merge-patch+json',
    );
  }

  /**
   * Pod IPs come from a loopback /24 of this process's own (127.A.B.0, A >= 1, from the pid): two
   * e2e files running at once (tap's jobs) each have a cluster whose workers listen on port 8080.
   */
  private readonly ipPrefix = `127.${1 + (process.pid % 250)}.${Math.floor(process.pid / 250) % 250}`;

  private allocateIp(): string {
    for (let n = 2; n < 250; n++) {
      const ip = `${this.ipPrefix}.${n}`;
      if (!this.ips.has(ip)) {
        this.ips.add(ip);
        return ip;
      }
    }
    throw new Error('no loopback address left');
  }

  private release(p: Running): void {
    if (p.longRunning) this.ips.delete(p.ip);
  }

  private async lookup(
    kind: 'secrets' | 'configmaps',
    ns: string,
    name: string,
    key: string,
    optional?: boolean,
  ): Promise<string | undefined> {
    const r = await this.o.api.request<{ data?: Record<string, string> }>('GET', `/api/v1/namespaces/${ns}/${kind}/${name}`);
    const raw = r.status === 200 ? r.body.data?.[key] : undefined;
    if (raw === undefined) {
      if (optional) return undefined;
      throw new Error(
        `CreateContainerConfigError: couldn't find key ${key} in ${kind === 'secrets' ? 'Secret' : 'ConfigMap'} ${ns}/${name}`,
      );
    }
    return kind === 'secrets' ? Buffer.from(raw, 'base64').toString('utf8') : raw;
  }

  private async startPod(pod: Pod): Promise<void> {
    const ns = pod.metadata.namespace!;
    const c = pod.spec.containers[0]!;
    if (c.command?.length) throw new Error('only the image entrypoint (featherman) is supported');
    const longRunning = (pod.spec.restartPolicy ?? 'Always') === 'Always';
    const ip = longRunning ? this.allocateIp() : '127.0.0.1';
    const podDir = join(this.o.dir, 'pods', pod.metadata.uid!);
    mkdirSync(podDir, { recursive: true });
    try {
      // volumes → host directories
      const hostOf: Record<string, string> = {};
      for (const v of pod.spec.volumes ?? []) {
        hostOf[v.name] = v.persistentVolumeClaim ? this.pvcDir(ns, v.persistentVolumeClaim.claimName) : join(podDir, 'volumes', v.name);
        mkdirSync(hostOf[v.name]!, { recursive: true });
      }
      const mounts = (c.volumeMounts ?? []).filter((m) => hostOf[m.name]).sort((a, b) => b.mountPath.length - a.mountPath.length);
      const termFile = join(podDir, 'termination-log');
      const rewrite = (value: string): string => {
        if (c.terminationMessagePath && value === c.terminationMessagePath) return termFile;
        if (!mounts.length) return value;
        const re = new RegExp(
          `(${mounts.map((m) => m.mountPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})(?=/|$|[^A-Za-z0-9_.-])`,
          'g',
        );
        return value.replace(re, (mp) => hostOf[mounts.find((m) => m.mountPath === mp)!.name]!);
      };
      // environment
      const env: Record<string, string> = {};
      for (const e of c.env ?? []) {
        let value: string | undefined;
        const from = e.valueFrom;
        if (e.value !== undefined) value = e.value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v: string) => env[v] ?? m);
        else if (from?.secretKeyRef)
          value = await this.lookup('secrets', ns, from.secretKeyRef.name, from.secretKeyRef.key, from.secretKeyRef.optional);
        else if (from?.configMapKeyRef)
          value = await this.lookup('configmaps', ns, from.configMapKeyRef.name, from.configMapKeyRef.key, from.configMapKeyRef.optional);
        else if (from?.fieldRef) {
          const f = from.fieldRef.fieldPath;
          value =
            f === 'metadata.name'
              ? pod.metadata.name
              : f === 'metadata.namespace'
                ? ns
                : f === 'status.podIP'
                  ? ip
                  : f === 'spec.nodeName'
                    ? NODE_NAME
                    : undefined;
          if (value === undefined) throw new Error(`fieldRef ${f} is not supported by the process kubelet`);
        } else if (from?.resourceFieldRef) {
          const res = from.resourceFieldRef.resource;
          const [kind, what] = res.split('.') as ['limits' | 'requests', string];
          const q = c.resources?.[kind]?.[what];
          const n = q === undefined ? (what === 'memory' ? 8 * 2 ** 30 : 4) : parseQuantity(q);
          value = what === 'cpu' ? String(Math.max(1, Math.ceil(n ?? 1))) : String(Math.round(n ?? 0));
        }
        if (value !== undefined) env[e.name] = rewrite(value);
      }
      const run: Running = {
        uid: pod.metadata.uid!,
        ns,
        name: pod.metadata.name,
        ip,
        longRunning,
        done: false,
        ready: false,
        restarts: 0,
        startedAt: new Date().toISOString(),
        output: '',
        termFile,
      };
      this.pods.set(run.uid, run);
      this.spawn(run, pod, c, env);
      await this.writeRunning(run, pod, false);
    } catch (e) {
      if (longRunning) this.ips.delete(ip);
      throw e;
    }
  }

  private spawn(run: Running, pod: Pod, c: Container, env: Record<string, string>): void {
    const child = spawn(process.execPath, [CLI, ...(c.args ?? [])], {
      env: { PATH: process.env.PATH, ...(this.o.extraEnv ?? {}), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    run.child = child;
    const logFile = join(this.o.dir, 'pods', run.uid, 'output.log');
    const onData = (d: Buffer) => {
      run.output = (run.output + d.toString('utf8')).slice(-16_384);
      try {
        appendFileSync(logFile, d);
      } catch {
        /* ignore */
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('error', (e) => onData(Buffer.from(String(e))));
    this.logLine(`started ${run.ns}/${run.name} (${run.ip}): featherman ${(c.args ?? []).join(' ')}`);
    child.once('exit', (code, signal) => {
      if (run.done) return;
      const exitCode = code ?? (signal ? 128 + 9 : 1);
      if (run.longRunning) {
        // restartPolicy Always: start it again after a short pause
        run.ready = false;
        run.restarts++;
        const last = run.output.trim().split('\n').pop()?.slice(0, 400) ?? '';
        this.logLine(`${run.ns}/${run.name} exited (${exitCode}); restarting. Its last output: ${last}`);
        setTimeout(() => {
          if (run.done || this.stopped) return;
          this.spawn(run, pod, c, env);
          void this.writeRunning(run, pod, false).catch(() => undefined);
        }, 1_000);
        return;
      }
      run.done = true;
      void this.writeTerminated(run, pod, c, exitCode).catch((e: unknown) => this.logLine(`status of ${run.ns}/${run.name}: ${String(e)}`));
    });
  }

  private containerStatus(run: Running, c: Container, state: Record<string, unknown>, ready: boolean) {
    return {
      name: c.name,
      image: 'featherman:e2e',
      imageID: 'featherman:e2e',
      containerID: `process://${run.child?.pid ?? 0}`,
      ready,
      started: !('terminated' in state),
      restartCount: run.restarts,
      state,
    };
  }

  private async writeRunning(run: Running, pod: Pod, ready: boolean): Promise<void> {
    const now = new Date().toISOString();
    const c = pod.spec.containers[0]!;
    const cond = (type: string, status: boolean) => ({
      type,
      status: status ? 'True' : 'False',
      lastProbeTime: null,
      lastTransitionTime: now,
    });
    await this.o.api.ok(
      'PATCH',
      `/api/v1/namespaces/${run.ns}/pods/${run.name}/status`,
      {
        status: {
          phase: 'Running',
          podIP: run.ip,
          podIPs: [{ ip: run.ip }],
          hostIP: '127.0.0.1',
          hostIPs: [{ ip: '127.0.0.1' }],
          startTime: run.startedAt,
          conditions: [cond('PodScheduled', true), cond('Initialized', true), cond('ContainersReady', ready), cond('Ready', ready)],
          containerStatuses: [this.containerStatus(run, c, { running: { startedAt: run.startedAt } }, ready)],
        },
      },
      'application/merge-patch+json',
    );
  }

  private async probe(run: Running, pod: Pod): Promise<void> {
    const c = pod.spec.containers[0]!;
    const get = c.readinessProbe?.httpGet;
    const port =
      typeof get?.port === 'number' ? get.port : (c.ports?.find((p) => p.name === get?.port)?.containerPort ?? c.ports?.[0]?.containerPort);
    if (!get || !port) {
      run.ready = true;
      await this.writeRunning(run, pod, true);
      return;
    }
    try {
      const res = await fetch(`http://${run.ip}:${port}${get.path}`, { signal: AbortSignal.timeout(1_000) });
      if (res.status !== 200) return;
    } catch {
      return;
    }
    run.ready = true;
    this.logLine(`${run.ns}/${run.name} is ready at ${run.ip}:${port}`);
    await this.writeRunning(run, pod, true);
  }

  private async writeTerminated(run: Running, pod: Pod, c: Container, exitCode: number): Promise<void> {
    let message = existsSync(run.termFile) ? readFileSync(run.termFile, 'utf8') : '';
    if (!message.trim() && exitCode !== 0 && c.terminationMessagePolicy === 'FallbackToLogsOnError')
      message = run.output.split('\n').slice(-80).join('\n').slice(-2048);
    const now = new Date().toISOString();
    const cond = (type: string, status: boolean, reason?: string) => ({
      type,
      status: status ? 'True' : 'False',
      lastProbeTime: null,
      lastTransitionTime: now,
      ...(reason ? { reason } : {}),
    });
    const phase = exitCode === 0 ? 'Succeeded' : 'Failed';
    this.logLine(`${run.ns}/${run.name} exited ${exitCode}: ${message.trim().slice(0, 300)}`);
    await this.o.api.ok(
      'PATCH',
      `/api/v1/namespaces/${run.ns}/pods/${run.name}/status`,
      {
        status: {
          phase,
          podIP: run.ip,
          podIPs: [{ ip: run.ip }],
          hostIP: '127.0.0.1',
          startTime: run.startedAt,
          conditions: [
            cond('PodScheduled', true),
            cond('Initialized', true),
            cond('ContainersReady', false, 'PodCompleted'),
            cond('Ready', false, 'PodCompleted'),
          ],
          containerStatuses: [
            this.containerStatus(
              run,
              c,
              {
                terminated: {
                  exitCode,
                  reason: exitCode === 0 ? 'Completed' : 'Error',
                  message,
                  startedAt: run.startedAt,
                  finishedAt: now,
                  containerID: `process://${run.child?.pid ?? 0}`,
                },
              },
              false,
            ),
          ],
        },
      },
      'application/merge-patch+json',
    );
  }

  private async kill(p: Running): Promise<void> {
    p.done = true;
    const child = p.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const ok = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5_000))]);
    if (!ok) {
      child.kill('SIGKILL');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2_000))]);
    }
    this.logLine(`killed ${p.ns}/${p.name}`);
  }

  /** Removes every host directory (volumes and logs). */
  cleanup(): void {
    rmSync(this.o.dir, { recursive: true, force: true });
  }
}
