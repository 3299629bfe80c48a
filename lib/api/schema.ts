// The one schema source for the three kinds. The CRDs in crds/ (lib/api/crds.ts) and the webhook's
// Ajv validator (lib/api/validate.ts) are both derived from the objects below, and so are the
// defaults the mutating webhook applies (lib/api/defaults.ts), which are the same ones the API
// server applies from the CRD.
//
// Field names follow the original Featherman README. Every string and list has a maximum size so
// the CEL rules stay inside the API server's cost budget. Rules that need code (the DuckDB type
// grammar, cron, quantities, cross-field checks, safe evolution) live in lib/api/validate.ts.
import { DURATION_PATTERN } from './duration.js';
import { ENDPOINT_PATTERN } from './endpoint.js';
import { DNS_SUBDOMAIN_PATTERN, SECRET_KEY_PATTERN } from './k8s-names.js';
import { IDENTIFIER_MAX_LENGTH, IDENTIFIER_PATTERN } from './names.js';
import { QUANTITY_PATTERN } from './quantity.js';

/** The subset of apiextensions.k8s.io/v1 JSONSchemaProps we use (structural, OpenAPI v3.0). */
export interface Schema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  description?: string;
  format?: string;
  properties?: Record<string, Schema>;
  required?: readonly string[];
  additionalProperties?: Schema | boolean;
  items?: Schema;
  anyOf?: readonly Schema[];
  enum?: readonly (string | number | boolean)[];
  default?: unknown;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  maxProperties?: number;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: readonly string[];
  'x-kubernetes-validations'?: readonly { rule: string; message: string; fieldPath?: string }[];
}

/** Parquet compressions DuckLake writes (spec.format.compression). */
export const COMPRESSIONS = ['UNCOMPRESSED', 'SNAPPY', 'GZIP', 'ZSTD', 'BROTLI', 'LZ4', 'LZ4_RAW'] as const;

export const GROUP = 'ducklake.featherman.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export type Kind = 'DuckLakeCatalog' | 'DuckLakeTable' | 'DuckLakePool' | 'DuckLakeBackup';
export const KINDS: readonly Kind[] = ['DuckLakeCatalog', 'DuckLakeTable', 'DuckLakePool', 'DuckLakeBackup'];

/** Messages for patterns, so a schema denial reads as a rule rather than a regular expression. */
export const PATTERN_MESSAGES: Record<string, string> = {
  [DURATION_PATTERN]: 'must be a duration such as 300s, 5m, 1h or 1h30m',
  [QUANTITY_PATTERN]: 'must be a quantity such as 10Gi, 500Mi or 2',
  [IDENTIFIER_PATTERN]: 'must be letters, digits and underscores, not starting with a digit',
  [DNS_SUBDOMAIN_PATTERN]:
    'must be a Kubernetes object name (lowercase letters, digits, "-" and ".", starting and ending with a letter or digit)',
  [SECRET_KEY_PATTERN]: 'must be a Secret key (letters, digits, "-", "_" and ".")',
  [ENDPOINT_PATTERN]: 'must be a host, host:port or http(s) URL',
};
export const BUCKET_PATTERN = '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$';
export const PREFIX_PATTERN = "^[A-Za-z0-9!_.*'()/=+-]*$";
export const IMAGE_PATTERN = '^[^\\s]+$';
PATTERN_MESSAGES[BUCKET_PATTERN] =
  'must be an S3 bucket name: 3-63 lowercase letters, digits, "." and "-", starting and ending with a letter or digit';
PATTERN_MESSAGES[PREFIX_PATTERN] = "must be an object key prefix (letters, digits and !_.*'()/=+-)";
PATTERN_MESSAGES[IMAGE_PATTERN] = 'must be an image reference without spaces';

// ---- building blocks --------------------------------------------------------------------------

// The builders keep the literal type of what they build (`const` type parameters), so the spec
// types in lib/api/types.ts are derived from these very objects; the objects themselves are plain.
type Extra = Partial<Schema>;
type NoExtra = Record<never, never>;
// NoInfer: a builder nested in another takes its type from its arguments, never from where it is used.
const str = <const E extends Extra = NoExtra>(
  description: string,
  extra: E = {} as E,
): { type: 'string'; description: string; maxLength: number } & NoInfer<E> => ({ type: 'string', description, maxLength: 253, ...extra });
/** How often, by default, a light Job reads the lake's figures into a catalog's status (spec.inspection). */
const INSPECTION_SCHEDULE = '*/15 * * * *';

/** A builder's result with `default: D`, when a default is given. */
type Defaulted<S, D> = D extends undefined ? S : S & { default: D };
const bool = <const D extends boolean | undefined = undefined>(description: string, dflt?: D) =>
  ({ type: 'boolean', description, ...(dflt === undefined ? {} : { default: dflt }) }) as Defaulted<
    { type: 'boolean'; description: string },
    NoInfer<D>
  >;
