import { Command } from 'commander';
import { PING_OPTIONS, type PingOptions } from '../client/options.js';
import { looksRateLimited, Pinger, type PingSummary } from '../client/ping.js';
import { formatHostPort } from '../errors.js';
import { SERVER_DEFAULTS } from '../options.js';
import { boolean } from '../options/kinds.js';
import type { Table } from '../options/table.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './common.js';
import { reportFailure } from './failure.js';
import { addOptions, Flags, isUsageError } from './options.js';

/** `upcase ping`'s options: the pinger's (src/client/options.ts) and `-q`. */
export const PING_COMMAND_OPTIONS = {
  ...PING_OPTIONS,
  quiet: { kind: boolean(), short: '-q', help: 'quiet: print only the header line and the summary', cli: true },
} as const satisfies Table;

export function pingCommand(setExitCode: (code: number) => void): Command {
  const command = new Command('ping')
    .summary('a UDP pinger in the style of ping(8)')
    .description("a UDP pinger in the style of ping(8) (the textbook's pinger lab): RTT per reply, loss and rtt statistics")
    .argument('[host]', 'server host, as ping(8) takes it (or --host)');
  return addOptions(command, PING_COMMAND_OPTIONS).action(async (host: string | undefined, _flags: unknown, cmd: Command) => {
    setExitCode(await ping(host, cmd));
  });
}

async function ping(positional: string | undefined, command: Command): Promise<number> {
  const cli = new Flags('upcase ping', PING_COMMAND_OPTIONS, command);
  if (positional !== undefined) {
    // ping(8)'s habit: `upcase ping HOST`. The argument is typed on the command line, so it wins over UPCASE_HOST.
    if (cli.fromCommandLine('host') && cli.values.host !== positional) {
      process.stderr.write(`upcase ping: --host: expected the same host as the argument (${positional}), got ${String(cli.values.host)}\n`);
      return EXIT_USAGE;
    }
    cli.set('host', positional);
  }
  let pinger: Pinger;
  let quiet: boolean;
  try {
    const options = cli.options<PingOptions & { quiet?: boolean }>(PING_COMMAND_OPTIONS);
    quiet = options.quiet === true;
    pinger = new Pinger(options);
  } catch (err) {
    if (!isUsageError(err)) throw err;
    process.stderr.write(`${cli.describe(err)}\n`);
    return EXIT_USAGE;
  }
  const { host, port, size, interval } = pinger.options;
  try {
    // As ping(8): an unknown host is one error line and exit 2, before any header.
    await pinger.resolve();
  } catch (err) {
    return reportFailure(err);
  }
  const destination = formatHostPort(host, port);
  const out = (line: string): boolean => process.stdout.write(`${line}\n`);
  if (!quiet) {
    pinger.on('reply', (r) => out(`${r.bytes} bytes from ${formatHostPort(r.address, r.port)}: seq=${r.seq} time=${r.rtt.toFixed(3)} ms`));
    pinger.on('timeout', (seq) => out(`Request timed out (seq=${seq})`));
    pinger.on('failure', ({ seq, error }) => {
      const what = error.syscallCode === 'ECONNREFUSED' ? 'Destination port unreachable' : error.message;
      out(`From ${destination}: seq=${seq} ${what}`);
    });
  }
  // Ctrl-C ends the run with the summary, as in ping(8).
  const onSigint = (): void => pinger.stop();
  process.on('SIGINT', onSigint);
  out(`PING ${destination} (udp): ${size} data bytes`);
  let summary: PingSummary;
  try {
    summary = await pinger.run();
  } catch (err) {
    return reportFailure(err);
  } finally {
    process.off('SIGINT', onSigint);
  }
  for (const line of formatSummary(destination, summary)) out(line);
  if (looksRateLimited(summary, interval)) {
    process.stderr.write(
      `upcase: hint: the first ${summary.firstLoss! - 1} pings were all answered, then ${formatPercent((summary.lostAfterFirstLoss * 100) / (summary.transmitted - summary.firstLoss! + 1))}% were lost: ` +
        `that looks like the server's per-source rate limit (upcase serve --udp-rate-limit, default ${SERVER_DEFAULTS.udpRateLimit} datagrams/s with a burst of as many), ` +
        `not a lossy network; ping slower (-i) or raise the limit\n`,
    );
  }
  return summary.received > 0 ? EXIT_OK : EXIT_FAILURE;
}

/** The summary lines of ping(8). */
export function formatSummary(destination: string, s: PingSummary): string[] {
  const errors = s.errors > 0 ? `, +${s.errors} errors` : '';
  const lines = [
    `--- ${destination} upcase ping statistics ---`,
    `${s.transmitted} packets transmitted, ${s.received} received${errors}, ${formatPercent(s.loss)}% packet loss, time ${Math.round(s.time)}ms`,
  ];
  if (s.rtt !== null) {
    const { min, avg, max, mdev } = s.rtt;
    lines.push(`rtt min/avg/max/mdev = ${min.toFixed(3)}/${avg.toFixed(3)}/${max.toFixed(3)}/${mdev.toFixed(3)} ms`);
  }
  return lines;
}

/** As C's `%g`, which ping(8) uses for the loss: `30`, `33.3333`. */
function formatPercent(value: number): string {
  return String(Number(value.toPrecision(6)));
}
