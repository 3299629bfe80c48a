// The router's side of scaling on demand: each service replica writes how many queries wait for
// a worker of a pool, and when one last found none, into its own annotation on the pool; the pool
// hook reads them all (demand.ts has the format).
import { hostname } from 'node:os';
import { CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { GROUP, VERSION } from '../api/schema.js';
import { DEMAND_STALE_SECONDS, demandKey, encodeDemand, staleDemandKeys } from './demand.js';
import { metrics } from '../metrics.js';
import type { DemandListener, PoolSettings } from './router.js';

interface DemandState {
  pool: PoolSettings;
  queued: number;
  /** When a query last found no ready worker here (epoch ms). */
  fallbackAt?: number;
  /** The count the annotation holds now (0: none, or a fallback time only). */
  sent: number;
  sentAt: number;
  /** Something the annotation does not say yet besides the count (a new fallback time). */
  dirty?: boolean;
  timer?: NodeJS.Timeout;
  /** A write is under way; when it ends it writes again if anything moved meanwhile. */
  writing?: boolean;
  /** Writes failed in a row: the next try waits longer, up to heartbeatMs. */
  failures: number;
}

/**
 * Writes this replica's demand into its annotation on the pool (see demand.ts): at once when a
 * queue starts or a query finds no worker, then at most once per `throttleMs` with the latest
 * count, again every `heartbeatMs` while queries keep waiting (so the report stays fresh). With
 * nothing waiting the report stays only to carry a recent fallback time, and goes once that is
 * DEMAND_STALE_SECONDS old, along with reports that replicas long gone left behind.
 */
export class DemandAnnotations implements DemandListener {
  private readonly custom: CustomObjectsApi;
  private readonly key: string;
  private readonly states = new Map<string, DemandState>();

  constructor(
    kc: KubeConfig,
    replica = process.env.POD_NAME || hostname(),
    private readonly throttleMs = 1000,
    private readonly heartbeatMs = 20_000,
  ) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.key = demandKey(replica);
  }

  private stateOf(pool: PoolSettings): DemandState {
    const id = `${pool.namespace}/${pool.pool}`;
    let s = this.states.get(id);
    if (!s) this.states.set(id, (s = { pool, queued: 0, sent: 0, sentAt: 0, failures: 0 }));
    s.pool = pool;
    return s;
  }

  fellBack(pool: PoolSettings): void {
    const s = this.stateOf(pool);
    s.fallbackAt = Date.now();
    s.dirty = true;
    if (!s.writing) this.schedule(s, 0); // it may be what starts the pool's first worker
  }

  waiting(pool: PoolSettings, queued: number): void {
    const s = this.stateOf(pool);
    s.queued = queued;
    if ((s.queued === s.sent && !s.dirty) || s.writing) return;
    // The first waiting query is told at once; later changes at most once per throttleMs.
    this.schedule(s, s.sent === 0 ? 0 : Math.max(0, s.sentAt + this.throttleMs - Date.now()));
  }

  private schedule(s: DemandState, delayMs: number): void {
    if (s.timer) clearTimeout(s.timer);
    s.timer = setTimeout(() => void this.write(s), delayMs);
    s.timer.unref();
  }

  private async write(s: DemandState): Promise<void> {
    s.timer = undefined;
    s.writing = true;
    s.dirty = false;
    const queued = s.queued;
    const now = Date.now();
    const holdUntil = (s.fallbackAt ?? -Infinity) + DEMAND_STALE_SECONDS * 1000;
    const { namespace, pool: name } = s.pool;
    const target = { group: GROUP, version: VERSION, namespace, plural: 'ducklakepools', name };
    let gone = false;
    try {
      const fellBackAt = s.fallbackAt !== undefined ? new Date(s.fallbackAt) : undefined;
      const report = queued > 0 || now < holdUntil ? encodeDemand(queued, new Date(now), fellBackAt) : null;
      const annotations: Record<string, string | null> = { [this.key]: report };
      if (queued === 0) {
        const current = (await this.custom.getNamespacedCustomObject(target)) as { metadata?: { annotations?: Record<string, string> } };
        for (const key of staleDemandKeys(current.metadata?.annotations, new Date(now))) if (key !== this.key) annotations[key] = null;
      }
      const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
      await this.custom.patchNamespacedCustomObject({ ...target, body: { metadata: { annotations } } }, mergePatch);
      s.sent = queued;
      s.failures = 0;
      metrics.demandReports.inc({ pool: name, namespace, outcome: 'ok' });
    } catch (err) {
      // A deleted pool has nothing to report to; anything else (API server away, a missing
      // permission) is tried again, less and less often.
      metrics.demandReports.inc({ pool: name, namespace, outcome: 'failed' });
      gone = (err as { code?: number }).code === 404;
      s.failures++;
    }
    s.sentAt = Date.now();
    s.writing = false;
    if (gone) this.states.delete(`${namespace}/${name}`);
    else if (s.failures > 0) this.schedule(s, Math.min(this.heartbeatMs, 5 * this.throttleMs * 2 ** (s.failures - 1)));
    else if (s.queued !== s.sent || s.dirty) this.schedule(s, this.throttleMs);
    else if (s.queued > 0) this.schedule(s, this.heartbeatMs);
    else if (s.sentAt < holdUntil) this.schedule(s, holdUntil - s.sentAt);
    else this.states.delete(`${namespace}/${name}`);
  }
}
