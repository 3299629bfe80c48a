// DuckLakeTable: once its catalog is Ready, one Job that runs `featherman table apply` for this
// exact spec. The Job's name is a hash of the spec and the catalog settings it depends on, so an
// edit makes a new Job and an unchanged spec never runs again.
import type { CustomizeRequest, CustomizeResponse, KubeObject, SyncRequest, SyncResponse } from '../lib/k8s/metacontroller.js';
import { objectNamed, objectsOf } from '../lib/k8s/metacontroller.js';
import { SPEC_DEFAULTS } from '../lib/api/defaults.js';
import { tableSpecProblems, type TableSpec } from '../lib/api/table.js';
import { validateSpec } from '../lib/api/validate.js';
import { API_VERSION, catalogAndOwnPods, childName, labelsFor, shortHash } from '../lib/k8s/labels.js';
import { catalogAccess, catalogFingerprint, type CatalogObject } from '../lib/k8s/catalog-runner.js';
import { condition } from '../lib/k8s/conditions.js';
import { jobFailureReason, jobResults, jobState, retryNote, type RunnerResult } from '../lib/k8s/job-status.js';
import { count, tableFiguresFromCatalog } from '../lib/k8s/lake-report.js';
import { job, runnerPodSpec } from '../lib/k8s/workloads.js';
import type { HookContext } from './context.js';

export type TableObject = KubeObject & { spec: TableSpec; status?: Record<string, unknown> };

const WAITING_RESYNC_SECONDS = 10;
const RUNNING_RESYNC_SECONDS = 5;

const tableSchema = (t: TableObject) => t.spec.schema ?? SPEC_DEFAULTS.table.schema;

/** The spec fields that change the table in the lake (not deletionPolicy, which only matters on delete). */
function appliedSpec(t: TableObject) {
  const { deletionPolicy: _ignored, ...rest } = t.spec;
  return rest;
}

function catalogOf(req: SyncRequest<TableObject>): CatalogObject | undefined {
  return objectNamed<CatalogObject>(
    req.related,
    'DuckLakeCatalog',
    API_VERSION,
    req.parent.metadata.namespace ?? 'default',
    req.parent.spec.catalogRef ?? '',
  );
}

function labels(t: TableObject, component: 'table-apply' | 'table-drop') {
  return labelsFor({ component, catalog: t.spec.catalogRef ?? '', table: t.metadata.name, instance: t.metadata.name });
}

export function applyJob(t: TableObject, catalog: CatalogObject, ctx: HookContext): KubeObject {
  const name = childName(t.metadata.name, `apply-${shortHash({ spec: appliedSpec(t), catalog: catalogFingerprint(catalog) }, 10)}`);
  const access = catalogAccess(catalog);
  const pod = runnerPodSpec({
    settings: ctx.settings,
    args: ['table', 'apply'],
    env: [...access.env, { name: 'FEATHERMAN_TABLE_SPEC', value: JSON.stringify(appliedSpec(t)) }],
    volumes: access.volumes,
    mounts: access.mounts,
  });
  return job(name, labels(t, 'table-apply'), pod) as KubeObject;
}

export function dropJob(t: TableObject, catalog: CatalogObject, ctx: HookContext): KubeObject {
  const name = childName(
    t.metadata.name,
    `drop-${shortHash({ name: t.spec.name, schema: tableSchema(t), catalog: catalogFingerprint(catalog) }, 10)}`,
  );
  const access = catalogAccess(catalog);
  const pod = runnerPodSpec({ settings: ctx.settings, args: ['table', 'drop', t.spec.name, '--schema', tableSchema(t)], ...access });
  return job(name, labels(t, 'table-drop'), pod) as KubeObject;
}

type Phase = 'Pending' | 'Applying' | 'Ready' | 'Failed' | 'Deleting';

/**
 * rows, files and bytes: the newest of the table's own apply report and its catalog's newest lake
 * report (backups, maintenance, the inspection), when newer than what the status holds.
 */
