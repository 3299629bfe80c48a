// Errors that carry their exit code, so the CLI maps failures in one place:
// 0 done, 2 bad input, 75 temporary (worth retrying), 1 anything else.
import type { FieldProblem } from './api/table.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_BAD_INPUT = 2;
export const EXIT_TEMPORARY = 75; // EX_TEMPFAIL from sysexits.h; Kubernetes Jobs retry it

/** Bad input: the message names the field and the rule. Nothing was changed. */
export class BadInputError extends Error {
  readonly exitCode = EXIT_BAD_INPUT;
  constructor(message: string, readonly problems: FieldProblem[] = []) {
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

export function exitCodeOf(err: unknown): number {
  if (err instanceof BadInputError || err instanceof TemporaryError) return err.exitCode;
  return EXIT_FAILURE;
}
