// Runner configuration comes only from the environment (Jobs set it from ConfigMaps and
// secretKeyRefs), so no secret is ever on a command line.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BadInputError } from '../errors.js';

export type Metadata = { type: 'duckdb'; path: string } | { type: 'sqlite'; path: string } | { type: 'postgres'; connection: string };

export interface S3Settings {
  endpoint?: string; // host:port, no scheme
  useSsl: boolean;
  urlStyle: 'path' | 'vhost';
  region: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
}

export interface LakeConfig {
  catalogName: string;
  /** Who owns the data path (written into its marker): <namespace>/<name> in a cluster, else the catalog name. */
  catalogId: string;
  metadata: Metadata;
  /** For postgres: the schema holding the ducklake_* tables (default: public). */
  metadataSchema?: string;
  dataPath: string; // local absolute directory with trailing slash, or s3://bucket/prefix/
  backupPath: string; // where backups go: <backupPath>/<catalogName>/<timestamp>/
  /** The backup target's S3 connection: its own (FEATHERMAN_BACKUP_*) or the data's. */
  backupS3: S3Settings;
  encrypted: boolean;
  s3: S3Settings;
  extensionDirectory: string;
  lockTimeoutMs: number;
  memoryLimit?: string;
  threads?: number;
  /**
   * For a postgres catalog: libpq's password, handed to DuckDB as a secret (never left in the
   * environment of a process running user SQL).
   */
  pgPassword?: string;
}

/** A catalog's name: a Kubernetes object name. */
export const CATALOG_NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;

export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
  return dir;
}

export function parseMetadata(value: string | undefined): Metadata {
  const field = 'FEATHERMAN_METADATA';
  if (!value)
    throw new BadInputError(`${field}: required (duckdb:/path/file.ducklake, sqlite:/path or postgres:<libpq connection string>)`);
  const colon = value.indexOf(':');
  const scheme = colon > 0 ? value.slice(0, colon) : '';
  const rest = value.slice(colon + 1);
  if (scheme === 'duckdb' || scheme === 'sqlite') {
    if (!rest) throw new BadInputError(`${field}: ${scheme}: needs a file path`);
    return { type: scheme, path: resolve(rest) };
  }
  if (scheme === 'postgres') {
    if (/\bpassword\s*=/i.test(rest) || /:\/\/[^/@]*:[^/@]*@/.test(rest)) {
      throw new BadInputError(`${field}: must not contain a password; put it in PGPASSWORD`);
    }
    return { type: 'postgres', connection: rest };
  }
  throw new BadInputError(`${field}: must start with duckdb:, sqlite: or postgres:`);
}

export function normalizeDataPath(value: string | undefined): string {
  if (!value) throw new BadInputError('FEATHERMAN_DATA_PATH: required (a local directory or s3://bucket/prefix/)');
  if (value.startsWith('s3://')) {
    if (!/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/.test(value)) {
      throw new BadInputError('FEATHERMAN_DATA_PATH: s3:// URL needs a valid bucket name (3-63 lowercase letters, digits, dots, hyphens)');
    }
    return value.endsWith('/') ? value : `${value}/`;
  }
  if (/^[a-z0-9]+:\/\//i.test(value)) throw new BadInputError('FEATHERMAN_DATA_PATH: only local directories and s3:// URLs are supported');
  const abs = resolve(value);
  return abs.endsWith('/') ? abs : `${abs}/`;
}

/** Backups sit beside the data, never inside it: DuckLake's orphan cleanup deletes unknown files under DATA_PATH. */
export function defaultBackupPath(dataPath: string): string {
  const trimmed = dataPath.replace(/\/+$/, '');
  const cut = trimmed.lastIndexOf('/');
  const parent = trimmed.slice(0, cut);
  if (parent === 's3:/' || parent === 's3:' || cut <= 0) {
    throw new BadInputError(
      'FEATHERMAN_BACKUP_PATH: required when FEATHERMAN_DATA_PATH is a bucket root (backups must not live inside the data path)',
    );
  }
  return `${parent}/backups/`;
}

/** Accepts host, host:port or an http(s) URL, as the catalog's objectStore.endpoint does. */
export function parseEndpoint(value: string | undefined, field = 'AWS_ENDPOINT_URL_S3'): { endpoint?: string; useSsl: boolean } {
  if (!value) return { useSsl: true };
  const m = /^(?:(https?):\/\/)?([^/\s]+?)\/?$/i.exec(value.trim());
  if (!m) throw new BadInputError(`${field}: ${JSON.stringify(value)} is not a host, host:port or http(s) URL`);
  return { endpoint: m[2]!, useSsl: (m[1] ?? 'https').toLowerCase() === 'https' };
}

/** DuckDB's size units (its memory_limit spelling): KB is 1000 bytes, KiB 1024. */
const UNITS: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/** Bytes in a size as DuckDB writes it (512MiB, 2GB), or undefined if it is not one. */
function parseSize(size: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]+)$/i.exec(size);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  return m && unit ? Math.floor(Number(m[1]) * unit) : undefined;
}

