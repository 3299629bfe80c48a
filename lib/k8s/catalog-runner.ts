// What a runner pod needs to reach a catalog: its environment (credentials only through
// secretKeyRef) and, for a DuckDB metadata file, the catalog volume. Table Jobs, backup and
// maintenance CronJobs and warm workers all start from here.
import type { V1EnvVar, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import type { KubeObject } from './metacontroller.js';
import { CATALOG_MOUNT, secretEnv } from './workloads.js';

/** A Secret with an S3 access key pair (lib/api/schema.ts: credentialsSecret). */
export interface CredentialsSecret { name: string; accessKeyField?: string; secretKeyField?: string }

export interface CatalogSpec {
  storageClass?: string;
  size?: string;
  objectStore: {
    endpoint?: string;
    bucket: string;
    prefix?: string;
    region?: string;
    urlStyle?: 'path' | 'vhost';
    credentialsSecret?: CredentialsSecret;
  };
  metadata?: { type?: 'duckdb' | 'postgres'; connectionSecret?: { name: string }; schema?: string };
  encryption?: { enabled?: boolean };
  backupPolicy?: { schedule: string; retentionDays?: number };
  maintenance?: {
    schedule: string;
    expireSnapshotsOlderThan?: string;
    cleanupOlderThan?: string;
    mergeAdjacentFiles?: boolean;
    deleteOrphans?: boolean;
    orphansOlderThan?: string;
  };
  restoreFrom?: { backup: string };
}

export type CatalogObject = KubeObject & { spec: CatalogSpec; status?: Record<string, unknown> };

export const metadataType = (c: CatalogObject) => c.spec.metadata?.type ?? 'duckdb';
export const catalogVolumeName = (c: CatalogObject) => `${c.metadata.name}-catalog`;

/** s3://bucket/<prefix>/data/: the prefix defaults to <namespace>/<name>, so catalogs can share a bucket. */
export function dataPath(c: CatalogObject): string {
  const prefix = (c.spec.objectStore.prefix ?? `${c.metadata.namespace ?? 'default'}/${c.metadata.name}`).replace(/^\/+|\/+$/g, '');
  return `s3://${c.spec.objectStore.bucket}/${prefix ? `${prefix}/` : ''}data/`;
}

export interface RunnerAccess {
  env: V1EnvVar[];
  volumes: V1Volume[];
  mounts: V1VolumeMount[];
}

/** `credentials` replaces the catalog's key pair: a pool's own keys (its spec.credentialsSecret). */
export function catalogAccess(c: CatalogObject, opts: { readOnlyVolume?: boolean; credentials?: CredentialsSecret } = {}): RunnerAccess {
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
    env.push(secretEnv('AWS_ACCESS_KEY_ID', s.name, s.accessKeyField ?? 'access-key'));
    env.push(secretEnv('AWS_SECRET_ACCESS_KEY', s.name, s.secretKeyField ?? 'secret-key'));
  }
  if (c.spec.encryption?.enabled) env.push({ name: 'FEATHERMAN_ENCRYPTED', value: 'true' });

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
  return { metadata: metadataType(c), schema: s.metadata?.schema, data: dataPath(c), endpoint: s.objectStore.endpoint, region: s.objectStore.region, urlStyle: s.objectStore.urlStyle, encrypted: Boolean(s.encryption?.enabled) };
}
