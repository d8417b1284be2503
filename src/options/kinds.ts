import { InvalidArgumentError } from '../errors.js';
import { formatCidr, parseCidr } from '../proxy/trust.js';

/**
 * The type of an option's value: how the library checks it, how the command line
 * turns text into a raw value for that check, and how help and docs describe it.
 * One kind per type; a row of an option table (./table.ts) names its kind.
 */
export interface Kind<T> {
  /** What a valid value is, for errors and docs: `a non-negative number of seconds`. */
  readonly expected: string;
  /** Placeholder in `--help` and the docs (`<sec>`); absent for a switch, which takes no value. */
  readonly arg?: string;
  /** The allowed values, for a choice. */
  readonly choices?: readonly string[];
  /** The range, for a number. */
  readonly min?: number;
  readonly max?: number;
  /**
   * The normalized value. Throws an InvalidArgumentError naming `name` when the value
   * is not valid. Method syntax on purpose: a Kind<string[]> may fill a row typed
   * `string | readonly string[]`.
   */
  check(name: string, value: unknown): T;
  /**
   * Command line and environment: text → the raw value handed to `check` (a number,
   * `true`/`false`, or the text itself when it is none of those, so that an error shows
   * what was typed). Never throws: only the library validates.
   */
  fromText(text: string): unknown;
  /** A value as the docs and `--help` show it. */
  format(value: T): string;
}

function invalid(name: string, expected: string, value: unknown): never {
  throw new InvalidArgumentError(name, expected, value);
}

/** `-12` or `12`, as a number; anything else (`0x10`, `1e3`, `12.0`) stays text. */
function integerText(text: string): unknown {
  return /^\s*-?\d+\s*$/.test(text) ? Number(text) : text;
}

/** A decimal number, as a number; anything else stays text. */
function numberText(text: string): unknown {
  return /^\s*[-+]?(\d+\.?\d*|\.\d+)\s*$/.test(text) ? Number(text) : text;
}

/** Longest timer Node accepts, in seconds (2^31 − 1 ms). */
export const MAX_TIMER_SECONDS = 2_147_483;

/** Bounds this large are not worth writing out: `>= 1`, `non-negative`. */
function range(min: number, max: number): string {
  return max >= MAX_TIMER_SECONDS ? (min === 0 ? 'non-negative' : `>= ${min}`) : `from ${min} to ${max}`;
}

export interface NumberSpec {
  min: number;
  max?: number;
  /** Plural noun after the number: `datagrams per second`. */
  unit?: string;
  arg?: string;
  /** Overrides the generated wording of `expected`. */
  expected?: string;
}

function describeNumber(integer: boolean, { min, max = Number.MAX_SAFE_INTEGER, unit, expected }: NumberSpec): string {
  if (expected !== undefined) return expected;
  const r = range(min, max);
  if (integer) {
    const of = unit === undefined ? '' : ` (${unit})`;
    return r === 'non-negative' ? `a non-negative integer${of}` : `an integer ${r}${of}`;
  }
  const what = unit === undefined ? 'number' : `number of ${unit}`;
  return r === 'non-negative' ? `a non-negative ${what}` : `a ${what} ${r}`;
}

/** A whole number in [min, max]. The command line takes decimal digits only. */
export function integer(spec: NumberSpec): Kind<number> {
  return numeric(true, spec);
}

/** A finite number in [min, max]; fractions allowed. */
export function number(spec: NumberSpec): Kind<number> {
  return numeric(false, spec);
}

/** Whether `v` is a number in [min, max] (a whole one when `whole`). */
function fits(whole: boolean, { min, max = Number.MAX_SAFE_INTEGER }: NumberSpec, v: unknown): v is number {
  return typeof v === 'number' && (whole ? Number.isInteger(v) : Number.isFinite(v)) && v >= min && v <= max;
}

function numeric(whole: boolean, spec: NumberSpec): Kind<number> {
  const { min, max = Number.MAX_SAFE_INTEGER } = spec;
  const expected = describeNumber(whole, spec);
  return {
    expected,
    min,
    max,
    arg: spec.arg ?? '<n>',
    check: (name, v) => (fits(whole, spec, v) ? v : invalid(name, expected, v)),
    fromText: whole ? integerText : numberText,
    format: String,
  };
}

const TIME_UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 };

/** `1.5`, `1.5s`, `500ms`, `2m`, `1h` → seconds; anything else stays text. */
export function secondsText(text: string): unknown {
  const m = /^\s*(-?(?:\d+\.?\d*|\.\d+))\s*(ms|s|m|h)?\s*$/.exec(text);
  return m === null ? text : Number(m[1]) * TIME_UNITS[m[2] ?? 's']!;
}

/**
 * A duration in seconds, everywhere (library and command line); fractions allowed.
 * The command line also takes a unit: `500ms`, `1.5s`, `2m`, `1h`.
 */
export function seconds(spec: { min: number; max?: number; expected?: string }): Kind<number> {
  const kind = number({ ...spec, max: spec.max ?? MAX_TIMER_SECONDS, unit: 'seconds', arg: '<sec>' });
  return { ...kind, fromText: secondsText };
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2 };

