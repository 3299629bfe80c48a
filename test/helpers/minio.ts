// A real MinIO server (built by .ci/setup from the Go module proxy) on a random loopback port,
// with its own temp directory and random credentials. Stop and start it again to simulate outages.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { packageRoot } from '../../lib/lake/config.js';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export class Minio {
  readonly accessKey = `fm${randomBytes(6).toString('hex')}`;
  readonly secretKey = randomBytes(18).toString('base64url');
  private proc?: ChildProcess;
  private constructor(
    readonly dir: string,
    readonly port: number,
    readonly consolePort: number,
  ) {}

  static async start(): Promise<Minio> {
    const bin = join(packageRoot(), '.cache', 'bin', 'minio');
    if (!existsSync(bin)) throw new Error(`MinIO is not built at ${bin}; run .ci/setup test`);
    const m = new Minio(mkdtempSync(join(tmpdir(), 'fm-minio-')), await freePort(), await freePort());
    await m.resume();
    return m;
  }

  get endpoint(): string {
    return `127.0.0.1:${this.port}`;
  }
  get url(): string {
    return `http://${this.endpoint}`;
  }

  /** (Re)start the server on the same port and data directory. */
  async resume(): Promise<void> {
    const bin = join(packageRoot(), '.cache', 'bin', 'minio');
    this.proc = spawn(
      bin,
      ['server', '--quiet', '--address', this.endpoint, '--console-address', `127.0.0.1:${this.consolePort}`, this.dir],
      {
        env: {
          PATH: process.env.PATH,
          HOME: this.dir,
          MINIO_ROOT_USER: this.accessKey,
          MINIO_ROOT_PASSWORD: this.secretKey,
          MINIO_BROWSER: 'off',
          MINIO_UPDATE: 'off',
        },
        stdio: 'ignore',
      },
    );
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null) throw new Error(`minio exited with ${this.proc.exitCode}`);
      try {
        const res = await fetch(`${this.url}/minio/health/ready`);
        if (res.ok) return;
      } catch {
        /* not up yet */
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('minio did not become ready in 30s');
  }

  async pause(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGKILL');
    });
  }

  client(): S3Client {
    return new S3Client({
      region: 'us-east-1',
      endpoint: this.url,
      forcePathStyle: true,
      credentials: { accessKeyId: this.accessKey, secretAccessKey: this.secretKey },
    });
  }

  async createBucket(name: string): Promise<void> {
    const c = this.client();
    await c.send(new CreateBucketCommand({ Bucket: name }));
    c.destroy();
  }

  /** The environment a runner needs to reach this server. */
  env(): Record<string, string> {
    return {
      AWS_ACCESS_KEY_ID: this.accessKey,
      AWS_SECRET_ACCESS_KEY: this.secretKey,
      AWS_REGION: 'us-east-1',
      AWS_ENDPOINT_URL_S3: this.url,
    };
  }

  async stop(): Promise<void> {
    await this.pause();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
