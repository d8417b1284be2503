import { InvalidArgumentError } from '../errors.js';
import type { Kind } from './kinds.js';

/**
 * One row of an option table: everything about one option, in one place. The
 * library's defaults and checks, the command-line flag, its `UPCASE_*` variable,
 * `--help` and the docs' option tables all come from it.
 *
 * The row's name is its key in the table: the library's option name (camelCase).
 */
export interface OptionRow<T = unknown> {
  /** Type, range, unit and how the command line reads it. */
  readonly kind: Kind<T>;
  /** One line for `--help` and the docs. */
  readonly help: string;
  /** More for the docs' tables only (Markdown; links relative to docs/), after `help`. */
  readonly docs?: string;
  /** The default; a function when it depends on other options (it gets the normalized values). */
  readonly default?: T | ((values: Readonly<Record<string, unknown>>) => T | undefined);
  /** How `--help` and the docs show the default when it is computed or absent: `12000, or 12443 with --tls`. */
  readonly defaultText?: string;
  /** Long flag. Default: from the name (`idleTimeout` → `--idle-timeout`; a switch on by default → `--no-tcp`). */
  readonly flag?: string;
  /** Short flag, e.g. `-p`. */
  readonly short?: string;
  /** Environment variable. Default: from the name (`idleTimeout` → `UPCASE_IDLE_TIMEOUT`). */
  readonly env?: string;
  /** Options that must be set too (to anything but false) when this one is set. */
  readonly requires?: readonly string[];
  /** Options that must not be set (to anything but false) together with this one. */
  readonly conflicts?: readonly string[];
  /** Where the value goes in the library's options when it is nested: `tls.ca`. */
  readonly path?: string;
  /** The command line only (output, logging): no library option of that name. */
  readonly cli?: boolean;
}

/** Any table: rows keyed by option name, in the order `--help` and the docs list them. */
export type Table = Readonly<Record<string, OptionRow<unknown>>>;

/**
 * The table for an options interface `O`: a row for every option and no other,
 * each of a kind whose values fit the option's type (checked by the compiler).
 */
export type OptionTable<O> = { readonly [K in keyof O]-?: OptionRow<NonNullable<O[K]>> };

/** A row with everything derived filled in, for the command line and the docs. */
export interface ResolvedRow extends OptionRow {
  readonly name: string;
  readonly flag: string;
  readonly env: string;
  /** The flag as `--help` shows it: `-p, --port <port>`. */
  readonly flags: string;
  /** A switch that is on by default (`--no-tcp`). */
  readonly negated: boolean;
  /** `--help` and docs text of the default, or undefined when there is none. */
  readonly defaultShown: string | undefined;
}

function words(name: string): string[] {
  return name
    .replace(/\./g, '-')
    .split(/(?=[A-Z])|-/)
    .map((w) => w.toLowerCase());
}

export function isSwitch(row: OptionRow): boolean {
  return row.kind.arg === undefined;
}

export function resolveRow(name: string, row: OptionRow): ResolvedRow {
  const leaf = name.split('.').pop()!;
  const negated = isSwitch(row) && row.default === true;
  const flag = row.flag ?? `--${negated ? 'no-' : ''}${words(leaf).join('-')}`;
  const env = row.env ?? `UPCASE_${words(leaf).join('_').toUpperCase()}`;
  const flags = `${row.short === undefined ? '' : `${row.short}, `}${flag}${row.kind.arg === undefined ? '' : ` ${row.kind.arg}`}`;
  let defaultShown = row.defaultText;
  if (defaultShown === undefined && row.default !== undefined && typeof row.default !== 'function') {
    defaultShown = row.kind.format(row.default);
  }
  if (defaultShown === undefined && isSwitch(row)) defaultShown = 'off';
  return { ...row, name, flag, env, flags, negated, defaultShown };
}

export function resolveTable(table: Table): ResolvedRow[] {
  return Object.entries(table).map(([name, row]) => resolveRow(name, row));
}

/** Set, for `requires` and `conflicts`: given, and not false. */
function isSet(value: unknown): boolean {
  return value !== undefined && value !== false;
}

/**
 * The cross-option rules written in the rows (`requires`, `conflicts`), over the
 * options as given. The error names the option and quotes the other one(s) in
 * backticks, so the command line can put its flags in their place.
 */
export function checkRelations(
  table: Table,
  given: Readonly<Record<string, unknown>>,
  /** The values as the caller wrote them, for the error (`10.0.0.0/8`, not `["10.0.0.0/8"]`). */
  asGiven: Readonly<Record<string, unknown>> = given,
): void {
  for (const [name, row] of Object.entries(table)) {
    if (!isSet(given[name])) continue;
    const value = asGiven[name];
    const missing = (row.requires ?? []).filter((other) => !isSet(given[other]));
    if (missing.length > 0) {
      throw new InvalidArgumentError(name, `used only with ${missing.map((o) => `\`${o}\``).join(' and ')}`, value);
    }
    const clash = (row.conflicts ?? []).find((other) => isSet(given[other]));
    if (clash !== undefined) throw new InvalidArgumentError(name, `used only without \`${clash}\``, value);
  }
}

/**
 * Checks every option against its row, applies the rows' cross-option rules, then
 * the defaults (computed ones last, with the other values at hand). Options the
 * table does not know are left out; the caller adds what is not an option (a logger).
 */
export function normalizeTable(
  table: Table,
  input: Readonly<Record<string, unknown>>,
  /** `prefix`: put before names in errors (`tls.`); `context`: more values for computed defaults (the transport). */
  { prefix = '', context = {} }: { prefix?: string; context?: Readonly<Record<string, unknown>> } = {},
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, row] of Object.entries(table)) {
    const value = input[name];
    out[name] = value === undefined ? undefined : row.kind.check(`${prefix}${name}`, value);
  }
  checkRelations(table, out, input);
  const computed: Array<[string, (values: Record<string, unknown>) => unknown]> = [];
  for (const [name, row] of Object.entries(table)) {
    if (out[name] !== undefined || row.default === undefined) continue;
    if (typeof row.default === 'function') computed.push([name, row.default as (values: Record<string, unknown>) => unknown]);
    else out[name] = row.default;
  }
  for (const [name, compute] of computed) out[name] = compute({ ...context, ...out });
  return out;
}

/**
 * Options as a command line gives them (one flat value per row, keyed by row name)
 * → checked, cross-checked, and nested as the library takes them (`tls.ca` goes
 * into a `tls` object). Defaults are applied to command-line-only rows; the library
 * applies its own.
 */
export function optionsFromFlags(table: Table, flat: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const checked: Record<string, unknown> = {};
  for (const [name, row] of Object.entries(table)) {
    const value = flat[name];
    if (value !== undefined) checked[name] = row.kind.check(name, value);
  }
  checkRelations(table, checked, flat);
  const out: Record<string, unknown> = {};
  for (const [name, row] of Object.entries(table)) {
    let value = checked[name];
    if (value === undefined && row.cli === true && row.default !== undefined) {
      value = typeof row.default === 'function' ? row.default(checked) : row.default;
    }
    if (value === undefined) continue;
    if (row.path === undefined) {
      // A group its nested rows have already filled (`tls: { ca }`) stays.
      if (typeof out[name] !== 'object' || out[name] === null) out[name] = value;
      continue;
    }
    const [parent, key] = row.path.split('.') as [string, string];
    const group = typeof out[parent] === 'object' && out[parent] !== null ? (out[parent] as Record<string, unknown>) : {};
    group[key] = value;
    out[parent] = group;
  }
  return out;
}
