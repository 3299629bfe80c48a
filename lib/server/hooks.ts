// The Metacontroller hook routes: POST /hooks/<plural>/<sync|finalize|customize>, served only on
// the hooks listener. The plumbing (body checks, the clock, settings, errors as 400, the pool
// workers' stats) lives here once; each
// kind is one module in hooks/ registered in HOOKS. Adding a kind means one file there and one line here.
import { isIP } from 'node:net';
import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts';
import type { FastifyPluginAsync } from 'fastify';
import * as backup from '../../hooks/backup.js';
import * as catalog from '../../hooks/catalog.js';
import type { HookContext } from '../../hooks/context.js';
import * as pool from '../../hooks/pool.js';
import * as table from '../../hooks/table.js';
import type { Kind } from '../api/schema.js';
import { validateSpec } from '../api/validate.js';
import { API_VERSION, GROUP } from '../k8s/labels.js';
import { metrics } from '../metrics.js';
import {
  objectsOf,
  type CustomizeRequest,
  type KubeObject,
  type CustomizeResponse,
  type ObjectMap,
  type SyncRequest,
  type SyncResponse,
} from '../k8s/metacontroller.js';
import { settingsFromEnv, type HookSettings } from '../k8s/workloads.js';
import type { WrittenSpec } from '../api/types.js';
import { poolPolicy } from '../pool/scaling.js';
import { fetchWorkerStats, type WorkerStats } from '../pool/stats.js';

type SyncHook = (req: SyncRequest, ctx: HookContext) => SyncResponse;
type CustomizeHook = (req: CustomizeRequest) => CustomizeResponse;

interface KindHooks {
  kind: string;
  sync: SyncHook;
  finalize: SyncHook;
  customize?: CustomizeHook;
}

// The request bodies are checked against the schemas below before a hook sees them; each hook
// module types its own parent more narrowly.
const kind = (name: string, m: { sync: unknown; finalize: unknown; customize?: unknown }): KindHooks => ({
  kind: name,
  sync: m.sync as SyncHook,
  finalize: m.finalize as SyncHook,
  customize: m.customize as CustomizeHook | undefined,
});

export const HOOKS: Record<string, KindHooks> = {
  ducklakecatalogs: kind('DuckLakeCatalog', catalog),
  ducklaketables: kind('DuckLakeTable', table),
  ducklakepools: kind('DuckLakePool', pool),
  ducklakebackups: kind('DuckLakeBackup', backup),
};

/** Kinds whose hooks read their worker pods' GET /stats (through HookContext.workerStats). */
const WORKER_STATS_KINDS = new Set(['DuckLakePool']);
const STATS_TIMEOUT_MS = 300;

type PoolParent = { metadata: { name: string; uid?: string }; spec: Record<string, unknown> };

/**
 * The observed pods this service may ask for stats: Running, with an IP, carrying the pool's worker
 * labels and a controller owner reference to the pool itself (its uid), at most spec.maxSize of
 * them. The request names the addresses, so anything else (a pod of another pool, a made-up IP)
 * is never contacted.
 */
export function statsTargets(parent: PoolParent, children: ObjectMap): KubeObject[] {
  const uid = parent.metadata.uid;
  if (typeof uid !== 'string' || uid === '') return [];
  const spec = parent.spec as unknown as WrittenSpec<'DuckLakePool'>;
  const labels = pool.workerLabels({
    ...parent,
    spec: { ...spec, catalogRef: { ...spec.catalogRef, name: String(spec.catalogRef?.name ?? '') } },
  } as pool.PoolObject);
  const selector = Object.entries(labels).filter(([key]) => SELECTOR_KEYS.has(key));
  const { maxSize } = poolPolicy(spec);
  return objectsOf(children, 'Pod', 'v1')
    .filter((pod) => {
      const status = pod.status as { phase?: unknown; podIP?: unknown } | undefined;
      const owners = Array.isArray(pod.metadata.ownerReferences)
        ? (pod.metadata.ownerReferences as { uid?: unknown; controller?: unknown; kind?: unknown }[])
        : [];
      return (
        !pod.metadata.deletionTimestamp &&
        status?.phase === 'Running' &&
        typeof status.podIP === 'string' &&
        isIP(status.podIP) !== 0 &&
        selector.every(([key, value]) => pod.metadata.labels?.[key] === value) &&
        owners.some((o) => o && o.uid === uid && o.controller === true && o.kind === 'DuckLakePool')
      );
    })
    .sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0))
    .slice(0, maxSize);
}
/** The worker labels the pool's Service selects on (hooks/pool.ts): name, component and pool. */
const SELECTOR_KEYS = new Set(['app.kubernetes.io/name', 'app.kubernetes.io/component', `${GROUP}/pool`]);

/**
 * What each of the pool's worker pods (statsTargets) answers at GET /stats, fetched in parallel
 * within a short timeout. The answers live in the workers, not in this process, so every replica
 * of the service sees the same pool. Pods still starting are asked too: one that lost readiness
 * under load may still be running a query. An answer from another pod (a reused IP) counts as no answer.
 */
export async function collectWorkerStats(
  parent: PoolParent,
  children: ObjectMap,
  timeoutMs = STATS_TIMEOUT_MS,
): Promise<Record<string, WorkerStats | undefined>> {
  const entries = await Promise.all(
    statsTargets(parent, children).map(async (pod) => {
      const ip = (pod.status as { podIP: string }).podIP;
      const annotated = Number(pod.metadata.annotations?.[pool.STATS_PORT_ANNOTATION]);
      const port = Number.isInteger(annotated) && annotated > 0 && annotated < 65536 ? annotated : pool.WORKER_PORT;
      const stats = await fetchWorkerStats(`http://${isIP(ip) === 6 ? `[${ip}]` : ip}:${port}/stats`, timeoutMs);
      return [pod.metadata.name, stats?.pod === pod.metadata.name ? stats : undefined] as const;
    }),
  );
  return Object.fromEntries(entries);
}

