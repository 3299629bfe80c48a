// Labels every child carries, and names that fit Kubernetes' limits.
import { createHash } from 'node:crypto';

import { API_VERSION, GROUP } from '../api/schema.js';

export { API_VERSION, GROUP };

/**
 * A customize answer for a kind that lives in a catalog: its DuckLakeCatalog, and the pods of its
 * own Jobs (labelled `<group>/<ownLabel>` with its name), for their termination messages.
 */
export function catalogAndOwnPods(
  parent: { metadata: { name: string; namespace?: string } },
  catalogRef: string | undefined,
  ownLabel: 'table' | 'backup',
) {
  const ns = parent.metadata.namespace;
  return {
    relatedResources: [
      { apiVersion: API_VERSION, resource: 'ducklakecatalogs', namespace: ns, names: [catalogRef ?? ''] },
      {
        apiVersion: 'v1',
        resource: 'pods',
        namespace: ns,
        labelSelector: { matchLabels: { [`${GROUP}/${ownLabel}`]: labelValue(parent.metadata.name) } },
      },
    ],
  };
}

// A DuckLakeBackup's backup Job is a catalog-backup too: the catalog's status reports the newest
// backup whichever way it was started.
export type Component =
  | 'catalog-storage'
  | 'catalog-init'
  | 'catalog-backup'
  | 'catalog-maintenance'
  | 'catalog-inspect'
  | 'backup-delete'
  | 'table-apply'
  | 'table-drop'
  | 'worker'
  | 'query';

export function shortHash(value: unknown, length = 10): string {
  return createHash('sha256')
    .update(typeof value === 'string' ? value : stableJson(value))
    .digest('hex')
    .slice(0, length);
}

/** JSON with sorted keys, so equal objects hash equally. */
export function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stableJson((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

/** A label value (at most 63 characters): long names keep a readable prefix plus a hash. */
export function labelValue(name: string): string {
  return name.length <= 63 ? name : `${name.slice(0, 52).replace(/[-._]+$/, '')}-${shortHash(name)}`;
}

/** A child name `<base>-<suffix>` within `max` characters (63 for Jobs, whose name becomes a pod label). */
export function childName(base: string, suffix: string, max = 63): string {
  const room = max - suffix.length - 1;
  const head = base.length <= room ? base : `${base.slice(0, room - 7).replace(/[-.]+$/, '')}-${shortHash(base, 6)}`;
  return `${head}-${suffix}`;
}

export function labelsFor(opts: {
  component: Component;
  catalog: string;
  table?: string;
  pool?: string;
  backup?: string;
  instance: string;
}): Record<string, string> {
  const labels: Record<string, string> = {
    'app.kubernetes.io/name': 'featherman',
    'app.kubernetes.io/instance': labelValue(opts.instance),
    'app.kubernetes.io/component': opts.component,
    'app.kubernetes.io/managed-by': 'featherman',
    [`${GROUP}/catalog`]: labelValue(opts.catalog),
  };
  if (opts.table) labels[`${GROUP}/table`] = labelValue(opts.table);
  if (opts.pool) labels[`${GROUP}/pool`] = labelValue(opts.pool);
  if (opts.backup) labels[`${GROUP}/backup`] = labelValue(opts.backup);
  return labels;
}