const int32 = <const E extends Extra = NoExtra>(
  description: string,
  extra: E = {} as E,
): { type: 'integer'; format: string; description: string } & NoInfer<E> => ({ type: 'integer', format: 'int32', description, ...extra });
const int64 = <const E extends Extra = NoExtra>(
  description: string,
  extra: E = {} as E,
): { type: 'integer'; format: string; description: string } & NoInfer<E> => ({ type: 'integer', format: 'int64', description, ...extra });
const obj = <const P extends Record<string, Schema>, const E extends Extra = NoExtra>(
  description: string,
  properties: P,
  extra: E = {} as E,
): { type: 'object'; description: string; properties: NoInfer<P> } & NoInfer<E> => ({ type: 'object', description, properties, ...extra });
const duration = <const D extends string | undefined = undefined>(description: string, dflt?: D) =>
  str(description, { pattern: DURATION_PATTERN, maxLength: 32, ...(dflt ? { default: dflt } : {}) }) as Defaulted<
    { type: 'string'; description: string; pattern: string; maxLength: number },
    NoInfer<D>
  >;
const objectName = (description: string) => str(description, { pattern: DNS_SUBDOMAIN_PATTERN, minLength: 1 });
const identifier = <const E extends Extra = NoExtra>(description: string, extra: E = {} as E) =>
  str(description, { pattern: IDENTIFIER_PATTERN, minLength: 1, maxLength: IDENTIFIER_MAX_LENGTH, ...(extra as NoInfer<E>) });
const schedule = (description: string) => str(description, { minLength: 1, maxLength: 128 });
const quantity = (description: string) =>
  ({
    description,
    anyOf: [{ type: 'integer' }, { type: 'string' }],
    pattern: QUANTITY_PATTERN,
    'x-kubernetes-int-or-string': true,
  }) as const;
const time = (description: string) => str(description, { format: 'date-time', maxLength: 64 });
/** A field that never changes once set (the rule goes last in the field's schema). */
const immutable = (what: string) => ({
  'x-kubernetes-validations': [{ rule: 'self == oldSelf', message: `${what} is immutable` }],
});

const conditions: Schema = {
  type: 'array',
  description: "The latest observations of the object's state; Ready summarises them.",
  'x-kubernetes-list-type': 'map',
  'x-kubernetes-list-map-keys': ['type'],
  maxItems: 32,
  items: obj(
    'A standard Kubernetes condition.',
    {
      type: str('The condition type, e.g. Ready.', { maxLength: 316 }),
      status: str('True, False or Unknown.', { enum: ['True', 'False', 'Unknown'] }),
      observedGeneration: int64('The .metadata.generation the condition was set for.', { minimum: 0 }),
      lastTransitionTime: time('When the status last changed.'),
      reason: str('A CamelCase reason for the last transition.', { maxLength: 1024 }),
      message: str('A human-readable message about the transition.', { maxLength: 32768 }),
    },
    { required: ['type', 'status'] },
  ),
};

/** Fields every status has. preserve-unknown-fields keeps what a newer hook writes before the CRD is updated. */
const statusBase = (properties: Record<string, Schema>): Schema =>
  obj(
    'Observed state, written by the Featherman hooks through the status subresource.',
    {
      phase: str('A one-word summary: Pending, Ready, Failed, Deleting, ...', { maxLength: 64 }),
      message: str('Details for the current phase, such as the last error.', { maxLength: 32768 }),
      observedGeneration: int64('The .metadata.generation this status describes.', { minimum: 0 }),
      conditions,
      ...properties,
    },
    { 'x-kubernetes-preserve-unknown-fields': true },
  );

/** A Secret holding an S3 access key pair: the catalog's, or a pool's own (read-only) keys. */
const credentialsSecret = (description: string) =>
  obj(
    description,
    {
      name: objectName("The Secret's name."),
      accessKeyField: str('The key holding the access key id.', { pattern: SECRET_KEY_PATTERN, default: 'access-key' }),
      secretKeyField: str('The key holding the secret access key.', { pattern: SECRET_KEY_PATTERN, default: 'secret-key' }),
    },
    { required: ['name'] },
  );

// ---- DuckLakeCatalog ----------------------------------------------------------------------------

/** An S3 location's connection: the catalog's object store, or where its backups go. */
const s3Connection = (what: string) => ({
  endpoint: str(`A host, host:port or http(s) URL, e.g. minio.storage:9000. ${what}`, { pattern: ENDPOINT_PATTERN }),
  region: str("The bucket's region.", { pattern: '^[a-z0-9-]+$', maxLength: 64 }),
  urlStyle: str('path (MinIO and most S3-compatible stores) or vhost (AWS).', { enum: ['path', 'vhost'] }),
});

