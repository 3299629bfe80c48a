// What every hook gets besides its request: the clock and the service's settings, injected so
// hooks stay pure functions that tests can call with fixed values.
import type { HookSettings } from '../lib/k8s/workloads.js';

export interface HookContext {
  now: Date;
  settings: HookSettings;
}
