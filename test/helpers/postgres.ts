// A private PostgreSQL (Debian's server binaries) on a random loopback port with its own data
// directory and a password-protected superuser, so tests use PGPASSWORD as production does.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { freePort } from './minio.js';

function pgBin(name: string): string {
  const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a));
  if (!versions[0]) throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql; run .ci/setup test');
  return join('/usr/lib/postgresql', versions[0], 'bin', name);
}

export class Postgres {
  readonly password = randomBytes(12).toString('base64url');
  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  private run(bin: string, args: string[]): void {
    // initdb and postgres refuse to run as root; drop to the Debian `postgres` user when we are root.
    const asRoot = process.getuid?.() === 0;
    const cmd = asRoot ? 'runuser' : pgBin(bin);
    const argv = asRoot ? ['-u', 'postgres', '--', pgBin(bin), ...args] : args;
    const r = spawnSync(cmd, argv, { encoding: 'utf8', cwd: this.dir });
    if (r.status !== 0) throw new Error(`${bin} failed: ${r.stderr || r.stdout}`);
  }

  static async start(): Promise<Postgres> {
    const dir = mkdtempSync(join(tmpdir(), 'fm-pg-'));
    const pg = new Postgres(dir, await freePort());
    chmodSync(dir, 0o755);
    if (process.getuid?.() === 0) {
      const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
      const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
      chownSync(dir, uid, gid);
      writeFileSync(join(dir, 'pw'), pg.password);
      chownSync(join(dir, 'pw'), uid, gid);
    } else writeFileSync(join(dir, 'pw'), pg.password);
    pg.run('initdb', ['-D', join(dir, 'data'), '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${join(dir, 'pw')}`, '-E', 'UTF8']);
    pg.run('pg_ctl', [
      '-D',
      join(dir, 'data'),
      '-l',
      join(dir, 'log'),
      '-w',
      '-t',
      '60',
      'start',
      '-o',
      `-p ${pg.port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off`,
    ]);
    return pg;
  }

  /** A libpq connection string without the password (that travels in PGPASSWORD). */
  connection(db = 'postgres'): string {
    return `host=127.0.0.1 port=${this.port} user=postgres dbname=${db}`;
  }

  createDatabase(name: string): void {
    execFileSync(
      'psql',
      ['-h', '127.0.0.1', '-p', String(this.port), '-U', 'postgres', '-d', 'postgres', '-c', `CREATE DATABASE "${name}"`],
      { env: { ...process.env, PGPASSWORD: this.password }, stdio: 'pipe' },
    );
  }

  async stop(): Promise<void> {
    try {
      this.run('pg_ctl', ['-D', join(this.dir, 'data'), '-m', 'immediate', 'stop']);
    } catch {
      /* already stopped */
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
