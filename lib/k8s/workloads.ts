// Typed builders for the children the hooks return. Security settings, labels, the image and
// the scratch volume are decided here once, so a hook reads as a list of the children it wants.
import type {
  V1Container,
  V1CronJob,
  V1EnvVar,
  V1Job,
  V1PersistentVolumeClaim,
  V1PodSecurityContext,
  V1PodSpec,
  V1ResourceRequirements,
  V1SecurityContext,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node';
import { parseQuantity } from '../api/quantity.js';
import { BadInputError } from '../errors.js';

/** Settings of the service that every generated object shares (from the service's environment). */
export interface HookSettings {
  image: string;
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  serviceAccountName?: string;
  runnerResources: V1ResourceRequirements;
  /** Where the Featherman service runs: the only namespace whose service pods may reach workers. */
  serviceNamespace: string;
}

const PULL_POLICIES = ['Always', 'IfNotPresent', 'Never'] as const;

/** A resource quantity from the environment, checked: a bad one would fail every Job and Pod at the API server. */
function quantityFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: string): string {
  const value = env[name] ?? fallback;
  if (parseQuantity(value) === undefined || value.startsWith('-'))
    throw new BadInputError(`${name}: must be a Kubernetes resource quantity such as 500m, 2 or 512Mi, got ${JSON.stringify(value)}`);
  return value;
}

/** The settings, checked when the service starts: a wrong one stops it with the variable named, not every child later. */
export function settingsFromEnv(env: NodeJS.ProcessEnv): HookSettings {
  const imagePullPolicy = env.FEATHERMAN_IMAGE_PULL_POLICY ?? 'IfNotPresent';
  if (!(PULL_POLICIES as readonly string[]).includes(imagePullPolicy))
    throw new BadInputError(`FEATHERMAN_IMAGE_PULL_POLICY: must be Always, IfNotPresent or Never, got ${JSON.stringify(imagePullPolicy)}`);
  return {
    image: env.FEATHERMAN_IMAGE ?? 'ghcr.io/featherman/featherman:0.1.0',
    imagePullPolicy: imagePullPolicy as HookSettings['imagePullPolicy'],
    serviceAccountName: env.FEATHERMAN_RUNNER_SERVICE_ACCOUNT || undefined,
    serviceNamespace: env.POD_NAMESPACE || 'featherman',
    runnerResources: {
      requests: {
        cpu: quantityFromEnv(env, 'FEATHERMAN_RUNNER_CPU_REQUEST', '250m'),
        memory: quantityFromEnv(env, 'FEATHERMAN_RUNNER_MEMORY_REQUEST', '512Mi'),
      },
      limits: {
        cpu: quantityFromEnv(env, 'FEATHERMAN_RUNNER_CPU_LIMIT', '2'),
        memory: quantityFromEnv(env, 'FEATHERMAN_RUNNER_MEMORY_LIMIT', '2Gi'),
      },
    },
  };
}

export const CATALOG_MOUNT = '/var/lib/featherman';
/** The writable /tmp every pod gets (the root filesystem is read-only). */
export const SCRATCH: V1Volume = { name: 'scratch', emptyDir: { sizeLimit: '2Gi' } };
export const SCRATCH_MOUNT: V1VolumeMount = { name: 'scratch', mountPath: '/tmp' };
const RESULT_FILE = '/dev/termination-log';

/** Non-root, read-only root filesystem, no privilege escalation, no capabilities, default seccomp. */
export function containerSecurity(): V1SecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: 65532,
    runAsGroup: 65532,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

export function podSecurity(): V1PodSecurityContext {
  return { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } };
}

export interface RunnerOptions {
  settings: HookSettings;
  args: string[];
  env: V1EnvVar[];
  volumes?: V1Volume[];
  mounts?: V1VolumeMount[];
}

/** A pod spec running `featherman <args>` once, its JSON summary handed back as the termination message. */
export function runnerPodSpec(o: RunnerOptions): V1PodSpec {
  const container: V1Container = {
    name: 'featherman',
    image: o.settings.image,
    imagePullPolicy: o.settings.imagePullPolicy,
    args: o.args,
    env: [
      ...o.env,
      { name: 'FEATHERMAN_RESULT_FILE', value: RESULT_FILE },
      { name: 'HOME', value: '/tmp' },
      { name: 'TMPDIR', value: '/tmp' },
    ],
    resources: o.settings.runnerResources,
    securityContext: containerSecurity(),
    terminationMessagePath: RESULT_FILE,
    terminationMessagePolicy: 'FallbackToLogsOnError',
    volumeMounts: [SCRATCH_MOUNT, ...(o.mounts ?? [])],
  };
  return {
    restartPolicy: 'Never',
    automountServiceAccountToken: false,
    ...(o.settings.serviceAccountName ? { serviceAccountName: o.settings.serviceAccountName } : {}),
    securityContext: podSecurity(),
    containers: [container],
    volumes: [SCRATCH, ...(o.volumes ?? [])],
  };
}

/**
 * A run-to-completion Job. Exit 2 (bad input) fails the Job at once; other failures, such as
 * exit 75 (storage unreachable, catalog locked), are retried with Kubernetes' backoff.
 */
export function job(
  name: string,
  labels: Record<string, string>,
  pod: V1PodSpec,
  opts: { backoffLimit?: number; activeDeadlineSeconds?: number } = {},
): V1Job {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, labels },
    spec: {
      backoffLimit: opts.backoffLimit ?? 6,
      activeDeadlineSeconds: opts.activeDeadlineSeconds ?? 3600,
      podFailurePolicy: { rules: [{ action: 'FailJob', onExitCodes: { containerName: 'featherman', operator: 'In', values: [2] } }] },
      template: { metadata: { labels }, spec: pod },
    },
  };
}

export function cronJob(name: string, labels: Record<string, string>, schedule: string, pod: V1PodSpec, timeZone?: string): V1CronJob {
  return {
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: { name, labels },
    spec: {
      schedule,
      ...(timeZone ? { timeZone } : {}),
      concurrencyPolicy: 'Forbid',
      startingDeadlineSeconds: 300,
      successfulJobsHistoryLimit: 3,
      failedJobsHistoryLimit: 3,
      jobTemplate: {
        metadata: { labels },
        spec: {
          backoffLimit: 3,
          activeDeadlineSeconds: 3600,
          podFailurePolicy: { rules: [{ action: 'FailJob', onExitCodes: { containerName: 'featherman', operator: 'In', values: [2] } }] },
          template: { metadata: { labels }, spec: pod },
        },
      },
    },
  };
}

export function pvc(name: string, labels: Record<string, string>, size: string, storageClassName?: string): V1PersistentVolumeClaim {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, labels },
    spec: {
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: size } },
      ...(storageClassName ? { storageClassName } : {}),
    },
  };
}

export function secretEnv(name: string, secret: string, key: string, optional = false): V1EnvVar {
  return { name, valueFrom: { secretKeyRef: { name: secret, key, ...(optional ? { optional } : {}) } } };
}
