// What a warm worker reports at GET /stats, and how the service reads it: a short timeout, no
// throw, and nothing trusted that does not look like stats (a missing answer counts as busy in
// lib/pool/scaling.ts, so a bad one must not count as idle).

export interface WorkerStats {
  pod: string;
  ready: boolean;
  state: 'starting' | 'idle' | 'busy' | 'draining';
  activeQueries: number;
  queriesServed: number;
  startedAt: string;
  lastQueryAt?: string;
  /** Busy fraction (0..1) over the last 60 s. */
  utilization: number;
  snapshotId?: number;
  /** Lake tables answered from in-memory copies. */
  tablesInMemory?: string[];
}

const STATES = new Set(['starting', 'idle', 'busy', 'draining']);
const count = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0;
const time = (v: unknown) => typeof v === 'string' && v.length <= 64 && !Number.isNaN(Date.parse(v));

/** Whether `v` is a WorkerStats body, checked field by field. */
export function isWorkerStats(v: unknown): v is WorkerStats {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const s = v as Record<string, unknown>;
  return (
    typeof s.pod === 'string' &&
    typeof s.ready === 'boolean' &&
    STATES.has(s.state as string) &&
    count(s.activeQueries) &&
    count(s.queriesServed) &&
    time(s.startedAt) &&
    (s.lastQueryAt === undefined || time(s.lastQueryAt)) &&
    typeof s.utilization === 'number' &&
    s.utilization >= 0 &&
    s.utilization <= 1 &&
    (s.snapshotId === undefined || count(s.snapshotId)) &&
    (s.tablesInMemory === undefined || (Array.isArray(s.tablesInMemory) && s.tablesInMemory.every((n) => typeof n === 'string')))
  );
}

/** A stats answer is a few hundred bytes; anything much larger is not one. */
const MAX_STATS_BYTES = 16 * 1024;

/**
 * The worker's stats, or undefined on any failure: timeout, refused connection, non-2xx, a
 * redirect (never followed: the address must stay the pod's own), a body over MAX_STATS_BYTES, not stats.
 */
export async function fetchWorkerStats(url: string, timeoutMs: number): Promise<WorkerStats | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' }, redirect: 'manual' });
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      return undefined;
    }
    const chunks: Uint8Array[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      size += chunk.byteLength;
      if (size > MAX_STATS_BYTES) return undefined; // leaving the loop cancels the stream
      chunks.push(chunk);
    }
    const body: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    return isWorkerStats(body) ? body : undefined;
  } catch {
    return undefined;
  }
}
