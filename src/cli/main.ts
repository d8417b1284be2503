import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { EXIT_OK, EXIT_USAGE } from './common.js';
import { benchCommand } from './bench.js';
import { clientCommand } from './client.js';
import { usageErrorLine } from './failure.js';
import { pingCommand } from './ping.js';
import { serveCommand } from './serve.js';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/**
 * Runs the `upcase` command line and resolves to the exit code. A usage error
 * commander finds (an unknown flag or command, a flag without its value, an
 * argument too many) is one line on stderr, as {@link usageErrorLine} words it,
 * and exit code 2.
 */
export async function main(argv: string[]): Promise<number> {
  let exitCode = EXIT_OK;
  const setExitCode = (code: number): void => {
    exitCode = code;
  };
  const program = new Command('upcase')
    .description('The textbook uppercase service over TCP and UDP: server, client, pinger and load generator.')
    .version(version(), '-V, --version')
    // So a subcommand's subcommand (`bench merge --json`) gets its own flags, not its parent's of the same name.
    .enablePositionalOptions()
    .addCommand(serveCommand(setExitCode))
    .addCommand(clientCommand(setExitCode))
    .addCommand(pingCommand(setExitCode))
    .addCommand(benchCommand(setExitCode));
  let failed: Command = program;
  for (const command of commandTree(program)) {
    command
      .showHelpAfterError(false)
      .showSuggestionAfterError(true)
      // Worded by usageErrorLine below, once the error reaches main.
      .configureOutput({ outputError: () => {} })
      .exitOverride((err) => {
        failed = command;
        throw err;
      });
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    // --help, `help serve` and --version exit 0; `upcase` alone shows the help on stderr and exits 2.
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT_OK;
    if (err.code === 'commander.help') return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    process.stderr.write(`${usageErrorLine(failed, err)}\n`);
    return EXIT_USAGE;
  }
  return exitCode;
}

function commandTree(command: Command): Command[] {
  return [command, ...command.commands.flatMap(commandTree)];
}
