import cluster from 'node:cluster';
import { Command } from 'commander';
import pino, { type Logger } from 'pino';
import { formatHostPort, InvalidArgumentError } from '../errors.js';
import { type NormalizedServerOptions, normalizeServerOptions, SERVER_OPTIONS, type ServerOptions } from '../options.js';
import { boolean, choice, host, integerOrAuto, port } from '../options/kinds.js';
import type { Table } from '../options/table.js';
import { ClusterPrimary, clusterWorkerPort, clusterWorkerSlot, resolveWorkerCount } from '../server/cluster.js';
import { METRICS_DEFAULT_HOST, metricsUrl } from '../server/metrics.js';
import { type ServeOptions, servePrimary, serveSingle, serveWorker } from '../server/process.js';
import { type ServerAddress, UpcaseServer } from '../server/server.js';
import type { ProcessHost } from '../server/signals.js';
import { EXIT_USAGE } from './common.js';
import { reportFailure } from './failure.js';
import { clusterTransports, transportsLine } from './transports.js';
import { addOptions, Flags, isUsageError } from './options.js';
import { announceTrace, SERVE_TRACE_TRANSPORTS, traceWriter } from './trace.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** `upcase serve`'s options: the server's (src/options.ts), then the process's own. */
export const SERVE_OPTIONS = {
  ...SERVER_OPTIONS,
  workers: {
    kind: integerOrAuto({ min: 1, max: 1024 }),
    default: 1,
    help: 'worker processes (node:cluster), each serving TCP and UDP; auto = one per CPU',
    docs: '`auto` = `os.availableParallelism()` ([Workers](operations.md#workers))',
    cli: true,
  },
  metricsPort: {
    kind: port(),
    defaultText: 'off',
    help: 'serve /, /metrics, /connections, /healthz, /readyz over HTTP on this port; 0 = any free port',
    cli: true,
  },
  metricsHost: { kind: host(), default: METRICS_DEFAULT_HOST, help: 'address of the metrics endpoint', cli: true },
  logLevel: { kind: choice(LOG_LEVELS, '<level>'), default: 'info', help: 'log level', cli: true },
  trace: {
    kind: boolean(),
    default: false,
    help: "narrate the server's socket steps on stderr, payload included; one process, on the stream and dgram transports",
    docs: 'the log level then defaults to `warn` ([tutorial](tutorial.md))',
    cli: true,
  },
} as const satisfies Table;

interface ProcessFlags {
  workers: number | 'auto';
  metricsPort?: number;
  metricsHost: string;
  logLevel: string;
  trace: boolean;
}

/** What `upcase serve` runs with: the server's options as given, and the process's own. */
export interface ServeFlags extends ServerOptions, ProcessFlags {}

/** Every setting of `upcase serve`, defaults included, as {@link parseServeArgs} gives them. */
export type ParsedServeFlags = NormalizedServerOptions & ProcessFlags;

/** The `serve` command's flags, without an action. Every flag has an `UPCASE_*` variable; the flag wins. */
function serveOptions(): Command {
  return addOptions(new Command('serve').description('run the upcase server: TCP and UDP on one port'), SERVE_OPTIONS);
}

/**
 * `--trace` narrates one process's socket steps on the transports that report them:
 * it refuses the native ones and workers, and keeps the logs to warnings unless a log
 * level is given, so the narration reads on its own.
 */
function checkTraceFlags(cli: Flags, flags: ServeFlags): void {
  // The native transports are refused by the library (UpcaseServer), which the trace needs.
  if (flags.workers !== 1) throw new InvalidArgumentError('workers', '1 with `trace` (it narrates one process)', flags.workers);
  if (!cli.fromCommandLine('logLevel') && process.env.UPCASE_LOG_LEVEL === undefined) flags.logLevel = 'warn';
}

/** The flags of this run, checked by the library (which throws InvalidArgumentError); the server's as given. */
function readServeFlags(command: Command): { cli: Flags; flags: ServeFlags } {
  const cli = new Flags('upcase serve', SERVE_OPTIONS, command);
  const flags = cli.options<ServeFlags>(SERVE_OPTIONS);
  normalizeServerOptions(flags);
  if (flags.trace) checkTraceFlags(cli, flags);
  return { cli, flags };
}

export function serveCommand(setExitCode: (code: number) => void): Command {
  return serveOptions().action(async (_flags: unknown, command: Command) => {
    let parsed: { cli: Flags; flags: ServeFlags };
    try {
      parsed = readServeFlags(command);
    } catch (err) {
      if (!isUsageError(err)) throw err;
      process.stderr.write(`${new Flags('upcase serve', SERVE_OPTIONS, command).describe(err)}\n`);
      setExitCode(EXIT_USAGE);
      return;
    }
    setExitCode(await serve(parsed.flags, parsed.cli));
  });
}

