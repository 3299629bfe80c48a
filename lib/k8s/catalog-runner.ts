// What a runner pod needs to reach a catalog: its environment (credentials only through
// secretKeyRef) and, for a DuckDB metadata file, the catalog volume. Table Jobs, backup and
// maintenance CronJobs and warm workers all start from here.
import type { V1EnvVar, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { backupPrefix, SPEC_DEFAULTS } from '../api/defaults.js';
import { parseQuantity } from '../api/quantity.js';
import type { WrittenSpec } from '../api/types.js';
import type { KubeObject } from './metacontroller.js';
import { CATALOG_MOUNT, secretEnv } from './workloads.js';

/**
 * A catalog's spec as a hook takes it: the API server applies the schema's defaults, but a hook also
 * copes with a spec it has not defaulted (tests feed them), falling back on SPEC_DEFAULTS.
 */
type WrittenCatalogSpec = WrittenSpec<'DuckLakeCatalog'>;

/** A Secret with an S3 access key pair (lib/api/schema.ts: credentialsSecret). */
export type CredentialsSecret = NonNullable<WrittenCatalogSpec['objectStore']['credentialsSecret']>;

export type CatalogObject = KubeObject & { spec: WrittenCatalogSpec; status?: Record<string, unknown> };

// The fallbacks below are the schema's defaults, for a spec the API server has not defaulted.
const DEFAULTS = SPEC_DEFAULTS.catalog;
const KEY_FIELDS = DEFAULTS.objectStore.credentialsSecret!;

export const metadataType = (c: CatalogObject) => c.spec.metadata?.type ?? DEFAULTS.metadata.type;
export const catalogVolumeName = (c: CatalogObject) => `${c.metadata.name}-catalog`;

const dataPrefix = (c: CatalogObject) =>
  (c.spec.objectStore.prefix ?? `${c.metadata.namespace ?? 'default'}/${c.metadata.name}`).replace(/^\/+|\/+$/g, '');

/** s3://bucket/<prefix>/data/: the prefix defaults to <namespace>/<name>, so catalogs can share a bucket. */
export function dataPath(c: CatalogObject): string {
  const prefix = dataPrefix(c);
  return `s3://${c.spec.objectStore.bucket}/${prefix ? `${prefix}/` : ''}data/`;
}

/** The catalog's identity in the data path's ownership marker: <namespace>/<name>. */
export const catalogId = (c: CatalogObject) => `${c.metadata.namespace ?? 'default'}/${c.metadata.name}`;

/**
 * The root of the catalog's backups (each one under <root>/<catalog>/<name>/): beside the data,
 * s3://bucket/<prefix>/backups/, or in backupPolicy.target (its prefix defaults to the same layout).
 */
export function backupPath(c: CatalogObject): string {
  const target = c.spec.backupPolicy?.target;
  const bucket = target?.bucket ?? c.spec.objectStore.bucket;
  const prefix = (target?.prefix ?? backupPrefix(dataPrefix(c))).replace(/^\/+|\/+$/g, '');
  return `s3://${bucket}/${prefix ? `${prefix}/` : ''}`;
}

/** The environment that reaches the backups: their root and, for a target, its own connection. */
export function backupEnv(c: CatalogObject): V1EnvVar[] {
  const env: V1EnvVar[] = [{ name: 'FEATHERMAN_BACKUP_PATH', value: backupPath(c) }];
  const t = c.spec.backupPolicy?.target;
  if (!t) return env;
  if (t.endpoint) env.push({ name: 'FEATHERMAN_BACKUP_ENDPOINT', value: t.endpoint });
  if (t.region) env.push({ name: 'FEATHERMAN_BACKUP_REGION', value: t.region });
  // The runner defaults a target's style from its endpoint; unset here means the objectStore's.
  const urlStyle = t.urlStyle ?? c.spec.objectStore.urlStyle;
  if (urlStyle) env.push({ name: 'FEATHERMAN_BACKUP_URL_STYLE', value: urlStyle });
  if (t.credentialsSecret) {
    const s = t.credentialsSecret;
    env.push(secretEnv('FEATHERMAN_BACKUP_ACCESS_KEY_ID', s.name, s.accessKeyField ?? KEY_FIELDS.accessKeyField));
    env.push(secretEnv('FEATHERMAN_BACKUP_SECRET_ACCESS_KEY', s.name, s.secretKeyField ?? KEY_FIELDS.secretKeyField));
  }
  return env;
}

/** `featherman maintain` flags for spec.maintenance; unset fields keep the runner's defaults. */
export function maintainArgs(m: NonNullable<WrittenCatalogSpec['maintenance']>): string[] {
  const args = ['maintain', '--cleanup-older-than', m.cleanupOlderThan ?? DEFAULTS.maintenance!.cleanupOlderThan];
  if (m.expireSnapshotsOlderThan) args.push('--expire-older-than', m.expireSnapshotsOlderThan);
  if (m.mergeAdjacentFiles === false) args.push('--no-merge');
  if (m.deleteOrphans) args.push('--delete-orphans', '--orphans-older-than', m.orphansOlderThan ?? DEFAULTS.maintenance!.orphansOlderThan);
  if (m.maxCompactedFiles !== undefined) args.push('--max-compacted-files', String(m.maxCompactedFiles));
  // In bytes: the runner's sizes are DuckDB's (512MB), Kubernetes' are quantities (512Mi).
  const size = parseQuantity(m.targetFileSize);
  if (size !== undefined) args.push('--target-file-size', String(Math.round(size)));
  if (m.rewriteDataFiles === false) args.push('--no-rewrite');
  else if (m.rewriteDeleteThreshold !== undefined)
    args.push('--rewrite-delete-threshold', m.rewriteDeleteThreshold.toFixed(6).replace(/0+$/, '').replace(/\.$/, ''));
  if (m.flushInlinedData === false) args.push('--no-flush');
  return args;
}

export interface RunnerAccess {
  env: V1EnvVar[];
  volumes: V1Volume[];
  mounts: V1VolumeMount[];
}

/**
 * `credentials` replaces the catalog's key pair: a pool's own keys (its spec.credentialsSecret).
 * `catalogJob` is for the Jobs that claim the data path and reach the backups (init, restore,
 * backup, maintenance, DuckLakeBackup): the catalog's identity for the data path's ownership
 * marker, the backup location and a backup target's credentials. Warm workers, which run users'
 * SQL, and table Jobs get none of it.
 */
export function catalogAccess(
  c: CatalogObject,
  opts: { readOnlyVolume?: boolean; credentials?: CredentialsSecret; catalogJob?: boolean } = {},
): RunnerAccess {
  const store = c.spec.objectStore;
  const env: V1EnvVar[] = [
    { name: 'FEATHERMAN_CATALOG', value: c.metadata.name },
    { name: 'FEATHERMAN_DATA_PATH', value: dataPath(c) },
    { name: 'AWS_REGION', value: store.region ?? 'us-east-1' },
  ];
  if (store.endpoint) env.push({ name: 'AWS_ENDPOINT_URL_S3', value: store.endpoint });
  if (store.urlStyle) env.push({ name: 'FEATHERMAN_S3_URL_STYLE', value: store.urlStyle });
  const credentials = opts.credentials ?? store.credentialsSecret;
  if (credentials) {
    const s = credentials;
    env.push(secretEnv('AWS_ACCESS_KEY_ID', s.name, s.accessKeyField ?? KEY_FIELDS.accessKeyField));
    env.push(secretEnv('AWS_SECRET_ACCESS_KEY', s.name, s.secretKeyField ?? KEY_FIELDS.secretKeyField));
  }
  if (c.spec.encryption?.enabled) env.push({ name: 'FEATHERMAN_ENCRYPTED', value: 'true' });
  if (opts.catalogJob) env.push({ name: 'FEATHERMAN_CATALOG_ID', value: catalogId(c) }, ...backupEnv(c));

  if (metadataType(c) === 'postgres') {
    // libpq reads PGHOST, PGPORT, PGDATABASE, PGUSER and PGPASSWORD itself, so the connection
    // string stays empty and the password never appears in it.
    const secret = c.spec.metadata?.connectionSecret?.name ?? `${c.metadata.name}-app`;
    env.push(
      secretEnv('PGHOST', secret, 'host'),
      secretEnv('PGPORT', secret, 'port', true),
      secretEnv('PGDATABASE', secret, 'dbname'),
      secretEnv('PGUSER', secret, 'user'),
      secretEnv('PGPASSWORD', secret, 'password'),
      { name: 'FEATHERMAN_METADATA', value: 'postgres:' },
    );
    if (c.spec.metadata?.schema) env.push({ name: 'FEATHERMAN_METADATA_SCHEMA', value: c.spec.metadata.schema });
    return { env, volumes: [], mounts: [] };
  }
  env.push({ name: 'FEATHERMAN_METADATA', value: `duckdb:${CATALOG_MOUNT}/metadata.ducklake` });
  return {
    env,
    volumes: [{ name: 'catalog', persistentVolumeClaim: { claimName: catalogVolumeName(c), readOnly: opts.readOnlyVolume ?? false } }],
    mounts: [{ name: 'catalog', mountPath: CATALOG_MOUNT, readOnly: opts.readOnlyVolume ?? false }],
  };
}

/** The catalog settings a table Job depends on: a change to any of them makes a new Job. */
export function catalogFingerprint(c: CatalogObject): unknown {
  const s = c.spec;
  return {
    metadata: metadataType(c),
    schema: s.metadata?.schema,
    data: dataPath(c),
    endpoint: s.objectStore.endpoint,
    region: s.objectStore.region,
    urlStyle: s.objectStore.urlStyle,
    encrypted: Boolean(s.encryption?.enabled),
  };
}
