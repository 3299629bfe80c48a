// DuckLakeBackup: one on-demand backup of a catalog. Once the catalog is Ready, one Job runs
// `featherman backup --name NAME --owner DuckLakeBackup/<ns>/<name>`; the owner keeps the backup
// out of the catalog's retention pruning. NAME comes from the object alone (creation time and
// uid), so a retried Job finds the backup it already made. Deleting the object keeps the backup,
// or with deletionPolicy Delete runs `featherman backup delete NAME` first.
import type { CustomizeRequest, CustomizeResponse, KubeObject, SyncRequest, SyncResponse } from '../lib/k8s/metacontroller.js';
import { objectNamed, objectsOf } from '../lib/k8s/metacontroller.js';
import { SPEC_DEFAULTS } from '../lib/api/defaults.js';
import type { WrittenSpec } from '../lib/api/types.js';
import { validateSpec } from '../lib/api/validate.js';
import { catalogAccess, backupPath, type CatalogObject } from '../lib/k8s/catalog-runner.js';
import { condition, type Condition } from '../lib/k8s/conditions.js';
import { jobFailureReason, jobResults, jobState, retryNote, type PodResult } from '../lib/k8s/job-status.js';
import { API_VERSION, catalogAndOwnPods, childName, labelsFor, shortHash } from '../lib/k8s/labels.js';
import { job, runnerPodSpec } from '../lib/k8s/workloads.js';
import type { HookContext } from './context.js';

/**
 * A DuckLakeBackup as a hook takes it: the API server applies the schema's defaults, but a hook also
 * copes with a spec it has not defaulted (tests feed them).
 */
export type BackupObject = KubeObject & { spec: WrittenSpec<'DuckLakeBackup'>; status?: Record<string, unknown> };

type Phase = 'Pending' | 'Running' | 'Completed' | 'Failed' | 'Deleting';

const WAITING_RESYNC_SECONDS = 10;
const RUNNING_RESYNC_SECONDS = 5;
/** How long a succeeded Job may show no pod before the backup counts as Completed without figures. */
const SUMMARY_GRACE_SECONDS = 60;

/**
 * The backup's name in the backup location: the object's creation time (YYYYMMDDTHHMMSSZ) and a
 * short hash of its uid, so two objects never share a backup and the name sorts by time.
 */
export function backupName(b: BackupObject): string {
  const created = new Date(b.metadata.creationTimestamp ?? 0);
  const stamp = (Number.isNaN(created.getTime()) ? new Date(0) : created)
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '');
  return `${stamp}-${shortHash(b.metadata.uid ?? b.metadata.name, 8)}`;
}

const owner = (b: BackupObject) => `DuckLakeBackup/${b.metadata.namespace ?? 'default'}/${b.metadata.name}`;

/** The object's own choice, else its catalog's backupPolicy.includeData, else that field's default (false). */
export const includeData = (b: BackupObject, catalog: CatalogObject | undefined) =>
  b.spec.includeData ?? catalog?.spec.backupPolicy?.includeData ?? SPEC_DEFAULTS.catalog.backupPolicy!.includeData;

function catalogOf(req: SyncRequest<BackupObject>): CatalogObject | undefined {
  return objectNamed<CatalogObject>(
    req.related,
    'DuckLakeCatalog',
    API_VERSION,
    req.parent.metadata.namespace ?? 'default',
    req.parent.spec.catalogRef ?? '',
  );
}

/** A catalog whose spec we can build a Job from (it exists, is not being deleted, and is valid). */
const usable = (c: CatalogObject | undefined): c is CatalogObject =>
  Boolean(c && !c.metadata.deletionTimestamp && validateSpec('DuckLakeCatalog', c.spec).problems.length === 0);

export function backupJob(b: BackupObject, catalog: CatalogObject, ctx: HookContext): KubeObject {
  const args = ['backup', '--name', backupName(b), '--owner', owner(b)];
  if (includeData(b, catalog)) args.push('--include-data');
  const labels = labelsFor({ component: 'catalog-backup', catalog: b.spec.catalogRef, backup: b.metadata.name, instance: b.metadata.name });
  return job(
    childName(b.metadata.name, 'backup'),
    labels,
    runnerPodSpec({ settings: ctx.settings, args, ...catalogAccess(catalog, { catalogJob: true }) }),
  ) as KubeObject;
}

