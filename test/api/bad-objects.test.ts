// Table-driven denials: each bad object (or bad update) is refused by the validating webhook
// with status 422 and a message that names the failing field and says what is wrong with it.
import t, { type Test } from 'tap';
import { join } from 'node:path';
import { validateReview } from '../../lib/api/admission.js';
import { clone, readmeFixture, review, ROOT, yamlObjects, type Obj } from '../helpers/admission.js';

const catalog = () => clone(readmeFixture('catalog'));
const pool = () => clone(readmeFixture('pool'));
const table = () => clone(yamlObjects(join(ROOT, 'examples', 'users-table.yaml'))[0]!);
const postgresCatalog = () => clone(yamlObjects(join(ROOT, 'examples', 'catalog-postgres.yaml'))[0]!);
const backup = () => clone(yamlObjects(join(ROOT, 'examples', 'backup.yaml'))[0]!);
const withTarget = (o: Obj, target: Obj) => {
  o.spec.backupPolicy.target = target;
};

interface Case {
  name: string;
  object: Obj;
  field: string;
  message: RegExp;
  old?: Obj;
}

const edit = (make: () => Obj, change: (o: Obj) => void): Obj => {
  const o = make();
  change(o);
  return o;
};

const creates: Case[] = [
  // DuckLakeCatalog
  {
    name: 'size below 1Gi',
    object: edit(catalog, (o) => {
      o.spec.size = '500Mi';
    }),
    field: 'spec.size',
    message: /at least 1Gi, got "500Mi"/,
  },
  {
    name: 'size not a quantity',
    object: edit(catalog, (o) => {
      o.spec.size = 'ten gigs';
    }),
    field: 'spec.size',
    message: /quantity/,
  },
  {
    name: 'objectStore missing',
    object: edit(catalog, (o) => {
      delete o.spec.objectStore;
    }),
    field: 'spec.objectStore',
    message: /is required/,
  },
  {
    name: 'bucket missing',
    object: edit(catalog, (o) => {
      delete o.spec.objectStore.bucket;
    }),
    field: 'spec.objectStore.bucket',
    message: /is required/,
  },
  {
    name: 'bucket with capitals and underscore',
    object: edit(catalog, (o) => {
      o.spec.objectStore.bucket = 'My_Bucket';
    }),
    field: 'spec.objectStore.bucket',
    message: /S3 bucket name/,
  },
  {
    name: 'bucket with adjacent dots',
    object: edit(catalog, (o) => {
      o.spec.objectStore.bucket = 'my..bucket';
    }),
    field: 'spec.objectStore.bucket',
    message: /dots/,
  },
  {
    name: 'bucket shaped like an IP address',
    object: edit(catalog, (o) => {
      o.spec.objectStore.bucket = '192.168.1.1';
    }),
    field: 'spec.objectStore.bucket',
    message: /IP address/,
  },
  {
    name: 'endpoint with another scheme',
    object: edit(catalog, (o) => {
      o.spec.objectStore.endpoint = 'ftp://minio:9000';
    }),
    field: 'spec.objectStore.endpoint',
    message: /host, host:port or http\(s\) URL/,
  },
  {
    name: 'endpoint port out of range',
    object: edit(catalog, (o) => {
      o.spec.objectStore.endpoint = 'minio:99999';
    }),
    field: 'spec.objectStore.endpoint',
    message: /port 99999/,
  },
  {
    name: 'endpoint with a path',
    object: edit(catalog, (o) => {
      o.spec.objectStore.endpoint = 'http://minio:9000/bucket';
    }),
    field: 'spec.objectStore.endpoint',
    message: /host, host:port or http\(s\) URL|path/,
  },
  {
    name: 'prefix starting with /',
    object: edit(catalog, (o) => {
      o.spec.objectStore.prefix = '/lakes/a';
    }),
    field: 'spec.objectStore.prefix',
    message: /must not start with "\/"/,
  },
  {
    name: 'prefix with ..',
    object: edit(catalog, (o) => {
      o.spec.objectStore.prefix = 'a/../b';
    }),
    field: 'spec.objectStore.prefix',
    message: /"\.\." segments/,
  },
  {
    name: 'unknown urlStyle',
    object: edit(catalog, (o) => {
      o.spec.objectStore.urlStyle = 'virtual';
    }),
    field: 'spec.objectStore.urlStyle',
    message: /one of "path", "vhost"/,
  },
  {
    name: 'credentialsSecret without a name',
    object: edit(catalog, (o) => {
      o.spec.objectStore.credentialsSecret = {};
    }),
    field: 'spec.objectStore.credentialsSecret.name',
    message: /is required/,
  },
  {
    name: 'credentialsSecret name not a Kubernetes name',
    object: edit(catalog, (o) => {
      o.spec.objectStore.credentialsSecret.name = 'S3_Creds';
    }),
    field: 'spec.objectStore.credentialsSecret.name',
    message: /Kubernetes object name/,
  },
  {
    name: 'accessKeyField not a Secret key',
    object: edit(catalog, (o) => {
      o.spec.objectStore.credentialsSecret.accessKeyField = 'access key!';
    }),
    field: 'spec.objectStore.credentialsSecret.accessKeyField',
    message: /Secret key/,
  },
  {
    name: 'metadata type sqlite',
    object: edit(catalog, (o) => {
      o.spec.metadata = { type: 'sqlite' };
    }),
    field: 'spec.metadata.type',
    message: /one of "duckdb", "postgres"/,
  },
  {
    name: 'connectionSecret on a duckdb catalog',
    object: edit(catalog, (o) => {
      o.spec.metadata = { type: 'duckdb', connectionSecret: { name: 'pg' } };
    }),
    field: 'spec.metadata.connectionSecret',
    message: /only used when metadata.type is postgres/,
  },
  {
    name: 'backup schedule in words',
    object: edit(catalog, (o) => {
      o.spec.backupPolicy.schedule = 'every day';
    }),
    field: 'spec.backupPolicy.schedule',
    message: /field/,
  },
  {
    name: 'backup schedule with seconds',
    object: edit(catalog, (o) => {
      o.spec.backupPolicy.schedule = '0 0 2 * * *';
    }),
    field: 'spec.backupPolicy.schedule',
    message: /has 6 fields; a schedule has five/,
  },
  {
    name: 'backup schedule @every',
    object: edit(catalog, (o) => {
      o.spec.backupPolicy.schedule = '@every 1h';
    }),
    field: 'spec.backupPolicy.schedule',
    message: /not a supported macro/,
  },
  {
    name: 'backup schedule hour 25',
    object: edit(catalog, (o) => {
      o.spec.backupPolicy.schedule = '0 25 * * *';
    }),
    field: 'spec.backupPolicy.schedule',
    message: /not a valid cron schedule/,
  },
  {
    name: 'backup schedule with Quartz L',
    object: edit(catalog, (o) => {
      o.spec.backupPolicy.schedule = '0 0 L * *';
    }),
    field: 'spec.backupPolicy.schedule',
    message: /not allowed here/,
  },
  {
    name: 'retentionDays 0',
    object: edit(catalog, (o) => {
      o.spec.backupPolicy.retentionDays = 0;
    }),
    field: 'spec.backupPolicy.retentionDays',
    message: /at least 1, got 0/,
  },
  {
    name: 'backupPolicy without schedule',
    object: edit(catalog, (o) => {
      delete o.spec.backupPolicy.schedule;
    }),
    field: 'spec.backupPolicy.schedule',
    message: /is required/,
  },
  {
    name: 'orphans younger than an hour',
    object: edit(catalog, (o) => {
      o.spec.maintenance = { schedule: '@weekly', deleteOrphans: true, orphansOlderThan: '10m' };
    }),
    field: 'spec.maintenance.orphansOlderThan',
    message: /at least 1h/,
  },
  {
    name: 'expiry not a duration',
    object: edit(catalog, (o) => {
      o.spec.maintenance = { schedule: '@weekly', expireSnapshotsOlderThan: '7 days' };
    }),
    field: 'spec.maintenance.expireSnapshotsOlderThan',
    message: /duration such as 300s/,
  },
  {
    name: 'restoreFrom with an empty backup',
    object: edit(catalog, (o) => {
      o.spec.restoreFrom = { backup: '' };
    }),
    field: 'spec.restoreFrom.backup',
    message: /must not be empty/,
  },
  {
    name: 'misspelt field',
    object: edit(catalog, (o) => {
      o.spec.objectstore = o.spec.objectStore;
    }),
    field: 'spec.objectstore',
    message: /not a field of this kind/,
  },
  {
    name: 'storageClass with spaces',
    object: edit(catalog, (o) => {
      o.spec.storageClass = 'Fast SSD';
    }),
    field: 'spec.storageClass',
    message: /Kubernetes object name/,
  },
  {
    name: 'encryption.enabled a string',
    object: edit(catalog, (o) => {
      o.spec.encryption = { enabled: 'yes' };
    }),
    field: 'spec.encryption.enabled',
    message: /true or false/,
  },
  // DuckLakeCatalog: backups and maintenance
  {
    name: 'includeData a string',
    object: edit(catalog, (o) => {
      o.spec.backupPolicy.includeData = 'yes';
    }),
    field: 'spec.backupPolicy.includeData',
    message: /true or false/,
  },
  {
    name: 'backup target without a bucket',
    object: edit(catalog, (o) => withTarget(o, { prefix: 'x' })),
    field: 'spec.backupPolicy.target.bucket',
    message: /is required/,
  },
  {
    name: 'backup target bucket with capitals',
    object: edit(catalog, (o) => withTarget(o, { bucket: 'Backups' })),
    field: 'spec.backupPolicy.target.bucket',
    message: /S3 bucket name/,
  },
  {
    name: 'backup target bucket shaped like an IP address',
    object: edit(catalog, (o) => withTarget(o, { bucket: '10.0.0.1' })),
    field: 'spec.backupPolicy.target.bucket',
    message: /IP address/,
  },
  {
    name: 'backup target endpoint with another scheme',
    object: edit(catalog, (o) => withTarget(o, { bucket: 'backups', endpoint: 'ftp://minio:9000' })),
    field: 'spec.backupPolicy.target.endpoint',
    message: /host, host:port or http\(s\) URL/,
  },
  {
    name: 'backup target endpoint port out of range',
    object: edit(catalog, (o) => withTarget(o, { bucket: 'backups', endpoint: 'minio:70000' })),
    field: 'spec.backupPolicy.target.endpoint',
    message: /port 70000/,
  },
  {
    name: 'backup target endpoint with credentials',
    object: edit(catalog, (o) => withTarget(o, { bucket: 'backups', endpoint: 'http://key:secret@minio:9000' })),
    field: 'spec.backupPolicy.target.endpoint',
    message: /host, host:port or http\(s\) URL|credentials/,
  },
  {
    name: 'backup target prefix with ..',
    object: edit(catalog, (o) => withTarget(o, { bucket: 'backups', prefix: 'a/../b' })),
    field: 'spec.backupPolicy.target.prefix',
    message: /"\.\." segments/,
  },
  {
    name: 'backups inside the data path',
    object: edit(postgresCatalog, (o) => {
      o.spec.backupPolicy.target = { bucket: 'analytics-lake', prefix: 'shared/data/backups' };
    }),
    field: 'spec.backupPolicy.target.prefix',
    message: /inside the data path \(shared\/data\/\)/,
  },
  {
    name: 'backups as the data path',
    object: edit(postgresCatalog, (o) => {
      o.spec.backupPolicy.target = { bucket: 'analytics-lake', prefix: 'shared/data/' };
    }),
    field: 'spec.backupPolicy.target.prefix',
    message: /inside the data path/,
  },
  {
    name: 'backup target urlStyle',
    object: edit(catalog, (o) => withTarget(o, { bucket: 'backups', urlStyle: 'virtual' })),
    field: 'spec.backupPolicy.target.urlStyle',
    message: /one of "path", "vhost"/,
  },
  {
    name: 'backup target credentials without a name',
    object: edit(catalog, (o) => withTarget(o, { bucket: 'backups', credentialsSecret: {} })),
    field: 'spec.backupPolicy.target.credentialsSecret.name',
    message: /is required/,
  },
  {
    name: 'targetFileSize not a quantity',
    object: edit(catalog, (o) => {
      o.spec.maintenance = { schedule: '@weekly', targetFileSize: '512 MB' };
    }),
    field: 'spec.maintenance.targetFileSize',
    message: /quantity such as 10Gi/,
  },
  {
    name: 'targetFileSize below 1Mi',
    object: edit(catalog, (o) => {
      o.spec.maintenance = { schedule: '@weekly', targetFileSize: '100Ki' };
    }),
    field: 'spec.maintenance.targetFileSize',
    message: /at least 1Mi, got "100Ki"/,
  },
  {
    name: 'targetFileSize in millibytes',
    object: edit(catalog, (o) => {
      o.spec.maintenance = { schedule: '@weekly', targetFileSize: '5000000500m' };
    }),
    field: 'spec.maintenance.targetFileSize',
    message: /whole number of bytes/,
  },
  {
    name: 'rewriteDeleteThreshold above 1',
    object: edit(catalog, (o) => {
      o.spec.maintenance = { schedule: '@weekly', rewriteDeleteThreshold: 1.5 };
    }),
    field: 'spec.maintenance.rewriteDeleteThreshold',
    message: /at most 1, got 1.5/,
  },
  {
    name: 'rewriteDeleteThreshold negative',
    object: edit(catalog, (o) => {
      o.spec.maintenance = { schedule: '@weekly', rewriteDeleteThreshold: -0.1 };
    }),
    field: 'spec.maintenance.rewriteDeleteThreshold',
    message: /at least 0/,
  },
  {
    name: 'maxCompactedFiles 1',
    object: edit(catalog, (o) => {
      o.spec.maintenance = { schedule: '@weekly', maxCompactedFiles: 1 };
    }),
    field: 'spec.maintenance.maxCompactedFiles',
    message: /at least 2, got 1/,
  },
  {
    name: 'rewriteDeleteThreshold 0',
    object: edit(catalog, (o) => {
      o.spec.maintenance = { schedule: '@weekly', rewriteDeleteThreshold: 0 };
    }),
    field: 'spec.maintenance.rewriteDeleteThreshold',
    message: /must be above 0/,
  },
  {
    name: 'flushInlinedData a string',
    object: edit(catalog, (o) => {
      o.spec.maintenance = { schedule: '@weekly', flushInlinedData: 'no' };
    }),
    field: 'spec.maintenance.flushInlinedData',
    message: /true or false/,
  },
  {
    name: 'restoreFrom.catalog not a Kubernetes name',
    object: edit(catalog, (o) => {
      o.spec.restoreFrom = { backup: 'latest', catalog: 'Old_Lake' };
    }),
    field: 'spec.restoreFrom.catalog',
    message: /Kubernetes object name/,
  },
  // DuckLakeBackup
  {
    name: 'no catalogRef',
    object: edit(backup, (o) => {
      delete o.spec.catalogRef;
    }),
    field: 'spec.catalogRef',
    message: /is required/,
  },
  {
    name: 'catalogRef not a Kubernetes name',
    object: edit(backup, (o) => {
      o.spec.catalogRef = 'My Catalog';
    }),
    field: 'spec.catalogRef',
    message: /Kubernetes object name/,
  },
  {
    name: 'catalogRef as an object',
    object: edit(backup, (o) => {
      o.spec.catalogRef = { name: 'example' };
    }),
    field: 'spec.catalogRef',
    message: /must be a string/,
  },
  {
    name: 'includeData a string',
    object: edit(backup, (o) => {
      o.spec.includeData = 'true';
    }),
    field: 'spec.includeData',
    message: /true or false/,
  },
  {
    name: 'unknown deletionPolicy',
    object: edit(backup, (o) => {
      o.spec.deletionPolicy = 'Archive';
    }),
    field: 'spec.deletionPolicy',
    message: /one of "Retain", "Delete"/,
  },
  {
    name: 'a name of its own',
    object: edit(backup, (o) => {
      o.spec.name = '20261124T020000Z';
    }),
    field: 'spec.name',
    message: /not a field of this kind/,
  },
  {
    name: "a schedule (that is the catalog's backupPolicy)",
    object: edit(backup, (o) => {
      o.spec.schedule = '@daily';
    }),
    field: 'spec.schedule',
    message: /not a field of this kind/,
  },
  {
    name: 'a retention (backups made this way are never pruned)',
    object: edit(backup, (o) => {
      o.spec.retentionDays = 3;
    }),
    field: 'spec.retentionDays',
    message: /not a field of this kind/,
  },
  {
    name: 'spec missing',
    object: edit(backup, (o) => {
      delete o.spec;
    }),
    field: 'spec',
    message: /is required|must be an object/,
  },
  {
    name: 'catalogRef empty',
    object: edit(backup, (o) => {
      o.spec.catalogRef = '';
    }),
    field: 'spec.catalogRef',
    message: /must not be empty|Kubernetes object name/,
  },
  // DuckLakeTable
  {
    name: 'no columns',
    object: edit(table, (o) => {
      o.spec.columns = [];
      o.spec.format.partitioning = [];
    }),
    field: 'spec.columns',
    message: /at least 1 item/,
  },
  {
    name: 'misspelt type',
    object: edit(table, (o) => {
      o.spec.columns[1].type = 'STRNG';
    }),
    field: 'spec.columns[1].type',
    message: /invalid DuckDB type "STRNG": unknown type/,
  },
  {
    name: 'DECIMAL precision above 38',
    object: edit(table, (o) => {
      o.spec.columns[0].type = 'DECIMAL(40,2)';
    }),
    field: 'spec.columns[0].type',
    message: /precision must be between 1 and 38/,
  },
  {
    name: 'type DuckLake cannot store',
    object: edit(table, (o) => {
      o.spec.columns[1].type = "ENUM('a','b')";
    }),
    field: 'spec.columns[1].type',
    message: /invalid DuckDB type/,
  },
  {
    name: 'column name starting with a digit',
    object: edit(table, (o) => {
      o.spec.columns[0].name = '1id';
    }),
    field: 'spec.columns[0].name',
    message: /letters, digits and underscores/,
  },
  {
    name: 'column names differing only in case',
    object: edit(table, (o) => {
      o.spec.columns.push({ name: 'ID', type: 'BIGINT' });
    }),
    field: 'spec.columns[3].name',
    message: /duplicate column name "ID"/,
  },
  {
    name: 'the same column twice',
    object: edit(table, (o) => {
      o.spec.columns.push({ name: 'id', type: 'BIGINT' });
    }),
    field: 'spec.columns[3]',
    message: /duplicate entry with name="id"/,
  },
  {
    name: 'day() of a VARCHAR',
    object: edit(table, (o) => {
      o.spec.format.partitioning = ['day(name)'];
    }),
    field: 'spec.format.partitioning[0]',
    message: /needs a DATE or TIMESTAMP column, but name is VARCHAR/,
  },
  {
    name: 'partition transform that does not exist',
    object: edit(table, (o) => {
      o.spec.format.partitioning = ['bucket(4, id)'];
    }),
    field: 'spec.format.partitioning[0]',
    message: /is not a partition key/,
  },
  {
    name: 'partition column not in the table',
    object: edit(table, (o) => {
      o.spec.format.partitioning = ['month(updated_at)'];
    }),
    field: 'spec.format.partitioning[0]',
    message: /partition column "updated_at" is not one of the table's columns/,
  },
  {
    name: 'unknown compression',
    object: edit(table, (o) => {
      o.spec.format.compression = 'LZMA';
    }),
    field: 'spec.format.compression',
    message: /one of "UNCOMPRESSED", "SNAPPY"/,
  },
  {
    name: 'unknown deletionPolicy',
    object: edit(table, (o) => {
      o.spec.deletionPolicy = 'Destroy';
    }),
    field: 'spec.deletionPolicy',
    message: /one of "Retain", "Delete"/,
  },
  {
    name: 'catalogRef not a Kubernetes name',
    object: edit(table, (o) => {
      o.spec.catalogRef = 'Example';
    }),
    field: 'spec.catalogRef',
    message: /Kubernetes object name/,
  },
  {
    name: 'table name reserved by DuckLake',
    object: edit(table, (o) => {
      o.spec.name = '__ducklake_users';
    }),
    field: 'spec.name',
    message: /reserved for the DuckLake catalog/,
  },
  {
    name: 'schema with a hyphen',
    object: edit(table, (o) => {
      o.spec.schema = 'my-schema';
    }),
    field: 'spec.schema',
    message: /letters, digits and underscores/,
  },
  {
    name: 'catalogRef missing',
    object: edit(table, (o) => {
      delete o.spec.catalogRef;
    }),
    field: 'spec.catalogRef',
    message: /is required/,
  },
  {
    name: 'nullable not a boolean',
    object: edit(table, (o) => {
      o.spec.columns[1].nullable = 'yes';
    }),
    field: 'spec.columns[1].nullable',
    message: /true or false/,
  },
  {
    name: 'column without a type',
    object: edit(table, (o) => {
      delete o.spec.columns[1].type;
    }),
    field: 'spec.columns[1].type',
    message: /is required/,
  },
  // DuckLakePool
  {
    name: 'minSize above maxSize',
    object: edit(pool, (o) => {
      o.spec.minSize = 5;
      o.spec.maxSize = 2;
    }),
    field: 'spec.minSize',
    message: /5 is greater than maxSize \(2\)/,
  },
  {
    name: 'minSize above the default maxSize',
    object: edit(pool, (o) => {
      o.spec.minSize = 20;
      delete o.spec.maxSize;
    }),
    field: 'spec.minSize',
    message: /greater than maxSize \(10, the default\)/,
  },
  {
    name: 'maxSize 0',
    object: edit(pool, (o) => {
      o.spec.maxSize = 0;
      o.spec.minSize = 0;
    }),
    field: 'spec.maxSize',
    message: /at least 1, got 0/,
  },
  {
    name: 'targetUtilization above 1',
    object: edit(pool, (o) => {
      o.spec.targetUtilization = 1.5;
    }),
    field: 'spec.targetUtilization',
    message: /at most 1, got 1.5/,
  },
  {
    name: 'targetUtilization 0',
    object: edit(pool, (o) => {
      o.spec.targetUtilization = 0;
    }),
    field: 'spec.targetUtilization',
    message: /greater than 0/,
  },
  {
    name: 'maxIdleTime in words',
    object: edit(pool, (o) => {
      o.spec.maxIdleTime = '5 minutes';
    }),
    field: 'spec.maxIdleTime',
    message: /duration such as 300s, 5m, 1h/,
  },
  {
    name: 'scaleInterval 0s',
    object: edit(pool, (o) => {
      o.spec.scaleInterval = '0s';
    }),
    field: 'spec.scaleInterval',
    message: /at least 1s/,
  },
  {
    name: 'maxLifetime under a minute',
    object: edit(pool, (o) => {
      o.spec.maxLifetime = '30s';
    }),
    field: 'spec.maxLifetime',
    message: /at least 1m/,
  },
  {
    name: 'maxQueries 0',
    object: edit(pool, (o) => {
      o.spec.maxQueries = 0;
    }),
    field: 'spec.maxQueries',
    message: /at least 1/,
  },
  {
    name: 'scaleUpRate not whole',
    object: edit(pool, (o) => {
      o.spec.scaleUpRate = 1.5;
    }),
    field: 'spec.scaleUpRate',
    message: /whole number/,
  },
  {
    name: 'catalogRef missing',
    object: edit(pool, (o) => {
      delete o.spec.catalogRef;
    }),
    field: 'spec.catalogRef',
    message: /is required/,
  },
  {
    name: 'catalogRef given as a string',
    object: edit(pool, (o) => {
      o.spec.catalogRef = 'main-catalog';
    }),
    field: 'spec.catalogRef',
    message: /must be an object/,
  },
  {
    name: 'memory request not a quantity',
    object: edit(pool, (o) => {
      o.spec.template.resources.requests.memory = 'lots';
    }),
    field: 'spec.template.resources.requests.memory',
    message: /quantity/,
  },
  {
    name: 'cpu request above its limit',
    object: edit(pool, (o) => {
      o.spec.template.resources.requests.cpu = '4';
    }),
    field: 'spec.template.resources.requests.cpu',
    message: /"4" is more than the limit "2"/,
  },
  {
    name: 'toleration Exists with a value',
    object: edit(pool, (o) => {
      o.spec.template.tolerations = [{ key: 'gpu', operator: 'Exists', value: 'yes' }];
    }),
    field: 'spec.template.tolerations[0].value',
    message: /empty when operator is Exists/,
  },
  {
    name: 'tolerationSeconds without NoExecute',
    object: edit(pool, (o) => {
      o.spec.template.tolerations = [{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule', tolerationSeconds: 30 }];
    }),
    field: 'spec.template.tolerations[0].tolerationSeconds',
    message: /only valid with effect NoExecute/,
  },
  {
    name: 'nodeSelector value with spaces',
    object: edit(pool, (o) => {
      o.spec.template.nodeSelector = { 'kubernetes.io/os': 'linux os' };
    }),
    field: 'spec.template.nodeSelector["kubernetes.io/os"]',
    message: /label value/,
  },
  {
    name: 'unknown imagePullPolicy',
    object: edit(pool, (o) => {
      o.spec.template.imagePullPolicy = 'Sometimes';
    }),
    field: 'spec.template.imagePullPolicy',
    message: /one of "Always", "IfNotPresent", "Never"/,
  },
  {
    name: 'negative queue length',
    object: edit(pool, (o) => {
      o.spec.queue = { maxLength: -1 };
    }),
    field: 'spec.queue.maxLength',
    message: /at least 0/,
  },
  {
    name: 'lifecycle fields nested as in the Go operator',
    object: edit(pool, (o) => {
      o.spec.lifecyclePolicies = { maxIdleTime: '5m' };
    }),
    field: 'spec.lifecyclePolicies',
    message: /not a field of this kind/,
  },
];

t.ok(creates.length >= 40, `${creates.length} bad objects across the four kinds`);
for (const kind of ['DuckLakeCatalog', 'DuckLakeTable', 'DuckLakePool', 'DuckLakeBackup']) {
  t.ok(creates.filter((c) => c.object.kind === kind).length >= 10, `at least 10 bad ${kind} objects`);
}

function expectDenied(t: Test, c: Case, operation: 'CREATE' | 'UPDATE') {
  const body = review(operation, c.object, c.old);
  const response = validateReview(body).response;
  t.equal(response.uid, body.request.uid, 'uid echoed');
  t.equal(response.allowed, false, 'denied');
  t.equal(response.status?.code, 422, 'code 422');
  t.equal(response.status?.reason, 'Invalid');
  const cause = response.status?.details?.causes.find((x) => x.field === c.field);
  t.ok(cause, `a cause names ${c.field} (causes: ${JSON.stringify(response.status?.details?.causes)})`);
  t.match(cause?.message ?? '', c.message, 'and says what is wrong');
  t.ok(response.status?.message.includes(`${c.field}: ${cause?.message}`), 'the message lists it as "field: problem"');
  t.ok(response.status?.message.startsWith(`${c.object.kind} "${c.object.metadata.name}" is invalid: `), 'the message names the object');
}

t.test('CREATE denials', async (t) => {
  for (const c of creates) t.test(`${c.object.kind}: ${c.name}`, async (t) => expectDenied(t, c, 'CREATE'));
});

t.test('every failing field is listed, not just the first', async (t) => {
  const o = edit(table, (o) => {
    o.spec.columns[1].type = 'STRNG';
    o.spec.format.partitioning = ['created_at', 'region'];
    o.spec.deletionPolicy = 'Destroy';
  });
  const response = validateReview(review('CREATE', o)).response;
  t.same(response.status?.details?.causes.map((c) => c.field).sort(), [
    'spec.columns[1].type',
    'spec.deletionPolicy',
    'spec.format.partitioning[1]',
  ]);
  t.equal(response.status?.message.split('; ').length, 3, 'three problems in the message');
});

// UPDATE: every immutability rule, and the column changes DuckLake cannot make in place.
const updates: Case[] = [
  {
    name: 'bucket',
    old: catalog(),
    object: edit(catalog, (o) => {
      o.spec.objectStore.bucket = 'another-lake';
    }),
    field: 'spec.objectStore.bucket',
    message: /is immutable \(was "my-data-lake", now "another-lake"\)/,
  },
  {
    name: 'prefix added',
    old: catalog(),
    object: edit(catalog, (o) => {
      o.spec.objectStore.prefix = 'lakes/x';
    }),
    field: 'spec.objectStore.prefix',
    message: /is immutable \(was "", now "lakes\/x"\)/,
  },
  {
    name: 'prefix changed',
    old: postgresCatalog(),
    object: edit(postgresCatalog, (o) => {
      o.spec.objectStore.prefix = 'other';
    }),
    field: 'spec.objectStore.prefix',
    message: /is immutable/,
  },
  {
    name: 'metadata type',
    old: catalog(),
    object: edit(catalog, (o) => {
      o.spec.metadata = { type: 'postgres', connectionSecret: { name: 'db' } };
    }),
    field: 'spec.metadata.type',
    message: /is immutable \(was "duckdb", now "postgres"\)/,
  },
  {
    name: 'metadata schema',
    old: postgresCatalog(),
    object: edit(postgresCatalog, (o) => {
      o.spec.metadata.schema = 'lake_other';
    }),
    field: 'spec.metadata.schema',
    message: /is immutable/,
  },
  {
    name: 'encryption turned off',
    old: postgresCatalog(),
    object: edit(postgresCatalog, (o) => {
      o.spec.encryption.enabled = false;
    }),
    field: 'spec.encryption.enabled',
    message: /is immutable \(was true, now false\)/,
  },
  {
    name: 'encryption turned on',
    old: catalog(),
    object: edit(catalog, (o) => {
      o.spec.encryption = { enabled: true };
    }),
    field: 'spec.encryption.enabled',
    message: /is immutable \(was false, now true\)/,
  },
  {
    name: 'storageClass',
    old: catalog(),
    object: edit(catalog, (o) => {
      o.spec.storageClass = 'fast';
    }),
    field: 'spec.storageClass',
    message: /is immutable/,
  },
  {
    name: 'size shrunk',
    old: catalog(),
    object: edit(catalog, (o) => {
      o.spec.size = '5Gi';
    }),
    field: 'spec.size',
    message: /cannot shrink from 10Gi to 5Gi/,
  },
  {
    name: 'restoreFrom added later',
    old: catalog(),
    object: edit(catalog, (o) => {
      o.spec.restoreFrom = { backup: 'latest' };
    }),
    field: 'spec.restoreFrom',
    message: /only be set when the catalog is created/,
  },
  {
    name: 'restoreFrom.catalog added later',
    old: edit(catalog, (o) => {
      o.spec.restoreFrom = { backup: 'latest' };
    }),
    object: edit(catalog, (o) => {
      o.spec.restoreFrom = { backup: 'latest', catalog: 'old-lake' };
    }),
    field: 'spec.restoreFrom',
    message: /only be set when the catalog is created/,
  },
  {
    name: 'backup catalogRef',
    old: backup(),
    object: edit(backup, (o) => {
      o.spec.catalogRef = 'other';
    }),
    field: 'spec.catalogRef',
    message: /is immutable \(was "example", now "other"\); create a new DuckLakeBackup/,
  },
  {
    name: 'backup includeData',
    old: backup(),
    object: edit(backup, (o) => {
      o.spec.includeData = false;
    }),
    field: 'spec.includeData',
    message: /is immutable \(was true, now false\)/,
  },
  {
    name: 'backup deletionPolicy',
    old: backup(),
    object: edit(backup, (o) => {
      o.spec.deletionPolicy = 'Delete';
    }),
    field: 'spec.deletionPolicy',
    message: /is immutable \(was "Retain", now "Delete"\)/,
  },
  {
    name: 'backup includeData set later',
    old: edit(backup, (o) => {
      delete o.spec.includeData;
    }),
    object: backup(),
    field: 'spec.includeData',
    message: /is immutable \(was null, now true\)/,
  },
  {
    name: 'table name',
    old: table(),
    object: edit(table, (o) => {
      o.spec.name = 'people';
    }),
    field: 'spec.name',
    message: /is immutable \(was "users", now "people"\)/,
  },
  {
    name: 'table schema',
    old: table(),
    object: edit(table, (o) => {
      o.spec.schema = 'crm';
    }),
    field: 'spec.schema',
    message: /is immutable \(was "main", now "crm"\)/,
  },
  {
    name: 'table catalogRef',
    old: table(),
    object: edit(table, (o) => {
      o.spec.catalogRef = 'other';
    }),
    field: 'spec.catalogRef',
    message: /is immutable/,
  },
  {
    name: 'column narrowed',
    old: edit(table, (o) => {
      o.spec.columns[0].type = 'BIGINT';
    }),
    object: table(),
    field: 'spec.columns[0].type',
    message: /cannot change id from BIGINT to INTEGER: only lossless widenings/,
  },
  {
    name: 'column retyped',
    old: table(),
    object: edit(table, (o) => {
      o.spec.columns[1].type = 'INTEGER';
    }),
    field: 'spec.columns[1].type',
    message: /cannot change name from VARCHAR to INTEGER/,
  },
  {
    name: 'partition column removed',
    old: table(),
    object: edit(table, (o) => {
      o.spec.columns.pop();
      o.spec.format.partitioning = [];
    }),
    field: 'spec.columns',
    message: /"created_at" is a partition column of the existing data and cannot be removed/,
  },
  {
    name: 'nullable column made NOT NULL',
    old: table(),
    object: edit(table, (o) => {
      o.spec.columns[1].nullable = false;
    }),
    field: 'spec.columns[1].nullable',
    message: /cannot make existing column name NOT NULL/,
  },
  {
    name: 'NOT NULL column added',
    old: table(),
    object: edit(table, (o) => {
      o.spec.columns.push({ name: 'email', type: 'VARCHAR', nullable: false });
    }),
    field: 'spec.columns[3].nullable',
    message: /new column email must be nullable/,
  },
];

t.test('UPDATE denials', async (t) => {
  for (const c of updates) t.test(`${c.object.kind}: ${c.name}`, async (t) => expectDenied(t, c, 'UPDATE'));
});

t.test('UPDATEs that are allowed', async (t) => {
  const allowed = (name: string, old: Obj, object: Obj) => {
    const response = validateReview(review('UPDATE', object, old)).response;
    t.equal(response.allowed, true, `${name}${response.status ? `: ${response.status.message}` : ''}`);
  };
  allowed(
    'widen INTEGER to BIGINT',
    table(),
    edit(table, (o) => {
      o.spec.columns[0].type = 'BIGINT';
    }),
  );
  allowed(
    'add a nullable column',
    table(),
    edit(table, (o) => {
      o.spec.columns.push({ name: 'email', type: 'VARCHAR' });
    }),
  );
  allowed(
    'drop a column that is not a partition column',
    table(),
    edit(table, (o) => {
      o.spec.columns.splice(1, 1);
    }),
  );
  allowed(
    'relax NOT NULL',
    table(),
    edit(table, (o) => {
      o.spec.columns[0].nullable = true;
    }),
  );
  allowed(
    'change the partitioning of new data',
    table(),
    edit(table, (o) => {
      o.spec.format.partitioning = ['month(created_at)'];
    }),
  );
  allowed(
    'grow the catalog volume',
    catalog(),
    edit(catalog, (o) => {
      o.spec.size = '20Gi';
    }),
  );
  allowed(
    'change the backup schedule',
    catalog(),
    edit(catalog, (o) => {
      o.spec.backupPolicy.schedule = '@hourly';
    }),
  );
  allowed(
    'include the data and move backups to another bucket later',
    catalog(),
    edit(catalog, (o) => {
      o.spec.backupPolicy.includeData = true;
      withTarget(o, { bucket: 'lake-backups', prefix: 'example', credentialsSecret: { name: 'backup-keys' } });
    }),
  );
  allowed(
    'backups beside the data, in the same bucket',
    postgresCatalog(),
    edit(postgresCatalog, (o) => {
      o.spec.backupPolicy.target = { bucket: 'analytics-lake', prefix: 'shared/backups' };
    }),
  );
  allowed(
    'tune maintenance',
    catalog(),
    edit(catalog, (o) => {
      o.spec.maintenance = {
        schedule: '@weekly',
        maxCompactedFiles: 50,
        targetFileSize: '256Mi',
        rewriteDeleteThreshold: 0.5,
        rewriteDataFiles: false,
        flushInlinedData: false,
      };
    }),
  );
  allowed(
    're-apply a backup with its default deletionPolicy spelled out',
    edit(backup, (o) => {
      delete o.spec.deletionPolicy;
    }),
    backup(),
  );
  allowed(
    'remove the finalizer of a backup being deleted',
    edit(backup, (o) => {
      o.metadata.deletionTimestamp = '2026-01-01T00:00:00Z';
      o.metadata.finalizers = ['x'];
    }),
    edit(backup, (o) => {
      o.metadata.deletionTimestamp = '2026-01-01T00:00:00Z';
      o.metadata.finalizers = [];
    }),
  );
  allowed(
    'rotate the credentials Secret',
    catalog(),
    edit(catalog, (o) => {
      o.spec.objectStore.credentialsSecret.name = 's3-credentials-v2';
    }),
  );
  allowed(
    'resize the pool',
    pool(),
    edit(pool, (o) => {
      o.spec.maxSize = 20;
      o.spec.catalogRef.name = 'other-catalog';
    }),
  );
  const broken = edit(table, (o) => {
    o.spec.columns[1].type = 'STRNG';
  });
  allowed(
    'add a finalizer to an object that no longer validates',
    broken,
    edit(
      () => clone(broken),
      (o) => {
        o.metadata.finalizers = ['ducklake.featherman.dev/table'];
      },
    ),
  );
  const deleting = edit(
    () => clone(broken),
    (o) => {
      o.metadata.deletionTimestamp = '2026-01-01T00:00:00Z';
      o.metadata.finalizers = ['ducklake.featherman.dev/table'];
    },
  );
  allowed(
    'remove the finalizer while deleting',
    deleting,
    edit(
      () => clone(deleting),
      (o) => {
        o.metadata.finalizers = [];
      },
    ),
  );
  // Deletion is no way around the rules: a spec change during it is checked like any other.
  const duringDeletion = validateReview(
    review(
      'UPDATE',
      edit(
        () => clone(deleting),
        (o) => {
          o.spec.name = 'changed';
        },
      ),
      deleting,
    ),
  ).response;
  t.equal(duringDeletion.allowed, false, 'renaming the table while it is being deleted is denied');
  t.match(duringDeletion.status?.message, /spec\.name/, 'naming the field');
});
