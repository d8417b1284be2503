import { InvalidArgumentError as CommanderArgError, Option } from 'commander';
import { InvalidArgumentError, UpcaseError } from '../errors.js';
import { checkHost, checkInteger, checkNumber, checkPort } from '../options.js';

/** Exit codes shared by every subcommand. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Runs a library check and turns its error into commander's, so a bad flag is a usage error (exit 2). */
export function parsed<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (err instanceof UpcaseError) throw new CommanderArgError(err.message);
    throw err;
  }
}

/** A number, or the text itself when it is not one, so the error shows what was typed. */
function toNumber(value: string): number | string {
  const n = Number(value);
  return value.trim() === '' || Number.isNaN(n) ? value : n;
}

export const parsePort = (name: string) => (value: string) => parsed(() => checkPort(name, toNumber(value)));
export const parseHost = (name: string) => (value: string) => parsed(() => checkHost(name, value));
export const parseInteger =
  (name: string, min: number, max?: number, unit?: string) =>
  (value: string): number =>
    parsed(() => checkInteger(name, toNumber(value), min, max, unit));
export const parseNumber =
  (name: string, min: number, max: number, what: string) =>
  (value: string): number =>
    parsed(() => checkNumber(name, toNumber(value), min, max, what));

/**
 * A yes/no value, for switches that also come from an environment variable:
 * commander treats a plain boolean flag's variable as "set" whatever it holds,
 * so `UPCASE_X=0` would turn the switch on. `1/true/yes/on` and `0/false/no/off`
 * (any case, or empty for off) are accepted; anything else is a usage error.
 */
export const parseBoolean =
  (name: string) =>
  (value: string): boolean =>
    parsed(() => {
      if (/^(1|true|yes|on)$/i.test(value.trim())) return true;
      if (/^(0|false|no|off|)$/i.test(value.trim())) return false;
      throw new InvalidArgumentError(name, 'a boolean (true/false, 1/0, yes/no, on/off)', value);
    });

/** An option that can also come from `UPCASE_<NAME>`; the flag wins. */
export function envOption(flags: string, description: string, env: string): Option {
  return new Option(flags, description).env(env);
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
