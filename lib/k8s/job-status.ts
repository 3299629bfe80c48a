// Reading what a runner Job did: its state from the Job, its JSON summary from the pod's
// termination message (the runner writes it to /dev/termination-log).
import type { KubeObject } from './metacontroller.js';

export type JobState = 'Running' | 'Succeeded' | 'Failed';

interface JobLike extends KubeObject {
  status?: { conditions?: { type: string; status: string; message?: string; reason?: string }[]; succeeded?: number; failed?: number; active?: number };
}

export function jobState(job: KubeObject | undefined): JobState | undefined {
  if (!job) return undefined;
  const conditions = (job as JobLike).status?.conditions ?? [];
  if (conditions.some((c) => (c.type === 'Complete' || c.type === 'SuccessCriteriaMet') && c.status === 'True')) return 'Succeeded';
  if (conditions.some((c) => (c.type === 'Failed' || c.type === 'FailureTarget') && c.status === 'True')) return 'Failed';
  return 'Running';
}

export function jobFailureReason(job: KubeObject | undefined): string | undefined {
  const c = (job as JobLike | undefined)?.status?.conditions?.find((x) => x.type === 'Failed' && x.status === 'True');
  return c ? [c.reason, c.message].filter(Boolean).join(': ') : undefined;
}

export interface RunnerResult {
  ok?: boolean;
  exitCode?: number;
  error?: string;
  [key: string]: unknown;
}

interface PodLike extends KubeObject {
  status?: { containerStatuses?: { name: string; state?: { terminated?: { exitCode?: number; message?: string; finishedAt?: string } } }[] };
}

/** The summaries written by the pods of one Job, newest first. */
export function jobResults(pods: KubeObject[], jobName: string): (RunnerResult & { finishedAt?: string })[] {
  const results: (RunnerResult & { finishedAt?: string })[] = [];
  for (const pod of pods as PodLike[]) {
    if (pod.metadata.labels?.['job-name'] !== jobName && pod.metadata.labels?.['batch.kubernetes.io/job-name'] !== jobName) continue;
    const terminated = pod.status?.containerStatuses?.find((c) => c.name === 'featherman')?.state?.terminated;
    if (!terminated) continue;
    let parsed: RunnerResult;
    try {
      parsed = JSON.parse((terminated.message ?? '').trim().split('\n').pop() ?? '') as RunnerResult;
    } catch {
      parsed = { ok: terminated.exitCode === 0, exitCode: terminated.exitCode, error: terminated.message?.trim().slice(-500) || `exit code ${terminated.exitCode}` };
    }
    results.push({ ...parsed, finishedAt: terminated.finishedAt });
  }
  return results.sort((a, b) => String(b.finishedAt ?? '').localeCompare(String(a.finishedAt ?? '')));
}

/**
 * While a Job retries (e.g. storage unreachable, exit 75): its last failed attempt, from the newest
 * failed pod's summary, and the count from the Job's own status. The count stands alone when no
 * failed pod is in the request (Metacontroller's pod cache may show the failure a moment after the
 * Job's, and failed pods can be deleted), so the failure shows from the first sync that sees it.
 */
export function retryNote(job: KubeObject | undefined, result: RunnerResult | undefined): string {
  const failed = (job?.status as { failed?: number } | undefined)?.failed ?? 0;
  const count = failed > 0 ? `${failed} failed attempt${failed === 1 ? '' : 's'}, retrying` : '';
  if (result && !result.ok) return `; last attempt: ${result.error ?? `exit code ${result.exitCode}`}${count ? ` (${count})` : ''}`;
  return count ? `; ${count}` : '';
}