/** Bytes in a size as memoryLimit() gives it (e.g. 512MiB, 2GB). */
export function sizeInBytes(size: string): number {
  const bytes = parseSize(size);
  if (bytes === undefined) throw new BadInputError(`${JSON.stringify(size)} is not a size like 2GB`);
  return bytes;
}

/**
 * DuckDB's memory_limit. Pods pass their container limit in plain bytes (downward API
 * resourceFieldRef), which DuckDB does not accept. DuckDB gets half of it: the rest is Node's heap,
 * a result being converted, and what DuckDB allocates outside its buffer manager, so that a query
 * at DuckDB's limit fails with an out-of-memory error (400) before the container is killed.
 * Values with a unit (e.g. 2GB) pass through unchanged.
 */
export function memoryLimit(value: string | undefined): string | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value)) return `${Math.max(64, Math.floor((Number(value) * 0.5) / 1024 / 1024))}MiB`;
  if (parseSize(value) === undefined)
    throw new BadInputError(`FEATHERMAN_MEMORY_LIMIT: ${JSON.stringify(value)} is not a byte count or a size like 2GB`);
  return value;
}

/** The backup target's own connection when any FEATHERMAN_BACKUP_* setting is given; otherwise the data's. */
function backupConnection(env: NodeJS.ProcessEnv, data: S3Settings): S3Settings {
  const own = [
    'FEATHERMAN_BACKUP_ENDPOINT',
    'FEATHERMAN_BACKUP_REGION',
    'FEATHERMAN_BACKUP_URL_STYLE',
    'FEATHERMAN_BACKUP_ACCESS_KEY_ID',
    'FEATHERMAN_BACKUP_SECRET_ACCESS_KEY',
  ];
  if (!own.some((k) => env[k])) return data;
  const { endpoint, useSsl } = env.FEATHERMAN_BACKUP_ENDPOINT
    ? parseEndpoint(env.FEATHERMAN_BACKUP_ENDPOINT, 'FEATHERMAN_BACKUP_ENDPOINT')
    : { endpoint: data.endpoint, useSsl: data.useSsl };
  const urlStyle = (env.FEATHERMAN_BACKUP_URL_STYLE ?? (endpoint ? 'path' : 'vhost')).toLowerCase();
  if (urlStyle !== 'path' && urlStyle !== 'vhost') throw new BadInputError('FEATHERMAN_BACKUP_URL_STYLE: must be path or vhost');
  const ownKeys = Boolean(env.FEATHERMAN_BACKUP_ACCESS_KEY_ID || env.FEATHERMAN_BACKUP_SECRET_ACCESS_KEY);
  return {
    endpoint,
    useSsl,
    urlStyle,
    region: env.FEATHERMAN_BACKUP_REGION ?? data.region,
    accessKeyId: ownKeys ? env.FEATHERMAN_BACKUP_ACCESS_KEY_ID || undefined : data.accessKeyId,
    secretAccessKey: ownKeys ? env.FEATHERMAN_BACKUP_SECRET_ACCESS_KEY || undefined : data.secretAccessKey,
    sessionToken: ownKeys ? undefined : data.sessionToken,
  };
}