const kubeObject = {
  type: 'object',
  required: ['apiVersion', 'kind', 'metadata'],
  properties: {
    apiVersion: { type: 'string' },
    kind: { type: 'string' },
    metadata: {
      type: 'object',
      required: ['name'],
      properties: {
        name: { type: 'string', minLength: 1 },
        namespace: { type: 'string' },
        labels: { type: 'object', additionalProperties: { type: 'string' } },
      },
    },
  },
} as const;
const objectMap = { type: 'object', additionalProperties: { type: 'object', additionalProperties: kubeObject } } as const;
const parent = {
  type: 'object',
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  properties: {
    apiVersion: { type: 'string' },
    kind: { type: 'string' },
    metadata: {
      type: 'object',
      required: ['name'],
      properties: { name: { type: 'string', minLength: 1 }, namespace: { type: 'string' }, generation: { type: 'integer' } },
    },
    spec: { type: 'object' },
    status: { type: ['object', 'null'] },
  },
} as const;
const syncBody = {
  type: 'object',
  required: ['parent'],
  properties: { controller: { type: 'object' }, parent, children: objectMap, related: objectMap, finalizing: { type: 'boolean' } },
} as const;
const customizeBody = { type: 'object', required: ['parent'], properties: { controller: { type: 'object' }, parent } } as const;
const pluralParams = { type: 'object', required: ['plural'], properties: { plural: { type: 'string' } } } as const;

/** A sync request carries every observed child (a full pool: up to 1000 pods) and related object. */
export const HOOK_BODY_LIMIT = 16 * 1024 * 1024;

export interface HooksPluginOptions {
  settings?: HookSettings;
  /** The clock, injectable for tests. */
  now?: () => Date;
}

export const hooksPlugin: FastifyPluginAsync<HooksPluginOptions> = async (plugin, opts) => {
  // Request bodies are typed from their route schemas above (json-schema-to-ts).
  const app = plugin.withTypeProvider<JsonSchemaToTsProvider>();
  const settings = opts.settings ?? settingsFromEnv(process.env);
  const now = opts.now ?? (() => new Date());

  // Every hook call is counted by resource, hook and status code, and timed.
  app.addHook('onResponse', async (request, reply) => {
    const m = /^\/hooks\/([^/]+)\/(sync|finalize|customize)(\?|$)/.exec(request.url);
    if (!m) return;
    // Only served kinds become label values: a made-up path must not add a time series.
    const resource = Object.hasOwn(HOOKS, m[1]!) ? m[1]! : 'unknown';
    metrics.hookRequests.inc({ resource, hook: m[2]!, code: String(reply.statusCode) });
    metrics.hookDuration.observe({ resource, hook: m[2]! }, reply.elapsedTime / 1000);
  });

  // A parent whose spec breaks the API's rules (it bypassed admission) gets a 400: Metacontroller
  // then reports SyncError and applies nothing, rather than acting on a spec we cannot trust.
  const kindOf = (plural: string, parent: { kind: string; apiVersion: string; spec: unknown }) => {
    const hooks = Object.hasOwn(HOOKS, plural) ? HOOKS[plural] : undefined;
    if (!hooks) return { error: `no hooks for ${JSON.stringify(plural)}; served: ${Object.keys(HOOKS).join(', ')}`, code: 404 };
    if (parent.kind !== hooks.kind || parent.apiVersion !== API_VERSION) {
      return { error: `parent: expected ${hooks.kind} ${API_VERSION}, got ${parent.kind} ${parent.apiVersion}`, code: 400 };
    }
    const { problems } = validateSpec(hooks.kind as Kind, parent.spec);
    if (problems.length) return { error: `parent ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`, code: 400 };
    return { hooks };
  };

  for (const hook of ['sync', 'finalize'] as const) {
    app.post(
      `/hooks/:plural/${hook}`,
      { schema: { params: pluralParams, body: syncBody }, bodyLimit: HOOK_BODY_LIMIT },
      async (request, reply) => {
        const body = request.body;
        const found = kindOf(request.params.plural, body.parent);
        if (!found.hooks) return reply.code(found.code).send({ statusCode: found.code, message: found.error });
        const req = { ...body, children: body.children ?? {}, related: body.related ?? {}, finalizing: hook === 'finalize' };
        const workerStats = WORKER_STATS_KINDS.has(found.hooks.kind)
          ? await collectWorkerStats(body.parent as unknown as PoolParent, req.children)
          : undefined;
        const response = found.hooks[hook](req, { now: now(), settings, ...(workerStats ? { workerStats } : {}) });
        return reply.send(response);
      },
    );
  }

  app.post(
    '/hooks/:plural/customize',
    { schema: { params: pluralParams, body: customizeBody }, bodyLimit: HOOK_BODY_LIMIT },
    async (request, reply) => {
      const found = kindOf(request.params.plural, request.body.parent);
      if (!found.hooks) return reply.code(found.code).send({ statusCode: found.code, message: found.error });
      return reply.send(found.hooks.customize ? found.hooks.customize(request.body) : { relatedResources: [] });
    },
  );
};
