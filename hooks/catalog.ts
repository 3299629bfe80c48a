// DuckLakeCatalog: a metadata volume (DuckDB catalogs), a Job that creates or restores the lake,
// and CronJobs for backups and maintenance. Status comes from that Job and its pod's summary.
import type { KubeObject, CustomizeRequest, CustomizeResponse, SyncRequest, SyncResponse } from '../lib/k8s/metacontroller.js';
import { objectsOf, objectNamed } from '../lib/k8s/metacontroller.js';
import { catalogAccess, catalogVolumeName, dataPath, metadataType, type CatalogObject } from '../lib/k8s/catalog-runner.js';
import { condition, type Condition } from '../lib/k8s/conditions.js';
import { jobFailureReason, jobResults, jobState, retryNote } from '../lib/k8s/job-status.js';
import { childName, GROUP, labelsFor, labelValue, shortHash } from '../lib/k8s/labels.js';
import { cronJob, job, pvc, runnerPodSpec } from '../lib/k8s/workloads.js';
import type { HookContext } from './context.js';

const IN_FLIGHT_RESYNC_SECONDS = 5;

function initJobName(c: CatalogObject): string {
  const s = c.spec;
  const fingerprint = { metadata: metadataType(c), schema: s.metadata?.schema, data: dataPath(c), encrypted: Boolean(s.encryption?.enabled), restore: s.restoreFrom?.backup };
  return childName(c.metadata.name, `init-${shortHash(fingerprint, 8)}`);
}

/** Every child the catalog should have, built from its spec alone. */
export function desiredChildren(c: CatalogObject, ctx: HookContext): KubeObject[] {
  const name = c.metadata.name;
  const access = catalogAccess(c);
  const children: KubeObject[] = [];
  const labels = (component: Parameters<typeof labelsFor>[0]['component']) => labelsFor({ component, catalog: name, instance: name });

  if (metadataType(c) === 'duckdb') {
    children.push(pvc(catalogVolumeName(c), labels('catalog-storage'), c.spec.size ?? '10Gi', c.spec.storageClass) as KubeObject);
  }
  const initArgs = c.spec.restoreFrom ? ['restore', '--backup', c.spec.restoreFrom.backup] : ['catalog', 'init'];
  children.push(job(initJobName(c), labels('catalog-init'), runnerPodSpec({ settings: ctx.settings, args: initArgs, ...access })) as KubeObject);

  if (c.spec.backupPolicy) {
    const args = ['backup', '--retention-days', String(c.spec.backupPolicy.retentionDays ?? 7)];
    children.push(cronJob(childName(name, 'backup', 52), labels('catalog-backup'), c.spec.backupPolicy.schedule, runnerPodSpec({ settings: ctx.settings, args, ...access })) as KubeObject);
  }
  const m = c.spec.maintenance;
  if (m) {
    const args = ['maintain', '--cleanup-older-than', m.cleanupOlderThan ?? '1h'];
    if (m.expireSnapshotsOlderThan) args.push('--expire-older-than', m.expireSnapshotsOlderThan);
    if (m.mergeAdjacentFiles === false) args.push('--no-merge');
    if (m.deleteOrphans) args.push('--delete-orphans', '--orphans-older-than', m.orphansOlderThan ?? '7d');
    children.push(cronJob(childName(name, 'maintain', 52), labels('catalog-maintenance'), m.schedule, runnerPodSpec({ settings: ctx.settings, args, ...access })) as KubeObject);
  }
  return children;
}

type Phase = 'Pending' | 'Provisioning' | 'Ready' | 'Failed' | 'Deleting';