export function deleteJob(b: BackupObject, catalog: CatalogObject, ctx: HookContext): KubeObject {
  const labels = labelsFor({ component: 'backup-delete', catalog: b.spec.catalogRef, backup: b.metadata.name, instance: b.metadata.name });
  const pod = runnerPodSpec({
    settings: ctx.settings,
    args: ['backup', 'delete', backupName(b)],
    ...catalogAccess(catalog, { catalogJob: true }),
  });
  return job(childName(b.metadata.name, 'delete'), labels, pod) as KubeObject;
}

interface Outcome {
  phase: Phase;
  reason: string;
  message: string;
  catalogReady?: { status: 'True' | 'False'; reason: string; message: string };
  result?: PodResult;
  extra?: Record<string, unknown>;
}

const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
/** The status's conditions as we wrote them; anything else (the status comes in with the request) counts as none. */
const priorConditions = (v: unknown): Condition[] =>
  Array.isArray(v) ? v.filter((c): c is Condition => typeof c === 'object' && c !== null && typeof c.type === 'string') : [];

/** The full status: figures from a successful summary, else what the previous status had. */
function status(b: BackupObject, ctx: HookContext, o: Outcome) {
  const prev = b.status ?? {};
  const previous = priorConditions(prev.conditions);
  const g = b.metadata.generation;
  const ready = condition(previous, 'Ready', o.phase === 'Completed' ? 'True' : 'False', o.reason, o.message, ctx.now, g);
  const cr = o.catalogReady ?? { status: 'True', reason: 'CatalogReady', message: `catalog ${b.spec.catalogRef} is ready` };
  const catalogReady = condition(previous, 'CatalogReady', cr.status, cr.reason, cr.message, ctx.now, g);
  const r = o.result?.ok ? o.result : undefined;
  const pick = (key: string, value: unknown) =>
    value !== undefined ? { [key]: value } : prev[key] !== undefined ? { [key]: prev[key] } : {};
  return {
    phase: o.phase,
    observedGeneration: g,
    conditions: [ready, catalogReady],
    message: o.message,
    catalog: b.spec.catalogRef,
    backupName: backupName(b),
    ...pick('location', typeof r?.location === 'string' ? r.location : undefined),
    ...pick('includeData', typeof r?.includeData === 'boolean' ? r.includeData : undefined),
    ...pick('snapshotId', num(r?.snapshotId)),
    ...pick('bytes', num(r?.bytes)),
    ...pick('files', num(r?.files)),
    ...pick('metadataBytes', num(r?.metadataBytes)),
    ...pick('dataBytesCopied', num(r?.dataBytesCopied)),
    ...pick('durationSeconds', num(r?.durationSeconds)),
    ...pick('verified', typeof r?.verified === 'boolean' ? r.verified : undefined),
    ...pick('startedAt', typeof r?.startedAt === 'string' ? r.startedAt : undefined),
    ...pick('completionTime', r ? (typeof r.finishedAt === 'string' ? r.finishedAt : ctx.now.toISOString()) : undefined),
    ...(o.extra ?? {}),
  };
}

const TERMINAL = new Set(['Completed', 'Failed']);

