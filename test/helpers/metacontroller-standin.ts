// A STAND-IN for Metacontroller, for the e2e suite only, used when the real controller is not beside
// the checkout (../shared/tools/metacontroller/, see test/helpers/metacontroller.ts): Metacontroller
// cannot be built from the Go module proxy, which refuses its module. This small driver follows
// the documented CompositeController contract (metacontroller.github.io: CompositeController API) for
// the controllers in metacontroller/controllers.yaml, against a real API server:
//   - polls the parents (every `intervalMs`, which stands in for "on every change" and resyncs);
//   - adds the finalizer metacontroller.io/compositecontroller-<name> when a finalize hook exists;
//   - calls customize (v2) and gathers the related objects (names / namespace / labelSelector);
//   - lists the children of each childResources type by label controller-uid=<parent uid>, owned by
//     a controller ownerReference to the parent;
//   - POSTs the v2 request (outer keys Kind.group/version, inner keys namespace/name, one entry per
//     declared child type even when empty) to sync or finalize;
//   - finalized: true removes the finalizer (and the reply's children are not applied);
//   - otherwise applies children (label controller-uid, controller ownerReference with
//     blockOwnerDeletion, namespace defaulted) with server-side apply, field manager
//     `metacontroller`, force; existing children are only updated when updateStrategy is InPlace
//     (OnDelete: never); observed children not desired are deleted (Background, UID precondition);
//   - replaces .status through the /status subresource, adding observedGeneration.
// Errors are logged and retried on the next tick. Not implemented: adoption of orphans, rolling
// updates, Recreate, ETags, 429 Retry-After (a 429 is simply retried next tick).
import { request as httpsRequest, Agent } from 'node:https';
import { request as httpRequest } from 'node:http';
import { appendFileSync, readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { parseAllDocuments } from 'yaml';

export interface ApiResponse<T = unknown> {
  status: number;
  body: T;
  text: string;
}

export interface KubeObj {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    finalizers?: string[];
    deletionTimestamp?: string;
    ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean; blockOwnerDeletion?: boolean }[];
    [k: string]: unknown;
  };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  [k: string]: unknown;
}

/** A minimal REST client for the test API server (admin bearer token, the cluster's CA). */
export class KubeApi {
  private readonly agent: Agent;
  constructor(
    readonly server: string,
    readonly token: string,
    ca: string,
  ) {
    this.agent = new Agent({ ca, keepAlive: true, maxSockets: 32 });
  }

