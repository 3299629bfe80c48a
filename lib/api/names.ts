// Rules for names that end up as SQL identifiers (schemas, tables, columns). One rule everywhere:
// admission, the runner and the hooks all call identifierProblem(), so a name that passes one passes all.
// Names are always quoted when they reach SQL (lib/lake/sql.ts), so reserved words and mixed case are fine.

export const IDENTIFIER_PATTERN = '^[A-Za-z_][A-Za-z0-9_]*$';
export const IDENTIFIER_MAX_LENGTH = 63;
const IDENTIFIER = new RegExp(IDENTIFIER_PATTERN);

/** Undefined when `name` is a legal identifier, else the rule it breaks. */
export function identifierProblem(name: unknown): string | undefined {
  if (typeof name !== 'string' || name.length === 0) return 'must be a non-empty string';
  if (name.length > IDENTIFIER_MAX_LENGTH) return `must be at most ${IDENTIFIER_MAX_LENGTH} characters`;
  if (!IDENTIFIER.test(name)) return `must match ${IDENTIFIER_PATTERN} (letters, digits and underscores, not starting with a digit)`;
  if (name.toLowerCase().startsWith('__ducklake')) return 'must not start with __ducklake (reserved for the DuckLake catalog)';
  return undefined;
}
