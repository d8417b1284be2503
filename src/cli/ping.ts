import { Command, Option } from 'commander';
import { formatHostPort } from '../errors.js';
import { CLIENT_DEFAULTS, PING_DEFAULTS } from '../client/options.js';
import { type ExtraReply, looksRateLimited, Pinger, type PingSummary, type ProbeRecord } from '../client/ping.js';
import { parseSweep, sweep, type SweepResult, type SweepStep } from '../client/sweep.js';
import { TcpPinger, type TcpPingSummary, type TcpProbeRecord } from '../client/tcp-ping.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, errorMessage, parsed, parseHost, parseInteger, parseNumber } from './common.js';

interface PingFlags {
  port: number;
  count: number;
  interval: number;
  timeout: number;
  size: number;
  json?: boolean;
  tcp?: boolean;
  sweep?: { min: number; max: number; step?: number };
}

export function pingCommand(setExitCode: (code: number) => void): Command {
  const command = new Command('ping')
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
    );
  addInstrumentOptions(command);
  return command.action(async (host: string, flags: PingFlags) => {
    setExitCode(await ping(host, flags));
  });
}

// ---- Issue 17 (instruments): flags added here, in one block, to be ported onto the options table. ----
function addInstrumentOptions(command: Command): void {
  command
    .addOption(new Option('--json', 'print one JSON object per line: a record per probe, then the summary'))
    .addOption(
      new Option('--tcp', 'TCP probes, as tcping: a new connection per probe; handshake time and time to the first reply byte').conflicts(
        'sweep',
      ),
    )
    .addOption(
      new Option('--sweep <min:max[:step]>', 'UDP probes of growing sizes (bytes); reports the largest size that gets a whole reply')
        .argParser((v: string) => parsed(() => parseSweep(v)))
        .conflicts('tcp'),
    );
}
// ---- end of issue 17 flags ----

async function ping(host: string, flags: PingFlags): Promise<number> {
  if (flags.tcp === true) return tcpPing(host, flags);
  if (flags.sweep !== undefined) return sweepPing(host, flags);
  let pinger: Pinger;
  try {
    pinger = new Pinger({ host, port: flags.port, count: flags.count, interval: flags.interval, timeout: flags.timeout, size: flags.size });
  } catch (err) {
    process.stderr.write(`upcase ping: ${errorMessage(err)}\n`);
    return EXIT_USAGE;
  }
  const destination = formatHostPort(host, flags.port);
  const out = (line: string): boolean => process.stdout.write(`${line}\n`);
  const json = flags.json === true;
  // Lines in sequence order: the library emits each probe once settled, in order.
  pinger.on('probe', (r) => out(json ? JSON.stringify(r) : formatProbe(destination, r)));
  const extra = (r: ExtraReply): void => {
    out(
      json
        ? JSON.stringify(r)
        : `${r.bytes} bytes from ${destination}: seq=${r.seq} time=${r.rtt.toFixed(3)} ms (${r.type === 'duplicate' ? 'DUP!' : 'late'})`,
    );
  };
  pinger.on('duplicate', extra);
  pinger.on('late', extra);
  // Ctrl-C ends the run with the summary, as in ping(8).
  const onSigint = (): void => pinger.stop();
  process.on('SIGINT', onSigint);
  if (!json) out(`PING ${destination} (udp): ${flags.size} data bytes`);
  let summary: PingSummary;
  try {
    summary = await pinger.run();
  } catch (err) {
    process.stderr.write(`upcase: ${errorMessage(err)}\n`);
    return EXIT_FAILURE;
  } finally {
    process.off('SIGINT', onSigint);
  }
  if (json) out(JSON.stringify({ type: 'summary', transport: 'udp', host, port: flags.port, size: flags.size, ...summary }));
  else for (const line of formatSummary(destination, summary)) out(line);
  if (looksRateLimited(summary, flags.interval)) {
    process.stderr.write(
      `upcase: hint: the first ${summary.firstLoss! - 1} pings were all answered, then ${formatPercent((summary.lostAfterFirstLoss * 100) / (summary.transmitted - summary.firstLoss! + 1))}% were lost: ` +
        `that looks like the server's per-source rate limit (upcase serve --udp-rate-limit, default 100 datagrams/s with a burst of 100), ` +
        `not a lossy network; ping slower (-i) or raise the limit\n`,
    );
  }
  return summary.received > 0 ? EXIT_OK : EXIT_FAILURE;
}

