import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { EXIT_OK, EXIT_USAGE } from './common.js';
import { benchCommand } from './bench.js';
import { clientCommand } from './client.js';
import { pingCommand } from './ping.js';
import { serveCommand } from './serve.js';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/**
 * Runs the `upcase` command line and resolves to the exit code. Usage errors
 * (unknown flags, bad values) print help to stderr and give exit code 2.
 */
export async function main(argv: string[]): Promise<number> {
  let exitCode = EXIT_OK;
  const setExitCode = (code: number): void => {
    exitCode = code;
  };
  const program = new Command('upcase')
    .description('The textbook uppercase service over TCP and UDP: server, client, pinger and load generator.')
    .version(version(), '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    // So a subcommand's subcommand (`bench merge --json`) gets its own flags, not its parent's of the same name.
    .enablePositionalOptions()
    .addCommand(serveCommand(setExitCode))
    .addCommand(clientCommand(setExitCode))
    .addCommand(pingCommand(setExitCode))
    .addCommand(benchCommand(setExitCode));
  for (const command of program.commands) {
    // A usage error shows the command's usage line, not only a pointer to --help.
    command.exitOverride().showHelpAfterError(`Usage: upcase ${command.name()} ${command.usage()}
(run 'upcase ${command.name()} --help' for every flag)`);
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version exit 0; everything else, including a missing command, is a usage error.
      return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' ? EXIT_OK : EXIT_USAGE;
    }
    throw err;
  }
  return exitCode;
}
