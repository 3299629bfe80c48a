// The cold path in a cluster: with no ready worker, a query runs as a one-off Job of the catalog's
// runner, exactly like a table Job, whose JSON summary is read from its log. A failed query's exit
// code says what went wrong: 2 bad input (400), 77 refused (403), 124 past its deadline (504),
// 75 temporary (503).
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { BatchV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { GROUP, VERSION } from '../api/schema.js';
import { catalogAccess, type CatalogObject } from '../k8s/catalog-runner.js';
import { labelsFor } from '../k8s/labels.js';
import { job, runnerPodSpec, settingsFromEnv, type HookSettings } from '../k8s/workloads.js';
import { EXIT_BAD_INPUT, EXIT_DEADLINE, EXIT_REFUSED, EXIT_TEMPORARY } from '../errors.js';
import { csvLine } from '../lake/format.js';
import { fallbackLimitsFromEnv, type FallbackLimits } from '../lake/limits.js';
import type { Grant } from '../auth/tables.js';
import type { PoolSettings, QueryFallback, QueryRequest, RoutedResponse } from './router.js';

/**
 * The cold path in a cluster: a Job running `featherman query --sandbox` with the catalog's
 * environment, held to a worker's rules: the SQL in an environment variable (never on the command
 * line, where it would be parsed as options and is capped at 128 KiB), the deadline enforced by
 * the process and, past it and the grace, by deleting the Job; rows and bytes capped; deleted
 * when the caller goes away.
 */
export class JobFallback implements QueryFallback {
  private readonly custom: CustomObjectsApi;
  private readonly batch: BatchV1Api;
  private readonly core: CoreV1Api;
  private readonly limits: FallbackLimits;

  constructor(
    kc: KubeConfig,
    private readonly settings: HookSettings = settingsFromEnv(process.env),
    limits: Partial<FallbackLimits> = {},
  ) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.batch = kc.makeApiClient(BatchV1Api);
    this.core = kc.makeApiClient(CoreV1Api);
    this.limits = { ...fallbackLimitsFromEnv(process.env), ...limits };
  }

  async run(pool: PoolSettings, query: QueryRequest, grant?: Grant): Promise<RoutedResponse> {
    const { maxRows, maxBytes, killGraceMs } = this.limits;
    const deadlineMs = Math.min(query.timeoutMs ?? pool.maxQueryMs, pool.maxQueryMs);
    const catalog = (await this.custom.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: pool.namespace,
      plural: 'ducklakecatalogs',
      name: pool.catalog,
    })) as CatalogObject;
    const access = catalogAccess(catalog, { readOnlyVolume: true, credentials: pool.credentialsSecret });
    const name = `${pool.pool}`.slice(0, 40).replace(/[-.]+$/, '') + `-query-${randomBytes(4).toString('hex')}`;
    const labels = labelsFor({ component: 'query', catalog: pool.catalog, pool: pool.pool, instance: pool.pool });
    const args = [
      'query',
      '--sandbox',
      '--sql-env',
      '--format',
      'json',
      '--timeout-ms',
      String(deadlineMs),
      '--max-rows',
      String(maxRows),
      '--max-bytes',
      String(maxBytes),
      ...(pool.readOnly ? [] : ['--write']),
    ];
    const spec = runnerPodSpec({ settings: this.settings, args, ...access });
    spec.containers[0]!.env = [
      ...(spec.containers[0]!.env ?? []),
      { name: 'FEATHERMAN_QUERY_SQL', value: query.sql },
      ...(grant ? [{ name: 'FEATHERMAN_QUERY_GRANT', value: JSON.stringify(grant) }] : []),
    ];
    // Pod start-up (scheduling, image, DuckDB) comes on top of the query's own deadline and grace.
    const startupSeconds = 60;
    const activeDeadlineSeconds = Math.ceil((deadlineMs + killGraceMs) / 1000) + startupSeconds;
    const body = job(name, labels, spec, { backoffLimit: 0, activeDeadlineSeconds });
    body.spec!.ttlSecondsAfterFinished = 300;
    if (query.signal?.aborted) return error(499, 'the client went away');
    await this.batch.createNamespacedJob({ namespace: pool.namespace, body });
    // The result is read (or no longer wanted); the Job and its pod go now rather than at their
    // TTL, so they do not keep running or holding the catalog volume.
    const remove = () =>
      this.batch
        .deleteNamespacedJob({ name, namespace: pool.namespace, propagationPolicy: 'Background', gracePeriodSeconds: 0 })
        .catch(() => undefined);
    const killBy = Date.now() + deadlineMs + killGraceMs + startupSeconds * 1000;
    for (;;) {
      if (query.signal?.aborted) {
        await remove();
        return error(499, 'the client went away');
      }
      const status = (await this.batch.readNamespacedJob({ name, namespace: pool.namespace })).status;
      if (status?.succeeded || status?.failed) break;
      if (Date.now() > killBy) {
        await remove();
        return error(
          504,
          `query exceeded its deadline of ${deadlineMs} ms and did not stop within ${killGraceMs} ms; ` + `its Job ${name} was deleted`,
        );
      }
      // Woken at once by a cancel: deleting the Job (its pod follows through the garbage
      // collector) is what stops the query.
      await new Promise<void>((r) => {
        const done = () => {
          clearTimeout(timer);
          query.signal?.removeEventListener('abort', done);
          r();
        };
        const timer = setTimeout(done, 500);
        query.signal?.addEventListener('abort', done, { once: true });
      });
    }
    const pods = await this.core.listNamespacedPod({ namespace: pool.namespace, labelSelector: `job-name=${name}` });
    const pod = pods.items[0];
    // Bounded like a worker's answer: the rows, plus room for the summary around them.
    const log = pod
      ? await this.core.readNamespacedPodLog({
          name: pod.metadata!.name!,
          namespace: pool.namespace,
          container: 'featherman',
          limitBytes: maxBytes + 64 * 1024,
        })
      : '';
    await remove();
    const line =
      String(log)
        .trim()
        .split('\n')
        .reverse()
        .find((l) => l.startsWith('{')) ?? '{}';
    let result: {
      ok?: boolean;
      error?: string;
      exitCode?: number;
      columns?: string[];
      rows?: Record<string, unknown>[];
      truncated?: boolean;
    };
    try {
      result = JSON.parse(line);
    } catch {
      result = { ok: false, error: 'the fallback Job printed no result' };
    }
    if (!result.ok) {
      const code = result.exitCode;
      const status =
        code === EXIT_BAD_INPUT ? 400 : code === EXIT_REFUSED ? 403 : code === EXIT_DEADLINE ? 504 : code === EXIT_TEMPORARY ? 503 : 502;
      return error(status, result.error ?? 'the fallback Job failed');
    }
    return render(query.format, result.columns ?? [], result.rows ?? [], name, result.truncated === true);
  }
}

function error(status: number, message: string): RoutedResponse {
  return { status, headers: { 'content-type': 'application/json' }, body: Readable.from([JSON.stringify({ error: message })]) };
}

function render(
  format: QueryRequest['format'],
  columns: string[],
  rows: Record<string, unknown>[],
  pod: string,
  truncated: boolean,
): RoutedResponse {
  const ok = (contentType: string, body: Readable): RoutedResponse => ({
    status: 200,
    headers: { 'x-featherman-pod': pod, 'content-type': contentType },
    body,
  });
  const csv = () => [csvLine(columns), ...rows.map((r) => csvLine(columns.map((c) => r[c])))];
  if (format === 'csv') return ok('text/csv; charset=utf-8', Readable.from(csv()));
  if (format === 'ndjson') return ok('application/x-ndjson', Readable.from(rows.map((r) => JSON.stringify(r) + '\n')));
  return ok('application/json', Readable.from([JSON.stringify({ columns, rows, rowCount: rows.length, truncated })]));
}
