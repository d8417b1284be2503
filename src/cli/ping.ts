import { Command, Option } from 'commander';
import { formatHostPort } from '../errors.js';
import { CLIENT_DEFAULTS, PING_DEFAULTS } from '../client/options.js';
import { looksRateLimited, Pinger, type PingSummary } from '../client/ping.js';
import { EXIT_FAILURE, EXIT_OK, parseHost, parseInteger, parseNumber } from './common.js';
import { reportFailure } from './failure.js';

interface PingFlags {
  port: number;
  count: number;
  interval: number;
  timeout: number;
  size: number;
}

export function pingCommand(setExitCode: (code: number) => void): Command {
  return new Command('ping')
    .summary('a UDP pinger in the style of ping(8)')
    .description("a UDP pinger in the style of ping(8) (the textbook's pinger lab): RTT per reply, loss and rtt statistics")
    .argument('[host]', 'server host', parseHost('host'), CLIENT_DEFAULTS.host)
    .addOption(new Option('-p, --port <port>', 'server port').argParser(parseInteger('--port', 1, 65535)).default(CLIENT_DEFAULTS.port))
    .addOption(
      new Option('-c, --count <n>', 'stop after n pings; 0 = until Ctrl-C')
        .argParser(parseInteger('--count', 0))
        .default(PING_DEFAULTS.count),
    )
    .addOption(
      new Option('-i, --interval <sec>', 'seconds between pings, as ping(8)')
        .argParser(parseNumber('--interval', PING_DEFAULTS.minInterval, 2_147_483, 'a number of seconds >= 0.001'))
        .default(PING_DEFAULTS.interval),
    )
    .addOption(
      new Option('-W, --timeout <ms>', 'milliseconds to wait for each reply (unlike ping(8), whose -W is in seconds)')
        .argParser(parseNumber('--timeout', 1, 2_147_483_647, 'a number of milliseconds from 1 to 2147483647'))
        .default(PING_DEFAULTS.timeout),
    )
    .addOption(
      new Option('-s, --size <bytes>', 'payload bytes per ping')
        .argParser(parseInteger('--size', PING_DEFAULTS.minSize, 65_507))
        .default(PING_DEFAULTS.size),
    )
    .action(async (host: string, flags: PingFlags) => {
      setExitCode(await ping(host, flags));
    });
}

async function ping(host: string, flags: PingFlags): Promise<number> {
  const pinger = new Pinger({ host, ...flags });
  const destination = formatHostPort(host, flags.port);
  const out = (line: string): boolean => process.stdout.write(`${line}\n`);
  pinger.on('reply', (r) => out(`${r.bytes} bytes from ${formatHostPort(r.address, r.port)}: seq=${r.seq} time=${r.rtt.toFixed(3)} ms`));
  pinger.on('timeout', (seq) => out(`Request timed out (seq=${seq})`));
  pinger.on('failure', ({ seq, error }) => {
    const what = error.syscallCode === 'ECONNREFUSED' ? 'Destination port unreachable' : error.message;
    out(`From ${destination}: seq=${seq} ${what}`);
  });
  // Ctrl-C ends the run with the summary, as in ping(8).
  const onSigint = (): void => pinger.stop();
  process.on('SIGINT', onSigint);
  out(`PING ${destination} (udp): ${flags.size} data bytes`);
  let summary: PingSummary;
  try {
    summary = await pinger.run();
  } catch (err) {
    return reportFailure(err);
  } finally {
    process.off('SIGINT', onSigint);
  }
  for (const line of formatSummary(destination, summary)) out(line);
  if (looksRateLimited(summary, flags.interval)) {
    process.stderr.write(
      `upcase: hint: the first ${summary.firstLoss! - 1} pings were all answered, then ${formatPercent((summary.lostAfterFirstLoss * 100) / (summary.transmitted - summary.firstLoss! + 1))}% were lost: ` +
        `that looks like the server's per-source rate limit (upcase serve --udp-rate-limit, default 100 datagrams/s with a burst of 100), ` +
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
