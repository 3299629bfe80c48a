// Kubernetes Events on our objects (`kubectl describe dlc/dlt/dlp/dlb` shows them), told from the
// changes the watch cache sees: a Job of the object started, succeeded or failed, a backup or
// maintenance run finished, a table was dropped, a pool scaled or lost a worker.
// Every replica sees the same changes, so each Event's name is derived from the transition itself
// (the object's uid, the reason and a key of that transition): the first replica to create it wins
// and the others get 409 AlreadyExists, which counts as done. Messages pass through redact().
import { hostname } from 'node:os';
import { CoreV1Api, type CoreV1Event, type KubeConfig } from '@kubernetes/client-node';
import { redact } from '../redact.js';
import { API_VERSION, GROUP, labelValue, shortHash } from './labels.js';
import { jobFailureReason, jobResults } from './job-status.js';
import type { KubeObject } from './metacontroller.js';
import { jobFinishedAt, jobOutcome, operationOf } from './object-metrics.js';
import type { Change, Resource, WatchCache } from './watch-cache.js';

/** Transitions older than this, seen by a (re)list rather than as they happen, are not announced. */
export const ANNOUNCE_WINDOW_SECONDS = 300;
export const MAX_MESSAGE = 512;

export interface EventSpec {
  namespace: string;
  involved: { apiVersion: string; kind: string; name: string; uid: string };
  reason: string;
  type: 'Normal' | 'Warning';
  message: string;
  /** What makes this transition unique for its object (with the reason). */
  key: string;
  /** When it happened (RFC 3339). */
  time: string;
}

/** What transitions() may look up besides the change: the cache's other objects. */
export interface Lookup {
  list(resource: Resource): KubeObject[];
}

type Json = Record<string, unknown>;
const rec = (v: unknown): Json => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {});
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const KIND_RESOURCE: Record<string, Resource> = {
  DuckLakeCatalog: 'catalogs',
  DuckLakeTable: 'tables',
  DuckLakePool: 'pools',
  DuckLakeBackup: 'backups',
};

/** One line, no secrets, bounded. */
export function cleanMessage(text: string): string {
  const line = redact(text).replace(/\s+/g, ' ').trim();
  return line.length > MAX_MESSAGE ? `${line.slice(0, MAX_MESSAGE - 1)}…` : line;
}

/** A deterministic Event name: the object's name (shortened) and a hash of the transition. */
export function eventName(spec: EventSpec): string {
  const base = spec.involved.name.length > 200 ? spec.involved.name.slice(0, 200).replace(/[-.]+$/, '') : spec.involved.name;
  return `${base}.${shortHash(`${spec.involved.kind}/${spec.involved.uid}/${spec.reason}/${spec.key}`, 16)}`;
}

const ref = (o: KubeObject) => ({ apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, uid: o.metadata.uid ?? '' });

/** The object of ours a Job or pod belongs to: its owner when that is one of our kinds, else by its labels. */
export function parentOf(child: KubeObject, lookup: Lookup): KubeObject | undefined {
  const ns = child.metadata.namespace;
  const refs = (Array.isArray(child.metadata.ownerReferences) ? child.metadata.ownerReferences : []).map(rec);
  for (const r of refs) {
    const resource = KIND_RESOURCE[String(r.kind)];
    if (resource && String(r.apiVersion ?? '').startsWith(`${GROUP}/`)) {
      const found = lookup.list(resource).find((o) => o.metadata.namespace === ns && o.metadata.uid === r.uid);
      if (found) return found;
      if (str(r.name) && str(r.uid))
        return { apiVersion: API_VERSION, kind: String(r.kind), metadata: { name: String(r.name), namespace: ns, uid: String(r.uid) } };
    }
  }
  const labels = child.metadata.labels ?? {};
  const byLabel = (resource: Resource, label: string) => {
    const value = labels[`${GROUP}/${label}`];
    return value ? lookup.list(resource).find((o) => o.metadata.namespace === ns && labelValue(o.metadata.name) === value) : undefined;
  };
  return byLabel('backups', 'backup') ?? byLabel('tables', 'table') ?? byLabel('pools', 'pool') ?? byLabel('catalogs', 'catalog');
}

const OPERATION_WORDS: Record<string, string> = {
  init: 'catalog init',
  restore: 'restore',
  apply: 'table apply',
  drop: 'table drop',
  backup: 'backup',
  maintain: 'maintenance',
  backup_delete: 'backup delete',
  query: 'query',
};

