import { InvalidArgumentError as CommanderArgError, Option } from 'commander';
import { UpcaseError } from '../errors.js';
import { checkHost, checkInteger, checkNumber, checkPort } from '../options.js';

/** Exit codes shared by every subcommand. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
/** `upcase client`: every reply came, but one was not the uppercase of its message (typically truncated by the server). */
export const EXIT_BAD_REPLY = 3;

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

/** A whole number written in decimal digits, or the text itself (so `0x10` or `1e3` is refused as typed). */
function toInteger(value: string): number | string {
  return /^\s*-?\d+\s*$/.test(value) ? Number(value) : value;
}

export const parsePort = (name: string) => (value: string) => parsed(() => checkPort(name, toInteger(value)));
export const parseHost = (name: string) => (value: string) => parsed(() => checkHost(name, value));
export const parseInteger =
  (name: string, min: number, max?: number, unit?: string) =>
  (value: string): number =>
    parsed(() => checkInteger(name, toInteger(value), min, max, unit));
export const parseNumber =
  (name: string, min: number, max: number, what: string) =>
  (value: string): number =>
    parsed(() => checkNumber(name, toNumber(value), min, max, what));

/** `--workers`: `auto` (one per CPU) or an integer from 1 to 1024. */
export const parseWorkers =
  (name: string) =>
  (value: string): number | 'auto' =>
    value.trim().toLowerCase() === 'auto' ? 'auto' : parsed(() => checkInteger(name, toInteger(value), 1, 1024, 'or auto'));

/**
 * A boolean from an environment variable: true/false, 1/0, yes/no, on/off (any
 * case); undefined if none of those. Commander treats a boolean flag's variable as
 * "set" whatever it holds, so `UPCASE_X=0` would turn the switch on without this.
 */
export function parseBooleanEnv(value: string): boolean | undefined {
  const v = value.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(v)) return true;
  if (['false', '0', 'no', 'off'].includes(v)) return false;
  return undefined;
}

/** An option that can also come from `UPCASE_<NAME>`; the flag wins. */
export function envOption(flags: string, description: string, env: string): Option {
  return new Option(flags, description).env(env);
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