function parseBool(name: string, value: string | undefined): boolean {
  if (value === undefined || value === '') return false;
  if (/^(true|1|yes)$/i.test(value)) return true;
  if (/^(false|0|no)$/i.test(value)) return false;
  throw new BadInputError(`${name}: must be true or false`);
}

export function loadConfig(env: NodeJS.ProcessEnv): LakeConfig {
  const metadata = parseMetadata(env.FEATHERMAN_METADATA);
  const dataPath = normalizeDataPath(env.FEATHERMAN_DATA_PATH);
  const { endpoint, useSsl } = parseEndpoint(env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL);
  const urlStyle = (env.FEATHERMAN_S3_URL_STYLE ?? (endpoint ? 'path' : 'vhost')).toLowerCase();
  if (urlStyle !== 'path' && urlStyle !== 'vhost') throw new BadInputError('FEATHERMAN_S3_URL_STYLE: must be path or vhost');
  const catalogName = env.FEATHERMAN_CATALOG ?? 'default';
  if (!CATALOG_NAME.test(catalogName)) {
    throw new BadInputError('FEATHERMAN_CATALOG: must be a Kubernetes object name (lowercase letters, digits, dots, hyphens)');
  }
  const lockTimeout = Number(env.FEATHERMAN_LOCK_TIMEOUT_SECONDS ?? '60');
  if (!Number.isFinite(lockTimeout) || lockTimeout < 0)
    throw new BadInputError('FEATHERMAN_LOCK_TIMEOUT_SECONDS: must be a number of seconds >= 0');
  const threads = env.FEATHERMAN_THREADS ? Number(env.FEATHERMAN_THREADS) : undefined;
  if (threads !== undefined && !(Number.isInteger(threads) && threads > 0))
    throw new BadInputError('FEATHERMAN_THREADS: must be a positive integer');
  const metadataSchema = env.FEATHERMAN_METADATA_SCHEMA || undefined;
  if (metadataSchema !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(metadataSchema)) {
    throw new BadInputError('FEATHERMAN_METADATA_SCHEMA: must be letters, digits and underscores, not starting with a digit');
  }
  const s3: S3Settings = {
    endpoint,
    useSsl,
    urlStyle,
    region: env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1',
    accessKeyId: env.AWS_ACCESS_KEY_ID || undefined,
    secretAccessKey: env.AWS_SECRET_ACCESS_KEY || undefined,
    sessionToken: env.AWS_SESSION_TOKEN || undefined,
  };
  const catalogId = env.FEATHERMAN_CATALOG_ID || catalogName;
  if (!/^[a-z0-9]([a-z0-9./-]{0,300}[a-z0-9])?$/.test(catalogId))
    throw new BadInputError('FEATHERMAN_CATALOG_ID: must be <namespace>/<name> or a catalog name');
  return {
    catalogName,
    catalogId,
    metadata,
    metadataSchema,
    dataPath,
    backupPath: env.FEATHERMAN_BACKUP_PATH ? normalizeDataPath(env.FEATHERMAN_BACKUP_PATH) : defaultBackupPath(dataPath),
    encrypted: parseBool('FEATHERMAN_ENCRYPTED', env.FEATHERMAN_ENCRYPTED),
    s3,
    backupS3: backupConnection(env, s3),
    extensionDirectory: env.FEATHERMAN_EXTENSION_DIR ?? join(packageRoot(), '.cache', 'duckdb-extensions'),
    lockTimeoutMs: lockTimeout * 1000,
    memoryLimit: memoryLimit(env.FEATHERMAN_MEMORY_LIMIT),
    threads,
    pgPassword: env.PGPASSWORD || undefined,
  };
}
