// Cron schedules as Kubernetes CronJobs accept them (robfig/cron's standard parser): five fields,
// or one of the @yearly/@monthly/... macros. The field syntax and ranges are checked by cron-parser;
// the extensions it knows but Kubernetes does not (seconds, L, W, #, H) are refused here first.
import { CronExpressionParser } from 'cron-parser';

const MACROS = new Set(['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly']);
const FIELDS = ['minute', 'hour', 'day of month', 'month', 'day of week'] as const;
const NAMES: Record<number, RegExp> = {
  3: /^(JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)$/i,
  4: /^(SUN|MON|TUE|WED|THU|FRI|SAT)$/i,
};

/** Undefined when `schedule` is a schedule a CronJob accepts, else what is wrong with it. */
export function cronScheduleProblem(schedule: unknown): string | undefined {
  if (typeof schedule !== 'string' || schedule.trim() === '') return 'must be a cron schedule like "0 2 * * *" or @daily';
  const text = schedule.trim();
  if (text.length > 128) return 'must be at most 128 characters';
  if (/^(CRON_)?TZ=/.test(text))
    return "time zones (TZ=...) are not supported in CronJob schedules; schedules run in the controller's time zone (UTC)";
  if (text.startsWith('@')) {
    if (MACROS.has(text.toLowerCase())) return undefined;
    return `${JSON.stringify(text)} is not a supported macro; use one of ${[...MACROS].join(', ')} or five cron fields`;
  }
  const fields = text.split(/\s+/);
  if (fields.length !== 5) {
    return (
      `${JSON.stringify(text)} has ${fields.length} field${fields.length === 1 ? '' : 's'}; ` +
      'a schedule has five (minute hour day-of-month month day-of-week)'
    );
  }
  for (let i = 0; i < 5; i++) {
    const field = fields[i]!;
    for (const word of field.match(/[A-Za-z]+/g) ?? []) {
      if (!NAMES[i]?.test(word))
        return (
          `${FIELDS[i]} field ${JSON.stringify(field)}: ${JSON.stringify(word)} is not allowed here ` +
          '(Kubernetes CronJobs do not support L, W, # or H)'
        );
    }
    if (/[^0-9A-Za-z*?,/-]/.test(field))
      return `${FIELDS[i]} field ${JSON.stringify(field)} contains a character Kubernetes CronJobs do not accept`;
    const endpoints = field.split(',').flatMap((part) => part.split('/')[0]!.split('-'));
    if (i === 4 && endpoints.some((n) => /^[0-9]+$/.test(n) && Number(n) > 6)) {
      return `day of week field ${JSON.stringify(field)}: days are 0-6 (Sunday is 0)`;
    }
  }
  try {
    CronExpressionParser.parse(text, { strict: false });
  } catch (err) {
    return `${JSON.stringify(text)} is not a valid cron schedule: ${err instanceof Error ? err.message : String(err)}`;
  }
  return undefined;
}