/** Bytes; the command line also takes binary multiples: `64`, `1k`, `64KiB`, `1M`. */
export function bytes(spec: { min: number; max: number; expected?: string }): Kind<number> {
  const kind = integer({ ...spec, unit: 'bytes', arg: '<bytes>' });
  return {
    ...kind,
    fromText: (text) => {
      const m = /^\s*(\d+)\s*([a-z]*)\s*$/i.exec(text);
      const unit = m === null ? undefined : SIZE_UNITS[m[2]!.toLowerCase()];
      return m === null || unit === undefined ? integerText(text) : Number(m[1]) * unit;
    },
  };
}

/** A number per second; the command line also takes decimal multiples: `5000`, `10k`, `1.5M`. */
export function perSecond(spec: NumberSpec): Kind<number> {
  const kind = number(spec);
  return {
    ...kind,
    fromText: (text) => {
      const m = /^\s*(\d+(?:\.\d+)?)\s*([kKmM])\s*$/.exec(text);
      return m === null ? numberText(text) : Number(m[1]) * (m[2]!.toLowerCase() === 'k' ? 1e3 : 1e6);
    },
  };
}

/** A TCP/UDP port: 0–65535 for a listener (0 picks a free one), 1–65535 for a client. */
export function port(min: 0 | 1 = 0): Kind<number> {
  return integer({ min, max: 65535, expected: `an integer port from ${min} to 65535`, arg: '<port>' });
}

/** true/false, 1/0, yes/no, on/off (any case), as environment variables are written; undefined if none. */
export function parseBooleanText(text: string): boolean | undefined {
  const v = text.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(v)) return true;
  if (['false', '0', 'no', 'off'].includes(v)) return false;
  return undefined;
}

/** A switch: a flag without a value (`--udp`, or `--no-tcp` when it is on by default). */
export function boolean(): Kind<boolean> {
  const expected = 'true or false';
  return {
    expected,
    check: (name, v) => (typeof v === 'boolean' ? v : invalid(name, expected, v)),
    fromText: (text) => parseBooleanText(text) ?? text,
    format: (v) => (v ? 'on' : 'off'),
  };
}

export function choice<T extends string>(choices: readonly T[], arg = '<kind>'): Kind<T> {
  const expected = `one of ${choices.join(', ')}`;
  return {
    expected,
    arg,
    choices,
    check: (name, v) => (typeof v === 'string' && (choices as readonly string[]).includes(v) ? (v as T) : invalid(name, expected, v)),
    fromText: (text) => text,
    format: String,
  };
}

/** A host name or IP address; an IPv6 literal may come in brackets (`[::1]`), which are dropped. */
export function host(arg = '<host>'): Kind<string> {
  const expected = 'a host name or IP address';
  return {
    expected,
    arg,
    check: (name, v) => {
      if (typeof v !== 'string') return invalid(name, expected, v);
      const bare = /^\[([0-9a-fA-F:.%\w]*:[0-9a-fA-F:.%\w]*)\]$/.exec(v)?.[1] ?? v;
      return bare.length === 0 || /[\s[\]]/.test(bare) ? invalid(name, expected, v) : bare;
    },
    fromText: (text) => text,
    format: String,
  };
}

/** A file path (not read here). */
export function file(arg = '<file>'): Kind<string> {
  const expected = 'a file path';
  return {
    expected,
    arg,
    check: (name, v) => (typeof v === 'string' && v.length > 0 ? v : invalid(name, expected, v)),
    fromText: (text) => text,
    format: String,
  };
}

/** PEM: a file path, or the PEM itself in a Buffer. Never echoes what might be key material. */
export function pem(arg = '<file>'): Kind<string | Buffer> {
  const expected = 'a file path (string) or PEM (Buffer)';
  return {
    expected,
    arg,
    check: (name, v) => {
      if (Buffer.isBuffer(v)) return v.length > 0 ? v : invalid(name, 'a file path or a non-empty PEM Buffer', 'an empty Buffer');
      if (typeof v !== 'string' || v.length === 0) return invalid(name, expected, typeof v === 'string' ? '' : typeof v);
      return v;
    },
    fromText: (text) => text,
    format: (v) => (typeof v === 'string' ? v : 'PEM'),
  };
}

/** CIDR blocks (or single addresses): an array, or one comma-separated string. Normalized to `address/prefix`. */
export function cidrs(arg = '<cidrs>'): Kind<string[]> {
  const expected = 'a non-empty list of CIDR blocks such as 10.0.0.0/8,fd00::/8';
  return {
    expected,
    arg,
    check: (name, value) => {
      const items = typeof value === 'string' ? value.split(',').map((s) => s.trim()) : value;
      if (!Array.isArray(items) || items.length === 0) return invalid(name, expected, value);
      return items.map((item: unknown) => {
        const cidr = typeof item === 'string' ? parseCidr(item) : null;
        return cidr === null ? invalid(name, 'CIDR blocks such as 10.0.0.0/8 or fd00::/8 (or single addresses)', item) : formatCidr(cidr);
      });
    },
    fromText: (text) => text,
    format: (v) => v.join(','),
  };
}

/** `auto`, or an integer in [min, max]. */
export function integerOrAuto(spec: NumberSpec): Kind<number | 'auto'> {
  const kind = integer(spec);
  const expected = `${kind.expected}, or auto`;
  return {
    expected,
    min: kind.min,
    max: kind.max,
    arg: spec.arg ?? '<n|auto>',
    check: (name, v) => {
      if (typeof v === 'string' && v.trim().toLowerCase() === 'auto') return 'auto';
      return fits(true, spec, v) ? v : invalid(name, expected, v);
    },
    fromText: integerText,
    format: String,
  };
}
