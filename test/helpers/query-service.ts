// A query-only `featherman serve` for tests of who may query what: its own process, every stdout
// line kept (the query log is read from it), optionally running as a ServiceAccount through a
// kubeconfig of that account's token, so the service's own RBAC is what a real install grants.
import { spawn, type ChildProcess } from 'node:child_process';
import { createSign, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI } from './cli.js';
import type { Cluster } from './cluster.js';

export interface QueryService {
  url: string;
  child: ChildProcess;
  /** Every stdout and stderr line so far. */
  lines(): string[];
  /** The query log lines so far (msg "query"). */
  queryLog(): Record<string, unknown>[];
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// timeoutMs only catches a hang: a loaded machine may take long to start the service and its workers.
export function startQueryService(env: Record<string, string>, timeoutMs = 120_000, args: string[] = []): Promise<QueryService> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'serve', '--host', '127.0.0.1', '--port', '0', '--hooks-port', '0', ...args], {
      env: { PATH: process.env.PATH, HOME: tmpdir(), FEATHERMAN_LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const all: string[] = [];
    let partial = { out: '', err: '' };
    const stop = async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      if (!(await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]))) child.kill('SIGKILL');
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`featherman serve did not listen in ${timeoutMs} ms:\n${all.slice(-20).join('\n')}`));
    }, timeoutMs);
    let started = false;
    const onLine = (line: string) => {
      all.push(line);
      if (started || !line.includes('featherman serve listening')) return;
      try {
        const j = JSON.parse(line) as { httpPort: number };
        started = true;
        clearTimeout(timer);
        resolve({
          url: `http://127.0.0.1:${j.httpPort}`,
          child,
          lines: () => [...all],
          queryLog: () =>
            all.flatMap((l) => {
              try {
                const o = JSON.parse(l) as Record<string, unknown>;
                return o.msg === 'query' && typeof o.id === 'string' ? [o] : [];
              } catch {
                return [];
              }
            }),
          stop,
        });
      } catch {
        /* not JSON */
      }
    };
    const reader = (key: 'out' | 'err') => (d: Buffer) => {
      const text = partial[key] + d.toString('utf8');
      const parts = text.split('\n');
      partial = { ...partial, [key]: parts.pop() ?? '' };
      for (const l of parts) onLine(l);
    };
    child.stdout!.on('data', reader('out'));
    child.stderr!.on('data', reader('err'));
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (!started) reject(new Error(`featherman serve exited (${code}):\n${all.slice(-20).join('\n')}`));
    });
  });
}

/** A kubeconfig for the test cluster that authenticates with `token` (a ServiceAccount's). */
export function kubeconfigFor(cluster: Cluster, token: string, file: string): string {
  writeFileSync(
    file,
    `apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: ${cluster.server}
    certificate-authority-data: ${Buffer.from(cluster.caCert).toString('base64')}
users:
- name: sa
  user:
    token: ${token}
contexts:
- name: e2e
  context: {cluster: e2e, user: sa, namespace: default}
current-context: e2e
`,
    { mode: 0o600 },
  );
  return file;
}

const b64url = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/**
 * A ServiceAccount token signed with the test cluster's own signing key, as the API server would
 * issue it, but with the given lifetime: `expiresInSeconds` below zero makes an expired token
 * (kubectl create token refuses durations under ten minutes).
 */
export function signServiceAccountToken(
  cluster: Cluster,
  sa: { namespace: string; name: string; uid: string },
  audience: string,
  expiresInSeconds: number,
): string {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    aud: [audience],
    iss: 'https://kubernetes.default.svc.cluster.local',
    sub: `system:serviceaccount:${sa.namespace}:${sa.name}`,
    iat: now - 3600,
    nbf: now - 3600,
    exp: now + expiresInSeconds,
    jti: randomUUID(),
    'kubernetes.io': { namespace: sa.namespace, serviceaccount: { name: sa.name, uid: sa.uid } },
  };
  const unsigned = `${b64url({ alg: 'RS256', typ: 'JWT' })}.${b64url(claims)}`;
  const signature = createSign('RSA-SHA256')
    .update(unsigned)
    .sign(readFileSync(join(cluster.dir, 'sa.key')), 'base64url');
  return `${unsigned}.${signature}`;
}