/** One line per probe, as ping(8) prints them. */
export function formatProbe(destination: string, r: ProbeRecord): string {
  switch (r.status) {
    case 'reply':
      return `${r.bytes} bytes from ${destination}: seq=${r.seq} time=${r.rtt!.toFixed(3)} ms`;
    case 'timeout':
      return `Request timed out (seq=${r.seq})`;
    case 'error':
      return `From ${destination}: seq=${r.seq} ${r.error}`;
    default:
      return `No reply yet (seq=${r.seq}): stopped`;
  }
}

/** The summary lines of ping(8), then the figures ping(8) does not have (docs/clients.md defines each). */
export function formatSummary(destination: string, s: PingSummary): string[] {
  const dups = s.duplicates > 0 ? `, +${s.duplicates} duplicates` : '';
  const errors = s.errors > 0 ? `, +${s.errors} errors` : '';
  const lines = [
    `--- ${destination} upcase ping statistics ---`,
    `${s.transmitted} packets transmitted, ${s.received} received${dups}${errors}, ${formatPercent(s.loss)}% packet loss, time ${Math.round(s.time)}ms`,
  ];
  if (s.rtt !== null) {
    const { min, avg, max, mdev, median, stddev } = s.rtt;
    lines.push(`rtt min/avg/max/mdev = ${min.toFixed(3)}/${avg.toFixed(3)}/${max.toFixed(3)}/${mdev.toFixed(3)} ms`);
    lines.push(`rtt median ${median.toFixed(3)} ms, stddev ${stddev.toFixed(3)} ms`);
  }
  if (s.ipdv !== null) {
    const j = s.ipdv;
    lines.push(
      `ipdv (jitter) min/mean/median/max/stddev = ${[j.min, j.mean, j.median, j.max, j.stddev].map((v) => v.toFixed(3)).join('/')} ms`,
    );
  }
  lines.push(
    `lost ${s.lost}, late ${s.late}, duplicates ${s.duplicates}, reordered ${s.reordered}${s.unexpected > 0 ? `, unexpected ${s.unexpected}` : ''}`,
  );
  return lines;
}

async function tcpPing(host: string, flags: PingFlags): Promise<number> {
  let pinger: TcpPinger;
  try {
    pinger = new TcpPinger({
      host,
      port: flags.port,
      count: flags.count,
      interval: flags.interval,
      timeout: flags.timeout,
      size: flags.size,
    });
  } catch (err) {
    process.stderr.write(`upcase ping: ${errorMessage(err)}\n`);
    return EXIT_USAGE;
  }
  const destination = formatHostPort(host, flags.port);
  const out = (line: string): boolean => process.stdout.write(`${line}\n`);
  const json = flags.json === true;
  pinger.on('probe', (r) => out(json ? JSON.stringify(r) : formatTcpProbe(destination, r)));
  const onSigint = (): void => pinger.stop();
  process.on('SIGINT', onSigint);
  if (!json) out(`PING ${destination} (tcp): ${flags.size} data bytes, a new connection per probe`);
  let summary: TcpPingSummary;
  try {
    summary = await pinger.run();
  } catch (err) {
    process.stderr.write(`upcase: ${errorMessage(err)}\n`);
    return EXIT_FAILURE;
  } finally {
    process.off('SIGINT', onSigint);
  }
  if (json) out(JSON.stringify({ type: 'summary', transport: 'tcp', host, port: flags.port, size: flags.size, ...summary }));
  else {
    const incomplete = summary.incomplete > 0 ? `, ${summary.incomplete} incomplete` : '';
    const errors = summary.errors > 0 ? `, +${summary.errors} errors` : '';
    out(`--- ${destination} upcase ping --tcp statistics ---`);
    out(
      `${summary.transmitted} probes, ${summary.received} replies${incomplete}${errors}, ${formatPercent(summary.loss)}% without reply, time ${Math.round(summary.time)}ms`,
    );
    for (const [name, stats] of [
      ['connect', summary.connect],
      ['first byte', summary.firstByte],
    ] as const) {
      if (stats !== null)
        out(
          `${name} min/mean/median/max/stddev = ${[stats.min, stats.mean, stats.median, stats.max, stats.stddev].map((v) => v.toFixed(3)).join('/')} ms`,
        );
    }
  }
  return summary.received > 0 ? EXIT_OK : EXIT_FAILURE;
}

