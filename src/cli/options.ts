import { type Command, Option } from 'commander';
import { formatValue, InvalidArgumentError, UpcaseError } from '../errors.js';
import { EXIT_USAGE } from './common.js';
import { isSwitch, optionsFromFlags, type ResolvedRow, resolveTable, type Table } from '../options/table.js';

/**
 * The command line over an option table (src/options/table.ts): one commander
 * flag per row, its `UPCASE_*` variable, and `--help` with each default and
 * variable. This module only turns text into raw values and errors into lines;
 * every check is the library's.
 */

/** Adds one flag per row to `command`. */
export function addOptions(command: Command, table: Table): Command {
  for (const row of resolveTable(table)) {
    const option = new Option(row.flags, helpLine(row));
    if (option.attributeName() !== row.name) throw new Error(`option table: ${row.flags} does not map to \`${row.name}\``);
    command.addOption(option);
  }
  return command;
}

/** `help (one of: …; default: …; env: UPCASE_…)`, without the docs' Markdown. */
export function helpLine(row: ResolvedRow): string {
  const info: string[] = [];
  if (row.kind.choices !== undefined) info.push(`one of: ${row.kind.choices.join(', ')}`);
  if (row.defaultShown !== undefined) info.push(`default: ${row.defaultShown}`);
  info.push(`env: ${row.env}${isSwitch(row) ? '=true|false' : ''}`);
  return plain(`${row.help} (${info.join('; ')})`);
}

function plain(markdown: string): string {
  return markdown.replace(/`/g, '');
}

/** The options of one run, as typed, and where each came from. */
export class Flags {
  /** Raw values by row name: what `kind.fromText` made of the text, or a switch's boolean. */
  readonly values: Record<string, unknown> = {};
  /** What was typed, by row name, for error messages. */
  private readonly texts = new Map<string, string>();
  private readonly fromEnv = new Set<string>();
  private readonly rows: ResolvedRow[];

  constructor(
    /** `upcase serve` */
    readonly prefix: string,
    table: Table,
    command: Command,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.rows = resolveTable(table);
    const given = command.opts();
    for (const row of this.rows) {
      if (command.getOptionValueSource(row.name) === 'cli') {
        const value: unknown = given[row.name];
        this.values[row.name] = typeof value === 'string' ? row.kind.fromText(value) : value;
        if (typeof value === 'string') this.texts.set(row.name, value);
        continue;
      }
      const text = env[row.env];
      // The flag wins; an empty variable counts as unset, as in most shells' habits (`X= cmd`).
      if (text === undefined || text === '') continue;
      this.values[row.name] = row.kind.fromText(text);
      this.texts.set(row.name, text);
      this.fromEnv.add(row.name);
    }
  }

  /** Whether the option was typed on the command line (not taken from the environment). */
  fromCommandLine(name: string): boolean {
    return this.values[name] !== undefined && !this.fromEnv.has(name);
  }

  /** Sets an option from command-line text (a positional argument that stands for a flag). */
  set(name: string, text: string): void {
    const row = this.rows.find((r) => r.name === name)!;
    this.values[name] = row.kind.fromText(text);
    this.texts.set(name, text);
    this.fromEnv.delete(name);
  }

  /**
   * The library's options from these flags: checked, cross-checked and nested by the
   * library (src/options/table.ts). Throws its InvalidArgumentError.
   */
  options<T>(table: Table): T {
    return optionsFromFlags(table, this.values) as T;
  }

  /**
   * One line for a library InvalidArgumentError: the flag (and the variable when the
   * value came from there), what was expected, and the value as typed. Other
   * options named in backticks become their flags.
   */
  describe(err: UpcaseError): string {
    // The same code from elsewhere (a cluster worker's error, passed on as code and message).
    if (!(err instanceof InvalidArgumentError)) return `${this.prefix}: ${err.message}`;
    const rows = err.option.split('/').map((name) => this.row(name));
    const expected = err.expected.replace(/`([\w.]+)`/g, (_m, name: string) => this.row(name)?.flag ?? name);
    if (rows.some((r) => r === undefined)) return `${this.prefix}: ${err.option}: expected ${plain(expected)}, got ${show(err.value)}`;
    const where = rows.map((r) => (this.fromEnv.has(r!.name) ? `${r!.flag} (${r!.env})` : r!.flag)).join(' and ');
    const row = rows[0]!;
    const text = rows.length === 1 ? this.texts.get(row.name) : undefined;
    // A switch typed on the command line has no value to show beyond its flag.
    if (rows.length === 1 && isSwitch(row) && !this.fromEnv.has(row.name) && typeof err.value === 'boolean') {
      return `${this.prefix}: ${where}: expected ${plain(expected)}`;
    }
    return `${this.prefix}: ${where}: expected ${plain(expected)}, got ${show(text ?? err.value)}`;
  }

  /**
   * Reports a usage error the library threw (see {@link describe}) on stderr and gives
   * its exit status, 2. Anything else is not a usage error: it is thrown on.
   */
  refuse(err: unknown): number {
    if (!isUsageError(err)) throw err;
    process.stderr.write(`${this.describe(err)}\n`);
    return EXIT_USAGE;
  }

  private row(name: string): ResolvedRow | undefined {
    return this.rows.find((r) => r.name === name || r.path === name);
  }
}

/** A value as typed, for an error line: an empty one shows as `""`. */
function show(value: unknown): string {
  return value === '' ? '""' : formatValue(value);
}

/** Whether `err` is a usage error: the library refused an option (exit 2). */
export function isUsageError(err: unknown): err is UpcaseError {
  return err instanceof UpcaseError && err.code === 'UPCASE_ERR_INVALID_ARG';
}