  request<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    contentType = 'application/json',
    timeoutMs = 30_000,
  ): Promise<ApiResponse<T>> {
    const url = new URL(path, this.server);
    const payload = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        url,
        {
          method,
          agent: this.agent,
          timeout: timeoutMs,
          headers: {
            authorization: `Bearer ${this.token}`,
            accept: 'application/json',
            ...(payload ? { 'content-type': contentType, 'content-length': payload.length } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = undefined;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              parsed = undefined;
            }
            resolve({ status: res.statusCode ?? 0, body: parsed as T, text });
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out after ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** Like request(), but rejects on a non-2xx answer. */
  async ok<T = unknown>(method: string, path: string, body?: unknown, contentType?: string): Promise<T> {
    const r = await this.request<T>(method, path, body, contentType);
    if (r.status < 200 || r.status > 299) throw new Error(`${method} ${path}: HTTP ${r.status} ${r.text.slice(0, 500)}`);
    return r.body;
  }

  /** Lists a resource; items get apiVersion and kind filled in (list items lack them). */
  async list(apiVersion: string, resource: string, opts: { namespace?: string; labelSelector?: string } = {}): Promise<KubeObj[]> {
    const q = opts.labelSelector ? `?labelSelector=${encodeURIComponent(opts.labelSelector)}` : '';
    const list = await this.ok<{ kind: string; items: KubeObj[] | null }>(
      'GET',
      `${resourcePath(apiVersion, resource, opts.namespace)}${q}`,
    );
    const kind = list.kind.replace(/List$/, '');
    return (list.items ?? []).map((i) => ({ ...i, apiVersion, kind }));
  }

  close(): void {
    this.agent.destroy();
  }
}

/** /api/v1[/namespaces/NS]/RESOURCE or /apis/GROUP/VERSION[/namespaces/NS]/RESOURCE */
export function resourcePath(apiVersion: string, resource: string, namespace?: string, name?: string): string {
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  const ns = namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  return `${base}${ns}/${resource}${name ? `/${encodeURIComponent(name)}` : ''}`;
}

/** The v2 outer key: Kind.version for core, Kind.group/version otherwise. */
export function typeKey(kind: string, apiVersion: string): string {
  return `${kind}.${apiVersion}`;
}

interface Webhook {
  url?: string;
  path?: string;
  timeout?: string;
}
interface Hook {
  version?: string;
  webhook?: Webhook;
}
interface CompositeController {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: {
    generateSelector?: boolean;
    resyncPeriodSeconds?: number;
    parentResource: { apiVersion: string; resource: string };
    childResources: { apiVersion: string; resource: string; updateStrategy?: { method?: string } }[];
    hooks: { sync?: Hook; finalize?: Hook; customize?: Hook };
  };
}
interface RelatedRule {
  apiVersion: string;
  resource: string;
  labelSelector?: LabelSelector;
  namespace?: string;
  names?: string[];
}
interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

export function selectorString(s: LabelSelector | undefined): string {
  const parts = Object.entries(s?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of s?.matchExpressions ?? []) {
    if (e.operator === 'In') parts.push(`${e.key} in (${(e.values ?? []).join(',')})`);
    else if (e.operator === 'NotIn') parts.push(`${e.key} notin (${(e.values ?? []).join(',')})`);
    else if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
  }
  return parts.join(',');
}

function durationMs(d: string | undefined, fallback: number): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(d ?? '');
  if (!m) return fallback;
  return Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 60_000);
}

export interface StandinOptions {
  api: KubeApi;
  /** Base URL of the hooks listener, e.g. http://127.0.0.1:18081; each hook keeps its path. */
  hooksUrl: string;
  /** Path of metacontroller/controllers.yaml. */
  controllersFile: string;
  intervalMs?: number;
  /** Appends log lines here (they are also kept in memory, see recentLog()). */
  logFile?: string;
}

const SYSTEM_METADATA = [
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'managedFields',
  'selfLink',
];

export class MetacontrollerStandin {
  readonly controllers: CompositeController[];
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private running = new Set<Promise<void>>();
  private readonly log: string[] = [];
  private readonly customizeCache = new Map<string, RelatedRule[]>();
  /** Number of hook calls made, by "<controller>/<hook>". */
  readonly calls: Record<string, number> = {};

  constructor(private readonly o: StandinOptions) {
    this.controllers = parseAllDocuments(readFileSync(o.controllersFile, 'utf8'))
      .map((d) => d.toJSON() as CompositeController)
      .filter((c) => c && c.kind === 'CompositeController');
  }

  start(): void {
    const tick = async () => {
      if (this.stopped) return;
      const p = Promise.all(
        this.controllers.map((c) => this.reconcileAll(c).catch((e: unknown) => this.logLine(`${c.metadata.name}: ${String(e)}`))),
      ).then(() => undefined);
      this.running.add(p);
      await p;
      this.running.delete(p);
      if (!this.stopped) this.timer = setTimeout(() => void tick(), this.o.intervalMs ?? 500);
    };
    void tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await Promise.race([Promise.all([...this.running]), new Promise((r) => setTimeout(r, 15_000))]);
  }

  recentLog(lines = 40): string {
    return this.log.slice(-lines).join('\n');
  }

  private logLine(line: string): void {
    const l = `${new Date().toISOString()} ${line}`;
    this.log.push(l);
    if (this.log.length > 500) this.log.splice(0, this.log.length - 500);
    if (this.o.logFile) {
      try {
        appendFileSync(this.o.logFile, l + '\n');
      } catch {
        /* ignore */
      }
    }
  }