function figures(t: TableObject, applied: RunnerResult | undefined, catalog: CatalogObject | undefined): Record<string, unknown> {
  const prev = t.status ?? {};
  const own =
    applied && count(applied.files) !== undefined && count(applied.bytes) !== undefined && typeof applied.finishedAt === 'string'
      ? { rows: count(applied.rows), files: count(applied.files), bytes: count(applied.bytes), time: applied.finishedAt }
      : undefined;
  const reported = tableFiguresFromCatalog(catalog?.status, tableSchema(t), t.spec.name);
  const newest = [own, reported].filter((x) => x !== undefined).sort((a, b) => b.time.localeCompare(a.time))[0];
  const seen = typeof prev.figuresTime === 'string' ? prev.figuresTime : '';
  if (newest && newest.time > seen) {
    const { time, ...values } = newest;
    return Object.fromEntries([...Object.entries(values), ['figuresTime', time]].filter(([, v]) => v !== undefined));
  }
  return Object.fromEntries(['rows', 'files', 'bytes', 'figuresTime'].filter((k) => prev[k] !== undefined).map((k) => [k, prev[k]]));
}

function status(
  t: TableObject,
  ctx: HookContext,
  phase: Phase,
  reason: string,
  message: string,
  result?: RunnerResult,
  catalog?: CatalogObject,
) {
  const previous = t.status?.conditions;
  const prev = t.status ?? {};
  const g = t.metadata.generation;
  const ready = condition(previous, 'Ready', phase === 'Ready' ? 'True' : 'False', reason, message, ctx.now, g);
  const catalogReady = condition(
    previous,
    'CatalogReady',
    reason === 'CatalogNotReady' || reason === 'CatalogNotFound' ? 'False' : 'True',
    reason === 'CatalogNotReady' || reason === 'CatalogNotFound' ? reason : 'CatalogReady',
    reason === 'CatalogNotReady' || reason === 'CatalogNotFound' ? message : `catalog ${t.spec.catalogRef} is ready`,
    ctx.now,
    g,
  );
  const applied = result?.ok ? result : undefined;
  const pick = (key: string, value: unknown) =>
    value !== undefined ? { [key]: value } : prev[key] !== undefined ? { [key]: prev[key] } : {};
  return {
    phase,
    observedGeneration: g,
    conditions: [ready, catalogReady],
    catalog: t.spec.catalogRef,
    table: `${tableSchema(t)}.${t.spec.name}`,
    ...pick('appliedGeneration', applied ? g : undefined),
    ...pick('snapshotId', applied?.snapshotId),
    ...pick('columns', applied?.columns),
    ...figures(t, applied, catalog),
    ...pick('lastApplied', applied ? ((applied as { finishedAt?: string }).finishedAt ?? ctx.now.toISOString()) : undefined),
  };
}

