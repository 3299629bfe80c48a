// Secrets must never reach output: every error message and log line we print passes through here.
const SECRET_ENV = ['AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'PGPASSWORD', 'FEATHERMAN_API_TOKEN'];

/** Replace every known secret value (from the environment) and password=... pairs with ***. */
export function redact(text: string, env: NodeJS.ProcessEnv = process.env): string {
  let out = text;
  for (const key of SECRET_ENV) {
    const value = env[key];
    if (value && value.length >= 4) out = out.split(value).join('***');
  }
  return out
    .replace(/(password\s*=\s*)('[^']*'|"[^"]*"|\S+)/gi, '$1***')
    .replace(/(SECRET\s+)'(?:[^']|'')*'/gi, "$1'***'")
    .replace(/(postgres(?:ql)?:\/\/[^:/\s]+:)[^@\s]+@/gi, '$1***@');
}