export function formatTcpProbe(destination: string, r: TcpProbeRecord): string {
  const connect = r.connect === null ? '' : ` connect=${r.connect.toFixed(3)} ms`;
  if (r.status !== 'reply') return `From ${destination}: seq=${r.seq}${connect} ${r.error}`;
  const note = r.complete === true ? '' : ` (incomplete: the reply is not the whole uppercase of the ${r.size} bytes sent)`;
  return `${r.bytes} bytes from ${destination}: seq=${r.seq}${connect} first byte=${r.firstByte!.toFixed(3)} ms${note}`;
}

async function sweepPing(host: string, flags: PingFlags): Promise<number> {
  const destination = formatHostPort(host, flags.port);
  const out = (line: string): boolean => process.stdout.write(`${line}\n`);
  const json = flags.json === true;
  const spec = flags.sweep!;
  if (!json) out(`SWEEP ${destination} (udp): ${spec.min} to ${spec.max} bytes`);
  let result: SweepResult;
  try {
    result = await sweep({ host, port: flags.port, timeout: flags.timeout, ...spec }, (step) =>
      out(json ? JSON.stringify({ type: 'size', ...step }) : formatSweepStep(destination, step)),
    );
  } catch (err) {
    process.stderr.write(`upcase ping: ${errorMessage(err)}\n`);
    return err instanceof Error && 'code' in err && err.code === 'UPCASE_ERR_INVALID_ARG' ? EXIT_USAGE : EXIT_FAILURE;
  }
  if (json)
    out(
      JSON.stringify({
        type: 'summary',
        transport: 'udp',
        host,
        port: flags.port,
        largest: result.largest,
        firstFailure: result.firstFailure,
      }),
    );
  else {
    out(`--- ${destination} upcase ping --sweep ---`);
    out(
      result.largest === null
        ? 'no size got a whole reply'
        : `largest datagram with a whole reply: ${result.largest} bytes${result.firstFailure === null ? '' : `; first size without one: ${result.firstFailure} bytes`}`,
    );
  }
  return result.largest !== null ? EXIT_OK : EXIT_FAILURE;
}

export function formatSweepStep(destination: string, s: SweepStep): string {
  const tries = s.tries > 1 ? ` (${s.tries} tries)` : '';
  switch (s.status) {
    case 'reply':
      return `${s.size} bytes: ${s.bytes} bytes from ${destination} time=${s.rtt!.toFixed(3)} ms${tries}`;
    case 'truncated':
      return `${s.size} bytes: truncated reply of ${s.bytes} bytes from ${destination}${tries}`;
    case 'timeout':
      return `${s.size} bytes: no reply${tries}`;
    default:
      return `${s.size} bytes: ${s.error}${tries}`;
  }
}

/** As C's `%g`, which ping(8) uses for the loss: `30`, `33.3333`. */
function formatPercent(value: number): string {
  return String(Number(value.toPrecision(6)));
}
