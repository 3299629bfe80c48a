// Argument parsing for the runner subcommands: node's parseArgs, with errors as exit-2 bad input.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BadInputError } from '../../errors.js';

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (err) {
    throw new BadInputError((err as Error).message.replace(/^TypeError \[[A-Z_]+\]: /, ''));
  }
}

export function positiveInt(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new BadInputError(`${name}: must be a whole number, got ${JSON.stringify(value)}`);
  return Number(value);
}
