// DuckLakeCatalog: a metadata volume (DuckDB catalogs), a Job that creates or restores the lake,
// and CronJobs for backups, maintenance and the inspection. Status comes from that Job and its
// pod's summary, from the newest backup and maintenance pods' summaries (lastBackup,
// lastMaintenance), and from the newest report of the lake's figures by any of those pods.
import type { KubeObject, CustomizeRequest, CustomizeResponse, SyncRequest, SyncResponse } from '../lib/k8s/metacontroller.js';
import { objectsOf, objectNamed } from '../lib/k8s/metacontroller.js';
import { catalogAccess, catalogVolumeName, dataPath, maintainArgs, metadataType, type CatalogObject } from '../lib/k8s/catalog-runner.js';
import { condition, type Condition } from '../lib/k8s/conditions.js';
import { jobFailureReason, jobResults, jobState, labelledResults, retryNote, type PodResult } from '../lib/k8s/job-status.js';
import { foldLakeFigures } from '../lib/k8s/lake-report.js';
import { DUCKDB_VOLUME_SIZE, SPEC_DEFAULTS } from '../lib/api/defaults.js';
import { childName, GROUP, labelsFor, labelValue, shortHash } from '../lib/k8s/labels.js';
import { cronJob, job, pvc, runnerPodSpec } from '../lib/k8s/workloads.js';
import type { HookContext } from './context.js';

const IN_FLIGHT_RESYNC_SECONDS = 5;
/** Days the backups are kept; the schema's default for a spec the API server has not defaulted. */
const retentionDays = (c: CatalogObject) => c.spec.backupPolicy?.retentionDays ?? SPEC_DEFAULTS.catalog.backupPolicy!.retentionDays;

function initJobName(c: CatalogObject): string {
  const s = c.spec;
  const fingerprint = {
    metadata: metadataType(c),
    schema: s.metadata?.schema,
    data: dataPath(c),
    encrypted: Boolean(s.encryption?.enabled),
    restore: s.restoreFrom?.backup,
    restoreCatalog: s.restoreFrom?.catalog,
  };
  return childName(c.metadata.name, `init-${shortHash(fingerprint, 8)}`);
}

/**
 * Every child the catalog should have, built from its spec, and whether the lake is initialized:
 * the backup and maintenance CronJobs exist only then. A catalog whose init failed (e.g. its data
 * path belongs to another catalog) must never run maintenance there.
 */
export function desiredChildren(c: CatalogObject, ctx: HookContext, initialized = true): KubeObject[] {
  const name = c.metadata.name;
  const access = catalogAccess(c, { catalogJob: true });
  const children: KubeObject[] = [];
  const labels = (component: Parameters<typeof labelsFor>[0]['component']) => labelsFor({ component, catalog: name, instance: name });

  if (metadataType(c) === 'duckdb') {
    children.push(
      pvc(catalogVolumeName(c), labels('catalog-storage'), c.spec.size ?? DUCKDB_VOLUME_SIZE, c.spec.storageClass) as KubeObject,
    );
  }
  const restore = c.spec.restoreFrom;
  const initArgs = restore
    ? ['restore', '--backup', restore.backup, ...(restore.catalog ? ['--from-catalog', restore.catalog] : [])]
    : ['catalog', 'init'];
  children.push(
    job(initJobName(c), labels('catalog-init'), runnerPodSpec({ settings: ctx.settings, args: initArgs, ...access })) as KubeObject,
  );

  if (!initialized) return children;
  if (c.spec.backupPolicy) {
    const args = ['backup', '--retention-days', String(retentionDays(c))];
    if (c.spec.backupPolicy.includeData) args.push('--include-data');
    children.push(
      cronJob(
        childName(name, 'backup', 52),
        labels('catalog-backup'),
        c.spec.backupPolicy.schedule,
        runnerPodSpec({ settings: ctx.settings, args, ...access }),
      ) as KubeObject,
    );
  }
  const m = c.spec.maintenance;
  if (m) {
    children.push(
      cronJob(
        childName(name, 'maintain', 52),
        labels('catalog-maintenance'),
        m.schedule,
        runnerPodSpec({ settings: ctx.settings, args: maintainArgs(m), ...access }),
      ) as KubeObject,
    );
  }
  if (c.spec.inspection?.enabled !== false) {
    // Reads only: the lake's figures for the status. No ownership claim, no backups.
    const read = catalogAccess(c, { readOnlyVolume: true });
    const schedule = c.spec.inspection?.schedule ?? SPEC_DEFAULTS.catalog.inspection.schedule;
    children.push(
      cronJob(
        childName(name, 'inspect', 52),
        labels('catalog-inspect'),
        schedule,
        runnerPodSpec({ settings: ctx.settings, args: ['catalog', 'info'], ...read }),
      ) as KubeObject,
    );
  }
  return children;
}

type Phase = 'Pending' | 'Provisioning' | 'Ready' | 'Failed' | 'Deleting';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
/** The runner's error as one line that fits the status field. */
const oneLine = (text: unknown) =>
  String(text ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)[0]
    ?.slice(0, 1024) ?? '';
