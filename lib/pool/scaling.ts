// How big a DuckLakePool should be, and which workers go: pure functions of the spec, the observed
// workers (their pods plus what each answered at GET /stats), what the last sync remembered in
// .status, and the clock. Nothing here lives in one process's memory, so every replica of the
// service computes the same answer from the same request.
//
// The rules:
//  - Demand. Each worker contributes max(utilization, activeQueries): the 60 s busy fraction is
//    smooth (a burst of short queries does not flap the size) and the in-flight count reacts at
//    once (a worker running a query is fully busy now, whatever its last minute looked like). A
//    Ready worker whose stats are missing counts as fully busy: we cannot see it, so we neither
//    count it as spare capacity nor delete it. A worker that is not Ready yet has no load; it
//    counts toward the size (it is capacity on its way), never toward demand, or every pod
//    being started would ask for one more. Each query waiting in a router (for a free worker,
//    or on the fallback Job because the pool has none) adds one, so a queue grows the pool before
//    its workers' stats show it. And a query that found no ready worker within the last
//    maxIdleTime asks for at least one: a pool at minSize 0 wakes on its first query, however
//    short, and goes back to zero once nothing has asked for maxIdleTime.
//  - Size. ceil(demand / targetUtilization), clamped to [minSize, maxSize]. Going up: at most
//    scaleUpRate more per scaleInterval (since status.lastScaleTime). Going down: only after the
//    lower size has been wanted continuously for the stabilisation window, max(2 × scaleInterval,
//    60 s) (status.scaleDownSince; any sync that wants as many or more resets it), to the highest
//    size wanted since then (status.scaleDownTarget), at most scaleDownRate fewer per scaleInterval.
//    Workers idle past maxIdleTime may leave without waiting for the window, but never below what
//    the current load needs or below minSize.
//  - Lifecycle. A worker past maxLifetime, past maxQueries, built from an older pod template, or
//    draining itself is retired with a surge: its replacement is created first (at most
//    scaleUpRate retirements at a time, oldest first), and it is deleted only once idle and once
//    enough other workers are Ready to hold the desired size without it.
//  - Safety. A busy worker (activeQueries > 0, state busy, or Ready with unknown stats) is never
//    deleted: not to scale down, not to recycle, not when the pool is over maxSize. Ready workers
//    are deleted only while at least the desired number of Ready workers remain. Failed pods are
//    deleted and replaced at once; restoring the desired size is not rate limited.
import { SPEC_DEFAULTS, withDefaults } from '../api/defaults.js';
import { parseDuration } from '../api/duration.js';
import { poolSpec } from '../api/schema.js';
import type { PoolSpec, WrittenSpec } from '../api/types.js';
import type { WorkerStats } from './stats.js';

/** The spec's scaling settings with the API's defaults filled in, durations in seconds. */
export interface PoolPolicy {
  minSize: number;
  maxSize: number;
  targetUtilization: number;
  scaleUpRate: number;
  scaleDownRate: number;
  scaleIntervalSeconds: number;
  maxIdleSeconds: number;
  maxLifetimeSeconds: number;
  maxQueries: number;
  maxQuerySeconds: number;
}

export function poolPolicy(spec: WrittenSpec<'DuckLakePool'>): PoolPolicy {
  // The defaults come from the one schema (lib/api/schema.ts), as the API server applies them; a
  // value the schema would refuse (a spec that bypassed admission) falls back on the default too.
  const s = withDefaults(poolSpec, spec) as PoolSpec;
  const d = SPEC_DEFAULTS.pool;
  const seconds = (text: string | undefined, fallback: string) => parseDuration(text ?? '') ?? parseDuration(fallback)!;
  const whole = (n: unknown, fallback: number, least: number) =>
    typeof n === 'number' && Number.isFinite(n) ? Math.max(least, Math.floor(n)) : fallback;
  const minSize = whole(s.minSize, d.minSize, 0);
  const target =
    typeof s.targetUtilization === 'number' && s.targetUtilization > 0 && s.targetUtilization <= 1
      ? s.targetUtilization
      : d.targetUtilization;
  return {
    minSize,
    maxSize: Math.max(minSize, whole(s.maxSize, d.maxSize, 1)),
    targetUtilization: target,
    scaleUpRate: whole(s.scaleUpRate, d.scaleUpRate, 1),
    scaleDownRate: whole(s.scaleDownRate, d.scaleDownRate, 1),
    scaleIntervalSeconds: Math.max(1, seconds(s.scaleInterval, d.scaleInterval)),
    maxIdleSeconds: seconds(s.maxIdleTime, d.maxIdleTime),
    maxLifetimeSeconds: seconds(s.maxLifetime, d.maxLifetime),
    maxQueries: whole(s.maxQueries, d.maxQueries, 1),
    maxQuerySeconds: seconds(s.maxQueryDuration, d.maxQueryDuration),
  };
}

