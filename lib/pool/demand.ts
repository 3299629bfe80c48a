// Queries waiting in the routers, told to the pool's sync hook through annotations on the
// DuckLakePool. The queue lives in each service replica's memory, but the hook must see all of
// them, and Metacontroller syncs a parent on every change to it: an annotation per replica both
// carries the number and wakes the hook. A report also says when that replica last had to send a
// query to the fallback because the pool had no ready worker: a pool at minSize 0 keeps (or
// starts) one worker for maxIdleTime after that, however short the query was.
import { GROUP, shortHash } from '../k8s/labels.js';

export const DEMAND_PREFIX = `${GROUP}/demand-`;
/** A queue count older than this is from a replica that stopped reporting (crashed, restarted). */
export const DEMAND_FRESH_SECONDS = 60;
/** A report older than this is removed: by its replica, or by the next one that writes. */
export const DEMAND_STALE_SECONDS = 600;

interface Report {
  queued: number;
  at: string;
  fallbackAt?: string;
}

export interface Demand {
  /** Queries waiting in all replicas' routers, from the fresh reports. */
  queued: number;
  /** The latest time any replica found the pool without a ready worker (ISO 8601). */
  fallbackAt?: string;
}

const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

/** One annotation per service replica: its name is hashed to fit an annotation key. */
export const demandKey = (replica: string) => DEMAND_PREFIX + shortHash(replica);

export function encodeDemand(queued: number, now: Date, fallbackAt?: Date): string {
  return JSON.stringify({ queued, at: iso(now), ...(fallbackAt ? { fallbackAt: iso(fallbackAt) } : {}) } satisfies Report);
}

function reports(
  annotations: Record<string, string> | undefined,
  now: Date,
): { key: string; queued: number; ageSeconds: number; fallbackAt?: number }[] {
  const out: { key: string; queued: number; ageSeconds: number; fallbackAt?: number }[] = [];
  const entries = annotations && typeof annotations === 'object' ? Object.entries(annotations) : [];
  for (const [key, value] of entries) {
    if (!key.startsWith(DEMAND_PREFIX)) continue;
    let r: Partial<Report> = {};
    try {
      r = (typeof value === 'string' ? JSON.parse(value) : null) ?? {};
    } catch {
      /* not JSON */
    }
    if (typeof r !== 'object') r = {};
    const at = typeof r.at === 'string' ? Date.parse(r.at) : NaN;
    const fallbackAt = typeof r.fallbackAt === 'string' ? Date.parse(r.fallbackAt) : NaN;
    // Anyone may annotate the pool; a malformed report counts as long stale, never as demand, and
    // no report speaks for the future.
    const ok = Number.isInteger(r.queued) && r.queued! >= 0 && !Number.isNaN(at);
    out.push({
      key,
      queued: ok ? Math.min(r.queued!, 10_000) : 0,
      ageSeconds: ok ? (now.getTime() - at) / 1000 : Infinity,
      ...(ok && !Number.isNaN(fallbackAt) ? { fallbackAt: Math.min(fallbackAt, at, now.getTime()) } : {}),
    });
  }
  return out;
}

export function demandFrom(annotations: Record<string, string> | undefined, now: Date): Demand {
  const all = reports(annotations, now).filter((r) => r.ageSeconds <= DEMAND_STALE_SECONDS);
  const queued = all.filter((r) => r.ageSeconds <= DEMAND_FRESH_SECONDS).reduce((sum, r) => sum + r.queued, 0);
  const latest = Math.max(-Infinity, ...all.map((r) => r.fallbackAt ?? -Infinity));
  return { queued, ...(Number.isFinite(latest) ? { fallbackAt: iso(new Date(latest)) } : {}) };
}

/** Reports left by replicas long gone, to remove along with a write of one's own. */
export function staleDemandKeys(annotations: Record<string, string> | undefined, now: Date): string[] {
  return reports(annotations, now)
    .filter((r) => r.ageSeconds > DEMAND_STALE_SECONDS)
    .map((r) => r.key);
}
