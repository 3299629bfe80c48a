// What drives the hooks in the e2e: the real Metacontroller (v4.17.2, run out of cluster against the
// test API server) when .ci/setup test found it beside the checkout, else the stand-in
// (metacontroller-standin.ts). Both read metacontroller/controllers.yaml with the hook URLs pointed
// at the `featherman serve` under test.
import { readFileSync } from 'node:fs';
import { parseAllDocuments, stringify } from 'yaml';
import { Proc, type Cluster, type KubectlResult } from './cluster.js';
import { KubeApi, MetacontrollerStandin } from './metacontroller-standin.js';

export interface HookDriver {
  readonly kind: 'metacontroller' | 'stand-in';
  /** One line for the test output: which controller runs, and why. */
  readonly description: string;
  /** The last lines of its log, for failure messages. */
  recentLog(lines?: number): string;
  stop(): Promise<void>;
}

interface Webhook {
  url?: string;
  service?: unknown;
  path?: string;
  [k: string]: unknown;
}
interface ControllerDoc {
  kind?: string;
  metadata: { name: string };
  spec: { hooks: Record<string, { webhook?: Webhook } | undefined> };
}

/** A hook URL of the installed manifests, pointed at the service under test (same path). */
export function localHookUrl(w: Webhook, hooksUrl: string): string {
  const path = w.url ? new URL(w.url).pathname : w.path;
  if (!path) throw new Error('a webhook without url or path');
  return `${hooksUrl.replace(/\/$/, '')}${path}`;
}

/** metacontroller/controllers.yaml with every webhook rewritten to `url: <hooksUrl><path>`. */
export function localControllers(controllersFile: string, hooksUrl: string): ControllerDoc[] {
  const docs = parseAllDocuments(readFileSync(controllersFile, 'utf8'))
    .map((d) => d.toJSON() as ControllerDoc)
    .filter((d) => d?.kind === 'CompositeController');
  for (const d of docs) {
    for (const hook of Object.values(d.spec.hooks)) {
      if (!hook?.webhook) continue;
      const { service: _service, path: _path, url: _url, ...rest } = hook.webhook;
      hook.webhook = { ...rest, url: localHookUrl(hook.webhook, hooksUrl) };
    }
  }
  return docs;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Metacontroller itself: its CRDs, the project's CompositeControllers, the process. */
export class RealMetacontroller implements HookDriver {
  readonly kind = 'metacontroller';
  private constructor(
    readonly description: string,
    private readonly proc: Proc,
  ) {}

  static async start(o: {
    cluster: Cluster;
    binary: string;
    crds: string;
    version: string;
    hooksUrl: string;
    controllersFile: string;
    logFile: string;
    timeoutMs?: number;
  }): Promise<RealMetacontroller> {
    const must = async (what: string, r: Promise<KubectlResult>) => {
      const res = await r;
      if (res.code !== 0) throw new Error(`${what} failed: ${res.stderr}`);
      return res.stdout;
    };
    await must('applying the Metacontroller CRDs', o.cluster.kubectl(['apply', '--server-side', '-f', o.crds]));
    await must(
      'waiting for the Metacontroller CRDs',
      o.cluster.kubectl([
        'wait',
        '--for=condition=Established',
        '--timeout=60s',
        'crd/compositecontrollers.metacontroller.k8s.io',
        'crd/decoratorcontrollers.metacontroller.k8s.io',
        'crd/controllerrevisions.metacontroller.k8s.io',
      ]),
    );
    const controllers = localControllers(o.controllersFile, o.hooksUrl);
    await must(
      'applying the CompositeControllers',
      o.cluster.kubectl(['apply', '-f', '-'], controllers.map((c) => stringify(c)).join('---\n')),
    );
    // Out of cluster, as its README shows; discovery every 2 s picks up CRDs applied later quickly;
    // no metrics or health listener (nothing to collide on). Level 4 logs every sync it starts.
    const proc = new Proc(
      'metacontroller',
      o.binary,
      [
        `--kubeconfig=${o.cluster.kubeconfig}`,
        '--discovery-interval=2s',
        '--metrics-address=0',
        '--health-probe-bind-address=0',
        '--zap-log-level=4',
      ],
      o.logFile,
    );
    const mc = new RealMetacontroller(`the real Metacontroller ${o.version} (${o.binary})`, proc);
    // Started once it logs "Starting CompositeController" for each of ours (it then waits for its
    // caches, a moment later).
    const deadline = Date.now() + (o.timeoutMs ?? 60_000);
    const names = controllers.map((c) => c.metadata.name);
    for (;;) {
      if (!proc.running) throw new Error(`metacontroller exited (${proc.child.exitCode ?? proc.child.signalCode}):\n${proc.tail(30)}`);
      let log = '';
      try {
        log = readFileSync(o.logFile, 'utf8');
      } catch {
        /* not written yet */
      }
      if (names.every((n) => mc.startedLine(log, n))) break;
      if (Date.now() > deadline) {
        await proc.stop();
        throw new Error(`metacontroller did not start ${names.join(', ')} in time:\n${proc.tail(30)}`);
      }
      await sleep(200);
    }
    return mc;
  }

  private startedLine(log: string, name: string): boolean {
    return log.split('\n').some((l) => l.includes('Starting CompositeController') && l.includes(name));
  }

  recentLog(lines = 30): string {
    return this.proc
      .tail(lines)
      .split('\n')
      .map((l) => (l.length > 600 ? `${l.slice(0, 600)}…` : l))
      .join('\n');
  }

  stop(): Promise<void> {
    return this.proc.stop();
  }
}

/** The stand-in, when there is no Metacontroller binary. */
export class StandinDriver implements HookDriver {
  readonly kind = 'stand-in';
  private readonly standin: MetacontrollerStandin;
  constructor(
    readonly description: string,
    o: { api: KubeApi; hooksUrl: string; controllersFile: string; intervalMs: number; logFile: string },
  ) {
    this.standin = new MetacontrollerStandin(o);
    this.standin.start();
  }

  recentLog(lines = 30): string {
    return this.standin.recentLog(lines);
  }
  stop(): Promise<void> {
    return this.standin.stop();
  }
}
