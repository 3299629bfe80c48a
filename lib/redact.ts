// Secrets must never reach output: every error message and log line we print passes through here.
/** Environment variables whose values are secrets. FEATHERMAN_API_TOKENS holds a list. */
export const SECRET_ENV = [
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'PGPASSWORD',
  'FEATHERMAN_API_TOKENS',
  'FEATHERMAN_BACKUP_ACCESS_KEY_ID',
  'FEATHERMAN_BACKUP_SECRET_ACCESS_KEY',
] as const;

/** Secret values taken out of the environment (takeSecrets), still scrubbed from output. */
const remembered = new Set<string>();

function secretValues(env: NodeJS.ProcessEnv): string[] {
  const values = [...remembered];
  for (const key of SECRET_ENV) {
    const value = env[key];
    if (!value) continue;
    if (key === 'FEATHERMAN_API_TOKENS') values.push(...value.split(/[\s,]+/));
    else values.push(value);
  }
  // Longest first, so a secret containing another is replaced whole.
  return values.filter((v) => v.length >= 4).sort((a, b) => b.length - a.length);
}

/**
 * Remove the secret variables from `env` (process.env in a process that runs user SQL), keeping
 * their values only in memory for redaction. Returns what was there, for the caller's config.
 * DuckDB's httpfs copies AWS_* into readable settings when it loads, and libpq reads PGPASSWORD
 * whenever it connects: a process running user SQL must hold them only in DuckDB secrets.
 */
export function takeSecrets(env: NodeJS.ProcessEnv = process.env): Partial<Record<(typeof SECRET_ENV)[number], string>> {
  const taken: Partial<Record<(typeof SECRET_ENV)[number], string>> = {};
  for (const key of SECRET_ENV) {
    const value = env[key];
    if (value === undefined) continue;
    taken[key] = value;
    for (const v of key === 'FEATHERMAN_API_TOKENS' ? value.split(/[\s,]+/) : [value]) if (v) remembered.add(v);
    delete env[key];
  }
  return taken;
}

/** Replace every known secret value and password=... pairs with ***. */
export function redact(text: string, env: NodeJS.ProcessEnv = process.env): string {
  let out = text;
  for (const value of secretValues(env)) out = out.split(value).join('***');
  return out
    .replace(/(password\s*=\s*)('[^']*'|"[^"]*"|\S+)/gi, '$1***')
    .replace(/(SECRET\s+)'(?:[^']|'')*'/gi, "$1'***'")
    .replace(/(postgres(?:ql)?:\/\/[^:/\s]+:)[^@\s]+@/gi, '$1***@');
}
