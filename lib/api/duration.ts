// Durations as the API writes them: 300s, 5m, 1h, 7d, or combinations like 1h30m.
export const DURATION_PATTERN = '^([0-9]+(ms|s|m|h|d))+$';
const UNIT_SECONDS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

/** Seconds, or undefined if `text` is not a duration. */
export function parseDuration(text: string): number | undefined {
  if (typeof text !== 'string' || !new RegExp(DURATION_PATTERN).test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(/([0-9]+)(ms|s|m|h|d)/g)) total += Number(m[1]) * UNIT_SECONDS[m[2]!]!;
  return total;
}
