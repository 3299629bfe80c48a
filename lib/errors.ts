// Errors that carry their exit code, so the CLI maps failures in one place:
// 0 done, 2 bad input, 75 temporary (worth retrying), 77 refused by the query sandbox,
// 124 past its deadline, 1 anything else. Imports nothing of lib/: every folder may import it.

/** A rule broken at a field, e.g. { field: 'spec.columns[1].type', message: 'unknown type "STRNG"' }. */
export interface FieldProblem {
  field: string;
  message: string;
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_BAD_INPUT = 2;
export const EXIT_TEMPORARY = 75; // EX_TEMPFAIL from sysexits.h; Kubernetes Jobs retry it
export const EXIT_REFUSED = 77; // EX_NOPERM from sysexits.h: the query sandbox said no (HTTP 403)
export const EXIT_DEADLINE = 124; // as timeout(1): the query ran past its deadline (HTTP 504)

/** Bad input: the message names the field and the rule. Nothing was changed. */
export class BadInputError extends Error {
  readonly exitCode = EXIT_BAD_INPUT;
  constructor(
    message: string,
    readonly problems: FieldProblem[] = [],
  ) {
    super(message);
  }
  static fromProblems(problems: FieldProblem[]): BadInputError {
    return new BadInputError(problems.map((p) => `${p.field}: ${p.message}`).join('; '), problems);
  }
}

/** A failure worth retrying: storage unreachable, catalog lock held, connection reset. */
export class TemporaryError extends Error {
  readonly exitCode = EXIT_TEMPORARY;
}

/** SQL the query sandbox refuses (a warm worker answers 403): not bad input, not worth retrying. */
export class RefusedError extends Error {
  readonly exitCode = EXIT_REFUSED;
}

/** A query interrupted at its deadline (a warm worker answers 504). */
export class DeadlineError extends Error {
  readonly exitCode = EXIT_DEADLINE;
}

export function exitCodeOf(err: unknown): number {
  if (err instanceof BadInputError || err instanceof TemporaryError) return err.exitCode;
  if (err instanceof RefusedError || err instanceof DeadlineError) return err.exitCode;
  return EXIT_FAILURE;
}