function jobTransitions(change: Change, lookup: Lookup): EventSpec[] {
  const job = change.object;
  const operation = operationOf(job);
  if (!operation || change.type === 'deleted') return [];
  const parent = parentOf(job, lookup);
  if (!parent?.metadata.uid) return [];
  const out: EventSpec[] = [];
  const base = { namespace: job.metadata.namespace ?? '', involved: ref(parent) };
  const uid = job.metadata.uid ?? job.metadata.name;
  const what = `${OPERATION_WORDS[operation]} job ${job.metadata.name}`;
  const outcome = jobOutcome(job);
  const before = change.old ? jobOutcome(change.old) : undefined;
  // Query Jobs are the router's cold path, one per query: only their failures are worth an Event.
  if (change.type === 'added' && !outcome && operation !== 'query') {
    out.push({
      ...base,
      reason: 'JobStarted',
      type: 'Normal',
      message: `${what} started`,
      key: `${uid}:started`,
      time: str(rec(job.status).startTime) ?? job.metadata.creationTimestamp ?? '',
    });
  }
  if (outcome && !before) {
    const finished = jobFinishedAt(job);
    const time = finished !== undefined ? new Date(finished * 1000).toISOString() : '';
    if (outcome === 'succeeded') {
      if (operation !== 'query')
        out.push({ ...base, reason: 'JobSucceeded', type: 'Normal', message: `${what} succeeded`, key: `${uid}:succeeded`, time });
      if (operation === 'drop')
        out.push({
          ...base,
          reason: 'TableDropped',
          type: 'Normal',
          message: `the table was dropped from the lake by job ${job.metadata.name}`,
          key: `${uid}:dropped`,
          time,
        });
    } else {
      const failed = jobResults(
        lookup.list('pods').filter((p) => p.metadata.namespace === job.metadata.namespace),
        job.metadata.name,
      ).find((r) => !r.ok);
      const why =
        failed?.error ??
        (failed?.exitCode !== undefined ? `exit code ${failed.exitCode}` : undefined) ??
        jobFailureReason(job) ??
        'no reason given';
      out.push({
        ...base,
        reason: 'JobFailed',
        type: 'Warning',
        message: cleanMessage(`${what} failed: ${why}`),
        key: `${uid}:failed`,
        time,
      });
    }
  }
  return out;
}

/** A lastBackup/lastMaintenance run's identity: the finish time of the run it describes. */
const runKey = (run: Json) =>
  run.outcome === 'Failed'
    ? `failed:${str(run.attemptTime) ?? ''}:${str(run.message) ?? ''}`
    : `ok:${str(run.time) ?? ''}:${str(run.name) ?? ''}`;

function catalogTransitions(change: Change): EventSpec[] {
  if (change.type === 'deleted') return [];
  const c = change.object;
  const out: EventSpec[] = [];
  const base = { namespace: c.metadata.namespace ?? '', involved: ref(c) };
  const b = rec(rec(c.status).lastBackup);
  const oldB = rec(rec(change.old?.status).lastBackup);
  if (Object.keys(b).length && runKey(b) !== runKey(oldB)) {
    if (b.outcome === 'Failed') {
      out.push({
        ...base,
        reason: 'BackupFailed',
        type: 'Warning',
        message: cleanMessage(`backup failed: ${str(b.message) ?? 'no reason given'}`),
        key: runKey(b),
        time: str(b.attemptTime) ?? '',
      });
    } else if (str(b.time)) {
      const figures = [
        b.snapshotId !== undefined ? `snapshot ${String(b.snapshotId)}` : '',
        typeof b.bytes === 'number' ? `${b.bytes} bytes` : '',
        typeof b.durationSeconds === 'number' ? `in ${b.durationSeconds}s` : '',
      ]
        .filter(Boolean)
        .join(', ');
      out.push({
        ...base,
        reason: 'BackupTaken',
        type: 'Normal',
        message: cleanMessage(`backup ${str(b.name) ?? ''} taken${figures ? `: ${figures}` : ''}`),
        key: runKey(b),
        time: str(b.time)!,
      });
    }
  }
  const m = rec(rec(c.status).lastMaintenance);
  const oldM = rec(rec(change.old?.status).lastMaintenance);
  if (Object.keys(m).length && runKey(m) !== runKey(oldM)) {
    if (m.outcome === 'Failed') {
      out.push({
        ...base,
        reason: 'MaintenanceFailed',
        type: 'Warning',
        message: cleanMessage(`maintenance failed: ${str(m.message) ?? 'no reason given'}`),
        key: runKey(m),
        time: str(m.attemptTime) ?? '',
      });
    } else if (str(m.time)) {
      const figures = ['filesMerged', 'filesDeleted', 'bytesReclaimed', 'snapshotsExpired']
        .filter((k) => typeof m[k] === 'number')
        .map((k) => `${k} ${String(m[k])}`)
        .join(', ');
      out.push({
        ...base,
        reason: 'MaintenanceDone',
        type: 'Normal',
        message: cleanMessage(`maintenance done${figures ? `: ${figures}` : ''}`),
        key: runKey(m),
        time: str(m.time)!,
      });
    }
  }
  return out;
}