export const catalogSpec = obj(
  'The desired state of a DuckLake catalog: where its data and metadata live.',
  {
    storageClass: str('StorageClass of the volume that holds a DuckDB metadata file (the cluster default when unset). Immutable.', {
      pattern: DNS_SUBDOMAIN_PATTERN,
    }),
    size: str('Size of that volume, a quantity of at least 1Gi (default 10Gi for duckdb metadata). It can grow, never shrink.', {
      pattern: QUANTITY_PATTERN,
      maxLength: 32,
    }),
    objectStore: obj(
      'The S3-compatible object store that holds the Parquet data files.',
      {
        endpoint: str('A host, host:port or http(s) URL, e.g. minio.storage:9000. Unset means AWS S3.', { pattern: ENDPOINT_PATTERN }),
        bucket: str('The bucket. Immutable.', { pattern: BUCKET_PATTERN, maxLength: 63 }),
        prefix: str('Key prefix under which this lake keeps its files (default <namespace>/<name>). Immutable.', {
          pattern: PREFIX_PATTERN,
          maxLength: 512,
        }),
        region: str("The bucket's region (default us-east-1).", { pattern: '^[a-z0-9-]+$', maxLength: 64 }),
        urlStyle: str(
          'path (MinIO and most S3-compatible stores) or vhost (AWS). Defaults to path when an endpoint is set, vhost otherwise.',
          {
            enum: ['path', 'vhost'],
          },
        ),
        credentialsSecret: credentialsSecret(
          'A Secret in the same namespace with the access key pair. Unset means ambient credentials (e.g. IRSA).',
        ),
      },
      {
        required: ['bucket'],
        'x-kubernetes-validations': [
          { rule: 'self.bucket == oldSelf.bucket', message: 'objectStore.bucket is immutable', fieldPath: '.bucket' },
          {
            rule: "(has(self.prefix) ? self.prefix : '') == (has(oldSelf.prefix) ? oldSelf.prefix : '')",
            message: 'objectStore.prefix is immutable',
            fieldPath: '.prefix',
          },
        ],
      },
    ),
    metadata: obj(
      'Where the DuckLake metadata (the catalog database) lives.',
      {
        type: str('duckdb: a file on the catalog volume, one writer at a time. postgres: a PostgreSQL database, many writers. Immutable.', {
          enum: ['duckdb', 'postgres'],
          default: 'duckdb',
        }),
        connectionSecret: obj(
          'For postgres: a Secret with keys host, dbname, user, password and optionally port (the layout of a CloudNativePG ' +
            '<cluster>-app Secret). Defaults to <catalog name>-app.',
          {
            name: objectName("The Secret's name."),
          },
          { required: ['name'] },
        ),
        schema: identifier(
          "The schema in the metadata database that holds the ducklake_* tables (DuckLake's METADATA_SCHEMA), so several lakes can " +
            'share one Postgres database. Immutable.',
        ),
      },
      {
        default: {},
        'x-kubernetes-validations': [
          {
            rule: "(has(self.type) ? self.type : 'duckdb') == (has(oldSelf.type) ? oldSelf.type : 'duckdb')",
            message: 'metadata.type is immutable',
            fieldPath: '.type',
          },
          {
            rule: "(has(self.schema) ? self.schema : '') == (has(oldSelf.schema) ? oldSelf.schema : '')",
            message: 'metadata.schema is immutable',
            fieldPath: '.schema',
          },
        ],
      },
    ),
    encryption: obj(
      'Encryption of the data files DuckLake writes.',
      {
        enabled: bool('Encrypt every Parquet file with its own key, kept in the metadata. Set at creation; immutable.', false),
      },
      {
        default: {},
        'x-kubernetes-validations': [
          {
            rule: '(has(self.enabled) && self.enabled) == (has(oldSelf.enabled) && oldSelf.enabled)',
            message: 'encryption.enabled is immutable',
            fieldPath: '.enabled',
          },
        ],
      },
    ),
    backupPolicy: obj(
      'Scheduled backups of the metadata (and, with includeData, of the data files), and where every backup of this catalog goes.',
      {
        schedule: schedule('A cron schedule (five fields, or @daily etc.), e.g. "0 2 * * *".'),
        retentionDays: int32('Days to keep backups.', { minimum: 1, maximum: 3650, default: 7 }),
        includeData: bool(
          'Also copy the Parquet files of the backed-up snapshot next to the metadata, incrementally (a file already copied is never ' +
            'copied again), so the backup survives the loss of the bucket. Also the default for DuckLakeBackups of this catalog.',
          false,
        ),
        target: obj(
          'Where backups go instead of beside the data (s3://<objectStore.bucket>/<objectStore.prefix>/backups/): another bucket, ' +
            "prefix or account. Unset connection fields are the objectStore's.",
          {
            bucket: str('The bucket.', { pattern: BUCKET_PATTERN, maxLength: 63 }),
            prefix: str(
              "Key prefix of the backups (default <objectStore.prefix>/backups); each catalog's backups are under <prefix>/<catalog " +
                'name>/.',
              { pattern: PREFIX_PATTERN, maxLength: 512 },
            ),
            ...s3Connection("Unset means the objectStore's endpoint."),
            credentialsSecret: credentialsSecret(
              "A Secret in the same namespace with the access key pair for the target. Unset means the objectStore's credentials.",
            ),
          },
          { required: ['bucket'] },
        ),
      },
      { required: ['schedule'] },
    ),
    maintenance: obj(
      'Scheduled maintenance: merge small files, expire old snapshots, delete unreferenced files.',
      {
        schedule: schedule('A cron schedule (five fields, or @daily etc.).'),
        expireSnapshotsOlderThan: duration(
          'Expire snapshots older than this (time travel reaches no further back). Unset keeps every snapshot.',
        ),
        cleanupOlderThan: duration('Delete files no snapshot references once they have been unreferenced this long.', '1h'),
        mergeAdjacentFiles: bool('Merge small adjacent data files.', true),
        deleteOrphans: bool('Also delete files under the data path that DuckLake never recorded (lists the whole prefix).', false),
        orphansOlderThan: duration(
          'Only delete orphans older than this, at least 1h (younger ones may belong to a write in flight).',
          '7d',
        ),
        maxCompactedFiles: int32('Merge at most this many files per run (at least 2), so one run stays bounded.', {
          minimum: 2,
          maximum: 1000000,
          default: 1000,
        }),
        targetFileSize: str("Merge files up to this size, a quantity such as 512Mi (default: DuckLake's target_file_size).", {
          pattern: QUANTITY_PATTERN,
          maxLength: 32,
        }),
        rewriteDataFiles: bool('Rewrite data files in which deleted rows make up at least rewriteDeleteThreshold.', true),
        rewriteDeleteThreshold: {
          type: 'number',
          description: 'The fraction of deleted rows (above 0, at most 1) at which a data file is rewritten.',
          minimum: 0,
          maximum: 1,
          default: 0.95,
        },
        flushInlinedData: bool('Move rows inlined in the catalog into Parquet files first.', true),
        // Every retained backup holds the snapshot and the files it needs: no age given here expires
        // or deletes them (the runner reports what it kept back).
      },
      { required: ['schedule'] },
    ),
    inspection: obj(
      "A light scheduled Job (`featherman catalog info`) that reads the lake's snapshot, tables, rows, files and bytes into the " +
        'status, so those figures are never older than one interval. Backups, maintenance and table changes report them too.',
      {
        schedule: { ...schedule('A cron schedule (five fields, or @daily etc.).'), default: INSPECTION_SCHEDULE },
        enabled: bool('Run the inspection. Without it the figures move only with backups, maintenance and table changes.', true),
      },
      { default: {} },
    ),
    restoreFrom: obj(
      "Create the catalog from a backup instead of empty. Only honoured at creation. The backup is looked for where this catalog's " +
        'backups go (backupPolicy.target, or beside the data).',
      {
        backup: str('The backup\'s name, or "latest".', { pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]*$', minLength: 1 }),
        catalog: objectName(
          'Restore a backup of another catalog (its name: its backups are under <backup location>/<catalog>/). Default: this catalog.',
        ),
      },
      { required: ['backup'] },
    ),
  },
  {
    required: ['objectStore'],
    'x-kubernetes-validations': [
      {
        rule: "(has(self.storageClass) ? self.storageClass : '') == (has(oldSelf.storageClass) ? oldSelf.storageClass : '')",
        message: 'storageClass is immutable',
        fieldPath: '.storageClass',
      },
      {
        rule:
          '!has(self.restoreFrom) || (has(oldSelf.restoreFrom) && self.restoreFrom.backup == oldSelf.restoreFrom.backup' +
          " && (has(self.restoreFrom.catalog) ? self.restoreFrom.catalog : '') == (has(oldSelf.restoreFrom.catalog) ? " +
          "oldSelf.restoreFrom.catalog : ''))",
        message: 'restoreFrom can only be set when the catalog is created',
        fieldPath: '.restoreFrom',
      },
    ],
  },
);

const catalogStatus = statusBase({
  metadataType: str('duckdb or postgres, as created.', { maxLength: 32 }),
  dataPath: str("The lake's DATA_PATH, e.g. s3://bucket/prefix/data/.", { maxLength: 1024 }),
  ducklakeVersion: str('The DuckLake catalog format version.', { maxLength: 32 }),
  snapshotId: int64('The newest snapshot id a runner reported (see lakeReportTime).'),
  tableCount: int32('Tables in the lake.', { minimum: 0 }),
  totalRows: int64('Rows in all tables.', { minimum: 0 }),
  totalFiles: int64('Data files of all tables.', { minimum: 0 }),
  totalBytes: int64('Bytes in the data files of all tables (storage usage, without files waiting for deletion).', { minimum: 0 }),
  lakeReportTime: time(
    'When the runner that reported snapshotId, tableCount and the totals finished (init, restore, backup, maintenance, a table change ' +
      'or the inspection).',
  ),
  lakeReportCommand: str('Which runner command reported them, e.g. catalog info.', { maxLength: 64 }),
  tables: {
    type: 'array',
    description: "Per-table figures from the same report, as many as fit a runner's report (tablesComplete says whether all did).",
    maxItems: 1000,
    'x-kubernetes-list-type': 'atomic',
    items: obj('A table.', {
      schema: str('SQL schema.', { maxLength: 255 }),
      name: str('SQL name.', { maxLength: 255 }),
      rows: int64('Rows.', { minimum: 0 }),
      files: int64('Data files.', { minimum: 0 }),
      bytes: int64('Bytes in data files.', { minimum: 0 }),
    }),
  },
  tablesComplete: bool('Whether tables lists every table of the lake.'),
  lastBackupTime: time('When the last successful backup finished.'),
  lastBackupName: str("The last successful backup's name."),
  lastMaintenanceTime: time('When the last successful maintenance run finished.'),
  lastBackup: obj(
    'The newest backup of this catalog (scheduled or a DuckLakeBackup). After a failure, outcome and message describe it and the other ' +
      'fields still describe the last good one.',
    {
      name: str("The backup's name."),
      time: time('When it finished.'),
      bytes: int64('Data bytes of the backed-up snapshot.', { minimum: 0 }),
      durationSeconds: { type: 'number', description: 'How long it took.', minimum: 0 },
      snapshotId: int64('The snapshot it holds.'),
      includeData: bool('Whether it copied the data files.'),
      outcome: str('Succeeded or Failed.', { enum: ['Succeeded', 'Failed'] }),
      message: str("The runner's error when it failed.", { maxLength: 1024 }),
      attemptTime: time("When the failed attempt finished (time stays the last good backup's)."),
    },
  ),
  lastMaintenance: obj(
    "The newest maintenance run. After a failure, outcome and message describe it and the figures are the last good run's.",
    {
      time: time('When it finished.'),
      durationSeconds: { type: 'number', description: 'How long it took.', minimum: 0 },
      outcome: str('Succeeded or Failed.', { enum: ['Succeeded', 'Failed'] }),
      message: str("The runner's error when it failed, or what it kept back for backups.", { maxLength: 1024 }),
      snapshotsExpired: int64('Snapshots expired.', { minimum: 0 }),
      snapshotsKeptBack: int64('Snapshots old enough to expire, kept for retained backups.', { minimum: 0 }),
      filesMerged: int64('Small files merged into larger ones.', { minimum: 0 }),
      filesRewritten: int64('Files rewritten to drop deleted rows.', { minimum: 0 }),
      filesDeleted: int64('Unreferenced files deleted.', { minimum: 0 }),
      bytesReclaimed: int64('Bytes those deletions freed.', { minimum: 0 }),
      filesKeptBack: int64('Files that could have been deleted, kept for retained backups.', { minimum: 0 }),
      orphansDeleted: int64('Orphan files deleted.', { minimum: 0 }),
      attemptTime: time("When the failed run finished (time stays the last good run's)."),
    },
  ),
});

// ---- DuckLakeTable ------------------------------------------------------------------------------

export const tableSpec = obj(
  'The desired state of a table in a DuckLake catalog.',
  {
    catalogRef: { ...objectName('The DuckLakeCatalog (same namespace) that holds the table. Immutable.'), ...immutable('catalogRef') },
    name: { ...identifier("The table's SQL name. Immutable."), ...immutable('name') },
    schema: { ...identifier('The SQL schema the table lives in. Immutable.', { default: 'main' }), ...immutable('schema') },
    comment: str('A comment stored with the table.', { maxLength: 4096 }),
    columns: {
      type: 'array',
      description: 'The columns, in order. Columns can be added, dropped (except partition columns) and widened (e.g. INTEGER to BIGINT).',
      minItems: 1,
      maxItems: 1000,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['name'],
      items: obj(
        'A column.',
        {
          name: identifier("The column's SQL name."),
          type: str(
            'A DuckDB type: INTEGER, VARCHAR, DECIMAL(10,2), TIMESTAMPTZ, VARCHAR[], STRUCT(a INTEGER, b VARCHAR), MAP(VARCHAR, ' +
              'DOUBLE), ...',
            {
              minLength: 1,
              maxLength: 1000,
            },
          ),
          nullable: bool('Whether the column may hold NULL.', true),
          comment: str('A comment stored with the column.', { maxLength: 4096 }),
        },
        { required: ['name', 'type'] },
      ),
    },
    format: obj(
      'How data files are written.',
      {
        compression: str('Parquet compression.', { enum: [...COMPRESSIONS], default: 'ZSTD' }),
        partitioning: {
          type: 'array',
          description: 'Partition keys for new data: a column name or year|month|day|hour(column), e.g. day(created_at).',
          maxItems: 16,
          'x-kubernetes-list-type': 'atomic',
          items: str('A partition key.', { minLength: 1, maxLength: 128 }),
        },
      },
      { default: {} },
    ),
    deletionPolicy: str('Retain keeps the table in the lake when this object is deleted; Delete drops it.', {
      enum: ['Retain', 'Delete'],
      default: 'Retain',
    }),
  },
  { required: ['catalogRef', 'name', 'columns'] },
);

const tableStatus = statusBase({
  catalog: str('The catalog the table lives in.'),
  table: str("The table's qualified name, schema.table.", { maxLength: 255 }),
  snapshotId: int64('The lake snapshot that last changed the table.'),
  appliedGeneration: int64('The .metadata.generation last applied to the lake.', { minimum: 0 }),
  lastApplied: time('When the spec was last applied.'),
  columns: {
    type: 'array',
    description: 'The columns as the lake has them.',
    maxItems: 1000,
    'x-kubernetes-list-type': 'atomic',
    items: obj('A column.', {
      name: str('Name.', { maxLength: 255 }),
      type: str('DuckDB type.', { maxLength: 1000 }),
      nullable: bool('Nullable.'),
    }),
  },
  rows: int64('Rows in the table.', { minimum: 0 }),
  files: int64('Data files.', { minimum: 0 }),
  bytes: int64('Bytes in data files.', { minimum: 0 }),
  figuresTime: time("When rows, files and bytes were measured (the table's own Job, or the catalog's newest report)."),
});

// ---- DuckLakePool -------------------------------------------------------------------------------

const toleration = obj('A toleration, as in a Pod spec.', {
  key: str('The taint key; empty matches every key (with operator Exists).', { maxLength: 316 }),
  operator: str('Exists or Equal (default).', { enum: ['Exists', 'Equal'] }),
  value: str('The taint value (Equal only).', { maxLength: 63 }),
  effect: str('NoSchedule, PreferNoSchedule, NoExecute, or empty for all.', { enum: ['', 'NoSchedule', 'PreferNoSchedule', 'NoExecute'] }),
  tolerationSeconds: int64('For NoExecute: how long the pod stays bound after the taint appears.'),
});

export const poolSpec = obj(
  'A pool of warm DuckDB workers serving queries against one catalog.',
  {
    minSize: int32('Workers kept running even when idle.', { minimum: 0, maximum: 1000, default: 1 }),
    maxSize: int32('The most workers the pool scales to.', { minimum: 1, maximum: 1000, default: 10 }),
    targetUtilization: {
      type: 'number',
      description: 'Busy fraction the pool scales towards, above 0 and at most 1.',
      minimum: 0,
      maximum: 1,
      default: 0.8,
    },
    template: obj('The worker pods.', {
      image: str("Worker image (default: the operator's own image).", { pattern: IMAGE_PATTERN, maxLength: 512 }),
      imagePullPolicy: str('Always, IfNotPresent or Never.', { enum: ['Always', 'IfNotPresent', 'Never'] }),
      resources: obj('Compute resources of the worker container.', {
        requests: {
          type: 'object',
          description: 'Minimum resources, e.g. memory: 2Gi, cpu: "1".',
          maxProperties: 16,
          additionalProperties: quantity('A quantity.'),
        },
        limits: { type: 'object', description: 'Maximum resources.', maxProperties: 16, additionalProperties: quantity('A quantity.') },
      }),
      nodeSelector: {
        type: 'object',
        description: 'Node labels the workers must run on.',
        maxProperties: 32,
        additionalProperties: str('A label value.', { maxLength: 63 }),
      },
      tolerations: {
        type: 'array',
        description: 'Taints the workers tolerate.',
        maxItems: 32,
        'x-kubernetes-list-type': 'atomic',
        items: toleration,
      },
      affinity: { type: 'object', description: 'Pod affinity rules, as in a Pod spec.', 'x-kubernetes-preserve-unknown-fields': true },
    }),
    maxIdleTime: duration('Stop a worker above minSize after it has been idle this long.', '5m'),
    maxLifetime: duration('Replace a worker after it has run this long.', '1h'),
    maxQueries: int32('Replace a worker after it has served this many queries.', { minimum: 1, default: 100 }),
    scaleUpRate: int32('Most workers added per scaleInterval.', { minimum: 1, maximum: 1000, default: 2 }),
    scaleDownRate: int32('Most workers removed per scaleInterval.', { minimum: 1, maximum: 1000, default: 1 }),
    scaleInterval: duration('How often the pool re-evaluates its size (at least 1s).', '30s'),
    maxQueryDuration: duration('Cancel a query after this long.', '60s'),
    queue: obj(
      'Queries waiting for a free worker.',
      {
        maxLength: int32('Most queries waiting; more are refused with HTTP 429.', { minimum: 0, maximum: 100000, default: 100 }),
        maxWaitTime: duration('Longest a query waits for a worker before it is refused.', '30s'),
        maxRunningPerPrincipal: int32(
          'Most queries one principal (user or ServiceAccount) runs at once in this pool, per service replica; more wait their turn. ' +
            "Unset: no limit beyond the pool's size.",
          { minimum: 1, maximum: 100000 },
        ),
        // No schema default (the service applies 50), so existing pools are not patched on admission.
        maxQueuedPerPrincipal: int32(
          'Most queries one principal has waiting in this pool, per service replica (default 50); more are refused with HTTP 429. The ' +
            'queue serves principals in turn.',
          { minimum: 0, maximum: 100000 },
        ),
      },
      { default: {} },
    ),
    credentialsSecret: credentialsSecret(
      "A Secret in the same namespace with the S3 key pair the workers use instead of the catalog's: give them read-only keys for the " +
        'data prefix.',
    ),
    catalogRef: obj(
      'The DuckLakeCatalog (same namespace) the workers attach.',
      {
        name: objectName("The catalog's name."),
        readOnly: bool('Attach read-only (the workers then never take the writer lock).', true),
      },
      { required: ['name'] },
    ),
  },
  {
    required: ['catalogRef'],
    'x-kubernetes-validations': [
      {
        rule: '!has(self.minSize) || !has(self.maxSize) || self.minSize <= self.maxSize',
        message: 'minSize must not be greater than maxSize',
        fieldPath: '.minSize',
      },
    ],
  },
);

const poolStatus = statusBase({
  catalog: str('The catalog the pool serves.'),
  currentSize: int32('Workers that exist.', { minimum: 0 }),
  desiredSize: int32('Workers the pool wants.', { minimum: 0 }),
  readyPods: int32('Workers ready to take queries.', { minimum: 0 }),
  scaleDownSince: time('Since when the pool has wanted fewer workers (scale-down waits for scaleDownDelay).'),
  scaleDownTarget: int32('The size it wants to scale down to.', { minimum: 0 }),
  nextPodIndex: int64("A counter the sync hook keeps: the next worker's name is a hash of the pool and it.", { minimum: 0 }),
  idlePods: int32('Workers ready and idle.', { minimum: 0 }),
  busyPods: int32('Workers running a query.', { minimum: 0 }),
  queueLength: int32('Queries waiting.', { minimum: 0 }),
  lastScaleTime: time('When the pool last changed size.'),
  pods: {
    type: 'array',
    description: 'The workers.',
    maxItems: 1000,
    'x-kubernetes-list-type': 'atomic',
    items: obj('A worker.', {
      name: str('Pod name.'),
      state: str('Starting, Idle, Busy, Draining or Terminating.', { maxLength: 32 }),
      lastUsed: time('When it last finished a query.'),
      queryCount: int64('Queries served.', { minimum: 0 }),
      createdAt: time('When it started.'),
    }),
  },
});

// ---- DuckLakeBackup -----------------------------------------------------------------------------

export const backupSpec = obj(
  "An on-demand backup of a catalog: one run of `featherman backup`, kept until deleted (never pruned by the catalog's retention). The " +
    'whole spec is immutable.',
  {
    catalogRef: { ...objectName('The DuckLakeCatalog (same namespace) to back up.'), ...immutable('catalogRef') },
    includeData: bool("Also copy the data files of the snapshot (default: the catalog's backupPolicy.includeData, else false)."),
    deletionPolicy: str('Retain keeps the backup in the bucket when this object is deleted; Delete deletes it.', {
      enum: ['Retain', 'Delete'],
      default: 'Retain',
    }),
  },
  {
    required: ['catalogRef'],
    'x-kubernetes-validations': [{ rule: 'self == oldSelf', message: 'spec is immutable: create a new DuckLakeBackup instead' }],
  },
);

const backupStatus = statusBase({
  catalog: str('The catalog backed up.'),
  backupName: str("The backup's name in the backup location: the creation time and a hash of this object's uid.", { maxLength: 64 }),
  location: str('Where the backup is, e.g. s3://bucket/prefix/backups/<catalog>/<name>/.', { maxLength: 1024 }),
  includeData: bool('Whether the data files were copied.'),
  snapshotId: int64('The snapshot the backup holds.'),
  bytes: int64('Data bytes of that snapshot.', { minimum: 0 }),
  files: int64('Data files of that snapshot.', { minimum: 0 }),
  metadataBytes: int64('Bytes of the metadata copy.', { minimum: 0 }),
  dataBytesCopied: int64('Data bytes copied by this backup (includeData; files copied before are not copied again).', { minimum: 0 }),
  durationSeconds: { type: 'number', description: 'How long the backup took.', minimum: 0 },
  verified: bool('The backup was read back and matched its manifest.'),
  startedAt: time('When the backup Job started.'),
  completionTime: time('When the backup finished.'),
});

// ---- the kinds ----------------------------------------------------------------------------------

export interface KindInfo {
  kind: Kind;
  plural: string;
  singular: string;
  shortName: string;
  spec: Schema;
  status: Schema;
  printerColumns: { name: string; type: string; jsonPath: string; description?: string; priority?: number; format?: string }[];
}

const phase = { name: 'Phase', type: 'string', jsonPath: '.status.phase' };
const ready = { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' };
const age = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

export const KIND_INFO: Record<Kind, KindInfo> = {
  DuckLakeCatalog: {
    kind: 'DuckLakeCatalog',
    plural: 'ducklakecatalogs',
    singular: 'ducklakecatalog',
    shortName: 'dlc',
    spec: catalogSpec,
    status: catalogStatus,
    printerColumns: [
      phase,
      ready,
      { name: 'Bucket', type: 'string', jsonPath: '.spec.objectStore.bucket', priority: 1 },
      { name: 'Metadata', type: 'string', jsonPath: '.spec.metadata.type', priority: 1 },
      { name: 'Tables', type: 'integer', jsonPath: '.status.tableCount', priority: 1 },
      { name: 'Rows', type: 'integer', jsonPath: '.status.totalRows', priority: 1 },
      { name: 'Bytes', type: 'integer', jsonPath: '.status.totalBytes', priority: 1 },
      { name: 'Last Backup', type: 'date', jsonPath: '.status.lastBackup.time', priority: 1 },
      age,
    ],
  },
  DuckLakeTable: {
    kind: 'DuckLakeTable',
    plural: 'ducklaketables',
    singular: 'ducklaketable',
    shortName: 'dlt',
    spec: tableSpec,
    status: tableStatus,
    printerColumns: [
      { name: 'Catalog', type: 'string', jsonPath: '.spec.catalogRef' },
      { name: 'Table', type: 'string', jsonPath: '.spec.name' },
      { name: 'Snapshot', type: 'integer', jsonPath: '.status.snapshotId' },
      phase,
      ready,
      age,
    ],
  },
  DuckLakePool: {
    kind: 'DuckLakePool',
    plural: 'ducklakepools',
    singular: 'ducklakepool',
    shortName: 'dlp',
    spec: poolSpec,
    status: poolStatus,
    printerColumns: [
      { name: 'Min', type: 'integer', jsonPath: '.spec.minSize' },
      { name: 'Max', type: 'integer', jsonPath: '.spec.maxSize' },
      { name: 'Current', type: 'integer', jsonPath: '.status.currentSize' },
      { name: 'Idle', type: 'integer', jsonPath: '.status.idlePods' },
      { name: 'Busy', type: 'integer', jsonPath: '.status.busyPods' },
      phase,
      ready,
      age,
    ],
  },
  DuckLakeBackup: {
    kind: 'DuckLakeBackup',
    plural: 'ducklakebackups',
    singular: 'ducklakebackup',
    shortName: 'dlb',
    spec: backupSpec,
    status: backupStatus,
    printerColumns: [
      { name: 'Catalog', type: 'string', jsonPath: '.spec.catalogRef' },
      phase,
      { name: 'Backup', type: 'string', jsonPath: '.status.backupName' },
      { name: 'Snapshot', type: 'integer', jsonPath: '.status.snapshotId' },
      { name: 'Bytes', type: 'integer', jsonPath: '.status.bytes' },
      age,
    ],
  },
};

/** The openAPIV3Schema of a kind's CRD. */
export function objectSchema(kind: Kind): Schema {
  const info = KIND_INFO[kind];
  return {
    type: 'object',
    description: `${kind} (${API_VERSION}). kubectl explain ${info.plural}.spec describes every field.`,
    properties: {
      apiVersion: { type: 'string', description: 'APIVersion defines the versioned schema of this representation of an object.' },
      kind: { type: 'string', description: 'Kind is a string value representing the REST resource this object represents.' },
      metadata: { type: 'object' },
      spec: info.spec,
      status: info.status,
    },
    required: ['spec'],
  };
}

export function isKind(value: unknown): value is Kind {
  return typeof value === 'string' && (KINDS as readonly string[]).includes(value);
}

export function kindForResource(resource: string): Kind | undefined {
  return KINDS.find((k) => KIND_INFO[k].plural === resource);
}
