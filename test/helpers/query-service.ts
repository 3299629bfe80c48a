// A query-only `featherman serve` for tests of who may query what: its own process, every stdout
// line kept (the query log is read from it), optionally running as a ServiceAccount through a
// kubeconfig of that account's token, so the service's own RBAC is what a real install grants.
import { createSign, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cluster } from './cluster.js';
import { ON_LOOPBACK, startServe, type ServeProcess } from './serve.js';

export interface QueryService extends ServeProcess {
  /** The query log lines so far (msg "query"). */
  queryLog(): Record<string, unknown>[];
}

// timeoutMs only catches a hang: a loaded machine may take long to start the service and its workers.
export async function startQueryService(env: Record<string, string>, timeoutMs = 120_000, args: string[] = []): Promise<QueryService> {
  const serve = await startServe([...ON_LOOPBACK, ...args], { FEATHERMAN_LOG_LEVEL: 'info', ...env }, timeoutMs);
  const queryLog = () =>
    serve.lines().flatMap((l) => {
      try {
        const o = JSON.parse(l) as Record<string, unknown>;
        return o.msg === 'query' && typeof o.id === 'string' ? [o] : [];
      } catch {
        return [];
      }
    });
  return { ...serve, queryLog };
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
