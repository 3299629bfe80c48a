// Object storage for what DuckDB does not write itself (backups, manifests, reachability checks),
// over one small interface with an S3 and a local-directory implementation.
import { mkdir, readdir, readFile, rm, writeFile, access, constants } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  DeleteObjectsCommand, GetObjectCommand, HeadBucketCommand, ListObjectsV2Command, PutObjectCommand, S3Client,
} from '@aws-sdk/client-s3';
import type { LakeConfig, S3Settings } from './config.js';
import { classify } from './failures.js';

export interface BlobStore {
  readonly url: string; // root, ends with '/'
  put(key: string, body: Uint8Array | string): Promise<void>;
  get(key: string): Promise<Buffer>;
  /** Keys (relative to the root) under a prefix. */
  list(prefix: string): Promise<string[]>;
  deletePrefix(prefix: string): Promise<number>;
}

export function s3Client(s3: S3Settings): S3Client {
  return new S3Client({
    region: s3.region,
    endpoint: s3.endpoint ? `${s3.useSsl ? 'https' : 'http'}://${s3.endpoint}` : undefined,
    forcePathStyle: s3.urlStyle === 'path',
    credentials: s3.accessKeyId && s3.secretAccessKey
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
  private readonly bucket: string;
  private readonly prefix: string;
  constructor(readonly url: string, private readonly client: S3Client) {
    ({ bucket: this.bucket, prefix: this.prefix } = splitS3Url(url));
  }
  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try { return await fn(); } catch (err) { throw classify(err, `${what} ${this.url}`); }
  }
  put(key: string, body: Uint8Array | string) {
    return this.call('writing to', async () => { await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.prefix + key, Body: body })); });
  }
  get(key: string) {
    return this.call('reading from', async () => {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
      return Buffer.from(await out.Body!.transformToByteArray());
    });
  }
  list(prefix: string) {
    return this.call('listing', async () => {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const out = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix + prefix, ContinuationToken: token }));
        for (const o of out.Contents ?? []) if (o.Key) keys.push(o.Key.slice(this.prefix.length));
        token = out.IsTruncated ? out.NextContinuationToken : undefined;
      } while (token);
      return keys;
    });
  }
  async deletePrefix(prefix: string) {
    const keys = await this.list(prefix);
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000).map((k) => ({ Key: this.prefix + k }));
      await this.call('deleting from', () => this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch, Quiet: true } })));
    }
    return keys.length;
  }
}

class LocalStore implements BlobStore {
  constructor(readonly url: string) {}
  async put(key: string, body: Uint8Array | string) {
    const path = join(this.url, key);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, body);
  }
  get(key: string) { return readFile(join(this.url, key)); }
  async list(prefix: string) {
    const dir = join(this.url, prefix.slice(0, prefix.lastIndexOf('/') + 1));
    const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
    return entries
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name).slice(this.url.length))
      .filter((k) => k.startsWith(prefix))
      .sort();
  }
  async deletePrefix(prefix: string) {
    const n = (await this.list(prefix)).length;
    await rm(join(this.url, prefix), { recursive: true, force: true });
    return n;
  }
}

export function blobStore(config: LakeConfig, url: string): BlobStore {
  return url.startsWith('s3://') ? new S3Store(url, s3Client(config.s3)) : new LocalStore(url);
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