export function sync(req: SyncRequest<BackupObject>, ctx: HookContext): SyncResponse {
  const b = req.parent;
  const ns = b.metadata.namespace ?? 'default';
  const catalog = catalogOf(req);
  const jobName = childName(b.metadata.name, 'backup');
  const observed = objectNamed(req.children, 'Job', 'batch/v1', ns, jobName);
  const keep = observed && usable(catalog) ? [backupJob(b, catalog, ctx)] : [];
  const prevPhase = String(b.status?.phase ?? '');

  // A finished backup stays finished: its figures are in the status, even once its Job and pods are
  // gone, and a catalog that changes or goes away later does not run it again.
  if (TERMINAL.has(prevPhase) && b.status?.backupName === backupName(b)) {
    const prevReady = priorConditions(b.status?.conditions).find((c) => c.type === 'Ready');
    return {
      status: status(b, ctx, {
        phase: prevPhase as Phase,
        reason: prevReady?.reason ?? prevPhase,
        message: String(b.status?.message ?? prevReady?.message ?? ''),
      }),
      children: keep,
    };
  }

  if (!observed) {
    if (!catalog) {
      const message = `DuckLakeCatalog ${b.spec.catalogRef} does not exist in namespace ${ns}`;
      return {
        status: status(b, ctx, {
          phase: 'Pending',
          reason: 'CatalogNotFound',
          message,
          catalogReady: { status: 'False', reason: 'CatalogNotFound', message },
        }),
        children: [],
        resyncAfterSeconds: WAITING_RESYNC_SECONDS,
      };
    }
    if (!usable(catalog) || catalog.status?.phase !== 'Ready') {
      const state = catalog.metadata.deletionTimestamp ? 'being deleted' : String(catalog.status?.phase ?? 'Pending');
      const message = `waiting for DuckLakeCatalog ${catalog.metadata.name} to be Ready (it is ${state})`;
      return {
        status: status(b, ctx, {
          phase: 'Pending',
          reason: 'CatalogNotReady',
          message,
          catalogReady: { status: 'False', reason: 'CatalogNotReady', message },
        }),
        children: [],
        resyncAfterSeconds: WAITING_RESYNC_SECONDS,
      };
    }
    const desired = backupJob(b, catalog, ctx);
    const message = `job ${jobName} is backing up catalog ${catalog.metadata.name} as ${backupName(b)}`;
    return {
      status: status(b, ctx, {
        phase: 'Running',
        reason: 'BackupRunning',
        message,
        extra: { includeData: includeData(b, catalog), location: `${backupPath(catalog)}${catalog.metadata.name}/${backupName(b)}/` },
      }),
      children: [desired],
      resyncAfterSeconds: RUNNING_RESYNC_SECONDS,
    };
  }

  // The Job exists: it runs to its end whatever happens to the catalog meanwhile (while the catalog
  // cannot be built from, it is left as it is: no child returned would delete it).
  const children = keep.length ? keep : [observed];
  const state = jobState(observed);
  const result = jobResults(objectsOf(req.related, 'Pod', 'v1'), jobName)[0];
  const times = (observed.status ?? {}) as { startTime?: unknown; completionTime?: unknown };
  const jobStatus = {
    startTime: typeof times.startTime === 'string' ? times.startTime : undefined,
    completionTime: typeof times.completionTime === 'string' ? times.completionTime : undefined,
  };
  const started = jobStatus.startTime ? { startedAt: jobStatus.startTime } : {};
  if (state === 'Succeeded') {
    if (result?.ok) {
      const verified = result.verified === true ? ', verified' : '';
      const message =
        `backup ${String(result.backup ?? backupName(b))} of snapshot ${String(result.snapshotId)} ` +
        `is complete${verified}${result.existing ? ' (it already existed)' : ''}`;
      return { status: status(b, ctx, { phase: 'Completed', reason: 'Completed', message, result }), children };
    }
    const since = jobStatus.completionTime ? (ctx.now.getTime() - Date.parse(jobStatus.completionTime)) / 1000 : 0;
    if (since < SUMMARY_GRACE_SECONDS) {
      return {
        status: status(b, ctx, {
          phase: 'Running',
          reason: 'BackupRunning',
          message: `job ${jobName} succeeded; reading its summary`,
          extra: started,
        }),
        children,
        resyncAfterSeconds: 2,
      };
    }
    return {
      status: status(b, ctx, {
        phase: 'Completed',
        reason: 'Completed',
        message: `job ${jobName} succeeded; its pod (and summary) is gone`,
        extra: { ...started, ...(jobStatus.completionTime ? { completionTime: jobStatus.completionTime } : {}) },
      }),
      children,
    };
  }
  if (state === 'Failed') {
    const why =
      result && !result.ok
        ? String(result.error ?? `exit code ${result.exitCode}`)
        : (jobFailureReason(observed) ?? 'the backup Job failed');
    return { status: status(b, ctx, { phase: 'Failed', reason: 'BackupFailed', message: why, extra: started }), children };
  }
  const message = `job ${jobName} is backing up catalog ${b.spec.catalogRef} as ${backupName(b)}${retryNote(observed, result)}`;
  return {
    status: status(b, ctx, { phase: 'Running', reason: 'BackupRunning', message, extra: started }),
    children,
    resyncAfterSeconds: RUNNING_RESYNC_SECONDS,
  };
}

