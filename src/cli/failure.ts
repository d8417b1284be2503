import type { Command, CommanderError } from 'commander';
import { exitStatusOf } from '../errors.js';

/**
 * The one way every command reports a failure: one line on stderr,
 * `upcase: <message>`, and the exit status {@link exitStatusOf} gives
 * (2 for a usage or configuration error, 1 for a network error or timeout).
 */
export function reportFailure(err: unknown): number {
  process.stderr.write(`upcase: ${err instanceof Error ? err.message : String(err)}\n`);
  return exitStatusOf(err);
}

/**
 * One line for a usage error commander finds before the command runs (an unknown
 * option or command, an option without its value, an argument too many), in the
 * form of the library's: `upcase client: unknown option '--bogus' (see 'upcase client --help')`.
 * Commander's suggestion of a close flag or command takes the place of the pointer to
 * `--help`: `upcase serve: unknown option '--prot' (did you mean --port?)`.
 */
export function usageErrorLine(command: Command, err: CommanderError): string {
  const name = commandPath(command);
  // Commander's message: `error: <what>`, then `(Did you mean …?)` on a line of its own when one is close.
  const [first = '', ...rest] = err.message.replace(/^error: /, '').split('\n');
  const said = problem(command, err.code, first);
  // A suggestion of the flag itself (`--tls=yes`: did you mean --tls?) says nothing more.
  const suggestion = said === first ? /^\(Did you mean (.*)\?\)$/.exec(rest.join(' '))?.[1] : undefined;
  const hint = suggestion === undefined ? `see '${name} --help'` : `did you mean ${suggestion}?`;
  return `${name}: ${said} (${hint})`;
}

function problem(command: Command, code: string, message: string): string {
  switch (code) {
    case 'commander.unknownOption': {
      // `--tls=yes`: a switch given a value.
      const flag = /^unknown option '(--[^=']+)=.*'$/.exec(message)?.[1];
      const known = flag !== undefined && command.options.some((o) => o.long === flag);
      return known ? `option '${flag}' takes no value` : message;
    }
    case 'commander.optionMissingArgument': {
      const flags = /^option '(.*)' argument missing$/.exec(message)?.[1];
      return flags === undefined ? message : `option '${flags}' needs a value`;
    }
    case 'commander.excessArguments': {
      const extra = command.args.slice(command.registeredArguments.length);
      const what = command.commands.length > 0 ? 'unknown command' : 'unexpected argument';
      return extra.length === 0 ? message : `${what} '${extra[0]}'`;
    }
    case 'commander.missingArgument': {
      const argument = /^missing required argument '(.*)'$/.exec(message)?.[1];
      return argument === undefined ? message : `missing argument '${argument}'`;
    }
    default:
      return message;
  }
}

/** `upcase bench merge`, for `merge`. */
function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c !== null; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}
