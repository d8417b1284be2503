import { Command } from 'commander';
import { PING_OPTIONS, type PingOptions } from '../client/options.js';
import { type ExtraReply, looksRateLimited, Pinger, type PingSummary, type ProbeRecord } from '../client/ping.js';
import { parseSweep, sweep, sweepSizes, type SweepResult, type SweepStep } from '../client/sweep.js';
import { TcpPinger, type TcpProbeRecord } from '../client/tcp-ping.js';
import { formatHostPort, InvalidArgumentError } from '../errors.js';
import { SERVER_DEFAULTS } from '../options.js';
import { boolean, type Kind } from '../options/kinds.js';
import type { Table } from '../options/table.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './common.js';
import { reportFailure } from './failure.js';
import { addOptions, Flags } from './options.js';

/** `--sweep MIN:MAX[:STEP]`: sizes in bytes (src/client/sweep.ts checks the numbers). */
function sweepSpec(): Kind<string> {
  const expected = 'MIN:MAX or MIN:MAX:STEP in bytes, like 1000:9000:500';
  return {
    expected,
    arg: '<min:max[:step]>',
    check: (name, v) => {
      if (typeof v !== 'string') throw new InvalidArgumentError(name, expected, v);
      const { min, max, step } = parseSweep(v);
      sweepSizes(min, max, step);
      return v;
    },
    fromText: (text) => text,
    format: String,
  };
}

/** `upcase ping`'s options: the pinger's (src/client/options.ts), then the command's own. */
export const PING_COMMAND_OPTIONS = {
  ...PING_OPTIONS,
  quiet: { kind: boolean(), short: '-q', help: 'quiet: print only the header line and the summary', cli: true },
  json: { kind: boolean(), help: 'print one JSON object per line: a record per probe, then the summary', cli: true },
  tcp: {
    kind: boolean(),
    conflicts: ['sweep'],
    help: 'TCP probes, as tcping: a new connection per probe; handshake time and time to the first reply byte',
    cli: true,
  },
  sweep: {
    kind: sweepSpec(),
    conflicts: ['tcp'],
    help: 'UDP probes of growing sizes (bytes); reports the largest size that gets a whole reply',
    docs: 'what IPv4 and IPv6 paths allow: [clients.md](clients.md)',
    cli: true,
  },
} as const satisfies Table;

interface PingFlags extends PingOptions {
  quiet?: boolean;
  json?: boolean;
  tcp?: boolean;
  sweep?: string;
}

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
  let flags: PingFlags;
  try {
    flags = cli.options<PingFlags>(PING_COMMAND_OPTIONS);
    pinger = new Pinger(pingerOptions(flags));
  } catch (err) {
    return cli.refuse(err);
  }
  const quiet = flags.quiet === true;
  const json = flags.json === true;
  const { host, port, size, interval } = pinger.options;
  try {
    // As ping(8): an unknown host is one error line and exit 2, before any header.
    await pinger.resolve();
  } catch (err) {
    return reportFailure(err);
  }
  const destination = formatHostPort(host, port);
  if (flags.tcp === true) return tcpPing(flags, destination, json, quiet);
  if (flags.sweep !== undefined) return sweepPing(flags, destination, json);
  const out = (line: string): boolean => process.stdout.write(`${line}\n`);
  if (!quiet || json) {
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
  }
  if (!json) out(`PING ${destination} (udp): ${size} data bytes`);
  const summary = await runUntilSigint(pinger);
  if (typeof summary === 'number') return summary;
  if (json) out(JSON.stringify({ type: 'summary', transport: 'udp', host, port, size, ...summary }));
  else for (const line of formatSummary(destination, summary)) out(line);
  if (looksRateLimited(summary, interval)) {
    process.stderr.write(
      `upcase: hint: the first ${summary.firstLoss! - 1} pings were all answered, then ${formatPercent((summary.lostAfterFirstLoss * 100) / (summary.transmitted - summary.firstLoss! + 1))}% were lost: ` +
        `that looks like the server's per-source rate limit (upcase serve --udp-rate-limit, default ${SERVER_DEFAULTS.udpRateLimit} datagrams/s with a burst of as many), ` +
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

/** The pinger's own options out of the command's. */
function pingerOptions(flags: PingFlags): PingOptions {
  const { quiet: _quiet, json: _json, tcp: _tcp, sweep: _sweep, ...options } = flags;
  return options;
}

/**
 * Runs a pinger to its end; Ctrl-C (SIGINT) ends it early with the summary, as in
 * ping(8). Resolves to the summary, or to the exit status of a failure it reported.
 */
async function runUntilSigint<S>(pinger: { run(): Promise<S>; stop(): void }): Promise<S | number> {
  const onSigint = (): void => pinger.stop();
  process.on('SIGINT', onSigint);
  try {
    return await pinger.run();
  } catch (err) {
    return reportFailure(err);
  } finally {
    process.off('SIGINT', onSigint);
  }
}

async function tcpPing(flags: PingFlags, destination: string, json: boolean, quiet: boolean): Promise<number> {
  const pinger = new TcpPinger(pingerOptions(flags));
  const { host, port, size } = pinger.options;
  const out = (line: string): boolean => process.stdout.write(`${line}\n`);
  if (!quiet || json) pinger.on('probe', (r) => out(json ? JSON.stringify(r) : formatTcpProbe(destination, r)));
  if (!json) out(`PING ${destination} (tcp): ${size} data bytes, a new connection per probe`);
  const summary = await runUntilSigint(pinger);
  if (typeof summary === 'number') return summary;
  if (json) out(JSON.stringify({ type: 'summary', transport: 'tcp', host, port, size, ...summary }));
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

async function sweepPing(flags: PingFlags, destination: string, json: boolean): Promise<number> {
  const { host, port, timeout } = flags;
  const spec = parseSweep(flags.sweep!);
  const out = (line: string): boolean => process.stdout.write(`${line}\n`);
  if (!json) out(`SWEEP ${destination} (udp): ${spec.min} to ${spec.max} bytes`);
  let result: SweepResult;
  try {
    result = await sweep({ host, port, timeout, ...spec }, (step) =>
      out(json ? JSON.stringify({ type: 'size', ...step }) : formatSweepStep(destination, step)),
    );
  } catch (err) {
    return reportFailure(err);
  }
  if (json)
    out(JSON.stringify({ type: 'summary', transport: 'udp', host, port, largest: result.largest, firstFailure: result.firstFailure }));
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
