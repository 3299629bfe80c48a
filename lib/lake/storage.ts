// Object storage for what DuckDB does not write itself (backups, manifests, reachability checks),
// over one small interface with an S3 and a local-directory implementation.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile, access, constants } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  CopyObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import type { LakeConfig, S3Settings } from './config.js';
import { classify } from './failures.js';

/** An object's key (relative to the store's root), size, and a fingerprint of its content (S3's ETag; size and mtime locally). */
export interface ObjectInfo {
  key: string;
  size: number;
  etag: string;
}

export interface BlobStore {
  readonly url: string; // root, ends with '/'
  put(key: string, body: Uint8Array | string): Promise<void>;
  get(key: string): Promise<Buffer>;
  /** The object, or undefined when there is none. */
  getIfExists(key: string): Promise<Buffer | undefined>;
  /** Keys (relative to the root) under a prefix. */
  list(prefix: string): Promise<string[]>;
  /** Objects under a prefix, with their sizes and fingerprints. */
  listObjects(prefix: string): Promise<ObjectInfo[]>;
  deletePrefix(prefix: string): Promise<number>;
  deleteKeys(keys: string[]): Promise<void>;
  /** Copy one object into `target` (another store, maybe another endpoint), streaming: memory stays flat whatever its size. */
  copyTo(key: string, target: BlobStore, targetKey: string, size: number): Promise<void>;
  /** Internal: receive a stream of `size` bytes (the target side of copyTo). */
  putStream(key: string, body: Readable, size: number): Promise<void>;
}

export function s3Client(s3: S3Settings): S3Client {
  return new S3Client({
    region: s3.region,
    endpoint: s3.endpoint ? `${s3.useSsl ? 'https' : 'http'}://${s3.endpoint}` : undefined,
    forcePathStyle: s3.urlStyle === 'path',
    credentials:
      s3.accessKeyId && s3.secretAccessKey
        ? { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, sessionToken: s3.sessionToken }
        : undefined,
    maxAttempts: 2,
    requestHandler: { requestTimeout: 30_000, connectionTimeout: 5_000 } as never,
  });
}

export function splitS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!m) throw new Error(`not an s3:// URL: ${url}`);
  return { bucket: m[1]!, prefix: m[2]! };
}

class S3Store implements BlobStore {
  readonly bucket: string;
  readonly prefix: string;
  constructor(
    readonly url: string,
    readonly client: S3Client,
    readonly settings: S3Settings,
  ) {
    ({ bucket: this.bucket, prefix: this.prefix } = splitS3Url(url));
  }
  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw classify(err, `${what} ${this.url}`);
    }
  }
  put(key: string, body: Uint8Array | string) {
    return this.call('writing to', async () => {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.prefix + key, Body: body }));
    });
  }
  get(key: string) {
    return this.call('reading from', async () => {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
      return Buffer.from(await out.Body!.transformToByteArray());
    });
  }
  async getIfExists(key: string) {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
      return Buffer.from(await out.Body!.transformToByteArray());
    } catch (err) {
      if (
        (err as { name?: string }).name === 'NoSuchKey' ||
        (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404
      )
        return undefined;
      throw classify(err, `reading from ${this.url}`);
    }
  }
  async list(prefix: string) {
    return (await this.listObjects(prefix)).map((o) => o.key);
  }
  listObjects(prefix: string) {
    return this.call('listing', async () => {
      const objects: ObjectInfo[] = [];
      let token: string | undefined;
      do {
        const out = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix + prefix, ContinuationToken: token }),
        );
        for (const o of out.Contents ?? []) {
          if (o.Key)
            objects.push({ key: o.Key.slice(this.prefix.length), size: Number(o.Size ?? 0), etag: (o.ETag ?? '').replace(/"/g, '') });
        }
        token = out.IsTruncated ? out.NextContinuationToken : undefined;
      } while (token);
      return objects;
    });
  }
  async deletePrefix(prefix: string) {
    const keys = await this.list(prefix);
    await this.deleteKeys(keys);
    return keys.length;
  }
  async deleteKeys(keys: string[]) {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000).map((k) => ({ Key: this.prefix + k }));
      await this.call('deleting from', () =>
        this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch, Quiet: true } })),
      );
    }
  }
  async copyTo(key: string, target: BlobStore, targetKey: string, size: number) {
    // Same endpoint and keys: the store copies server-side (up to 5 GiB an object), no bytes through us.
    if (target instanceof S3Store && sameConnection(this.settings, target.settings) && size < 5 * 1024 ** 3) {
      await this.call('copying within', () =>
        this.client.send(
          new CopyObjectCommand({
            Bucket: target.bucket,
            Key: target.prefix + targetKey,
            CopySource: encodeURI(`${this.bucket}/${this.prefix}${key}`),
          }),
        ),
      );
      return;
    }
    const out = await this.call('reading from', () =>
      this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key })),
    );
    await target.putStream(targetKey, out.Body as Readable, size);
  }
  putStream(key: string, body: Readable, size: number) {
    return this.call('writing to', async () => {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.prefix + key, Body: body, ContentLength: size }));
    });
  }
}

