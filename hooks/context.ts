// What every hook gets besides its request: the clock and the service's settings, injected so
// hooks stay pure functions that tests can call with fixed values.
import type { WorkerStats } from '../lib/pool/stats.js';
import type { HookSettings } from '../lib/k8s/workloads.js';

export interface HookContext {
  now: Date;
  settings: HookSettings;
  /**
   * DuckLakePool hooks only: what each observed worker pod answered at GET /stats, by pod name,
   * fetched by lib/server/hooks.ts just before the call (undefined: no answer in time).
   */
  workerStats?: Record<string, WorkerStats | undefined>;
}