/**
 * Retain (the default): the backup stays; finalized once the Job is gone. Delete: the backup Job
 * is stopped first (its pods must not write while the backup is deleted), then `backup delete`
 * runs; finalized when it succeeded. A failed delete keeps the finalizer and says why.
 */
export function finalize(req: SyncRequest<BackupObject>, ctx: HookContext): SyncResponse {
  const b = req.parent;
  const ns = b.metadata.namespace ?? 'default';
  const name = backupName(b);
  const remaining = Object.values(req.children).reduce((n, byName) => n + Object.keys(byName).length, 0);
  const phaseNow = (extra: Omit<Outcome, 'phase'> & { phase?: Phase }) => status(b, ctx, { phase: 'Deleting', ...extra });
  if (b.spec.deletionPolicy !== 'Delete') {
    const message = `deletionPolicy is Retain: backup ${name} stays in the backup location`;
    return {
      status: phaseNow({ reason: 'Retained', message }),
      children: [],
      finalized: remaining === 0,
      ...(remaining ? { resyncAfterSeconds: 2 } : {}),
    };
  }
  const catalog = catalogOf(req);
  if (!usable(catalog)) {
    // Without the catalog there is no storage configuration to reach the backup with.
    const message =
      `the catalog ${b.spec.catalogRef} is gone: backup ${name} was left in the backup location; ` +
      `delete it with \`featherman backup delete ${name}\``;
    return {
      status: phaseNow({ reason: 'CatalogGone', message }),
      children: [],
      finalized: remaining === 0,
      ...(remaining ? { resyncAfterSeconds: 2 } : {}),
    };
  }
  const pods = objectsOf(req.related, 'Pod', 'v1');
  const backupJobName = childName(b.metadata.name, 'backup');
  const backupStillRuns =
    objectNamed(req.children, 'Job', 'batch/v1', ns, backupJobName) ||
    pods.some(
      (p) =>
        p.metadata.labels?.['batch.kubernetes.io/job-name'] === backupJobName &&
        !['Succeeded', 'Failed'].includes(String((p.status as { phase?: string } | undefined)?.phase)),
    );
  if (backupStillRuns) {
    return {
      status: phaseNow({ reason: 'StoppingBackup', message: `stopping the backup Job ${backupJobName} before deleting backup ${name}` }),
      children: [],
      finalized: false,
      resyncAfterSeconds: 2,
    };
  }
  const del = deleteJob(b, catalog, ctx);
  const observed = objectNamed(req.children, 'Job', 'batch/v1', ns, del.metadata.name);
  const state = jobState(observed);
  const result = jobResults(pods, del.metadata.name)[0];
  if (state === 'Succeeded') {
    const what = result?.ok
      ? result.existed === false
        ? ' (it did not exist)'
        : ` (${String(result.filesDeleted ?? 0)} files, ${String(result.bytesReleased ?? 0)} bytes)`
      : '';
    return { status: phaseNow({ reason: 'Deleted', message: `backup ${name} was deleted${what}` }), children: [], finalized: true };
  }
  if (state === 'Failed') {
    const why =
      result && !result.ok
        ? String(result.error ?? `exit code ${result.exitCode}`)
        : (jobFailureReason(observed) ?? 'the delete Job failed');
    const message = `deleting backup ${name} failed: ${why}; delete Job ${del.metadata.name} to retry`;
    return {
      status: phaseNow({ phase: 'Failed', reason: 'DeleteFailed', message }),
      children: [del],
      finalized: false,
      resyncAfterSeconds: 30,
    };
  }
  return {
    status: phaseNow({
      reason: 'DeletingBackup',
      message: `job ${del.metadata.name} is deleting backup ${name}${retryNote(observed, result)}`,
    }),
    children: [del],
    finalized: false,
    resyncAfterSeconds: RUNNING_RESYNC_SECONDS,
  };
}

/** The backup's catalog, and the pods of its own Jobs (for their termination messages). */
export function customize(req: CustomizeRequest<BackupObject>): CustomizeResponse {
  return catalogAndOwnPods(req.parent, req.parent.spec.catalogRef, 'backup');
}