  /** The installed hook's path (from url, or service + path) on the service under test. */
  private hookUrl(w: Webhook): string {
    const path = w.url ? new URL(w.url).pathname : w.path;
    if (!path) throw new Error('a webhook without url or path');
    return `${this.o.hooksUrl.replace(/\/$/, '')}${path}`;
  }

  private async callHook<T>(cc: CompositeController, name: 'sync' | 'finalize' | 'customize', body: unknown): Promise<T> {
    const hook = cc.spec.hooks[name]!;
    const url = new URL(this.hookUrl(hook.webhook ?? {}));
    const key = `${cc.metadata.name}/${name}`;
    this.calls[key] = (this.calls[key] ?? 0) + 1;
    const payload = Buffer.from(JSON.stringify(body));
    const timeout = durationMs(hook.webhook?.timeout, 10_000);
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpRequest(
        url,
        { method: 'POST', timeout, headers: { 'content-type': 'application/json', 'content-length': payload.length } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`hook ${url} timed out after ${timeout} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
    if (status !== 200) throw new Error(`${name} hook: unsupported status code: ${status} body: ${text.slice(0, 500)}`);
    const parsed = JSON.parse(text) as Record<string, unknown>;
    // v2 responses are decoded strictly: unknown top-level fields are an error.
    const allowed = name === 'customize' ? ['relatedResources'] : ['status', 'children', 'resyncAfterSeconds', 'finalized'];
    const unknown = Object.keys(parsed).filter((k) => !allowed.includes(k));
    if (unknown.length) throw new Error(`strict validation failed for v2 ${name} response: unknown field ${JSON.stringify(unknown[0])}`);
    return parsed as T;
  }

  private async reconcileAll(cc: CompositeController): Promise<void> {
    const { apiVersion, resource } = cc.spec.parentResource;
    const parents = await this.o.api.list(apiVersion, resource);
    await Promise.all(
      parents.map((p) =>
        this.reconcile(cc, p).catch((e: unknown) => {
          this.logLine(`${cc.metadata.name} ${p.metadata.namespace}/${p.metadata.name}: ${String(e instanceof Error ? e.message : e)}`);
        }),
      ),
    );
  }

  private async reconcile(cc: CompositeController, parent: KubeObj): Promise<void> {
    const api = this.o.api;
    const finalizer = `metacontroller.io/compositecontroller-${cc.metadata.name}`;
    const { apiVersion, resource } = cc.spec.parentResource;
    const ns = parent.metadata.namespace;
    const parentPath = resourcePath(apiVersion, resource, ns, parent.metadata.name);
    const hasFinalizeHook = Boolean(cc.spec.hooks.finalize);
    const deleting = Boolean(parent.metadata.deletionTimestamp);
    const finalizers = parent.metadata.finalizers ?? [];

    if (deleting && !finalizers.includes(finalizer)) return; // nothing of ours left to do; the GC removes children
    if (!deleting && hasFinalizeHook && !finalizers.includes(finalizer)) {
      const r = await api.request<KubeObj>(
        'PATCH',
        parentPath,
        { metadata: { finalizers: [...finalizers, finalizer], resourceVersion: parent.metadata.resourceVersion } },
        'application/merge-patch+json',
      );
      if (r.status !== 200) throw new Error(`adding the finalizer: HTTP ${r.status} ${r.text.slice(0, 300)}`);
      parent = { ...r.body, apiVersion, kind: parent.kind };
    }

    // customize → related
    const related: Record<string, Record<string, KubeObj>> = {};
    if (cc.spec.hooks.customize) {
      const cacheKey = `${cc.metadata.name}/${parent.metadata.uid}/${parent.metadata.generation}`;
      let rules = this.customizeCache.get(cacheKey);
      if (!rules) {
        const res = await this.callHook<{ relatedResources?: RelatedRule[] }>(cc, 'customize', { controller: cc, parent });
        rules = res.relatedResources ?? [];
        this.customizeCache.set(cacheKey, rules);
      }
      for (const rule of rules) {
        if (rule.names && rule.labelSelector) throw new Error('customize: names cannot be combined with labelSelector');
        let items: KubeObj[];
        if (rule.names) {
          items = (await api.list(rule.apiVersion, rule.resource, { namespace: rule.namespace || undefined })).filter((o) =>
            rule.names!.includes(o.metadata.name),
          );
        } else {
          items = await api.list(rule.apiVersion, rule.resource, {
            namespace: rule.namespace || undefined,
            labelSelector: selectorString(rule.labelSelector) || undefined,
          });
        }
        const kind = items[0]?.kind ?? (await this.kindOf(rule.apiVersion, rule.resource));
        const map = (related[typeKey(kind, rule.apiVersion)] ??= {});
        for (const o of items) map[o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name] = o;
      }
    }

    // observed children, per declared type
    const children: Record<string, Record<string, KubeObj>> = {};
    const childKinds = new Map<string, { rule: CompositeController['spec']['childResources'][number]; kind: string }>();
    for (const rule of cc.spec.childResources) {
      const kind = await this.kindOf(rule.apiVersion, rule.resource);
      childKinds.set(typeKey(kind, rule.apiVersion), { rule, kind });
      const items = (
        await api.list(rule.apiVersion, rule.resource, { namespace: ns, labelSelector: `controller-uid=${parent.metadata.uid}` })
      ).filter((o) => o.metadata.ownerReferences?.some((r) => r.controller && r.uid === parent.metadata.uid));
      const map: Record<string, KubeObj> = {};
      for (const o of items) map[`${o.metadata.namespace}/${o.metadata.name}`] = o;
      children[typeKey(kind, rule.apiVersion)] = map;
    }

    const finalizing = deleting && hasFinalizeHook;
    const hookName = finalizing ? 'finalize' : 'sync';
    if (!cc.spec.hooks[hookName]) return;
    const generation = parent.metadata.generation;
    const res = await this.callHook<{
      status?: Record<string, unknown> | null;
      children?: KubeObj[] | null;
      finalized?: boolean;
      resyncAfterSeconds?: number;
    }>(cc, hookName, { controller: cc, parent, children, related, finalizing });

    let manage = !deleting || (finalizers.includes(finalizer) && !finalizers.some((f) => f === 'foregroundDeletion' || f === 'orphan'));
    if (finalizing && res.finalized) {
      const fresh = await api.request<KubeObj>('GET', parentPath);
      if (fresh.status === 200) {
        const left = (fresh.body.metadata.finalizers ?? []).filter((f) => f !== finalizer);
        const r = await api.request(
          'PATCH',
          parentPath,
          { metadata: { finalizers: left, resourceVersion: fresh.body.metadata.resourceVersion } },
          'application/merge-patch+json',
        );
        if (r.status !== 200 && r.status !== 404) throw new Error(`removing the finalizer: HTTP ${r.status} ${r.text.slice(0, 300)}`);
      }
      manage = false; // the parent no longer has our finalizer: the reply's children are not applied
    }

    const errors: string[] = [];
    if (manage) {
      const desired = new Map<string, KubeObj>();
      for (const child of res.children ?? []) {
        if (!child.apiVersion || !child.kind || !child.metadata?.name) {
          errors.push(`a child lacks apiVersion, kind or metadata.name`);
          continue;
        }
        const c: KubeObj = JSON.parse(JSON.stringify(child)) as KubeObj;
        c.metadata.namespace ??= ns;
        if (c.metadata.namespace !== ns) {
          errors.push(`child ${c.kind} ${c.metadata.name}: a namespaced parent can only have children in its own namespace`);
          continue;
        }
        if (cc.spec.generateSelector) c.metadata.labels = { ...(c.metadata.labels ?? {}), 'controller-uid': parent.metadata.uid! };
        c.metadata.ownerReferences = [
          ...(c.metadata.ownerReferences ?? []).filter((r) => !r.controller),
          {
            apiVersion,
            kind: parent.kind!,
            name: parent.metadata.name,
            uid: parent.metadata.uid!,
            controller: true,
            blockOwnerDeletion: true,
          },
        ];
        for (const f of SYSTEM_METADATA) delete c.metadata[f];
        delete c.status;
        desired.set(`${typeKey(c.kind!, c.apiVersion!)} ${c.metadata.namespace}/${c.metadata.name}`, c);
      }
      // delete observed children that are no longer desired
      for (const [key, byName] of Object.entries(children)) {
        const { rule } = childKinds.get(key)!;
        for (const [nsName, obs] of Object.entries(byName)) {
          if (desired.has(`${key} ${nsName}`) || obs.metadata.deletionTimestamp) continue;
          const r = await api.request('DELETE', resourcePath(rule.apiVersion, rule.resource, obs.metadata.namespace, obs.metadata.name), {
            apiVersion: 'v1',
            kind: 'DeleteOptions',
            propagationPolicy: 'Background',
            preconditions: { uid: obs.metadata.uid },
          });
          if (r.status >= 300 && r.status !== 404 && r.status !== 409)
            errors.push(`deleting ${key} ${nsName}: HTTP ${r.status} ${r.text.slice(0, 200)}`);
          else this.logLine(`${cc.metadata.name} ${ns}/${parent.metadata.name}: deleted ${key} ${nsName}`);
        }
      }
      // create, or update in place
      for (const [key, c] of desired) {
        const [typeK] = key.split(' ');
        const declared = childKinds.get(typeK!);
        if (!declared) {
          errors.push(`child type ${typeK} is not in childResources`);
          continue;
        }
        const observed = children[typeK!]?.[`${c.metadata.namespace}/${c.metadata.name}`];
        if (observed && (observed.metadata.deletionTimestamp || (declared.rule.updateStrategy?.method ?? 'OnDelete') !== 'InPlace'))
          continue;
        const where = resourcePath(declared.rule.apiVersion, declared.rule.resource, c.metadata.namespace, c.metadata.name);
        const path = `${where}?fieldManager=metacontroller&force=true`;
        const r = await api.request('PATCH', path, c, 'application/apply-patch+yaml');
        if (r.status >= 300) errors.push(`applying ${key}: HTTP ${r.status} ${r.text.slice(0, 300)}`);
        else if (!observed) this.logLine(`${cc.metadata.name} ${ns}/${parent.metadata.name}: created ${key}`);
      }
    }

    // status, replaced whole, with observedGeneration
    const status = { ...(res.status ?? {}), observedGeneration: generation };
    for (let attempt = 0; attempt < 3; attempt++) {
      const fresh = await api.request<KubeObj>('GET', parentPath);
      if (fresh.status === 404) break;
      if (fresh.status !== 200) {
        errors.push(`reading the parent: HTTP ${fresh.status}`);
        break;
      }
      if (isDeepStrictEqual(fresh.body.status ?? {}, status)) break;
      const r = await api.request('PUT', `${parentPath}/status`, { ...fresh.body, status });
      if (r.status === 409) continue;
      if (r.status !== 200 && r.status !== 404) errors.push(`writing status: HTTP ${r.status} ${r.text.slice(0, 300)}`);
      break;
    }
    if (errors.length) throw new Error(errors.join('; '));
  }

  private readonly kinds = new Map<string, string>();
  /** The Kind served for apiVersion/resource, from discovery. */
  private async kindOf(apiVersion: string, resource: string): Promise<string> {
    const key = `${apiVersion}/${resource}`;
    const known = this.kinds.get(key);
    if (known) return known;
    const disc = await this.o.api.ok<{ resources: { name: string; kind: string }[] }>(
      'GET',
      apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`,
    );
    for (const r of disc.resources) if (!r.name.includes('/')) this.kinds.set(`${apiVersion}/${r.name}`, r.kind);
    const kind = this.kinds.get(key);
    if (!kind) throw new Error(`${resource} is not served at ${apiVersion}`);
    return kind;
  }
}
