// Status conditions whose lastTransitionTime moves only when the status actually changes.
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export function condition(
  previous: Condition[] | undefined,
  type: string,
  status: Condition['status'],
  reason: string,
  message: string,
  now: Date,
  observedGeneration?: number,
): Condition {
  const before = previous?.find((c) => c.type === type);
  const lastTransitionTime = before && before.status === status && before.lastTransitionTime ? before.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return { type, status, reason, message, lastTransitionTime, ...(observedGeneration !== undefined ? { observedGeneration } : {}) };
}