function backupTransitions(change: Change): EventSpec[] {
  if (change.type === 'deleted') return [];
  const b = change.object;
  const s = rec(b.status);
  const phase = str(s.phase);
  if (phase === str(rec(change.old?.status).phase) || (phase !== 'Completed' && phase !== 'Failed')) return [];
  const base = { namespace: b.metadata.namespace ?? '', involved: ref(b), key: `${b.metadata.uid ?? b.metadata.name}:${phase}` };
  if (phase === 'Completed') {
    return [
      {
        ...base,
        reason: 'BackupTaken',
        type: 'Normal',
        message: cleanMessage(
          `backup ${str(s.backupName) ?? ''} taken${s.snapshotId !== undefined ? `: snapshot ${String(s.snapshotId)}` : ''}`,
        ),
        time: str(s.completionTime) ?? '',
      },
    ];
  }
  return [
    {
      ...base,
      reason: 'BackupFailed',
      type: 'Warning',
      message: cleanMessage(`backup failed: ${str(s.message) ?? 'no reason given'}`),
      time: '',
    },
  ];
}

function poolTransitions(change: Change): EventSpec[] {
  if (change.type !== 'modified' || !change.old) return [];
  const p = change.object;
  const now = rec(p.status).desiredSize;
  const before = rec(change.old.status).desiredSize;
  if (typeof now !== 'number' || typeof before !== 'number' || now === before) return [];
  const up = now > before;
  const at = str(rec(p.status).lastScaleTime);
  // The same watch event reaches every replica with the same resourceVersion.
  const rv = (p.metadata as { resourceVersion?: string }).resourceVersion ?? '';
  return [
    {
      namespace: p.metadata.namespace ?? '',
      involved: ref(p),
      reason: up ? 'PoolScaledUp' : 'PoolScaledDown',
      type: 'Normal',
      message: `desired workers ${before} → ${now}`,
      key: `${before}->${now}:${at ?? rv}`,
      time: at ?? '',
    },
  ];
}

/** A pod's exit code once its featherman container has terminated. */
function exitCodeOf(pod: KubeObject | undefined): number | undefined {
  const statuses = rec(pod?.status).containerStatuses;
  const c = Array.isArray(statuses) ? statuses.map(rec).find((s) => s.name === 'featherman') : undefined;
  const code = rec(rec(c?.state).terminated).exitCode;
  return typeof code === 'number' ? code : undefined;
}

/**
 * A failed attempt of a runner Job that will be retried (e.g. exit 75 while storage is down): the
 * Job itself may still succeed, so without this Event nothing in `kubectl describe` would say why
 * it took so long. Query Jobs (one per cold query, never retried) are left out.
 */
function attemptTransitions(change: Change, lookup: Lookup): EventSpec[] {
  const pod = change.object;
  const component = pod.metadata.labels?.['app.kubernetes.io/component'];
  const jobName = pod.metadata.labels?.['batch.kubernetes.io/job-name'] ?? pod.metadata.labels?.['job-name'];
  if (change.type === 'deleted' || !jobName || component === 'worker' || component === 'query') return [];
  const code = exitCodeOf(pod);
  if (code === undefined || code === 0 || exitCodeOf(change.old) !== undefined) return [];
  const parent = parentOf(pod, lookup);
  if (!parent?.metadata.uid) return [];
  const result = jobResults([pod], jobName)[0];
  const why = result?.error ?? `exit code ${code}`;
  return [
    {
      namespace: pod.metadata.namespace ?? '',
      involved: ref(parent),
      reason: 'JobAttemptFailed',
      type: 'Warning',
      message: cleanMessage(`job ${jobName}: an attempt failed (exit code ${code}${code === 75 ? ', temporary: retried' : ''}): ${why}`),
      key: `${pod.metadata.uid ?? pod.metadata.name}:attempt-failed`,
      time: result?.finishedAt ?? '',
    },
  ];
}

function podTransitions(change: Change, lookup: Lookup): EventSpec[] {
  const pod = change.object;
  if (pod.metadata.labels?.['app.kubernetes.io/component'] !== 'worker') return attemptTransitions(change, lookup);
  if (change.type !== 'deleted') return [];
  const pool = parentOf(pod, lookup);
  if (!pool?.metadata.uid || pool.metadata.deletionTimestamp || pool.kind !== 'DuckLakePool') return [];
  return [
    {
      namespace: pod.metadata.namespace ?? '',
      involved: ref(pool),
      reason: 'WorkerRecycled',
      type: 'Normal',
      message: `worker pod ${pod.metadata.name} was removed; the pool replaces it as its size requires`,
      key: `${pod.metadata.uid ?? pod.metadata.name}:removed`,
      time: '',
    },
  ];
}

