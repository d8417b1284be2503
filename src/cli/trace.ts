import type { Command } from 'commander';
import { createTraceWriter, TRACE_NOTICE, type Tracer } from '../trace.js';
import { EXIT_USAGE, envOption, parseBooleanEnv } from './common.js';

/**
 * `--trace` for `upcase serve` and `upcase client`: each socket step in the
 * textbook's words on stderr (stdout keeps the ready line and the replies).
 */
export const TRACE_ENV = 'UPCASE_TRACE';

/** The `--trace` flag (env `UPCASE_TRACE=true|false`). */
export function traceOption(what: string) {
  return envOption('--trace', `narrate ${what} socket steps on stderr, payload included`, TRACE_ENV).default(false);
}

/** The flag's value; from the variable, true/false (1/0, yes/no, on/off), or a usage error. */
export function traceFlag(command: Command): boolean {
  if (command.getOptionValueSource('trace') !== 'env') return command.getOptionValue('trace') === true;
  const raw = process.env[TRACE_ENV] ?? '';
  const value = parseBooleanEnv(raw);
  if (value === undefined) {
    command.error(
      `error: option '--trace' value '${raw}' from env '${TRACE_ENV}' is invalid. Expected \`${TRACE_ENV}\` to be true or false, got \`${raw}\``,
      { exitCode: EXIT_USAGE, code: 'commander.invalidArgument' },
    );
  }
  return value === true;
}

/** Says that the trace shows payload (and `more`, e.g. which transports), then returns a tracer writing to stderr. */
export function startTrace(more?: string): Tracer {
  process.stderr.write(`${TRACE_NOTICE}${more === undefined ? '' : `; ${more}`}\n`);
  return createTraceWriter((line) => process.stderr.write(line));
}

/** The transports `serve --trace` runs on, and why. */
export const SERVE_TRACE_TRANSPORTS = 'TCP on the stream transport, UDP on node:dgram (the native transports do not report each read)';
