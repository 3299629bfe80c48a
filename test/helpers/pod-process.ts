// Runs a container of a generated pod spec as a local process, the way a kubelet would start it
// in the featherman image: the image's entrypoint is this checkout's CLI, env comes from the
// spec with secretKeyRef resolved from given Secrets, and each volume mount is a host directory.
// A stand-in for a container runtime (there is none here); paths under a mountPath in env values
// are rewritten to the host directory, which a real mount namespace would make unnecessary.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI } from './cli.js';

export type Secrets = Record<string, Record<string, string>>;

export interface ContainerSpec {
  name: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } } }[];
  volumeMounts?: { name: string; mountPath: string }[];
  terminationMessagePath?: string;
}

export interface PodRun {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** The termination message, as the kubelet would report it. */
  message: string;
  env: Record<string, string>;
}

/** The environment the container would see, or an error naming the missing Secret key. */
export function resolveEnv(c: ContainerSpec, secrets: Secrets): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    if (e.value !== undefined) {
      env[e.name] = e.value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v: string) => env[v] ?? m);
    } else if (e.valueFrom?.secretKeyRef) {
      const ref = e.valueFrom.secretKeyRef;
      const value = secrets[ref.name]?.[ref.key];
      if (value === undefined) {
        if (ref.optional) continue;
        throw new Error(`CreateContainerConfigError: couldn't find key ${ref.key} in Secret ${ref.name}`);
      }
      env[e.name] = value;
    }
  }
  return env;
}

export async function runContainer(
  pod: { containers: ContainerSpec[] },
  secrets: Secrets,
  volumes: Record<string, string> = {},
): Promise<PodRun> {
  const c = pod.containers[0]!;
  const env = resolveEnv(c, secrets);
  const mounts = (c.volumeMounts ?? []).map((m) => ({ ...m, host: volumes[m.name] ?? mkdtempSync(join(tmpdir(), `fm-vol-${m.name}-`)) }));
  const termination = join(mkdtempSync(join(tmpdir(), 'fm-term-')), 'termination-log');
  for (const [k, v] of Object.entries(env)) {
    let value = v;
    for (const m of mounts) if (value.includes(m.mountPath)) value = value.split(m.mountPath).join(m.host);
    env[k] = c.terminationMessagePath && v === c.terminationMessagePath ? termination : value;
  }
  const command = c.command ?? [];
  if (command.length) throw new Error('only the image entrypoint (featherman) is supported');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...(c.args ?? [])], {
      env: { PATH: process.env.PATH, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const message = existsSync(termination) ? readFileSync(termination, 'utf8') : '';
      resolve({ exitCode: code ?? -1, stdout, stderr, message, env });
    });
  });
}