/**
 * The Events one change of the cache stands for. A change seen by a (re)list is announced only
 * when it happened within ANNOUNCE_WINDOW_SECONDS of `now`: a restarted replica does not repeat
 * history. Events with no time of their own take `now`.
 */
export function transitions(change: Change, lookup: Lookup, now: Date): EventSpec[] {
  const specs =
    change.resource === 'jobs'
      ? jobTransitions(change, lookup)
      : change.resource === 'catalogs'
        ? catalogTransitions(change)
        : change.resource === 'backups'
          ? backupTransitions(change)
          : change.resource === 'pools'
            ? poolTransitions(change)
            : change.resource === 'pods'
              ? podTransitions(change, lookup)
              : [];
  return specs.flatMap((s) => {
    const t = s.time ? Date.parse(s.time) : NaN;
    if (change.listed && (!Number.isFinite(t) || now.getTime() - t > ANNOUNCE_WINDOW_SECONDS * 1000)) return [];
    return [{ ...s, time: Number.isFinite(t) ? new Date(t).toISOString() : now.toISOString() }];
  });
}

export function eventBody(spec: EventSpec, instance: string): CoreV1Event {
  const time = new Date(spec.time);
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: eventName(spec), namespace: spec.namespace },
    involvedObject: { ...spec.involved, namespace: spec.namespace },
    reason: spec.reason,
    message: spec.message,
    type: spec.type,
    source: { component: 'featherman' },
    reportingComponent: 'featherman',
    reportingInstance: instance,
    firstTimestamp: time,
    lastTimestamp: time,
    count: 1,
  };
}

export interface EventLog {
  warn(obj: object, msg: string): void;
}

/** Creates the Events of the cache's changes, a few at a time, retrying errors other than 409. */
export class EventRecorder {
  private readonly queue: EventSpec[] = [];
  private running = 0;
  private readonly done = new Set<string>();
  private readonly waiters: (() => void)[] = [];
  created = 0;
  existed = 0;

  constructor(
    private readonly create: (body: CoreV1Event) => Promise<void>,
    private readonly log: EventLog,
    private readonly instance = hostname(),
    private readonly concurrency = 4,
  ) {}

  static forCluster(kc: KubeConfig, log: EventLog, instance?: string): EventRecorder {
    const core = kc.makeApiClient(CoreV1Api);
    return new EventRecorder(
      async (body) => {
        await core.createNamespacedEvent({ namespace: body.metadata!.namespace!, body });
      },
      log,
      instance,
    );
  }

  /** Records the Events of every change of `cache` from now on. */
  attach(cache: WatchCache, now: () => Date = () => new Date()): void {
    cache.onChange((change) => {
      for (const s of transitions(change, cache, now())) this.record(s);
    });
  }

  record(spec: EventSpec): void {
    const name = eventName(spec);
    if (this.done.has(name)) return;
    this.done.add(name);
    // Bounded memory: the API server's 409 covers whatever this set forgets.
    if (this.done.size > 10_000) this.done.delete(this.done.values().next().value!);
    this.queue.push(spec);
    this.pump();
  }

  /** Resolves when nothing is queued or being sent (tests). */
  idle(): Promise<void> {
    return this.queue.length === 0 && this.running === 0 ? Promise.resolve() : new Promise((r) => this.waiters.push(r));
  }

  private pump(): void {
    while (this.running < this.concurrency && this.queue.length) {
      const spec = this.queue.shift()!;
      this.running++;
      void this.send(spec).finally(() => {
        this.running--;
        this.pump();
        if (this.queue.length === 0 && this.running === 0) for (const w of this.waiters.splice(0)) w();
      });
    }
  }

  private async send(spec: EventSpec): Promise<void> {
    const body = eventBody(spec, this.instance);
    for (let attempt = 1; ; attempt++) {
      try {
        await this.create(body);
        this.created++;
        return;
      } catch (err) {
        const code = (err as { code?: number; statusCode?: number }).code ?? (err as { statusCode?: number }).statusCode;
        if (code === 409) {
          this.existed++;
          return;
        }
        // 404: the namespace is going away; 403/422: retrying will not help.
        if (attempt >= 3 || code === 403 || code === 404 || code === 422) {
          this.log.warn(
            { event: body.metadata!.name, reason: spec.reason, code, err: (err as Error).message?.slice(0, 300) },
            'could not create an Event',
          );
          return;
        }
        await new Promise((r) => setTimeout(r, 500 * attempt));
      }
    }
  }
}
