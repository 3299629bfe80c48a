// The router in a cluster, in three parts: KubernetesDirectory (directory.ts) lists pools and
// their ready workers, JobFallback (job-fallback.ts) runs a query as a Job when a pool has none, and
// DemandAnnotations (demand-annotations.ts) tells the pool hooks how many queries wait.
import { KubeConfig } from '@kubernetes/client-node';

export { DEFAULT_MAX_QUEUED_PER_PRINCIPAL, KubernetesDirectory, poolSettings } from './directory.js';
export { DemandAnnotations } from './demand-annotations.js';
export { JobFallback } from './job-fallback.js';

export function kubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault(); // in-cluster service account, or KUBECONFIG
  return kc;
}