function sameConnection(a: S3Settings, b: S3Settings): boolean {
  return (
    a.endpoint === b.endpoint &&
    a.useSsl === b.useSsl &&
    a.region === b.region &&
    a.accessKeyId === b.accessKeyId &&
    a.secretAccessKey === b.secretAccessKey
  );
}

class LocalStore implements BlobStore {
  constructor(readonly url: string) {}
  async put(key: string, body: Uint8Array | string) {
    const path = join(this.url, key);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, body);
  }
  get(key: string) {
    return readFile(join(this.url, key));
  }
  async getIfExists(key: string) {
    try {
      return await readFile(join(this.url, key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }
  async list(prefix: string) {
    const dir = join(this.url, prefix.slice(0, prefix.lastIndexOf('/') + 1));
    const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
    return entries
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name).slice(this.url.length))
      .filter((k) => k.startsWith(prefix))
      .sort();
  }
  async listObjects(prefix: string) {
    const objects: ObjectInfo[] = [];
    for (const key of await this.list(prefix)) {
      const s = await stat(join(this.url, key)).catch(() => undefined);
      if (s) objects.push({ key, size: s.size, etag: `${s.size}-${Math.trunc(s.mtimeMs)}` });
    }
    return objects;
  }
  async deletePrefix(prefix: string) {
    const n = (await this.list(prefix)).length;
    await rm(join(this.url, prefix), { recursive: true, force: true });
    return n;
  }
  async deleteKeys(keys: string[]) {
    for (const key of keys) await rm(join(this.url, key), { force: true });
  }
  async copyTo(key: string, target: BlobStore, targetKey: string, size: number) {
    await target.putStream(targetKey, createReadStream(join(this.url, key)), size);
  }
  async putStream(key: string, body: Readable, _size: number) {
    const path = join(this.url, key);
    await mkdir(dirname(path), { recursive: true });
    await pipeline(body, createWriteStream(path));
  }
}

/** The objects under `prefix`, by key. */
export async function objectsByKey(store: BlobStore, prefix = ''): Promise<Map<string, ObjectInfo>> {
  return new Map((await store.listObjects(prefix)).map((o) => [o.key, o]));
}

/** The store at `url`: S3 through `s3` (the data's or the backup target's connection), or a local directory. */
export function blobStore(s3: S3Settings, url: string): BlobStore {
  return url.startsWith('s3://') ? new S3Store(url, s3Client(s3), s3) : new LocalStore(url);
}

/** Fail early (and with the right exit code) when the data path cannot be reached or written. */
export async function checkStorage(config: LakeConfig): Promise<void> {
  if (!config.dataPath.startsWith('s3://')) {
    await mkdir(config.dataPath, { recursive: true });
    await access(config.dataPath, constants.W_OK);
    return;
  }
  const { bucket } = splitS3Url(config.dataPath);
  const client = s3Client(config.s3);
  try {
    await client.send(new HeadBucketCommand({ Bucket: bucket }));
  } catch (err) {
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status === 404) throw classify(new Error('NoSuchBucket'), `checking ${config.dataPath}`);
    if (status === 403) throw classify(new Error('AccessDenied (HTTP 403)'), `checking ${config.dataPath}`);
    throw classify(err, `checking ${config.dataPath}`);
  } finally {
    client.destroy();
  }
}