/** Only the fields that have a value, so a missing figure is absent rather than null. */
const defined = (o: Obj): Obj => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
const failureOf = (r: PodResult) => oneLine(r.error) || `exit code ${r.exitCode ?? 'unknown'}`;

/**
 * A status.lastBackup or lastMaintenance from the newest finished pod, else carried over. A failure
 * sets outcome, message and attemptTime and keeps the last good run's time and figures; a pod no
 * newer than what the status records (a retried Job's earlier pod, pods cleaned up out of order)
 * changes nothing.
 */
function fold(previous: unknown, results: PodResult[], figures: (r: PodResult) => Obj): Obj | undefined {
  const prev = isObj(previous) ? previous : undefined;
  const newest = results[0];
  if (!newest) return prev;
  const seen = String(prev?.attemptTime ?? prev?.time ?? '');
  if (newest.finishedAt && seen && newest.finishedAt <= seen) return prev;
  if (newest.ok)
    return defined({ ...figures(newest), time: newest.finishedAt, durationSeconds: num(newest.durationSeconds), outcome: 'Succeeded' });
  const { message: _m, outcome: _o, attemptTime: _a, ...good } = prev ?? {};
  return defined({ ...good, outcome: 'Failed', message: failureOf(newest), attemptTime: newest.finishedAt });
}

export const foldBackup = (previous: unknown, results: PodResult[]) =>
  fold(previous, results, (r) => ({
    name: typeof r.backup === 'string' ? r.backup : undefined,
    bytes: num(r.bytes),
    snapshotId: num(r.snapshotId),
    includeData: typeof r.includeData === 'boolean' ? r.includeData : undefined,
  }));

const MAINTENANCE_FIGURES = [
  'snapshotsExpired',
  'snapshotsKeptBack',
  'filesMerged',
  'filesRewritten',
  'filesDeleted',
  'bytesReclaimed',
  'filesKeptBack',
  'orphansDeleted',
] as const;

export const foldMaintenance = (previous: unknown, results: PodResult[]) =>
  fold(previous, results, (r) => {
    const keptFor = Array.isArray(r.keptBackFor) ? r.keptBackFor.filter((x): x is string => typeof x === 'string') : [];
    const more = keptFor.length > 10 ? ` and ${keptFor.length - 10} more` : '';
    return {
      ...(keptFor.length ? { message: oneLine(`kept back for backups ${keptFor.slice(0, 10).join(', ')}${more}`) } : {}),
      ...Object.fromEntries(MAINTENANCE_FIGURES.map((k) => [k, num(r[k])])),
    };
  });