/**
 * Parses `serve` arguments (and `UPCASE_*` variables) exactly as `upcase serve`
 * would, without serving, and resolves to every setting with its default.
 * Rejects with commander's error, or the library's InvalidArgumentError, on a bad value.
 */
export async function parseServeArgs(args: string[]): Promise<ParsedServeFlags> {
  let result: ParsedServeFlags | undefined;
  const command = serveOptions()
    .exitOverride()
    .configureOutput({ writeErr: () => {}, writeOut: () => {} })
    .action((_flags: unknown, cmd: Command) => {
      const { flags } = readServeFlags(cmd);
      result = { ...flags, ...normalizeServerOptions(flags) };
    });
  await command.parseAsync(args, { from: 'user' });
  if (result === undefined) throw new Error('serve arguments did not parse');
  return result;
}

function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  // JSON lines on stderr when piped; human-readable on a terminal. stdout is kept for the ready line.
  if (process.stderr.isTTY) {
    return pino({ level }, pino.transport({ target: 'pino-pretty', options: { destination: 2, colorize: true } })).child(bindings);
  }
  return pino({ level }, pino.destination({ fd: 2, sync: false })).child(bindings);
}

/** The server's options out of the command's. */
function serverOptions(flags: ServeFlags, logger: Logger): ServerOptions {
  const options: Record<string, unknown> = { logger };
  for (const name of Object.keys(SERVER_OPTIONS)) options[name] = flags[name as keyof ServeFlags];
  return options as ServerOptions;
}

/**
 * `The server is ready to receive on tcp+udp [::]:12000, tls [::]:12443` (scripts parse
 * it: keep it so), then a line on the transports in use (src/cli/transports.ts).
 */
function readyLine(address: ServerAddress): string {
  const plain = address.transports.filter((t) => t !== 'tls');
  const parts = plain.length > 0 ? [`${plain.join('+')} ${formatHostPort(address.host, address.port)}`] : [];
  if (address.tlsPort !== null) parts.push(`tls ${formatHostPort(address.host, address.tlsPort)}`);
  return `The server is ready to receive on ${parts.join(', ')}\n`;
}

async function serve(flags: ServeFlags, cli: Flags): Promise<number> {
  // The process's signals, and a second signal's exit: the library decides when, the CLI owns the process.
  const host: ProcessHost = { signals: process, exit: (status) => process.exit(status) };
  if (cluster.isWorker) {
    const logger = createLogger(flags.logLevel, { worker: clusterWorkerSlot() });
    return serveWorker(new UpcaseServer({ ...serverOptions(flags, logger), port: clusterWorkerPort() ?? flags.port }), { host });
  }
  const logger = createLogger(flags.logLevel);
  const workers = resolveWorkerCount(flags.workers);
  // The effective configuration, once, so an operator can see what a process runs with.
  logger.debug({ ...flags, workers, metricsPort: flags.metricsPort ?? 'off' }, 'starting');
  const options: ServeOptions = {
    host,
    metrics: flags.metricsPort === undefined ? undefined : { port: flags.metricsPort, host: flags.metricsHost },
    // On stdout before the ready line, so a script (or a test using port 0) can read it.
    onMetrics: (metrics) =>
      process.stdout.write(`Metrics on ${metricsUrl(metrics.address()!)} (/ status page, /metrics, /connections, /healthz, /readyz)\n`),
  };
  const tcpChoice = flags.tcpTransport ?? 'auto';
  const udpChoice = flags.udpTransport ?? 'auto';
  try {
    if (workers > 1) {
      const primary = new ClusterPrimary({ workers, server: serverOptions(flags, logger), logger });
      return await servePrimary(primary, {
        ...options,
        onListening: (address) => {
          process.stdout.write(readyLine(address));
          process.stdout.write(transportsLine(clusterTransports(address.transports, tcpChoice, udpChoice)));
        },
      });
    }
    const tracer = flags.trace ? traceWriter() : undefined;
    const server = new UpcaseServer(serverOptions(flags, logger), { tracer });
    if (tracer !== undefined) announceTrace(SERVE_TRACE_TRANSPORTS);
    return await serveSingle(server, {
      ...options,
      onListening: (address) => {
        process.stdout.write(readyLine(address));
        process.stdout.write(
          transportsLine({ tcp: server.tcpTransport, udp: server.udpTransport, tcpChoice, udpChoice, clustered: false }),
        );
      },
    });
  } catch (err) {
    return fail(err, logger, cli);
  }
}

/** A startup failure: exactly one line on stderr (a JSON log line would only repeat it). */
function fail(err: unknown, logger: Logger, cli: Flags): number {
  // A setting the library refuses only once it starts (a native transport that is not built) is a usage error too.
  let status = EXIT_USAGE;
  if (isUsageError(err)) process.stderr.write(`${cli.describe(err)}\n`);
  else status = reportFailure(err);
  logger.flush?.();
  return status;
}