function catalogStatus(req: SyncRequest<CatalogObject>, ctx: HookContext, phaseOverride?: Phase) {
  const c = req.parent;
  const ns = c.metadata.namespace ?? 'default';
  const previous = (c.status?.conditions as Condition[] | undefined) ?? [];
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

  const metadataReady = state === 'Succeeded'
    ? condition(previous, 'MetadataReady', 'True', c.spec.restoreFrom ? 'Restored' : 'Initialized', `the lake is ${c.spec.restoreFrom ? 'restored' : 'initialized'} (DuckLake ${result?.ducklakeVersion ?? 'unknown'})`, ctx.now, generation)
    : state === 'Failed'
      ? condition(previous, 'MetadataReady', 'False', 'InitFailed', failure, ctx.now, generation)
      : condition(previous, 'MetadataReady', 'False', initJob ? 'InitRunning' : 'InitPending', `job ${initName} is ${initJob ? 'running' : 'being created'}${lastAttempt}`, ctx.now, generation);

  const backups = objectsOf(req.children, 'CronJob', 'batch/v1').filter((j) => j.metadata.labels?.['app.kubernetes.io/component'] === 'catalog-backup');
  const backupStatus = backups[0]?.status as { lastSuccessfulTime?: string; lastScheduleTime?: string } | undefined;
  const backupScheduled = c.spec.backupPolicy
    ? condition(previous, 'BackupScheduled', backups.length ? 'True' : 'False', backups.length ? 'Scheduled' : 'Creating', backups.length ? `backups run on "${c.spec.backupPolicy.schedule}", kept ${c.spec.backupPolicy.retentionDays ?? 7} days` : 'the backup CronJob is being created', ctx.now, generation)
    : condition(previous, 'BackupScheduled', 'False', 'NoBackupPolicy', 'spec.backupPolicy is not set', ctx.now, generation);

  const ready = phase === 'Ready'
    ? condition(previous, 'Ready', 'True', 'Ready', 'the catalog is ready', ctx.now, generation)
    : condition(previous, 'Ready', 'False', phase === 'Failed' ? 'InitFailed' : phase === 'Deleting' ? 'Deleting' : 'Provisioning', phase === 'Failed' ? failure : `the catalog is ${phase.toLowerCase()}${phase === 'Provisioning' ? lastAttempt : ''}`, ctx.now, generation);

  const succeeded = result?.ok ? result : undefined;
  const previousStatus = c.status ?? {};
  const status: Record<string, unknown> = {
    phase,
    observedGeneration: generation,
    conditions: [ready, metadataReady, backupScheduled],
    metadataType: metadataType(c),
    dataPath: dataPath(c),
    ...(succeeded?.ducklakeVersion ?? previousStatus.ducklakeVersion ? { ducklakeVersion: succeeded?.ducklakeVersion ?? previousStatus.ducklakeVersion } : {}),
    ...(succeeded?.snapshotId !== undefined ? { snapshotId: succeeded.snapshotId } : previousStatus.snapshotId !== undefined ? { snapshotId: previousStatus.snapshotId } : {}),
    ...(Array.isArray(succeeded?.tables) ? { tableCount: succeeded.tables.length } : previousStatus.tableCount !== undefined ? { tableCount: previousStatus.tableCount } : {}),
    ...(backupStatus?.lastSuccessfulTime ? { lastBackupTime: backupStatus.lastSuccessfulTime } : {}),
  };
  return { status, inFlight: phase === 'Pending' || phase === 'Provisioning' };
}

export function sync(req: SyncRequest<CatalogObject>, ctx: HookContext): SyncResponse {
  const { status, inFlight } = catalogStatus(req, ctx);
  return { status, children: desiredChildren(req.parent, ctx), ...(inFlight ? { resyncAfterSeconds: IN_FLIGHT_RESYNC_SECONDS } : {}) };
}

/** The catalog's data stays in the bucket; deleting the object removes its Jobs, CronJobs and volume. */
export function finalize(req: SyncRequest<CatalogObject>, ctx: HookContext): SyncResponse {
  const remaining = Object.values(req.children).reduce((n, byName) => n + Object.keys(byName).length, 0);
  const { status } = catalogStatus(req, ctx, 'Deleting');
  return remaining === 0 ? { status, children: [], finalized: true } : { status, children: [], finalized: false, resyncAfterSeconds: 2 };
}

/** The pods of the catalog's Jobs, for their termination messages. */
export function customize(req: CustomizeRequest<CatalogObject>): CustomizeResponse {
  return {
    relatedResources: [{
      apiVersion: 'v1',
      resource: 'pods',
      namespace: req.parent.metadata.namespace,
      labelSelector: { matchLabels: { [`${GROUP}/catalog`]: labelValue(req.parent.metadata.name), 'app.kubernetes.io/component': 'catalog-init' } },
    }],
  };
}
