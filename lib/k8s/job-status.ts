// Reading what a runner Job did: its state from the Job, its JSON summary from the pod's
// termination message (the runner writes it to /dev/termination-log).
import type { KubeObject } from './metacontroller.js';

export type JobState = 'Running' | 'Succeeded' | 'Failed';

interface JobLike extends KubeObject {
  status?: {
    conditions?: { type: string; status: string; message?: string; reason?: string }[];
    succeeded?: number;
    failed?: number;
    active?: number;
  };
}

/** A Job's conditions; anything else in the request (it comes from outside) counts as none. */
function conditionsOf(job: KubeObject | undefined): NonNullable<NonNullable<JobLike['status']>['conditions']> {
  const conditions = (job as JobLike | undefined)?.status?.conditions;
  return Array.isArray(conditions) ? conditions.filter((c) => c && typeof c === 'object') : [];
}

export function jobState(job: KubeObject | undefined): JobState | undefined {
  if (!job) return undefined;
  const conditions = conditionsOf(job);
  if (conditions.some((c) => (c.type === 'Complete' || c.type === 'SuccessCriteriaMet') && c.status === 'True')) return 'Succeeded';
  if (conditions.some((c) => (c.type === 'Failed' || c.type === 'FailureTarget') && c.status === 'True')) return 'Failed';
  return 'Running';
}

export function jobFailureReason(job: KubeObject | undefined): string | undefined {
  const c = conditionsOf(job).find((x) => x.type === 'Failed' && x.status === 'True');
  return c ? [c.reason, c.message].filter(Boolean).join(': ') : undefined;
}

export interface RunnerResult {
  ok?: boolean;
  exitCode?: number;
  error?: string;
  [key: string]: unknown;
}

interface PodLike extends KubeObject {
  status?: {
    containerStatuses?: { name: string; state?: { terminated?: { exitCode?: number; message?: string; finishedAt?: string } } }[];
  };
}

export type PodResult = RunnerResult & { finishedAt?: string; pod?: string };

/** A finished pod's summary: the last line of its termination message, or its exit code and tail. */
function podResult(pod: PodLike): PodResult | undefined {
  const statuses = pod.status?.containerStatuses;
  const terminated = Array.isArray(statuses) ? statuses.find((c) => c?.name === 'featherman')?.state?.terminated : undefined;
  if (!terminated || typeof terminated !== 'object') return undefined;
  let parsed: RunnerResult;
  try {
    parsed = JSON.parse((terminated.message ?? '').trim().split('\n').pop() ?? '') as RunnerResult;
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not a summary');
  } catch {
    parsed = {
      ok: terminated.exitCode === 0,
      exitCode: terminated.exitCode,
      error: terminated.message?.trim().slice(-500) || `exit code ${terminated.exitCode}`,
    };
  }
  // finishedAt is the kubelet's (RFC 3339), never the summary's own, which may be anything.
  const { finishedAt: _own, ...summary } = parsed;
  return {
    ...summary,
    ...(typeof terminated.finishedAt === 'string' ? { finishedAt: terminated.finishedAt } : {}),
    pod: pod.metadata.name,
  };
}

const newestFirst = (results: PodResult[]) => results.sort((a, b) => String(b.finishedAt ?? '').localeCompare(String(a.finishedAt ?? '')));

/** The summaries written by the pods of one Job, newest first. */
export function jobResults(pods: KubeObject[], jobName: string): PodResult[] {
  return newestFirst(
    (pods as PodLike[])
      .filter((pod) => pod.metadata.labels?.['job-name'] === jobName || pod.metadata.labels?.['batch.kubernetes.io/job-name'] === jobName)
      .flatMap((pod): PodResult[] => {
        const r = podResult(pod);
        return r ? [r] : [];
      }),
  );
}

/**
 * The summaries of every finished pod carrying `labels` (e.g. all backups of one catalog, whatever
 * Job ran them: the CronJob's, one made with `kubectl create job --from`, a DuckLakeBackup's), newest first.
 */
export function labelledResults(pods: KubeObject[], labels: Record<string, string>): PodResult[] {
  return newestFirst(
    (pods as PodLike[])
      .filter((pod) => Object.entries(labels).every(([k, v]) => pod.metadata.labels?.[k] === v))
      .flatMap((pod): PodResult[] => {
        const r = podResult(pod);
        return r ? [r] : [];
      }),
  );
}

/**
 * While a Job retries (e.g. storage unreachable, exit 75): its last failed attempt, from the newest
 * failed pod's summary, and the count from the Job's own status. The count stands alone when no
 * failed pod is in the request (Metacontroller's pod cache may show the failure a moment after the
 * Job's, and failed pods can be deleted), so the failure shows from the first sync that sees it.
 */
export function retryNote(job: KubeObject | undefined, result: RunnerResult | undefined): string {
  const reported = (job?.status as { failed?: unknown } | undefined)?.failed;
  const failed = typeof reported === 'number' ? reported : 0;
  const count = failed > 0 ? `${failed} failed attempt${failed === 1 ? '' : 's'}, retrying` : '';
  if (result && !result.ok) return `; last attempt: ${result.error ?? `exit code ${result.exitCode}`}${count ? ` (${count})` : ''}`;
  return count ? `; ${count}` : '';
}