/** What the pool knows of a pod: 'creating' was asked for in an earlier sync but is not observed yet. */
export type WorkerPhase = 'creating' | 'starting' | 'ready' | 'failed' | 'terminating';

export interface WorkerObservation {
  name: string;
  phase: WorkerPhase;
  /** When the pod was created (for 'creating': when it was asked for), ISO 8601. */
  createdAt: string;
  /** Built from an older pod template than the spec gives now. */
  outdated?: boolean;
  stats?: WorkerStats;
}

/** What the routers report (lib/pool/demand.ts). */
export interface RouterDemand {
  /** Queries waiting in the routers. */
  queued?: number;
  /** When a query last found the pool without a ready worker, ISO 8601. */
  fallbackAt?: string;
}

/** What a sync leaves in .status for the next one. */
export interface ScalingMemory {
  desiredSize?: number;
  lastScaleTime?: string;
  scaleDownSince?: string;
  scaleDownTarget?: number;
}

export type PodState = 'Creating' | 'Starting' | 'Idle' | 'Busy' | 'Draining' | 'Failed' | 'Terminating';

export interface PodDecision {
  name: string;
  state: PodState;
  keep: boolean;
  reason: string;
}

export interface ScalingDecision {
  /** Existing (or still being created) pods to keep, by name. */
  keep: string[];
  /** New pods to create. */
  create: number;
  /** Every observed pod with its state, whether it stays, and why. */
  pods: PodDecision[];
  /** The size the pool is moving to now (after rate limits and stabilisation). */
  desiredSize: number;
  /** The size the current load asks for (clamped, before rate limits and stabilisation). */
  loadSize: number;
  /** Busy workers' worth of demand (see the rules above). */
  demand: number;
  /** Of that demand, queries waiting in the routers. */
  queued: number;
  memory: ScalingMemory;
  summary: {
    currentSize: number;
    readyPods: number;
    idlePods: number;
    busyPods: number;
    startingPods: number;
    retiringPods: number;
    unknownPods: number;
  };
  /** Why the size is what it is, in words, for the status message. */
  notes: string[];
}

