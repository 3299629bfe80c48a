// Status conditions whose lastTransitionTime moves only when the status actually changes.
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

/** `previous`: the parent's status.conditions as it came in, whatever its shape (a malformed status is no status). */
export function condition(
  previous: unknown,
  type: string,
  status: Condition['status'],
  reason: string,
  message: string,
  now: Date,
  observedGeneration?: number,
): Condition {
  const list: unknown[] = Array.isArray(previous) ? previous : [];
  const before = list.find((c): c is Partial<Condition> => typeof c === 'object' && c !== null && (c as Condition).type === type);
  const kept = before && before.status === status && typeof before.lastTransitionTime === 'string' ? before.lastTransitionTime : undefined;
  const lastTransitionTime = kept ?? now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return { type, status, reason, message, lastTransitionTime, ...(observedGeneration !== undefined ? { observedGeneration } : {}) };
}