export function sync(req: SyncRequest<TableObject>, ctx: HookContext): SyncResponse {
  const t = req.parent;
  // Admission refuses bad specs; this guards objects that predate the webhook or bypassed it.
  const problems = tableSpecProblems(t.spec);
  if (problems.length) {
    return { status: status(t, ctx, 'Failed', 'InvalidSpec', problems.map((p) => `${p.field}: ${p.message}`).join('; ')), children: [] };
  }
  const catalog = catalogOf(req);
  if (!catalog) {
    return {
      status: status(
        t,
        ctx,
        'Pending',
        'CatalogNotFound',
        `DuckLakeCatalog ${t.spec.catalogRef} does not exist in namespace ${t.metadata.namespace}`,
      ),
      children: [],
      resyncAfterSeconds: WAITING_RESYNC_SECONDS,
    };
  }
  if (validateSpec('DuckLakeCatalog', catalog.spec).problems.length) {
    return {
      status: status(t, ctx, 'Pending', 'CatalogNotReady', `DuckLakeCatalog ${catalog.metadata.name} has an invalid spec; fix it first`),
      children: [],
      resyncAfterSeconds: WAITING_RESYNC_SECONDS,
    };
  }
  if (catalog.status?.phase !== 'Ready') {
    return {
      status: status(
        t,
        ctx,
        'Pending',
        'CatalogNotReady',
        `waiting for DuckLakeCatalog ${catalog.metadata.name} to be Ready (it is ${String(catalog.status?.phase ?? 'Pending')})`,
      ),
      children: [],
      resyncAfterSeconds: WAITING_RESYNC_SECONDS,
    };
  }
  const desired = applyJob(t, catalog, ctx);
  const observed = objectNamed(req.children, 'Job', 'batch/v1', t.metadata.namespace ?? 'default', desired.metadata.name);
  const state = jobState(observed);
  const result = jobResults(objectsOf(req.related, 'Pod', 'v1'), desired.metadata.name)[0];
  if (state === 'Succeeded') {
    return {
      status: status(
        t,
        ctx,
        'Ready',
        'Applied',
        `table ${tableSchema(t)}.${t.spec.name} matches the spec (${result?.action ?? 'applied'})`,
        result,
        catalog,
      ),
      children: [desired],
    };
  }
  if (state === 'Failed') {
    const why = result?.error ?? jobFailureReason(observed) ?? 'the apply Job failed';
    return {
      status: status(t, ctx, 'Failed', result?.exitCode === 2 ? 'InvalidChange' : 'ApplyFailed', why, undefined, catalog),
      children: [desired],
    };
  }
  const retrying = retryNote(observed, result);
  return {
    status: status(t, ctx, 'Applying', 'ApplyRunning', `job ${desired.metadata.name} is applying the spec${retrying}`, undefined, catalog),
    children: [desired],
    resyncAfterSeconds: RUNNING_RESYNC_SECONDS,
  };
}

/**
 * deletionPolicy Retain (the default) leaves the table in the lake. Delete runs a drop Job and
 * reports finalized only once it succeeded, or when the catalog is gone (nothing left to drop from).
 */
export function finalize(req: SyncRequest<TableObject>, ctx: HookContext): SyncResponse {
  const t = req.parent;
  const catalog = catalogOf(req);
  if (t.spec.deletionPolicy !== 'Delete') {
    return {
      status: status(t, ctx, 'Deleting', 'Retained', 'deletionPolicy is Retain: the table stays in the lake'),
      children: [],
      finalized: true,
    };
  }
  if (!catalog || catalog.metadata.deletionTimestamp || validateSpec('DuckLakeCatalog', catalog.spec).problems.length) {
    return { status: status(t, ctx, 'Deleting', 'CatalogGone', 'the catalog is gone; nothing to drop'), children: [], finalized: true };
  }
  const drop = dropJob(t, catalog, ctx);
  const observed = objectNamed(req.children, 'Job', 'batch/v1', t.metadata.namespace ?? 'default', drop.metadata.name);
  const state = jobState(observed);
  if (state === 'Succeeded')
    return {
      status: status(t, ctx, 'Deleting', 'Dropped', `table ${tableSchema(t)}.${t.spec.name} was dropped`),
      children: [],
      finalized: true,
    };
  const result = jobResults(objectsOf(req.related, 'Pod', 'v1'), drop.metadata.name)[0];
  const message =
    state === 'Failed'
      ? `dropping failed: ${result?.error ?? jobFailureReason(observed) ?? 'the drop Job failed'}`
      : `job ${drop.metadata.name} is dropping the table`;
  return {
    status: status(t, ctx, state === 'Failed' ? 'Failed' : 'Deleting', state === 'Failed' ? 'DropFailed' : 'Dropping', message),
    children: [drop],
    finalized: false,
    resyncAfterSeconds: RUNNING_RESYNC_SECONDS,
  };
}

/** The table's catalog, and the pods of its own Jobs (for their termination messages). */
export function customize(req: CustomizeRequest<TableObject>): CustomizeResponse {
  return catalogAndOwnPods(req.parent, req.parent.spec.catalogRef, 'table');
}