/** A duration for messages: 45s, 6m30s, 1h0m. */
export function formatSeconds(total: number): string {
  const s = Math.max(0, Math.round(total));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ''}`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

const isLive = (w: WorkerObservation) => w.phase === 'creating' || w.phase === 'starting' || w.phase === 'ready';

/** Running a query now, or Ready and not telling: either way it must not be deleted. */
export function isBusy(w: WorkerObservation): boolean {
  if (w.stats) return w.stats.activeQueries > 0 || w.stats.state === 'busy';
  return w.phase === 'ready';
}

/** Busy workers' worth of demand from one worker. */
export function demandOf(w: WorkerObservation): number {
  if (!isLive(w)) return 0;
  if (!w.stats) return w.phase === 'ready' ? 1 : 0;
  return Math.max(w.stats.utilization, w.stats.activeQueries, w.stats.state === 'busy' ? 1 : 0);
}

/** The stabilisation window against flapping. */
export const stabilisationSeconds = (p: PoolPolicy) => Math.max(2 * p.scaleIntervalSeconds, 60);

export function decide(
  policy: PoolPolicy,
  workers: WorkerObservation[],
  memory: ScalingMemory,
  now: Date,
  routers: RouterDemand = {},
): ScalingDecision {
  const nowMs = now.getTime();
  const nowIso = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  const ageOf = (iso: string | undefined) => {
    const ms = iso ? Date.parse(iso) : NaN;
    return Number.isNaN(ms) ? 0 : Math.max(0, (nowMs - ms) / 1000);
  };
  const clamp = (n: number) => Math.min(policy.maxSize, Math.max(policy.minSize, n));
  const byName = (a: WorkerObservation, b: WorkerObservation) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  const byAge = (a: WorkerObservation, b: WorkerObservation) => ageOf(b.createdAt) - ageOf(a.createdAt) || byName(a, b);
  const idleSeconds = (w: WorkerObservation) => (w.stats ? ageOf(w.stats.lastQueryAt ?? w.stats.startedAt) : 0);
  const idleExpired = (w: WorkerObservation) => w.phase === 'ready' && !!w.stats && !isBusy(w) && idleSeconds(w) >= policy.maxIdleSeconds;

  const sorted = [...workers].sort(byName);
  const live = sorted.filter(isLive);
  const notes: string[] = [];
  const decisions = new Map<string, PodDecision>();
  const set = (w: WorkerObservation, state: PodState, keep: boolean, reason: string) =>
    decisions.set(w.name, { name: w.name, state, keep, reason });

  // Demand and the size the load asks for.
  const waiting = Number.isInteger(routers.queued) && routers.queued! > 0 ? routers.queued! : 0;
  const demand = Math.round((live.reduce((sum, w) => sum + demandOf(w), 0) + waiting) * 100) / 100;
  const woken = routers.fallbackAt !== undefined && ageOf(routers.fallbackAt) < policy.maxIdleSeconds;
  const loadSize = clamp(Math.max(Math.ceil(demand / policy.targetUtilization - 1e-9), woken ? 1 : 0));
  if (woken && demand === 0)
    notes.push(
      `a query found no ready worker at ${routers.fallbackAt}: ` +
        `one worker stays wanted for maxIdleTime ${formatSeconds(policy.maxIdleSeconds)}`,
    );

  // Retirements, oldest first, at most scaleUpRate at a time (workers that drain themselves always).
  const dueReason = (w: WorkerObservation): string | undefined => {
    if (w.stats?.state === 'draining') return 'the worker is draining';
    if (w.outdated) return 'its pod template is out of date';
    if (ageOf(w.createdAt) >= policy.maxLifetimeSeconds) return `it reached maxLifetime (${formatSeconds(policy.maxLifetimeSeconds)})`;
    if (w.stats && w.stats.queriesServed >= policy.maxQueries)
      return `it served ${w.stats.queriesServed} queries (maxQueries ${policy.maxQueries})`;
    return undefined;
  };
  const draining = (w: WorkerObservation) => w.stats?.state === 'draining';
  const due = live
    .map((w) => ({ w, why: dueReason(w) }))
    .filter((d): d is { w: WorkerObservation; why: string } => d.why !== undefined)
    .sort((a, b) => Number(draining(b.w)) - Number(draining(a.w)) || byAge(a.w, b.w));
  const retiring = new Map(due.filter((d, i) => draining(d.w) || i < policy.scaleUpRate).map((d) => [d.w.name, d.why]));
  const fresh = live.filter((w) => !retiring.has(w.name));
  const size = fresh.length;

  // The target size: rate limits and the stabilisation window.
  const previous = memory.desiredSize;
  const base = clamp(typeof previous === 'number' && previous >= 0 ? previous : size);
  const sinceScale = memory.lastScaleTime ? ageOf(memory.lastScaleTime) : Infinity;
  const rateAllows = sinceScale >= policy.scaleIntervalSeconds;
  // Messages name instants, not durations, so the status stays the same from one sync to the next.
  const waitText = `scaleInterval ${formatSeconds(policy.scaleIntervalSeconds)} after the last change at ${memory.lastScaleTime}`;
  let target = base;
  let scaleDownSince: string | undefined;
  let scaleDownTarget: number | undefined;
  const why = `demand ${demand}${waiting ? ` (${waiting} queued in the routers)` : ''} at targetUtilization ${policy.targetUtilization}`;
  if (loadSize > base) {
    if (rateAllows) {
      target = Math.min(loadSize, base + policy.scaleUpRate);
      notes.push(`scaling up from ${base} to ${target} workers (${why} asks for ${loadSize})`);
    } else {
      notes.push(`${why} asks for ${loadSize} workers; scaling up waits for ${waitText}`);
    }
  } else if (loadSize < base) {
    const remembered =
      typeof memory.scaleDownTarget === 'number' &&
      memory.scaleDownTarget < base &&
      memory.scaleDownSince &&
      !Number.isNaN(Date.parse(memory.scaleDownSince));
    scaleDownSince = remembered ? memory.scaleDownSince! : nowIso;
    const highest = remembered ? Math.max(memory.scaleDownTarget!, loadSize) : loadSize;
    const window = stabilisationSeconds(policy);
    const held = ageOf(scaleDownSince);
    const expired = fresh.filter(idleExpired).length;
    if (rateAllows && held >= window) {
      target = Math.max(highest, base - policy.scaleDownRate);
      notes.push(`scaling down from ${base} to ${target} workers (at most ${highest} wanted since ${scaleDownSince}; ${why})`);
    } else if (rateAllows && expired > 0) {
      target = Math.max(loadSize, base - Math.min(policy.scaleDownRate, expired));
      notes.push(
        `scaling down from ${base} to ${target} workers (${expired} idle past maxIdleTime ${formatSeconds(policy.maxIdleSeconds)})`,
      );
    } else {
      notes.push(
        `${why} asks for ${loadSize} workers; scaling down waits for ` +
          (held < window ? `the ${formatSeconds(window)} stabilisation window (fewer wanted since ${scaleDownSince})` : waitText),
      );
    }
    // After a step the window has held and goes on holding; the highest wish restarts from now.
    scaleDownTarget = target < base ? loadSize : highest;
  }
  target = clamp(target);
  const lastScaleTime = target !== previous ? nowIso : memory.lastScaleTime;

  // Which pods go. Ready pods leave only while at least `target` Ready pods remain.
  const readyPods = live.filter((w) => w.phase === 'ready').length;
  let readyBudget = Math.max(0, readyPods - target);
  const create = Math.max(0, target - size);

  for (const w of sorted) {
    if (w.phase === 'failed') set(w, 'Failed', false, 'the pod failed; it is replaced');
    if (w.phase === 'terminating') set(w, 'Terminating', false, 'the pod is being deleted');
  }
  for (const d of due) {
    const w = d.w;
    if (!retiring.has(w.name)) continue;
    if (isBusy(w)) set(w, 'Draining', true, `retiring (${d.why}): kept until its queries finish`);
    else if (w.phase !== 'ready') set(w, 'Terminating', false, `retiring (${d.why}): not Ready, replaced`);
    else if (readyBudget > 0) {
      readyBudget--;
      set(w, 'Terminating', false, `retired (${d.why}): its replacement is Ready`);
    } else set(w, 'Draining', true, `retiring (${d.why}): waiting for a Ready replacement`);
  }
  // Over the target: pods not Ready yet first (nothing warm is lost), then the longest idle.
  let excess = Math.max(0, size - target);
  const rank = (w: WorkerObservation) => (w.phase === 'creating' ? 0 : w.phase === 'starting' ? 1 : 2);
  const candidates = fresh.filter((w) => !isBusy(w)).sort((a, b) => rank(a) - rank(b) || idleSeconds(b) - idleSeconds(a) || byAge(a, b));
  for (const w of candidates) {
    if (excess === 0) break;
    if (w.phase === 'ready') {
      if (readyBudget === 0) continue;
      readyBudget--;
    }
    excess--;
    const reason = idleExpired(w)
      ? `idle for ${formatSeconds(idleSeconds(w))} (maxIdleTime ${formatSeconds(policy.maxIdleSeconds)}); the pool scales down to ${target}`
      : `${w.phase === 'ready' ? 'idle' : 'not Ready yet'}; the pool scales down to ${target}`;
    set(w, 'Terminating', false, reason);
  }
  if (excess > 0) notes.push(`${excess} more worker${excess === 1 ? '' : 's'} than wanted, kept while busy`);

  for (const w of fresh) {
    if (decisions.has(w.name)) continue;
    const s = w.stats;
    if (w.phase === 'creating') set(w, 'Creating', true, 'asked for, not observed yet');
    else if (isBusy(w) && !s) set(w, 'Busy', true, 'Ready but its stats are unavailable: treated as busy');
    else if (isBusy(w)) set(w, 'Busy', true, `running ${s!.activeQueries} ${s!.activeQueries === 1 ? 'query' : 'queries'}`);
    else if (w.phase === 'starting') set(w, 'Starting', true, 'not Ready yet');
    else set(w, 'Idle', true, `idle for ${formatSeconds(idleSeconds(w))}`);
  }

  const pods = sorted.map((w) => decisions.get(w.name)!);
  const busy = live.filter(isBusy);
  const memoryOut: ScalingMemory = {
    desiredSize: target,
    ...(lastScaleTime ? { lastScaleTime } : {}),
    ...(scaleDownSince ? { scaleDownSince, scaleDownTarget } : {}),
  };
  return {
    keep: pods.filter((p) => p.keep).map((p) => p.name),
    create,
    pods,
    desiredSize: target,
    loadSize,
    demand,
    queued: waiting,
    memory: memoryOut,
    summary: {
      currentSize: live.filter((w) => w.phase !== 'creating').length,
      readyPods,
      idlePods: live.filter((w) => w.phase === 'ready' && !isBusy(w)).length,
      busyPods: busy.length,
      startingPods: live.filter((w) => w.phase !== 'ready').length,
      retiringPods: retiring.size,
      unknownPods: live.filter((w) => w.phase === 'ready' && !w.stats).length,
    },
    notes,
  };
}