function catalogStatus(req: SyncRequest<CatalogObject>, ctx: HookContext, phaseOverride?: Phase) {
  const c = req.parent;
  const ns = c.metadata.namespace ?? 'default';
  const prior = c.status?.conditions;
  // (the status comes in with the request: anything but our own list counts as none)
  const previous = Array.isArray(prior) ? prior.filter((x): x is Condition => isObj(x) && typeof x.type === 'string') : [];
  const generation = c.metadata.generation;
  const initName = initJobName(c);
  const initJob = objectNamed(req.children, 'Job', 'batch/v1', ns, initName);
  const state = jobState(initJob);
  const pods = objectsOf(req.related, 'Pod', 'v1');
  const result = jobResults(pods, initName)[0];

  let phase: Phase = !initJob ? 'Pending' : state === 'Succeeded' ? 'Ready' : state === 'Failed' ? 'Failed' : 'Provisioning';
  if (phaseOverride) phase = phaseOverride;
  const failure = result?.error ?? jobFailureReason(initJob) ?? 'the init Job failed';
  const lastAttempt = state === 'Running' ? retryNote(initJob, result) : '';

  const metadataReady =
    state === 'Succeeded'
      ? condition(
          previous,
          'MetadataReady',
          'True',
          c.spec.restoreFrom ? 'Restored' : 'Initialized',
          `the lake is ${c.spec.restoreFrom ? 'restored' : 'initialized'} (DuckLake ${result?.ducklakeVersion ?? 'unknown'})`,
          ctx.now,
          generation,
        )
      : state === 'Failed'
        ? condition(previous, 'MetadataReady', 'False', 'InitFailed', failure, ctx.now, generation)
        : condition(
            previous,
            'MetadataReady',
            'False',
            initJob ? 'InitRunning' : 'InitPending',
            `job ${initName} is ${initJob ? 'running' : 'being created'}${lastAttempt}`,
            ctx.now,
            generation,
          );

  const backups = objectsOf(req.children, 'CronJob', 'batch/v1').filter(
    (j) => j.metadata.labels?.['app.kubernetes.io/component'] === 'catalog-backup',
  );
  const backupStatus = backups[0]?.status as { lastSuccessfulTime?: string; lastScheduleTime?: string } | undefined;
  // Scheduled work waits for the lake: once its init Job succeeded, and kept while a Ready catalog
  // re-runs one (so a new init Job never deletes the CronJobs and their history).
  const initialized = state === 'Succeeded' || (state !== 'Failed' && previousPhase(c) === 'Ready');
  const backupScheduled = c.spec.backupPolicy
    ? condition(
        previous,
        'BackupScheduled',
        backups.length ? 'True' : 'False',
        backups.length ? 'Scheduled' : initialized ? 'Creating' : 'WaitingForInit',
        backups.length
          ? `backups run on "${c.spec.backupPolicy.schedule}", kept ${retentionDays(c)} days`
          : initialized
            ? 'the backup CronJob is being created'
            : 'backups are scheduled once the lake is initialized',
        ctx.now,
        generation,
      )
    : condition(previous, 'BackupScheduled', 'False', 'NoBackupPolicy', 'spec.backupPolicy is not set', ctx.now, generation);

  const ready =
    phase === 'Ready'
      ? condition(previous, 'Ready', 'True', 'Ready', 'the catalog is ready', ctx.now, generation)
      : condition(
          previous,
          'Ready',
          'False',
          phase === 'Failed' ? 'InitFailed' : phase === 'Deleting' ? 'Deleting' : 'Provisioning',
          phase === 'Failed' ? failure : `the catalog is ${phase.toLowerCase()}${phase === 'Provisioning' ? lastAttempt : ''}`,
          ctx.now,
          generation,
        );

  const succeeded = result?.ok ? result : undefined;
  const previousStatus = c.status ?? {};
  const catalogPods = { [`${GROUP}/catalog`]: labelValue(c.metadata.name) };
  const lastBackup = foldBackup(
    previousStatus.lastBackup,
    labelledResults(pods, { ...catalogPods, 'app.kubernetes.io/component': 'catalog-backup' }),
  );
  const lastMaintenance = foldMaintenance(
    previousStatus.lastMaintenance,
    labelledResults(pods, { ...catalogPods, 'app.kubernetes.io/component': 'catalog-maintenance' }),
  );
  // (the init Job's pods by their Job too: the lake's first figures, whatever labels they carry)
  const reports = [...labelledResults(pods, catalogPods), ...jobResults(pods, initName)];
  const lake = foldLakeFigures(previousStatus, reports);
  const lastBackupTime = [backupStatus?.lastSuccessfulTime, lastBackup?.time, previousStatus.lastBackupTime]
    .filter((x): x is string => typeof x === 'string')
    .sort()
    .pop();
  const status: Record<string, unknown> = {
    phase,
    observedGeneration: generation,
    conditions: [ready, metadataReady, backupScheduled],
    metadataType: metadataType(c),
    dataPath: dataPath(c),
    ...((succeeded?.ducklakeVersion ?? previousStatus.ducklakeVersion)
      ? { ducklakeVersion: succeeded?.ducklakeVersion ?? previousStatus.ducklakeVersion }
      : {}),
    ...lake,
    ...(lastBackupTime ? { lastBackupTime } : {}),
    ...(typeof lastBackup?.name === 'string' ? { lastBackupName: lastBackup.name } : {}),
    ...(lastBackup ? { lastBackup } : {}),
    ...(typeof lastMaintenance?.time === 'string' ? { lastMaintenanceTime: lastMaintenance.time } : {}),
    ...(lastMaintenance ? { lastMaintenance } : {}),
    ...(phase === 'Failed' ? { message: failure } : {}),
  };
  return { status, inFlight: phase === 'Pending' || phase === 'Provisioning', initialized };
}

const previousPhase = (c: CatalogObject) => (c.status as { phase?: unknown } | undefined)?.phase;

export function sync(req: SyncRequest<CatalogObject>, ctx: HookContext): SyncResponse {
  const { status, inFlight, initialized } = catalogStatus(req, ctx);
  return {
    status,
    children: desiredChildren(req.parent, ctx, initialized),
    ...(inFlight ? { resyncAfterSeconds: IN_FLIGHT_RESYNC_SECONDS } : {}),
  };
}

/** The catalog's data stays in the bucket; deleting the object removes its Jobs, CronJobs and volume. */
export function finalize(req: SyncRequest<CatalogObject>, ctx: HookContext): SyncResponse {
  const remaining = Object.values(req.children).reduce((n, byName) => n + Object.keys(byName).length, 0);
  const { status } = catalogStatus(req, ctx, 'Deleting');
  return remaining === 0 ? { status, children: [], finalized: true } : { status, children: [], finalized: false, resyncAfterSeconds: 2 };
}

/**
 * The pods of the catalog's init, backup, maintenance and inspection Jobs, for their termination messages.
 * One rule: Metacontroller keeps only the last rule's objects of a type (each rule starts the type afresh).
 */
export function customize(req: CustomizeRequest<CatalogObject>): CustomizeResponse {
  const labelSelector = {
    matchLabels: { [`${GROUP}/catalog`]: labelValue(req.parent.metadata.name) },
    matchExpressions: [
      {
        key: 'app.kubernetes.io/component',
        operator: 'In',
        values: ['catalog-init', 'catalog-backup', 'catalog-maintenance', 'catalog-inspect'],
      },
    ],
  };
  return { relatedResources: [{ apiVersion: 'v1', resource: 'pods', namespace: req.parent.metadata.namespace, labelSelector }] };
}
